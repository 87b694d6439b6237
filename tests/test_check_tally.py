"""The fetch log's tally (``reports.check_tally``): counted in parts it is the tally of the
whole log, kept between publishes it is continued only on the log it was made from, and the
weekly reports made from it are those made from the whole log.

Rows are written to a real SQLite store (and, for the late commit, a real PostgreSQL one in
``tests/test_store_postgres.py``); the clock is set by each fetch's own start."""

from __future__ import annotations

import dataclasses
import marshal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reports import check_tally, site, weekly
from reports.check_tally import CheckTally, tallied
from reports.render import zone
from scheduler.config import Settings
from scrapers.clock import stamp
from scrapers.store import Store
from tests.support.site_data import make_settings

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC


def log_rows() -> list[dict[str, Any]]:
    """A month of fetches of two sources, ids in order: checks on both sides of week edges,
    failures whose errors tie, an extraction failure without an error text, a start written
    with another offset and one out of time order."""
    rows: list[dict[str, Any]] = []

    def add(source: str, at: str, outcome: str, error: str | None = None) -> None:
        rows.append({"id": len(rows) + 1, "source_id": source, "started_at": at,
                     "outcome": outcome, "error": error})

    for day in range(28):
        moment = MONDAY + timedelta(days=day, hours=23, minutes=50)
        add("ca-cdsa", stamp(moment), "not_modified")
        outcome = ("failed", "HTTP 503") if day % 5 == 0 else ("failed", "timeout") \
            if day % 7 == 3 else ("fetched", None)
        add("us-ecfr-1308", stamp(moment + timedelta(minutes=15)), *outcome)
    add("us-ecfr-1308", stamp(MONDAY + timedelta(days=9)), "extraction_failed")
    add("ca-cdsa", "2026-03-08T19:30:00-05:00", "failed", "HTTP 404")  # Monday 00:30 UTC
    add("ca-cdsa", stamp(MONDAY + timedelta(days=1)), "unchanged")  # late: written after
    return rows


def fields_of(tally: CheckTally) -> dict[str, Any]:
    return dataclasses.asdict(tally)


@pytest.mark.parametrize("zone_name", ["UTC", "America/Toronto", "Asia/Kathmandu"])
def test_a_tally_continued_at_any_row_is_the_tally_of_the_whole_log(zone_name: str) -> None:
    reader_zone = ZoneInfo(zone_name)
    rows = log_rows()
    whole = tallied(None, rows, reader_zone)
    for cut in range(len(rows) + 1):
        first = tallied(None, rows[:cut], reader_zone)
        assert fields_of(tallied(first, rows[cut:], reader_zone)) == fields_of(whole), cut
    # In three parts, too, and the parts are left as they were.
    one = tallied(None, rows[:10], reader_zone)
    before = fields_of(one)
    two = tallied(one, rows[10:40], reader_zone)
    assert fields_of(one) == before
    assert fields_of(tallied(two, rows[40:], reader_zone)) == fields_of(whole)


def test_the_tally_counts_what_the_weekly_report_shows() -> None:
    tally = tallied(None, log_rows(), ZoneInfo("UTC"))
    by_week = tally.checks_by_week()
    # Week 10 (2026-03-02..08): the US checks of days 0 to 5 (day 6's is Monday 00:05),
    # failures on days 0 and 5 (503) and 3 (timeout): the commonest first.
    assert by_week["2026-W10"]["us-ecfr-1308"] == (
        6, 3, (("HTTP 503", 2), ("timeout", 1)))
    # Week 11: days 6 to 12, a 503 on day 10, and day 9's extraction failure, which has no
    # text of its own: a tie, in the order the week met them. The 404 written at -05:00 is
    # Monday 00:30 UTC: week 11.
    assert by_week["2026-W11"]["us-ecfr-1308"] == (
        8, 2, (("HTTP 503", 1), ("extraction_failed", 1)))
    assert by_week["2026-W11"]["ca-cdsa"] == (8, 1, (("HTTP 404", 1),))
    assert by_week["2026-W10"]["ca-cdsa"] == (8, 0, ())  # the late row counted in its week
    # Four weeks of days; the last day's US check falls on the fifth week's Monday.
    assert set(by_week) == {"2026-W10", "2026-W11", "2026-W12", "2026-W13", "2026-W14"}
    assert by_week["2026-W14"] == {"us-ecfr-1308": (1, 0, ())}
    # Every healthy start, sorted: the one written late among them in its place.
    times = tally.healthy_times()["ca-cdsa"]
    expected = sorted(row["started_at"] for row in log_rows() if row["source_id"] == "ca-cdsa"
                      and row["outcome"] in check_tally.HEALTHY_OUTCOMES)
    assert list(times) == expected and len(expected) == 29
    assert times.last_up_to(stamp(MONDAY + timedelta(days=1, hours=12))) == stamp(
        MONDAY + timedelta(days=1))
    assert tally.sources == ("ca-cdsa", "us-ecfr-1308")
    assert tally.mark == (len(log_rows()), len(log_rows()),
                          ("ca-cdsa", stamp(MONDAY + timedelta(days=1)), "unchanged"))


def test_the_weeks_are_the_readers_zone() -> None:
    rows = [{"id": 1, "source_id": "ca-cdsa", "started_at": stamp(MONDAY - timedelta(hours=2)),
             "outcome": "fetched", "error": None}]
    assert set(tallied(None, rows, ZoneInfo("UTC")).checks_by_week()) == {"2026-W09"}
    # Sunday 22:00 UTC is Monday 03:45 in Kathmandu.
    assert set(tallied(None, rows, ZoneInfo("Asia/Kathmandu")).checks_by_week()) == {
        "2026-W10"}
    with pytest.raises(ValueError, match="UTC"):
        tallied(tallied(None, rows, ZoneInfo("UTC")), rows, ZoneInfo("Asia/Kathmandu"))


def test_a_kept_tally_is_read_back_only_by_the_same_code_and_zone(tmp_path: Path) -> None:
    utc = ZoneInfo("UTC")
    tally = tallied(None, log_rows(), utc)
    check_tally.save(tmp_path, "v1", tally)
    assert fields_of(check_tally.load(tmp_path, "v1", utc)) == fields_of(tally)  # type: ignore[arg-type]
    assert check_tally.load(tmp_path, "v2", utc) is None
    assert check_tally.load(tmp_path, "v1", ZoneInfo("Europe/Paris")) is None
    # Not of the shape it was written in (a file edited by hand): ignored, never used.
    path = tmp_path / check_tally.KEPT_FILE
    tag, data = marshal.loads(path.read_bytes())
    week, source = next(iter(data[3]))

    def with_part(index: int, value: Any) -> tuple[Any, ...]:
        return data[:index] + (value,) + data[index + 1:]

    for broken in [data[:6], with_part(3, {("2026-W10",): 1}), with_part(3, {(week, 7): 1}),
                   with_part(3, {(week, source): "1"}), with_part(4, {(week, source): 1}),
                   with_part(4, {(week,): {"HTTP 503": 1}}),
                   with_part(4, {(week, source): {"HTTP 503": 1.5}}),
                   with_part(5, {"ca-cdsa": [1]}), with_part(5, {"ca-cdsa": ("a",)}),
                   with_part(5, {"ca-cdsa": [stamp(MONDAY)]}),  # the times as a list: shape 1
                   with_part(5, {"ca-cdsa": b"2026"}), with_part(5, {7: stamp(MONDAY)}),
                   with_part(6, ("ca-cdsa", None)), with_part(6, ["ca-cdsa"]), "text"]:
        path.write_bytes(marshal.dumps((tag, broken)))
        assert check_tally.load(tmp_path, "v1", utc) is None
    path.write_bytes(b"\x00garbage")
    assert check_tally.load(tmp_path, "v1", utc) is None


# --- against a real store -----------------------------------------------------------------

def add_fetches(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.transaction(started_at=MONDAY, jurisdictions=["ca", "us"]) as writer:
        for row in rows:
            writer.add_fetch(source_id=row["source_id"], url="https://example.org/",
                             started_at=datetime.fromisoformat(row["started_at"]),
                             outcome=row["outcome"], error=row["error"])


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[Store, Settings]]:
    settings = make_settings(tmp_path, timezone="UTC")
    store = Store(settings.data_dir)
    yield store, settings
    store.close()


def checks(settings: Settings, store: Store, **options: Any) -> dict[str, Any]:
    """What the weekly reports take from the fetch log, through the site's own reading."""
    snap = site.read_snapshot(settings, store, **options)
    index = weekly.week_index(snap, zone(settings.scheduler.timezone))
    return {"weeks": index.checks_by_week, "healthy": index.healthy_times}


def test_the_next_read_continues_the_kept_tally_with_the_fetches_after_it(
        logged: tuple[Store, Settings]) -> None:
    store, settings = logged
    rows = log_rows()
    add_fetches(store, rows[:30])
    checks(settings, store)  # counted, and kept
    kept = check_tally.load(settings.data_dir, site._version(settings), ZoneInfo("UTC"))
    assert kept is not None and kept.rows == 30
    # The kept tally is what the next read starts from: one it could not have counted
    # from the log (a week it never saw) comes through...
    planted = dataclasses.replace(kept, counts={**kept.counts, ("2020-W01", "ca-cdsa"): 9})
    check_tally.save(settings.data_dir, site._version(settings), planted)
    add_fetches(store, rows[30:])
    continued = checks(settings, store)
    assert continued["weeks"]["2020-W01"]["ca-cdsa"][0] == 9
    # ...and, that week aside, it is the tally of the whole log, as a full rebuild counts it.
    del continued["weeks"]["2020-W01"]
    assert continued == checks(settings, store, reuse=False)


def test_a_fetch_committed_below_the_kept_tallys_last_id_makes_it_count_again(
        logged: tuple[Store, Settings]) -> None:
    """On PostgreSQL a transaction can commit a lower id after a higher one was read: the
    store holds more rows up to the kept last id than were counted. (Here: a row taken out
    of the SQLite file before the first read and put back after it.)"""
    store, settings = logged
    add_fetches(store, log_rows())
    database = settings.data_dir / "schedwatch.db"
    with sqlite3.connect(database) as raw:
        late = raw.execute("SELECT * FROM fetches WHERE id = 6").fetchone()
        raw.execute("DELETE FROM fetches WHERE id = 6")
    without = checks(settings, store)
    with sqlite3.connect(database) as raw:
        raw.execute(f"INSERT INTO fetches VALUES ({', '.join('?' * len(late))})", late)
    assert late[2:4] == ("us-ecfr-1308", "2026-03-05T00:05:00+00:00")
    with_it = checks(settings, store)
    assert with_it == checks(settings, store, reuse=False)
    assert with_it != without
    assert with_it["weeks"]["2026-W10"]["us-ecfr-1308"][0] == \
        without["weeks"]["2026-W10"]["us-ecfr-1308"][0] + 1


def test_a_tally_kept_of_another_database_is_not_continued(tmp_path: Path) -> None:
    """The data folder's database replaced (a backup restored, another store) by one with
    as many fetches: the kept tally's last row is not that database's, so it counts its own."""
    settings = make_settings(tmp_path, timezone="UTC")
    store = Store(settings.data_dir)
    rows = log_rows()
    add_fetches(store, rows)
    first = checks(settings, store)
    store.close()
    (settings.data_dir / "schedwatch.db").unlink()
    store = Store(settings.data_dir)
    try:
        add_fetches(store, [dict(row, outcome="failed", error="HTTP 500") for row in rows])
        other = checks(settings, store)
        assert other == checks(settings, store, reuse=False)
        assert other != first
    finally:
        store.close()


def test_a_full_rebuild_counts_the_whole_log_and_keeps_it(
        logged: tuple[Store, Settings]) -> None:
    """A site made afresh (no previous one) does not continue a kept tally, even one whose
    mark still holds: a week it never saw is neither published nor kept."""
    store, settings = logged
    add_fetches(store, log_rows())
    checks(settings, store)  # counted and kept
    version = site._version(settings)
    kept = check_tally.load(settings.data_dir, version, ZoneInfo("UTC"))
    assert kept is not None and kept.mark == store.check_log_mark(kept.last_id)
    check_tally.save(settings.data_dir, version, dataclasses.replace(
        kept, counts={**kept.counts, ("2020-W01", "ca-cdsa"): 9}))
    site.publish(settings, store, now=MONDAY + timedelta(days=30))
    weekly_pages = {path.name for path in (settings.site_path / "weekly").glob("20*.html")}
    assert "2026-W11.html" in weekly_pages and "2020-W01.html" not in weekly_pages
    after = check_tally.load(settings.data_dir, version, ZoneInfo("UTC"))
    assert after is not None and ("2020-W01", "ca-cdsa") not in after.counts
    assert after.mark == store.check_log_mark(after.last_id)
