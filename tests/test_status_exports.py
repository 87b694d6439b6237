"""The site's status.csv and status.json from row texts kept between publishes
(reports/status_exports.py): always the bytes of making every row (``exports.write_csv`` and
``write_json`` of ``feed.status_rows``), with only the rows whose record or interval changed
made again, whatever the kept file holds."""

from __future__ import annotations

import dataclasses
import io
import marshal
from pathlib import Path

import pytest

from reports import exports, feed, status_exports
from reports.pages import Jurisdiction, Snapshot
from scrapers.records import StatusRecord
from scrapers.rows import SourceState, StatusInterval

COLUMNS = feed.STATUS_COLUMNS
VERSION = "v1"


def record(substance: str, **extra: object) -> StatusRecord:
    values: dict[str, object] = dict(
        jurisdiction="ca", substance=substance, status="controlled", schedule="I",
        control_level="CDSA-I", instrument="S.C. 1996, c. 19", provision="Sch. I, item 1",
        listed_as=substance.capitalize(), basis="named", source_id="ca-cdsa",
        source_url="https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml",
        document_sha256="a" * 64, retrieved_at="2026-01-05T06:00:00Z",
        dates=(("point in time", "2026-01-01"),))
    values.update(extra)
    return StatusRecord(**values)  # type: ignore[arg-type]


def interval(number: int, rec: StatusRecord, *, confirmed: str = "2026-03-01T06:00:00Z",
             sha: str = "b" * 64, valid_to: str | None = None) -> StatusInterval:
    return StatusInterval(id=number, record=rec, valid_from="2026-01-05T06:00:00Z",
                          valid_to=valid_to, last_confirmed_at=confirmed,
                          last_document_sha256=sha, legal_from="2026-01-01",
                          record_digest=f"{number:064x}" if number % 2 else "")


def state(health: str = "healthy") -> SourceState:
    return SourceState(
        source_id="ca-cdsa", jurisdiction="ca", health=health, failing_since=None,
        consecutive_failures=0, last_error=None, last_attempt_at=None,
        last_healthy_at="2026-03-01T06:00:00Z", last_document_sha256="b" * 64, last_url=None,
        etag=None, last_modified=None, marker=None, watch_keys=None, document_dates=(),
        document_meta={}, title=None, instrument=None)


def snapshot(intervals: list[StatusInterval], health: str = "healthy",
             disabled: frozenset[str] = frozenset()) -> Snapshot:
    return Snapshot(intervals=tuple(intervals), changes=(), pending=(),
                    states={"ca-cdsa": state(health)}, failed_mail=(),
                    heartbeat=None, documents={}, watched=(), all_entries=True,
                    jurisdictions=(Jurisdiction(code="ca", name="Canada",
                                                sources=("ca-cdsa",)),),
                    disabled=disabled)


def made_whole(snap: Snapshot) -> tuple[bytes, bytes]:
    """status.csv and status.json as the site wrote them before rows were kept."""
    rows = feed.status_rows(snap)
    csv_out, json_out = io.BytesIO(), io.BytesIO()
    exports.write_csv(rows, COLUMNS, csv_out)
    exports.write_json(rows, COLUMNS, json_out)
    return csv_out.getvalue(), json_out.getvalue()


def from_kept(snap: Snapshot, data: Path, **options: object) -> tuple[bytes, bytes]:
    texts = status_exports.status_texts(snap, COLUMNS, data_dir=data, version=VERSION,
                                        **options)  # type: ignore[arg-type]
    assert texts is not None
    csv_out, json_out = io.BytesIO(), io.BytesIO()
    exports.write_csv_lines(COLUMNS, texts[0], csv_out)
    assert exports.write_json_objects(texts[1], json_out)
    return csv_out.getvalue(), json_out.getvalue()


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The substances of the rows made (not filled in from kept texts): every row made is
    first built by ``status_exports._row``."""
    substances: set[str] = set()
    real = status_exports._row

    def counting(snap, interval):  # noqa: ANN001, ANN202 - status_exports._row's own
        substances.add(interval.record.substance)
        return real(snap, interval)

    monkeypatch.setattr(status_exports, "_row", counting)
    return substances


def day_one() -> list[StatusInterval]:
    return [interval(n, record(name)) for n, name in
            enumerate(("ketamine", "esketamine", "arketamine", "tiletamine"), start=1)]


def test_a_day_later_only_the_rewritten_row_is_made_and_the_bytes_are_the_same(
        tmp_path: Path, made: set[str]) -> None:
    first = snapshot(day_one())
    assert from_kept(first, tmp_path) == made_whole(first)
    assert made == {"arketamine", "esketamine", "ketamine", "tiletamine"}
    assert (tmp_path / status_exports.KEPT_FILE).is_file()

    # The next day: every row confirmed again by a new document, the source failing now
    # (all three open cells change on every row), and one record rewritten in place.
    made.clear()
    later = [dataclasses.replace(iv, last_confirmed_at="2026-03-02T06:00:00Z",
                                 last_document_sha256="c" * 64) for iv in day_one()]
    later[2] = dataclasses.replace(later[2], record=record("arketamine", schedule="III"),
                                   record_digest="f" * 64)
    second = snapshot(later, health="source_failed")
    assert from_kept(second, tmp_path) == made_whole(second)
    assert made == {"arketamine"}
    assert b"2026-03-02T06:00:00Z" in made_whole(second)[0]

    # A disabled source, a listing whose end is now known (and no document), a new record.
    made.clear()
    third = snapshot([*later[:3], dataclasses.replace(later[3], legal_to="2026-06-01",
                                                      last_document_sha256=None),
                      interval(9, record("phencyclidine"))], disabled=frozenset({"ca-cdsa"}))
    assert from_kept(third, tmp_path) == made_whole(third)
    assert made == {"phencyclidine", "tiletamine"}


@pytest.mark.parametrize("kept", [b"", b"not marshal at all", marshal.dumps(("other", {})),
                                  marshal.dumps((1, 2, 3)),
                                  marshal.dumps(("tag", {"key": ("one text",)}))],
                         ids=["empty", "garbage", "other shape", "wrong tuple", "bad rows"])
def test_a_kept_file_that_is_not_ours_is_ignored(tmp_path: Path, made: set[str],
                                                 kept: bytes) -> None:
    path = tmp_path / status_exports.KEPT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(kept)
    snap = snapshot(day_one())
    assert from_kept(snap, tmp_path) == made_whole(snap)
    assert len(made) == 4


def test_kept_texts_of_another_shape_are_made_again(tmp_path: Path, made: set[str]) -> None:
    """A file of this version whose texts are not cut at the three open cells (written by
    hand, or by a bug) is not used."""
    snap = snapshot(day_one())
    from_kept(snap, tmp_path)
    path = tmp_path / status_exports.KEPT_FILE
    tag, rows = marshal.loads(path.read_bytes())
    path.write_bytes(marshal.dumps((tag, {key: (line[:2], obj) for key, (line, obj)
                                          in rows.items()})))
    made.clear()
    assert from_kept(snap, tmp_path) == made_whole(snap) and len(made) == 4


def test_another_version_or_a_fresh_site_makes_every_row(tmp_path: Path,
                                                         made: set[str]) -> None:
    snap = snapshot(day_one())
    from_kept(snap, tmp_path)
    made.clear()
    texts = status_exports.status_texts(snap, COLUMNS, data_dir=tmp_path, version="v2")
    assert texts is not None and len(made) == 4
    made.clear()
    assert from_kept(snap, tmp_path, reuse=False) == made_whole(snap) and len(made) == 4
    made.clear()
    assert from_kept(snap, tmp_path) == made_whole(snap) and made == set()


def test_scraped_text_holding_a_mark_or_a_percent_sign_is_written_exactly(
        tmp_path: Path, made: set[str]) -> None:
    """Scraped text is untrusted: a private-use mark or a "%" in it never becomes a cell
    to fill; such a row is made every time, and the others are kept."""
    odd = [interval(1, record("ketamine", listed_as="Ketamine \ue000 100% \ue001 \\ue000")),
           interval(2, record("esketamine", legal_note="=1+1, \"quoted\" %s %% /x")),
           interval(3, record("arketamine"))]
    snap = snapshot(odd)
    assert from_kept(snap, tmp_path) == made_whole(snap)
    made.clear()
    again = snapshot([dataclasses.replace(iv, last_confirmed_at="2026-03-09T06:00:00Z")
                      for iv in odd])
    assert from_kept(again, tmp_path) == made_whole(again)
    assert made == {"ketamine"}


def test_an_open_cell_that_is_not_plain_makes_its_row(tmp_path: Path,
                                                      made: set[str]) -> None:
    """A value that a CSV cell would quote or neutralise, JSON escape, or that is not text
    at all, is not filled in: its row is made whole (and its kept text stays for later)."""
    rows = [*day_one(), interval(5, record("phencyclidine"))]
    snap = snapshot(rows)
    from_kept(snap, tmp_path)
    made.clear()
    odd = snapshot([dataclasses.replace(iv, last_confirmed_at=stamp) for iv, stamp in
                    zip(rows, ("2026/03/01", "-1", "a,b", "", 20260301), strict=True)])
    assert from_kept(odd, tmp_path) == made_whole(odd)
    assert made == {"arketamine", "esketamine", "ketamine", "phencyclidine"}
    made.clear()
    assert from_kept(snap, tmp_path) == made_whole(snap) and made == set()


def test_a_value_only_pandas_writes_leaves_the_table_to_the_old_writers(
        tmp_path: Path) -> None:
    snap = snapshot([interval(1, record("ketamine", review=1.5))])
    assert status_exports.status_texts(snap, COLUMNS, data_dir=tmp_path,
                                       version=VERSION) is None


def test_a_data_folder_that_cannot_be_written_keeps_nothing_and_writes_the_same(
        tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    snap = snapshot(day_one())
    assert from_kept(snap, blocked) == made_whole(snap)
    assert not (tmp_path / status_exports.KEPT_FILE).exists()
