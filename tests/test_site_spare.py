"""The spare site: the site a publish swaps out is kept beside the live one
(``.site.spare``) and the next publish builds in it, touching only the files that changed
since the site before last. Whatever the spare holds, lost or left behind, the site it
becomes is byte for byte the site a fresh publish makes, and the live site is never
written into (its files are hard links shared with the spare)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import reports.render
import reports.site
from reports.site import SITE_MARKER, PublishError, publish
from reports.site_folder import spare_of
from scheduler.config import Settings
from scrapers.store import Store
from tests.support.site_data import NOW, build_store, make_settings
from tests.support.site_spies import (
    break_the_history_template,
    links_made,
    templates_rendered,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = build_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def site(settings: Settings, store: Store) -> Path:
    """A site published twice: the first one is the spare."""
    publish(settings, store, now=NOW)
    return publish(settings, store, now=NOW + timedelta(minutes=1))


def files_of(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder below ``folder``: its content hash (files) and mode."""
    found: dict[str, tuple[str, int]] = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "/"
        found[path.relative_to(folder).as_posix()] = (digest, path.stat().st_mode & 0o777)
    return found


def inode(path: Path) -> int:
    return path.stat().st_ino


def fresh_site(settings: Settings, store: Store, now: datetime) -> dict[str, tuple[str, int]]:
    """The site a fresh publish at ``now`` makes, in the same folder (the feed's ids come
    from it); the live site and its spare are set aside meanwhile and put back."""
    site, spare = settings.site_path, spare_of(settings.site_path)
    aside = {site: site.with_name("live.aside"), spare: site.with_name("spare.aside")}
    for path, other in aside.items():
        if path.exists():
            path.rename(other)
    try:
        publish(settings, store, now=now)
        return files_of(site)
    finally:
        shutil.rmtree(site, ignore_errors=True)
        for path, other in aside.items():
            if other.exists():
                other.rename(path)


def add_change(store: Store, at: datetime) -> None:
    with store.transaction(started_at=at, jurisdictions=["au"]) as writer:
        writer.add_change(detected_at=at, jurisdiction="au", substance=None,
                          source_id="au-poisons-standard", kind="source_failed",
                          summary="Australia — au-poisons-standard: source failing: timeout",
                          before=None, after=None, details={"error": "timeout"})


def test_a_publish_builds_in_the_spare_and_remakes_only_what_changed(
        settings: Settings, store: Store, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spare = spare_of(site)
    spare_folder, live_folder = inode(spare), inode(site)
    kept = {name: inode(spare / name) for name in ("changes/1.html", "history/ketamine.html",
                                                   "weekly/2026-W45.html", "status.csv")}
    rendered = templates_rendered(monkeypatch)
    linked = links_made(monkeypatch)
    moment = NOW + timedelta(minutes=2)
    publish(settings, store, now=moment)
    # The new site is the spare brought up to date (nothing linked: the pages it holds are
    # this publish's); the site it replaced is the new spare.
    assert inode(site) == spare_folder and inode(spare) == live_folder
    assert sorted(rendered) == ["index.html", "reference.html"] and linked == []
    for name, number in kept.items():
        assert inode(site / name) == number, name
    assert files_of(site) == fresh_site(settings, store, moment)


def test_the_site_swapped_out_is_left_exactly_as_it_was_read(settings: Settings,
                                                             store: Store,
                                                             site: Path) -> None:
    """The pages a publish remakes in the spare are hard links to the live site's until
    then: replaced in the spare, never written into, so the live site reads the same to
    the last moment (and, swapped out, is the next spare as it was)."""
    before = files_of(site)
    add_change(store, NOW + timedelta(minutes=2))
    publish(settings, store, now=NOW + timedelta(minutes=3))
    assert (site / "changes/8.html").is_file()
    assert files_of(spare_of(site)) == before


def test_what_changed_one_publish_ago_is_brought_up_to_date_in_the_spare(
        settings: Settings, store: Store, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spare is the site before last: a page that changed in the last publish and not
    in this one is linked from the live site, and a change page the spare lacks is made;
    nothing else is linked."""
    add_change(store, NOW + timedelta(minutes=2))
    publish(settings, store, now=NOW + timedelta(minutes=3))  # the spare lacks change 8
    live, spare = files_of(site), files_of(spare_of(site))
    assert "changes/8.html" not in spare
    changed_last_time = {name for name, content in live.items() if spare.get(name) != content}
    numbers = {name: inode(site / name) for name in ("changes/8.html", "changes.csv")}
    linked = links_made(monkeypatch)
    moment = NOW + timedelta(minutes=4)
    publish(settings, store, now=moment)  # built in the spare: nothing changed since
    pages_linked = {Path(path).relative_to(site.parent).as_posix().split("/", 1)[1]
                    for path in linked}
    assert set(numbers) <= pages_linked <= changed_last_time
    for name, number in numbers.items():
        assert inode(site / name) == number, name
    assert files_of(site) == fresh_site(settings, store, moment)


def test_what_the_spare_lost_or_was_left_with_is_put_right(settings: Settings,
                                                           store: Store,
                                                           site: Path) -> None:
    """A page gone from the spare is made again; the files of a spare made under another
    umask (its manifest says another mode, or none) are given the site's mode, and its
    folders too; what the new site no longer has (a page, the folder it leaves empty, a
    document) is deleted, and so is what the spare's manifest does not list."""
    spare = spare_of(site)
    (spare / "history/ketamine.html").unlink()
    os.chmod(spare / "changes/1.html", 0o600)
    os.chmod(spare / "documents", 0o700)
    (spare / "unlisted.html").write_text("a file no manifest lists")
    (spare / "history/linked.html").symlink_to(spare / "index.html")
    manifest = json.loads((spare / SITE_MARKER).read_text())
    manifest["file_mode"] = None
    (spare / "retired/deeper").mkdir(parents=True)
    (spare / "retired/deeper/page.html").write_text("a page a later site has no more")
    manifest["pages"]["retired/deeper/page.html"] = "0" * 64
    (spare / SITE_MARKER).write_text(json.dumps(manifest))
    (spare / "documents" / ("f" * 64 + ".txt")).write_text("a document no page cites")
    moment = NOW + timedelta(minutes=2)
    publish(settings, store, now=moment)
    assert not (site / "retired").exists()
    assert files_of(site) == fresh_site(settings, store, moment)


@pytest.mark.parametrize("manifest", ['{"format": 1, "pages": {"index.html": "x"}}', "{",
                                      None], ids=["another format", "unreadable", "none"])
def test_a_spare_that_cannot_be_trusted_is_not_built_in(settings: Settings, store: Store,
                                                        site: Path, manifest: str | None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    spare = spare_of(site)
    stray = spare / "history/ketamine.html"
    stray.unlink()
    stray.write_text("not what its manifest says")
    if manifest is None:
        (spare / SITE_MARKER).unlink()
    else:
        (spare / SITE_MARKER).write_text(manifest)
    live_folder, pages = inode(site), len(files_of(site))
    linked = links_made(monkeypatch)
    moment = NOW + timedelta(minutes=2)
    publish(settings, store, now=moment)
    # Built afresh, every unchanged page linked from the live site (which, swapped out, is
    # the new spare); the untrusted spare is gone.
    assert len(linked) > pages / 2 and inode(spare) == live_folder
    assert files_of(site) == fresh_site(settings, store, moment)


def test_a_failed_publish_uses_up_the_spare_and_the_next_builds_afresh(
        settings: Settings, store: Store, site: Path, request: pytest.FixtureRequest,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = files_of(site)
    break_the_history_template(tmp_path, monkeypatch, request)
    with pytest.raises(PublishError, match="previous site is unchanged"):
        publish(settings, store, now=NOW + timedelta(minutes=2))
    assert files_of(site) == before
    # The spare was being brought up to date: half-done, it is deleted with the attempt.
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".site")] == []

    monkeypatch.undo()
    reports.render.environment.cache_clear()
    live_folder = inode(site)
    moment = NOW + timedelta(minutes=3)
    publish(settings, store, now=moment)
    assert inode(spare_of(site)) == live_folder
    assert files_of(site) == fresh_site(settings, store, moment)


@pytest.mark.parametrize("kind", ["a link to another folder", "a file"])
def test_a_spare_that_is_not_a_folder_of_ours_is_removed_and_what_it_points_at_left(
        settings: Settings, store: Store, site: Path, tmp_path: Path, kind: str) -> None:
    spare = spare_of(site)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(spare, elsewhere)
    before = files_of(elsewhere)
    shutil.rmtree(spare)
    if kind == "a file":
        spare.write_text("not a site")
    else:
        spare.symlink_to(elsewhere, target_is_directory=True)
    moment = NOW + timedelta(minutes=2)
    publish(settings, store, now=moment)
    assert files_of(elsewhere) == before
    assert spare.is_dir() and not spare.is_symlink()  # the site swapped out, as always
    assert files_of(site) == fresh_site(settings, store, moment)


def test_a_file_linked_in_replaces_what_is_there_and_never_writes_into_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``link_or_copy``: what a new site's folder may hold at a page's name (one a failed
    page worker left) can be a hard link to the live site's page; linking the page in
    replaces it, and the live page keeps its bytes."""
    from reports.site_folder import link_or_copy

    live, other = tmp_path / "live.html", tmp_path / "other.html"
    live.write_bytes(b"live page")
    other.write_bytes(b"previous page")
    target = tmp_path / "new.html"
    assert link_or_copy(other, target) and os.path.samefile(other, target)  # nothing there
    os.unlink(target)
    os.link(live, target)  # what a failed worker left: the live page itself
    assert link_or_copy(other, target)
    assert os.path.samefile(other, target) and live.read_bytes() == b"live page"
    # The source gone: nothing made, what is there left as it was.
    assert not link_or_copy(tmp_path / "gone.html", target)
    assert target.read_bytes() == b"previous page"

    # No hard links on this file system: a copy, into a file of its own.
    def refused(source: object, to: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)
    copied = tmp_path / "copied.html"
    assert link_or_copy(other, copied)
    assert copied.read_bytes() == b"previous page" and not os.path.samefile(other, copied)


@pytest.mark.parametrize("unchanged", [True, False], ids=["linked", "made"])
def test_a_page_where_a_failed_worker_left_the_live_page_replaces_it(
        tmp_path: Path, unchanged: bool) -> None:
    """A new site's folder may hold, at a page's name, a hard link to the live site's page
    (a page worker killed after linking it). The page linked in (unchanged) or made (its
    inputs changed) replaces that file: the live page keeps its bytes."""
    from reports.site import Page, _fingerprint, _PageWriter

    live, staging = tmp_path / "live", tmp_path / "new"
    (live / "changes").mkdir(parents=True)
    (staging / "changes").mkdir(parents=True)
    (live / "changes" / "1.html").write_bytes(b"live page")
    os.link(live / "changes" / "1.html", staging / "changes" / "1.html")
    page = Page("changes/1.html", lambda: ("inputs", 2 if not unchanged else 1),
                lambda out: out.write(b"made again"))
    published = _fingerprint("v", Page("changes/1.html", lambda: ("inputs", 1), print))
    writer = _PageWriter(str(staging), str(live), "v", {"changes/1.html": published}, None,
                         {}, None)
    writer.write(page)
    assert (live / "changes" / "1.html").read_bytes() == b"live page"
    assert (staging / "changes" / "1.html").read_bytes() == (
        b"live page" if unchanged else b"made again")
    assert os.path.samefile(live / "changes" / "1.html",
                            staging / "changes" / "1.html") == unchanged


@pytest.mark.parametrize("pages", [
    {}, {"index.html": ""},
    {"weekly/2026-W01.html": "a" * 64, "é\"\\\n\u2028.html": "ü\t", "b.html": "0" * 64},
    {f"changes/{n}.html": f"{n:064x}" for n in range(300, 0, -1)}],
    ids=["none", "one", "escapes", "many, unsorted"])
@pytest.mark.parametrize("mode", [None, 0o644])
def test_the_manifest_is_what_json_writes_a_page_a_line_and_reads_back(
        pages: dict[str, str], mode: int | None, tmp_path: Path) -> None:
    from reports.site_folder import FORMAT, manifest_bytes, read_manifest
    from scrapers.clock import stamp

    written = manifest_bytes(pages, NOW, mode)
    assert written == json.dumps({"format": FORMAT, "generator": "schedwatch",
                                  "published_at": stamp(NOW), "file_mode": mode,
                                  "pages": dict(sorted(pages.items()))},
                                 indent=1).encode("utf-8")
    (tmp_path / SITE_MARKER).write_bytes(written)
    assert read_manifest(tmp_path) == (pages, mode)
