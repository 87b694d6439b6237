"""The row digests the site's fingerprints use, kept between publishes while the store's own
triggers say no row of their kind was rewritten or removed (reports/digest_carry.py; the
``revisions`` table in scrapers/schema.py). A publish makes the digests of the rows it holds
none for and of the anchor alone, and the digests it reads are always those of digesting
every row, whatever the store went through: rows rewritten or removed by hand, a backup
restored, another store swapped in, a trigger dropped, a damaged file.

A real Store (tests/support/history_store.py: four months of daily checks) on SQLite; the
counts themselves on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import scrapers.rows
import scrapers.store
from reports import digest_carry, kept
from reports.site import read_snapshot
from scheduler.config import Settings
from scrapers.records import StatusRecord
from scrapers.schema import REVISED, SCHEMA_VERSION, rewrite_triggers
from scrapers.store import Store
from tests.support.history_store import RUN, build, history_settings, one_change_run
from tests.support.postgres import database_url, postgres_server  # noqa: F401 - fixtures
from tests.support.site_data import record

VERSION = "v1"
NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Store, dict[str, StatusRecord], Settings]]:
    store, records = build(tmp_path)
    yield store, records, history_settings(tmp_path)
    store.close()


def read(settings: Settings, store: Store) -> tuple[dict[int, str], dict[int, str]]:
    """The digests the site reads (intervals', changes'), by id: kept ones where trusted."""
    snap = read_snapshot(settings, store, version=VERSION)
    return ({iv.id: iv.record_digest for iv in snap.intervals},
            {c.id: c.row_digest for c in snap.changes})


def every(store: Store) -> tuple[dict[int, str], dict[int, str]]:
    """The oracle: every row's digest made from the row as stored now."""
    return ({iv.id: iv.record_digest for iv in store.history(digests=True)},
            {c.id: c.row_digest for c in store.changes(digests=True)})


def day(store: Store, records: dict[str, StatusRecord], name: str, number: int,
        schedule: str = "V") -> StatusRecord:
    """A day's run after the stored ones (``number`` days after ``RUN``) moving ``name``."""
    return one_change_run(store, records[name], at=RUN + timedelta(days=number),
                          schedule=schedule, document=f"v{number + 2}-{schedule}")


class Made:
    """The digests made while reading (a spy on the store's two digest functions)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.changes = 0
        self.records = 0
        real_row = scrapers.rows._digest_of_row
        spy = self

        def row(values: Any) -> str:
            spy.changes += 1
            return real_row(values)

        class Hashing:
            @staticmethod
            def sha256(data: bytes = b"") -> Any:
                spy.records += 1
                return hashlib.sha256(data)

        monkeypatch.setattr(scrapers.rows, "_digest_of_row", row)
        monkeypatch.setattr(scrapers.store, "hashlib", Hashing)


def test_a_publish_makes_the_digests_of_its_new_rows_and_the_anchors_alone(
        history: tuple[Store, dict[str, StatusRecord], Settings],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, records, settings = history
    for number, name in enumerate(("drug-1", "drug-2", "drug-3")):
        day(store, records, name, number)
    before = read(settings, store)  # nothing kept yet: every digest made, then kept
    assert before == every(store)
    assert (settings.data_dir / digest_carry.FILE).is_file()
    day(store, records, "drug-4", 3)  # one new change, one new interval, one closed
    made = Made(monkeypatch)
    after = read(settings, store)
    new_intervals, new_changes = (set(a) - set(b) for a, b in zip(after, before, strict=True))
    assert len(new_intervals) == 1 and len(new_changes) == 1
    # The new row's digest and the anchor's (made again to confirm the kept ones).
    assert (made.records, made.changes) == (2, 2)
    monkeypatch.undo()
    assert after == every(store)
    made = Made(monkeypatch)
    assert read(settings, store) == after  # nothing new: the anchors alone
    assert (made.records, made.changes) == (1, 1)


def rewrite_change(store: Store) -> None:
    with store.db.connect() as conn:
        conn.update("changes", {"summary": "rewritten by hand"}, "id = :id",
                    {"id": store.changes()[1].id})


def rewrite_record(store: Store) -> None:
    interval = store.history()[3]
    with store.db.connect() as conn:
        conn.execute("UPDATE status SET record = replace(record, :old, :new) WHERE id = :id",
                     {"old": interval.record.substance, "new": "rewritten", "id": interval.id})


def remove_last_change_and_add_another(store: Store, records: dict[str, StatusRecord]
                                       ) -> None:
    """SQLite gives the next change the id of the removed one (the highest)."""
    last = store.changes()[-1]
    with store.db.connect() as conn:
        conn.execute("DELETE FROM changes WHERE id = :id", {"id": last.id})
    day(store, records, "drug-5", 4, schedule="IV")
    assert store.changes()[-1].id == last.id


def replace_a_change_by_its_id(store: Store) -> None:
    """SQLite's INSERT OR REPLACE removes the row it replaces without its DELETE trigger."""
    second = store.changes()[1]
    with store.db.connect() as conn:
        conn.execute("INSERT OR REPLACE INTO changes (id, run_id, detected_at, jurisdiction, "
                     "source_id, kind, summary) SELECT id, run_id, detected_at, jurisdiction, "
                     "source_id, kind, 'replaced by hand' FROM changes WHERE id = :id",
                     {"id": second.id})


def replace_an_interval_by_its_id(store: Store) -> None:
    interval = store.history()[3]
    with store.db.connect() as conn:
        conn.execute("INSERT OR REPLACE INTO status SELECT * FROM status WHERE id = :id",
                     {"id": interval.id})
        conn.execute("UPDATE status SET valid_to = valid_to WHERE id = :id",
                     {"id": interval.id})  # not counted: no record rewritten
        conn.execute("INSERT OR REPLACE INTO status (id, jurisdiction, substance, source_id, "
                     "valid_from, valid_to, status, schedule, record, last_confirmed_at, "
                     "last_document_sha256, legal_from, legal_to, backfilled, dated) SELECT "
                     "id, jurisdiction, substance, source_id, valid_from, valid_to, status, "
                     "schedule, replace(record, substance, 'replaced'), last_confirmed_at, "
                     "last_document_sha256, legal_from, legal_to, backfilled, dated FROM "
                     "status WHERE id = :id", {"id": interval.id})


def swap_two_intervals_ids(store: Store) -> None:
    """Each id then names the other's record: a digest kept by id would be the other's."""
    first, second = (interval.id for interval in store.history()[2:4])
    with store.db.connect() as conn:
        for old, new in ((first, -1), (second, first), (-1, second)):
            conn.execute("UPDATE status SET id = :new WHERE id = :old", {"old": old, "new": new})


def drop_trigger_and_rewrite(store: Store) -> None:
    with store.db.connect() as conn:
        conn.execute("DROP TRIGGER changes_revised_update")
    rewrite_change(store)


@pytest.mark.parametrize("done", [
    rewrite_change, rewrite_record, remove_last_change_and_add_another,
    replace_a_change_by_its_id, replace_an_interval_by_its_id, swap_two_intervals_ids,
    drop_trigger_and_rewrite])
def test_the_digests_read_are_every_rows_after_a_hand_edit(
        history: tuple[Store, dict[str, StatusRecord], Settings], done: Any) -> None:
    store, records, settings = history
    for number, name in enumerate(("drug-1", "drug-2", "drug-3")):
        day(store, records, name, number)
    assert read(settings, store) == every(store)  # kept
    stale = every(store)
    if done is remove_last_change_and_add_another:
        done(store, records)
    else:
        done(store)
    fresh = every(store)
    assert fresh != stale  # the edit changed a digest the file keeps
    assert read(settings, store) == fresh


def test_a_restored_backup_then_other_runs_gets_its_own_digests(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    """The backup's ids go on from where it stopped: the ids the file kept after it name
    other rows (the same count of rewrites, 0, in both)."""
    store, records, settings = history
    day(store, records, "drug-1", 0)
    read(settings, store)
    database = settings.data_dir / "schedwatch.db"
    store.close()
    shutil.copyfile(database, database.with_name("backup.db"))
    store = Store(settings.data_dir)
    for number, name in enumerate(("drug-2", "drug-3"), 1):
        day(store, records, name, number)
    read(settings, store)  # keeps the digests of the two days the backup lacks
    store.close()
    shutil.copyfile(database.with_name("backup.db"), database)
    store = Store(settings.data_dir)
    try:
        assert read(settings, store) == every(store)  # the anchors are not there
        for number, name in enumerate(("drug-4", "drug-5", "drug-6"), 1):
            day(store, records, name, number, schedule="IV")
        assert read(settings, store) == every(store)  # the anchors' ids hold other rows
    finally:
        store.close()


def test_another_store_swapped_in_gets_its_own_digests(tmp_path: Path) -> None:
    store, records = build(tmp_path / "one")
    settings = history_settings(tmp_path / "one")
    for number, name in enumerate(("drug-1", "drug-2")):
        day(store, records, name, number)
    read(settings, store)
    store.close()
    other, other_records = build(tmp_path / "two")
    for number, name in enumerate(("drug-7", "drug-8")):
        day(other, other_records, name, number, schedule="IV")
    other.close()
    shutil.copyfile(tmp_path / "two" / "data" / "schedwatch.db",
                    settings.data_dir / "schedwatch.db")
    store = Store(settings.data_dir)
    try:
        assert read(settings, store) == every(store)
    finally:
        store.close()


@pytest.mark.parametrize("planted", [
    b"not marshal", ("1\0v1", "a text"), ("1\0v1", ({"changes": 0}, {"changes": {"1": "x"}})),
    ("1\0v1", ({"changes": "0"}, {"changes": {}})), ("1\0v1", ({}, [])),
    ("1\0v1", (dict.fromkeys(REVISED, 0), {"changes": {1: 7}}))],
    ids=["damaged", "text", "id as text", "count as text", "a list", "digest not text"])
def test_a_kept_file_of_another_shape_is_not_trusted(
        history: tuple[Store, dict[str, StatusRecord], Settings], planted: Any) -> None:
    store, records, settings = history
    day(store, records, "drug-1", 0)
    path = settings.data_dir / digest_carry.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(planted, bytes):
        path.write_bytes(planted)
    else:
        kept.save(path, planted[0], planted[1])
    assert digest_carry.load(settings.data_dir, VERSION) == digest_carry.NONE_KEPT
    assert read(settings, store) == every(store)
    assert digest_carry.load(settings.data_dir, VERSION).digests[digest_carry.CHANGES] == \
        every(store)[1]  # made again


def test_a_kept_file_of_another_version_is_not_trusted(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    store, records, settings = history
    day(store, records, "drug-1", 0)
    read(settings, store)
    assert digest_carry.load(settings.data_dir, VERSION) != digest_carry.NONE_KEPT
    assert digest_carry.load(settings.data_dir, "v2") == digest_carry.NONE_KEPT


def test_nothing_is_kept_for_a_store_without_its_triggers(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    store, records, settings = history
    day(store, records, "drug-1", 0)
    with store.db.connect() as conn:
        conn.execute("DROP TRIGGER status_revised_delete")
    assert store.revisions() == {}
    assert read(settings, store) == every(store)
    assert not (settings.data_dir / digest_carry.FILE).exists()


def test_trusted_takes_the_kept_digests_of_the_same_count_but_the_anchor() -> None:
    carried = digest_carry.Carried(revisions={"changes": 2},
                                   digests={"changes": {1: "a", 5: "e", 3: "c"}})
    trusted = carried.trusted("changes", {"changes": 2, "status.record": 9})
    assert trusted.known == {1: "a", 3: "c"} and trusted.anchor == 5
    assert trusted.confirmed({1: "a", 3: "c", 5: "e", 6: "f"})
    assert not trusted.confirmed({1: "a", 3: "c", 5: "other"})
    assert not trusted.confirmed({1: "a", 3: "c"})
    assert carried.trusted("changes", {"changes": 3}) == digest_carry.NOTHING
    assert carried.trusted("changes", {}) == digest_carry.NOTHING
    assert carried.trusted("status.record", {"status.record": 0}) == digest_carry.NOTHING
    assert digest_carry.NOTHING.confirmed({})


# --- the counts, on SQLite and PostgreSQL --------------------------------------------------

@pytest.fixture
def store(tmp_path: Path, database_url: str | None):  # noqa: F811 - the imported fixture
    opened = Store(tmp_path / "data", database_url)
    yield opened
    opened.close()


def add_change(store: Store, substance: str) -> int:
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.add_change(detected_at=NOW, jurisdiction="ca", substance=substance,
                          source_id="ca-cdsa", kind="rescheduled", summary=substance,
                          before=None, after=None)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    return store.changes()[-1].id


def test_the_counts_move_with_rewrites_and_removals_never_with_additions(
        store: Store) -> None:
    assert store.revisions() == {"changes": 0, "status.record": 0}
    first = add_change(store, "ketamine")
    add_change(store, "esketamine")
    ketamine = record("ca-cdsa", "ketamine", "a" * 64, NOW)
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.open_intervals([ketamine], at=NOW)
        writer.close_intervals("ca-cdsa", ["ketamine"], at=NOW + timedelta(days=1),
                               confirmed_at=None, confirmed_sha256=None)
        writer.open_intervals([ketamine], at=NOW + timedelta(days=1))
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    assert store.revisions() == dict.fromkeys(REVISED, 0)  # added, closed
    with store.transaction(started_at=NOW, jurisdictions=["ca"]) as writer:
        writer.replace_open_records([ketamine])
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    counts = store.revisions()
    assert counts["status.record"] > 0 and counts["changes"] == 0
    with store.db.connect() as conn:
        conn.update("changes", {"summary": "by hand"}, "id = :id", {"id": first})
    assert store.revisions()["changes"] == 1
    with store.db.connect() as conn:
        conn.execute("DELETE FROM changes WHERE id = :id", {"id": first})
    assert store.revisions()["changes"] == 2
    assert store.revisions()["status.record"] == counts["status.record"]


def test_a_store_made_before_the_counts_gets_them_when_next_opened_for_writing(
        tmp_path: Path) -> None:
    Store(tmp_path / "data").close()
    database = tmp_path / "data" / "schedwatch.db"
    with sqlite3.connect(database) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                    ).fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE revisions")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    store = Store(tmp_path / "data")
    try:
        assert store.revisions() == dict.fromkeys(REVISED, 0)
    finally:
        store.close()


def test_a_dropped_trigger_is_made_again_when_the_store_is_next_opened(
        tmp_path: Path, database_url: str | None) -> None:  # noqa: F811 - the fixture
    store = Store(tmp_path / "data", database_url)
    try:
        for trigger in rewrite_triggers(store.backend):
            with store.db.connect() as conn:
                conn.execute(f"DROP TRIGGER {trigger.name}" + (
                    f" ON {trigger.table}" if store.backend == "postgresql" else ""))
            assert store.revisions() == {}, trigger.name  # trusted with nothing
            store.close()
            store = Store(tmp_path / "data", database_url)
            counts = store.revisions()  # made again, and the kind it counts moved by one
            assert counts == {**dict.fromkeys(REVISED, 0), **counts}, trigger.name
            assert counts[trigger.kind] > 0, trigger.name
    finally:
        store.close()


def test_an_edit_made_while_a_trigger_was_dropped_is_not_trusted_once_it_is_made_again(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    store, records, settings = history
    for number, name in enumerate(("drug-1", "drug-2")):
        day(store, records, name, number)
    read(settings, store)
    store.close()
    with sqlite3.connect(settings.data_dir / "schedwatch.db") as conn:
        conn.execute("DROP TRIGGER changes_revised_update")
        conn.execute("UPDATE changes SET summary = 'while no trigger counted' WHERE id = "
                     "(SELECT min(id) FROM changes)")
    store = Store(settings.data_dir)  # the trigger made again, its count moved
    try:
        assert store.revisions()["changes"] == 1
        assert read(settings, store) == every(store)
    finally:
        store.close()
