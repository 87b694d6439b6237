"""What the change pages and changes.csv read of each stored change, kept between publishes
(reports/change_carry.py), and a stored change's JSON decoded when first read: a publish
decodes only the changes its kept files hold nothing for, and what it makes is always what
decoding every change makes — whatever the kept files hold.

A real Store (tests/support/history_store.py: four months of daily checks) with changes
written by its runs and rewritten by hand."""

from __future__ import annotations

import dataclasses
import json
import marshal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import reports.feed
from reports import change_carry, exports, feed, kept
from reports.pages import change_facts
from reports.site import PublishError, publish, read_snapshot
from scheduler.config import Settings
from scrapers.records import StatusRecord
from scrapers.rows import StoredChange
from scrapers.store import Store
from tests.support.history_store import (
    AFTER,
    PUBLISHED,
    RUN,
    build,
    history_settings,
    one_change_run,
)

COLUMNS = feed.CHANGE_COLUMNS
VERSION = "v1"
#: The tags the kept files are written under (``change_carry``).
LINE_TAG = f"1\0{VERSION}\0{chr(31).join(COLUMNS)}"
FACT_TAG = f"1\0{VERSION}"
PLANTED = {change_carry.LINES_FILE: "planted,line\n", change_carry.FACTS_FILE: ("planted", None)}
TAGS = {change_carry.LINES_FILE: LINE_TAG, change_carry.FACTS_FILE: FACT_TAG}


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Store, dict[str, StatusRecord], Settings]]:
    store, records = build(tmp_path)
    yield store, records, history_settings(tmp_path)
    store.close()


def moves(store: Store, records: dict[str, StatusRecord], *names: str) -> None:
    """A day's run moving each of ``names``, one day after another (after the runs the
    store holds, ``RUN`` and on)."""
    start = len(store.changes())
    for day, name in enumerate(names, start):
        one_change_run(store, records[name], at=RUN + timedelta(days=day),
                       document=f"v{day + 2}")


#: The row of changes.csv as made, taken before the ``decoded`` spy replaces it: the
#: oracles below are not counted as decoding.
CHANGE_ROW = feed.change_row


def every_line(changes: tuple[StoredChange, ...]) -> list[str]:
    """changes.csv's lines made from every change, decoded afresh (the oracle)."""
    return exports.csv_lines([CHANGE_ROW(fresh(c)) for c in changes], COLUMNS)


def fresh(change: StoredChange) -> StoredChange:
    """The change with its fields as values (``dataclasses.replace`` reads every field)."""
    return dataclasses.replace(change)


def lines(changes: tuple[StoredChange, ...], data: Path, reuse: bool = True) -> list[str]:
    return change_carry.csv_lines(changes, COLUMNS, feed.change_row, data_dir=data,
                                  version=VERSION, reuse=reuse)


def facts(changes: tuple[StoredChange, ...], data: Path, reuse: bool = True
          ) -> list[tuple[object, object]]:
    return change_carry.facts(changes, data_dir=data, version=VERSION, reuse=reuse)


def made(changes: tuple[StoredChange, ...], data: Path, name: Path,
         reuse: bool = True) -> list[object]:
    """The values of the kept file ``name`` (lines or facts), as the site asks for them."""
    return list(lines(changes, data, reuse) if name == change_carry.LINES_FILE
                else facts(changes, data, reuse))


def oracle(changes: tuple[StoredChange, ...], name: Path) -> list[object]:
    """The same values, every change decoded afresh."""
    return list(every_line(changes) if name == change_carry.LINES_FILE
                else [change_facts(fresh(c)) for c in changes])


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the changes whose changes.csv row or page facts were made (a spy on
    ``feed.change_row`` and ``change_carry.change_facts``)."""
    made: list[int] = []
    real_row, real_facts = feed.change_row, change_carry.change_facts

    def row(change: StoredChange) -> dict[str, object]:
        made.append(change.id)
        return real_row(change)

    def facts_of(change: StoredChange) -> tuple[object, object]:
        made.append(change.id)
        return real_facts(change)

    monkeypatch.setattr(reports.feed, "change_row", row)
    monkeypatch.setattr(change_carry, "change_facts", facts_of)
    return made


def test_a_stored_change_decodes_its_json_when_first_read_and_keeps_it(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    store, records, _ = history
    after = one_change_run(store, records["drug-3"])
    [change] = store.changes()
    assert change.after == after.as_dict() and change.before == records["drug-3"].as_dict()
    assert change.details == {"fields": ["schedule", "control_level"]}
    assert change.after is change.after  # decoded once
    assert change == fresh(change)  # equal to the change with every field given
    with pytest.raises(AttributeError):
        change.no_such_field  # type: ignore[attr-defined]  # noqa: B018
    with store.db.connect() as conn:
        conn.update("changes", {"after": None, "details": None}, "id = :id",
                    {"id": change.id})
    [empty] = store.changes()
    assert empty.after is None and empty.details == {}  # as a row stored without them


def test_a_change_whose_stored_json_is_broken_fails_the_publish_in_one_line_and_keeps_the_site(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    store, records, settings = history
    one_change_run(store, records["drug-3"])
    site = publish(settings, store, now=PUBLISHED)
    before = (site / "changes.csv").read_bytes()
    [change] = store.changes()
    with store.db.connect() as conn:
        conn.update("changes", {"after": '{"substance": "drug-3", "schedule": '}, "id = :id",
                    {"id": change.id})
    with pytest.raises(PublishError) as raised:
        publish(settings, store, now=AFTER)
    assert "JSONDecodeError" in str(raised.value) and "\n" not in str(raised.value)
    assert (site / "changes.csv").read_bytes() == before


@pytest.mark.parametrize("name", [change_carry.LINES_FILE, change_carry.FACTS_FILE],
                         ids=["lines", "facts"])
def test_kept_values_are_those_of_every_change_decoding_only_the_new_ones(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        decoded: list[int], name: Path) -> None:
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2")
    first = read_snapshot(settings, store).changes
    assert made(first, tmp_path, name) == oracle(first, name)
    if name == change_carry.FACTS_FILE:
        assert oracle(first, name)[0] == ("drug-1", None)
    moves(store, records, "drug-3")
    decoded.clear()
    second = read_snapshot(settings, store).changes
    assert made(second, tmp_path, name) == oracle(second, name)
    assert len(second) == 3 and decoded == [second[-1].id]  # the new one alone
    decoded.clear()
    assert made(second, tmp_path, name) == oracle(second, name)
    assert decoded == []  # all three kept
    assert made(second, tmp_path, name, reuse=False) == oracle(second, name)
    assert decoded == [c.id for c in second]  # made afresh


def test_a_change_rewritten_in_the_store_is_decoded_again(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        decoded: list[int]) -> None:
    """A kept value is found by the row's digest (every column as stored): a row rewritten
    by hand, even to JSON text that decodes the same, is decoded again; its old value is
    dropped from the file."""
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2")
    first = read_snapshot(settings, store).changes
    lines(first, tmp_path)
    facts(first, tmp_path)
    target = first[0]
    rewritten = {**(target.after or {}), "schedule": "IV", "substance": "drug-1-renamed"}
    with store.db.connect() as conn:
        conn.update("changes", {"after": json.dumps(rewritten),
                                "details": json.dumps({"document_sha256": "d" * 64})},
                    "id = :id", {"id": target.id})
    second = read_snapshot(settings, store).changes
    decoded.clear()
    assert lines(second, tmp_path) == every_line(second)
    assert facts(second, tmp_path)[0] == ("drug-1-renamed", "d" * 64)
    assert decoded == [target.id, target.id]  # its line, its facts: the others kept
    assert ",IV," in lines(second, tmp_path)[0]
    held = kept.load(tmp_path / change_carry.LINES_FILE, LINE_TAG)
    assert set(held) == {c.row_digest for c in second}  # the old row's line is gone


def test_a_change_whose_value_is_of_another_shape_is_made_every_time_the_rest_kept(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        decoded: list[int]) -> None:
    """A row written by hand whose ``after`` names a substance that is not text: its facts
    are worked out on every publish and never kept (a file holding them would be of
    another shape, and every change would be decoded again each time)."""
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2")
    odd = store.changes()[0]
    with store.db.connect() as conn:
        conn.update("changes", {"after": json.dumps({**(odd.after or {}), "substance": 7})},
                    "id = :id", {"id": odd.id})
    changes = read_snapshot(settings, store).changes
    assert facts(changes, tmp_path) == oracle(changes, change_carry.FACTS_FILE)
    assert facts(changes, tmp_path)[0] == (7, None)
    decoded.clear()
    assert facts(changes, tmp_path) == oracle(changes, change_carry.FACTS_FILE)
    assert decoded == [odd.id]  # the other kept


def test_a_change_removed_from_the_store_leaves_the_kept_files(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path) -> None:
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2", "drug-3")
    every = read_snapshot(settings, store).changes
    lines(every, tmp_path)
    facts(every, tmp_path)
    with store.db.connect() as conn:
        conn.execute("DELETE FROM changes WHERE id = :id", {"id": every[1].id})
    fewer = read_snapshot(settings, store).changes
    assert lines(fewer, tmp_path) == every_line(fewer)
    assert facts(fewer, tmp_path) == [change_facts(fresh(c)) for c in fewer]
    for name in (change_carry.LINES_FILE, change_carry.FACTS_FILE):
        found = marshal.loads((tmp_path / name).read_bytes())[1]
        assert set(found) == {c.row_digest for c in fewer}, name


@pytest.mark.parametrize("name", [change_carry.LINES_FILE, change_carry.FACTS_FILE],
                         ids=["lines", "facts"])
def test_a_kept_value_is_taken_as_kept_for_its_row(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        name: Path) -> None:
    """What the file holds for a row's digest is used as it is (the control of the damaged
    files below: a value the shape checks let through shows)."""
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2")
    changes = read_snapshot(settings, store).changes
    kept.save(tmp_path / name, TAGS[name], {changes[0].row_digest: PLANTED[name]})
    assert made(changes, tmp_path, name) == [PLANTED[name], *oracle(changes, name)[1:]]


@pytest.mark.parametrize(("name", "damage"), [
    (change_carry.LINES_FILE, "garbage"), (change_carry.LINES_FILE, "another version"),
    (change_carry.LINES_FILE, "not a dict"), (change_carry.LINES_FILE, "a key not text"),
    (change_carry.LINES_FILE, "a value not text"),
    (change_carry.FACTS_FILE, "garbage"), (change_carry.FACTS_FILE, "another version"),
    (change_carry.FACTS_FILE, "not a dict"), (change_carry.FACTS_FILE, "a key not text"),
    (change_carry.FACTS_FILE, "a value not a pair"),
    (change_carry.FACTS_FILE, "a value not text"),
])
def test_kept_files_of_another_shape_are_not_read(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        name: Path, damage: str) -> None:
    """A file not of the shape its owner writes (here holding a planted value for the
    first change beside the damage) is ignored: every value made, and the file written
    again of the right shape."""
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2")
    changes = read_snapshot(settings, store).changes
    first, second = changes[0].row_digest, changes[1].row_digest
    planted = PLANTED[name]
    tag = TAGS[name]
    value: object = {first: planted}
    if damage == "another version":
        tag = tag.replace(VERSION, "v0")
    elif damage == "not a dict":
        value = [first, planted]
    elif damage == "a key not text":
        value = {first: planted, 7: planted}
    elif damage == "a value not text":
        value = {first: planted, second: 3 if name == change_carry.LINES_FILE else ("a", 3)}
    elif damage == "a value not a pair":
        value = {first: planted, second: ("a",)}
    kept.save(tmp_path / name, tag, value)
    if damage == "garbage":
        (tmp_path / name).write_bytes(b"\x00not marshal data")
    assert made(changes, tmp_path, name) == oracle(changes, name)
    tag_found, held = marshal.loads((tmp_path / name).read_bytes())
    assert tag_found == TAGS[name] and set(held) == {first, second}


def test_a_publish_decodes_only_the_days_new_change(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        decoded: list[int]) -> None:
    """After a day's run, the change pages' fingerprints and changes.csv decode its change
    alone (the feed shows its newest changes, decoded as it is written), and the site is
    the one made from every change decoded."""
    store, records, settings = history
    moves(store, records, "drug-1", "drug-2")
    publish(settings, store, now=PUBLISHED)
    moves(store, records, "drug-3")
    new = store.changes()[-1]
    decoded.clear()
    site = publish(settings, store, now=AFTER + timedelta(days=3))
    assert sorted(decoded) == [new.id, new.id]  # its page's facts, its changes.csv line
    # A site made afresh (nothing to reuse) decodes every change: the same files.
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store,
                   now=AFTER + timedelta(days=3))
    for name in ["changes.csv", *(f"changes/{c.id}.html" for c in store.changes())]:
        assert (site / name).read_bytes() == (full / name).read_bytes(), name
