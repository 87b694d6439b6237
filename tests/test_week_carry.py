"""A closed week's fingerprint is carried over from the last publish when none of the
tables its report is made from differ (``reports.week_carry``): what each kind of
difference makes a publish work out again, and that every publish still makes what a full
rebuild makes, fingerprints included.

A real Store with four months of daily checks (``tests.support.history_store``), published,
then changed one way (the pipeline's writer, or as an operator would by hand), then
published again; a spy counts the weeks whose inputs were built."""

from __future__ import annotations

import dataclasses
import marshal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import reports.weekly
from jurisdictions import us
from reports import kept, week_carry
from reports.site import publish
from reports.site_folder import read_manifest
from reports.weeks import week_bounds, week_name
from scheduler.config import Settings, SourceSettings
from scrapers.clock import reader_zone_named, stamp
from scrapers.records import PendingItem, StatusRecord
from scrapers.store import Store
from tests.support.history_store import AFTER, PUBLISHED, RUN, START, build, history_settings
from tests.support.site_data import fetch, state

UTC_ZONE = reader_zone_named("UTC")
#: A moment in a week long closed when the site is published (2026-W32, a Wednesday).
PAST = START + timedelta(days=30, hours=3)
RUNNING = week_name(RUN, UTC_ZONE)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Store, dict[str, StatusRecord], Settings]]:
    store, records = build(tmp_path)
    yield store, records, history_settings(tmp_path)
    store.close()


@pytest.fixture
def worked_out(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The weeks whose inputs a publish builds from now on (a spy on ``week_inputs``)."""
    weeks: list[str] = []
    real = reports.weekly.week_inputs

    def spy(snap: Any, index: Any, week: str, **options: Any) -> Any:
        weeks.append(week)
        return real(snap, index, week, **options)

    monkeypatch.setattr(reports.weekly, "week_inputs", spy)
    return weeks


def ending_after(moment: datetime, weeks: set[str]) -> set[str]:
    return {week for week in weeks if week_bounds(week, UTC_ZONE)[1] > moment}


def in_span(first: datetime, last: datetime, weeks: set[str]) -> set[str]:
    return {week for week in weeks if week_bounds(week, UTC_ZONE)[1] > first
            and week_bounds(week, UTC_ZONE)[0] <= last}


def late_failed_fetch(store: Store, records: dict[str, StatusRecord],
                      weeks: set[str]) -> set[str]:
    """A failed check committed late into a past week: that week's counts, nothing else."""
    with store.transaction(started_at=RUN, jurisdictions=["ca"]) as w:
        fetch(w, "ca-cdsa", PAST, outcome="failed", error="HTTP 502")
    return {week_name(PAST, UTC_ZONE)}


def late_healthy_fetch(store: Store, records: dict[str, StatusRecord],
                       weeks: set[str]) -> set[str]:
    """A healthy check committed late, before the last one the tables counted: any week
    from it on may show another last healthy fetch (one whose source failed all week
    would), and the kept text of a source's healthy fetches differs before its end: every
    week."""
    with store.transaction(started_at=RUN, jurisdictions=["ca"]) as w:
        fetch(w, "ca-cdsa", PAST, outcome="not_modified")
    return set(weeks)


def past_change(store: Store, records: dict[str, StatusRecord], weeks: set[str]) -> set[str]:
    """A change detected in a past week (a run's clock was wrong): that week."""
    before = records["ketamine"]
    after = dataclasses.replace(before, schedule="IV")
    with store.transaction(started_at=RUN, jurisdictions=["us"]) as w:
        w.add_change(detected_at=PAST, jurisdiction="us", substance="ketamine",
                     source_id=before.source_id, kind="moved",
                     summary="ketamine moved to Schedule IV", before=before.as_dict(),
                     after=after.as_dict(), effective_date=None,
                     before_sha256=before.document_sha256, after_sha256=before.document_sha256,
                     details={"fields": ["schedule"]})
    return {week_name(PAST, UTC_ZONE)}


def past_pending(store: Store, records: dict[str, StatusRecord], weeks: set[str]) -> set[str]:
    """A pending item first seen in a past week and resolved ten days later: the weeks it
    was open in."""
    item = PendingItem(jurisdiction="us", substance="ketamine", source_id="us-ecfr-1308",
                       key="late-item", action="proposed_rule",
                       description="Proposed: ketamine to Schedule IV", reference="91 FR 1")
    with store.transaction(started_at=RUN, jurisdictions=["us"]) as w:
        w.open_pending(item, at=PAST)
    [row] = [r for r in store.pending_items(open_only=False) if r.item.key == "late-item"]
    with store.transaction(started_at=RUN, jurisdictions=["us"]) as w:
        w.resolve_pending(row.id, at=PAST + timedelta(days=10))
    return in_span(PAST, PAST + timedelta(days=10), weeks)


def past_mail(store: Store, records: dict[str, StatusRecord], weeks: set[str]) -> set[str]:
    """Mail queued in a past week that could not be delivered: that week lists it."""
    store.enqueue(idempotency_key="late-mail", kind="change", recipient="ops@example.org",
                  change_ids=[], now=PAST)
    [row] = store.outbox_rows()
    store.mark_attempt_failed(int(row["id"]), error="550 no such user", permanent=True,
                              next_attempt_at=None)
    return {week_name(PAST, UTC_ZONE)}


def unconfirmed_rule(store: Store, records: dict[str, StatusRecord],
                     weeks: set[str]) -> set[str]:
    """A final rule in effect since a past day that the eCFR does not show, first seen
    today: its pending row is open only in the running week, but the cross-check of every
    week that ended since it took effect reports it."""
    item = PendingItem(jurisdiction="us", substance="ketamine", source_id=us.FR_SOURCE_ID,
                       key="FR:2026-09999", action="final_rule",
                       description="Transfer of ketamine to Schedule II", reference="91 FR 9",
                       proposed_schedule="II", date_label="effective",
                       date=PAST.date().isoformat(),
                       details=(("document number", "2026-09999"),))
    with store.transaction(started_at=RUN, jurisdictions=["us"]) as w:
        w.open_pending(item, at=RUN)
    return ending_after(PAST, weeks)


def nothing(store: Store, records: dict[str, StatusRecord], weeks: set[str]) -> set[str]:
    """A day's run that changes nothing: its checks fall in the running week."""
    with store.transaction(started_at=RUN, jurisdictions=["ca", "us"]) as w:
        for sid in ("ca-cdsa", "us-ecfr-1308"):
            fetch(w, sid, RUN, outcome="not_modified")
            w.save_source_state(state(sid, health="healthy", at=RUN, sha=None))
    return set()


@pytest.mark.parametrize("difference", [nothing, late_failed_fetch, late_healthy_fetch,
                                        past_change, past_pending, past_mail,
                                        unconfirmed_rule])
def test_a_publish_works_out_again_the_weeks_a_difference_touches_and_makes_a_full_rebuild(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        worked_out: list[str],
        difference: Callable[[Store, dict[str, StatusRecord], set[str]], set[str]]) -> None:
    store, records, settings = history
    site = publish(settings, store, now=PUBLISHED)
    closed = {p.stem for p in (site / "weekly").glob("2*.html")} - {RUNNING}
    touched = difference(store, records, closed)
    assert touched <= closed
    if difference is not late_healthy_fetch:
        assert len(touched) < len(closed) - 3  # most weeks keep their fingerprints
    worked_out.clear()
    site = publish(settings, store, now=AFTER)
    # Every closed week the difference does not touch keeps its fingerprint; the running
    # week is always worked out.
    assert set(worked_out) == touched | {RUNNING}
    worked_out.clear()
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store, now=AFTER)
    assert len(set(worked_out)) == len(closed) + 1  # a site made afresh works out every week
    assert_same_weeks(site, full)


def test_a_source_disabled_or_a_week_closed_is_worked_out_again(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        worked_out: list[str]) -> None:
    """What every week shows (a source disabled) works out every week; the week that was
    running at the last publish is worked out once it has closed, then carried over."""
    store, _, settings = history
    site = publish(settings, store, now=PUBLISHED)
    weeks = {p.stem for p in (site / "weekly").glob("2*.html")}
    disabled = dataclasses.replace(settings, sources={"ca-cdsa": SourceSettings(enabled=False)})
    worked_out.clear()
    site = publish(disabled, store, now=PUBLISHED)
    assert set(worked_out) == weeks
    later = PUBLISHED + timedelta(days=7)
    worked_out.clear()
    site = publish(disabled, store, now=later)
    assert set(worked_out) == {RUNNING}  # closed now: its fingerprint is made, and kept
    worked_out.clear()
    site = publish(disabled, store, now=later + timedelta(hours=1))
    assert worked_out == []
    full = publish(dataclasses.replace(disabled, site_dir=tmp_path / "full"), store,
                   now=later + timedelta(hours=1))
    assert_same_weeks(site, full)


@pytest.mark.parametrize("content", [b"not marshal data", None])
def test_tables_that_cannot_be_read_or_are_of_other_code_are_not_used(
        history: tuple[Store, dict[str, StatusRecord], Settings], tmp_path: Path,
        worked_out: list[str], content: bytes | None) -> None:
    store, _, settings = history
    site = publish(settings, store, now=PUBLISHED)
    path = settings.data_dir / week_carry.KEPT_FILE
    if content is None:  # this publish's tables, as if kept by another version of the code
        _, tables = marshal.loads(path.read_bytes())
        kept.save(path, "1\0another version", tables)
    else:
        path.write_bytes(content)
    worked_out.clear()
    site = publish(settings, store, now=PUBLISHED + timedelta(minutes=1))
    assert len(set(worked_out)) == len({p.stem for p in (site / "weekly").glob("2*.html")})
    full = publish(dataclasses.replace(settings, site_dir=tmp_path / "full"), store,
                   now=PUBLISHED + timedelta(minutes=1))
    assert_same_weeks(site, full)


def test_tables_of_another_shape_are_not_read(
        history: tuple[Store, dict[str, StatusRecord], Settings]) -> None:
    """Kept tables of this code but not of the shape it writes (a file edited by hand, or
    damaged in a way marshal still reads) are not used: each table, each kind of value."""
    store, _, settings = history
    publish(settings, store, now=PUBLISHED)
    path = settings.data_dir / week_carry.KEPT_FILE
    tag, data = marshal.loads(path.read_bytes())
    version = tag.split("\0", 1)[1]
    assert week_carry.load(settings.data_dir, version) is not None
    week = next(iter(data[1]))

    def with_part(index: int, value: Any) -> tuple[Any, ...]:
        return data[:index] + (value,) + data[index + 1:]

    for broken in [data[:9], with_part(0, None), with_part(1, {week: data[1][week][:3]}),
                   with_part(1, {week: (1, "b", "c", "d")}), with_part(1, {7: data[1][week]}),
                   with_part(2, {week: ()}), with_part(3, {"ca-cdsa": (1, "digest")}),
                   with_part(3, {"ca-cdsa": (1, b"digest", 2)}), with_part(4, {week: ("a", 1)}),
                   with_part(6, {week: ["a"]}), with_part(7, []),
                   with_part(5, ((1, "2026-07-06", None),)), with_part(8, {"2026-07-06": "x"}),
                   with_part(9, {week: 1})]:
        path.write_bytes(marshal.dumps((tag, broken)))
        assert week_carry.load(settings.data_dir, version) is None, broken[:1]


def assert_same_weeks(site: Path, full: Path) -> None:
    """The weekly reports of both sites, byte for byte, and their fingerprints."""
    ours = {p.name: p.read_bytes() for p in (site / "weekly").glob("*.html")}
    theirs = {p.name: p.read_bytes() for p in (full / "weekly").glob("*.html")}
    assert ours.keys() == theirs.keys()
    assert [name for name in ours if ours[name] != theirs[name]] == []
    weekly_of = {path: fp for path, fp in read_manifest(site)[0].items()
                 if path.startswith("weekly/")}
    assert weekly_of == {path: fp for path, fp in read_manifest(full)[0].items()
                         if path.startswith("weekly/")}


def test_a_weeks_bounds_are_its_start_end_and_ninety_days_of_coming_up() -> None:
    """The bounds a week's tables are kept with, as ``weekly`` works them out."""
    start, end, first, last = week_carry._bounds("2026-W45", reader_zone_named("UTC"))
    assert (start, end) == (stamp(datetime.fromisoformat("2026-11-02T00:00:00+00:00")),
                            stamp(datetime.fromisoformat("2026-11-09T00:00:00+00:00")))
    assert (first, last) == ("2026-11-09", "2027-02-07")


def test_undeliverable_mail_is_placed_in_the_week_that_lists_it() -> None:
    """As ``weekly.week_parts`` selects it: from the week's start (included) to its end
    (excluded, the next week's), in the order the store lists it; a week the site has no
    report of lists nothing."""
    zone = reader_zone_named("UTC")
    weeks = ["2026-W45", "2026-W46", "2026-W48"]
    bounds = {week: week_carry._bounds(week, zone) for week in weeks}
    w45, w46, w48 = (bounds[week] for week in weeks)
    mail = [(w45[0], 3), (w45[1], 0), ("2026-11-12T10:00:00+00:00", 1),
            (w46[1], 4), (w48[1], 5), ("2026-11-01T23:59:59+00:00", 6)]
    index = reports.weekly.WeekIndex(checks_by_week={}, changes_by_week={},
                                     healthy_times={}, dated=[], weeks=tuple(weeks),
                                     mail_times=sorted(mail))
    digests = {position: f"m{position}" for _, position in mail}
    assert week_carry._mail_by_week(index, digests, weeks, bounds) == {
        "2026-W45": ("m3",), "2026-W46": ("m0", "m1")}
