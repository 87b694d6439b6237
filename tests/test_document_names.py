"""The extension each archived document is published under, kept between publishes with
the media type it was worked out from (reports/document_names.py): a publish reads the
first bytes of only the documents it holds none for under their media type, and the site
it makes is always the one a fresh publish makes, whatever the kept file holds: a document
row rewritten by hand, a kept extension that is no extension, one kept under another media
type, a site made afresh.

A real Store (tests/support/site_data.py) and real publishes into tmp_path."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import reports.site
from reports import document_names, kept
from reports.site import _version, publish
from reports.site_folder import spare_of
from scheduler.config import Settings
from scrapers.store import Store
from tests.support.site_compare import assert_same_site
from tests.support.site_data import NOW, build_store, make_settings


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    """The constructed store (tests/support/site_data.py) and its settings."""
    store = build_store(tmp_path)
    yield make_settings(tmp_path), store
    store.close()


def documents_of(site: Path) -> list[str]:
    return sorted(path.name for path in (site / "documents").iterdir())


def rebuilt(settings: Settings, store: Store) -> Path:
    """The site a full rebuild makes of the same store at the moment ``again`` publishes,
    in a folder of its own (no previous site: nothing kept is taken)."""
    return publish(dataclasses.replace(settings, site_dir=settings.site_path.with_name("full")),
                   store, now=NOW + timedelta(minutes=5))


@pytest.fixture
def heads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The documents whose first bytes a publish read (a spy on ``site._head``)."""
    read: list[Path] = []
    real = reports.site._head

    def head(path: Path) -> bytes:
        read.append(path)
        return real(path)

    monkeypatch.setattr(reports.site, "_head", head)
    return read


def again(settings: Settings, store: Store) -> Path:
    return publish(settings, store, now=NOW + timedelta(minutes=5))


def test_a_publish_reads_only_the_documents_it_holds_no_extension_for(
        built: tuple[Settings, Store], heads: list[Path]) -> None:
    settings, store = built
    site = publish(settings, store, now=NOW)
    cited = documents_of(site)
    assert len(cited) >= 4 and len(heads) == len(cited)  # a fresh site: every one
    heads.clear()
    site = again(settings, store)
    assert heads == []  # every extension kept: no document opened
    assert documents_of(site) == cited
    assert_same_site(site, rebuilt(settings, store))


def test_a_document_row_rewritten_by_hand_gets_its_extension_worked_out_again(
        built: tuple[Settings, Store], heads: list[Path]) -> None:
    settings, store = built
    site = publish(settings, store, now=NOW)
    before = documents_of(site)
    xml = next(name for name in before if name.endswith(".xml.txt"))
    sha = xml.split(".", 1)[0]
    with store.db.connect() as conn:
        conn.execute("UPDATE documents SET media_type = 'application/pdf' WHERE sha256 = :sha",
                     {"sha": sha})
    heads.clear()
    site = again(settings, store)
    assert f"{sha}.pdf" in documents_of(site) and xml not in documents_of(site)
    assert len(heads) == 1  # that one worked out again: its media type is another
    assert_same_site(site, rebuilt(settings, store))


@pytest.mark.parametrize("planted", ["/../../escape", ".html", "", 7],
                         ids=["a path", "not one it gives", "empty", "not text"])
def test_a_kept_extension_that_document_extension_does_not_give_is_not_taken(
        built: tuple[Settings, Store], planted: Any) -> None:
    settings, store = built
    site = publish(settings, store, now=NOW)
    sha = documents_of(site)[0].split(".", 1)[0]
    version = _version(settings)
    media_type = document_names.load(settings.data_dir, version)[sha][0]
    kept.save(settings.data_dir / document_names.FILE, f"1\0{version}",
              {sha: (media_type, planted)})
    assert document_names.load(settings.data_dir, version) == {}
    site = again(settings, store)
    assert not (settings.site_path.parent / "escape").exists()
    assert_same_site(site, rebuilt(settings, store))


def planted_pdf(settings: Settings, site: Path, media_type: str | None = "same") -> str:
    """Keep ``.pdf`` (an extension it gives, but not this document's) for an XML document,
    under its own media type or ``media_type``: what a publish that takes the kept file
    would publish it under."""
    xml = next(name for name in documents_of(site) if name.endswith(".xml.txt"))
    sha = xml.split(".", 1)[0]
    version = _version(settings)
    names = document_names.load(settings.data_dir, version)
    assert names[sha][1] == ".xml.txt"
    kept.save(settings.data_dir / document_names.FILE, f"1\0{version}",
              {**names, sha: (names[sha][0] if media_type == "same" else media_type, ".pdf")})
    return sha


def test_the_kept_file_is_what_a_publish_takes(built: tuple[Settings, Store]) -> None:
    """The check the next two rest on: a kept extension under the row's media type is
    taken."""
    settings, store = built
    site = publish(settings, store, now=NOW)
    sha = planted_pdf(settings, site)
    assert f"{sha}.pdf" in documents_of(again(settings, store))


@pytest.mark.parametrize("other", [None, "application/xml; charset=utf-8", "text/xml"])
def test_an_extension_kept_under_another_media_type_is_not_taken(
        built: tuple[Settings, Store], other: str | None) -> None:
    """As after the row was rewritten, or another store with the same bytes swapped in."""
    settings, store = built
    site = publish(settings, store, now=NOW)
    sha = planted_pdf(settings, site, other)
    site = again(settings, store)
    assert f"{sha}.pdf" not in documents_of(site)
    assert_same_site(site, rebuilt(settings, store))


def test_a_site_made_afresh_takes_nothing_kept(built: tuple[Settings, Store]) -> None:
    settings, store = built
    site = publish(settings, store, now=NOW)
    sha = planted_pdf(settings, site)
    shutil.rmtree(site)
    shutil.rmtree(spare_of(site), ignore_errors=True)
    site = again(settings, store)
    assert f"{sha}.pdf" not in documents_of(site)


def test_a_document_gone_from_both_sites_is_copied_from_the_archive_under_its_kept_name(
        built: tuple[Settings, Store], heads: list[Path]) -> None:
    settings, store = built
    publish(settings, store, now=NOW)
    site = again(settings, store)  # the first is now the spare
    name = documents_of(site)[0]
    for folder in (site, spare_of(site)):
        (folder / "documents" / name).unlink()
    heads.clear()
    site = again(settings, store)
    assert name in documents_of(site) and heads == []  # its extension was kept
    assert_same_site(site, rebuilt(settings, store))
