"""The weekly report's numbers, computed once from one snapshot: checks and failures per
source, the week's changes, pending items, and what comes into force within 90 days.

One context serves both the published page and the weekly email (``weekly_summary`` reduces
it to what the email shows), so they agree and the store is read once for both."""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reports.check_tally import CheckTally
from reports.diff import display_name, schedule_label
from reports.pages import (
    UPCOMING_DAYS,
    Snapshot,
    change_summary,
    cross_checks,
    digest_of,
    human_duration,
    mail_view,
    parse_day,
    pending_view,
    pending_views,
    weekly_href,
)
from reports.render import format_utc
from reports.sorted_lines import Lines
from reports.status_rows import DISABLED_WORDS
from reports.weeks import week_bounds, week_finder
from scrapers.clock import parse_stamp, stamp
from scrapers.records import StatusRecord
from scrapers.store import PendingRow, StatusInterval, StoredChange


@dataclass(frozen=True)
class WeekIndex:
    """The fetch log and the dated facts, arranged once per publish so that every week's
    context is a few lookups (O(log n + what the week shows)) rather than a scan of ten
    years, and its fingerprint (``week_inputs``) is cheaper still."""

    #: week → source id → (checks, failures, its five commonest errors with their counts).
    checks_by_week: Mapping[str, Mapping[str, tuple[int, int, tuple[tuple[str, int], ...]]]]
    changes_by_week: Mapping[str, Sequence[StoredChange]]
    #: Healthy fetch times per source, sorted, for "last healthy fetch before …".
    healthy_times: Mapping[str, Lines]
    #: (date, label, interval) for every dated fact of every interval, sorted by date.
    dated: Sequence[tuple[date, str, StatusInterval]]
    weeks: tuple[str, ...]  # every week with a fetch or a change, oldest first
    #: The undeliverable mail (created_at, its position in ``Snapshot.failed_mail``), sorted.
    mail_times: Sequence[tuple[str, int]] = ()
    #: The dates of ``dated``, for bisecting without a key function.
    dated_days: Sequence[date] = ()
    #: day → digest of the dated facts of that day (``week_inputs``).
    day_digests: Mapping[date, bytes] = field(default_factory=dict)
    #: pending row id → digest of the item as a report shows it (``week_inputs``).
    pending_digests: Mapping[int, str] = field(default_factory=dict)


def week_index(snap: Snapshot, reader_zone: ZoneInfo) -> WeekIndex:
    changes_by_week: dict[str, list[StoredChange]] = defaultdict(list)
    # The fetch log comes counted by week (reports.check_tally: kept between publishes).
    checks = snap.checks or CheckTally(zone=reader_zone.key)
    if checks.rows and checks.zone != reader_zone.key:
        raise ValueError(f"the fetch log was counted in the weeks of {checks.zone}, "
                         f"not {reader_zone.key}")
    checks_by_week = checks.checks_by_week()
    weeks = set(checks_by_week)
    week_for = week_finder([change.detected_at for change in snap.changes], reader_zone)
    for change in snap.changes:
        if change.backfilled:
            # Read from an archive, not observed that week: the history pages hold them;
            # a backfill must not flood the week it ran in.
            continue
        week = week_for(change.detected_at)
        changes_by_week[week].append(change)
        weeks.add(week)
    dated: list[tuple[date, str, StatusInterval]] = []
    for interval in snap.intervals:
        for label, value in _record_dates(interval.record):
            day = parse_day(value)
            if day is not None:
                dated.append((day, label, interval))
    dated.sort(key=lambda item: (item[0], item[2].id))
    return WeekIndex(
        checks_by_week=checks_by_week,
        changes_by_week=changes_by_week,
        healthy_times=checks.healthy_times(),
        dated=dated, weeks=tuple(sorted(weeks)),
        mail_times=sorted((str(row.get("created_at") or ""), position)
                          for position, row in enumerate(snap.failed_mail)),
        dated_days=[item[0] for item in dated], day_digests=_day_digests(snap, dated),
        pending_digests={row.id: _pending_digest(snap, row) for row in snap.pending})


def _pending_digest(snap: Snapshot, row: PendingRow) -> str:
    """A pending item as a weekly report shows it: its row as stored, its view (the change
    that announced it, the jurisdiction's name, whether its substance has a history page)
    and that page's address. Made once per publish: every report of the weeks an item is
    open lists it (hundreds of weeks over years of history)."""
    return digest_of((row, pending_views([row], snap),
                      snap.jurisdiction(row.item.jurisdiction).name,
                      snap.history_href(row.item.substance)))


#: The labels of a record's own dates that are legal events ("Coming into force or due"):
#: a coming into force, an end, an effective date, a comment deadline. The others say what
#: the document is (published, registered, consolidated, point in time, last amended, the
#: consolidation's in-force-start of a provision's text): evidence dates, never "coming up".
LEGAL_DATE_LABELS = ("in force", "comes into force", "coming into force", "ceases",
                     "effective", "comment deadline")


def _record_dates(record: StatusRecord) -> list[tuple[str, str]]:
    """The legal dates a record holds (a coming into force, an announced repeal), then those
    of the document's labelled dates that are legal events."""
    dates = []
    if record.in_force_since and record.in_force_since_kind == "instrument":
        dates.append(("in force", record.in_force_since))
    if record.in_force_until:
        dates.append(("ceases to be in force", record.in_force_until))
    return dates + [(str(label), str(value)) for label, value in record.dates
                    if str(label).startswith(LEGAL_DATE_LABELS)]


def _active(start: str, end: str | None, at: str) -> bool:
    return start <= at and (end is None or end > at)


@dataclass(frozen=True)
class WeekParts:
    """The bounds and the small parts of one week's report, shared by its context and its
    fingerprint."""

    start: datetime
    end: datetime
    reference: datetime
    complete: bool
    #: Each source's (id, checks, failures, five commonest errors, last healthy fetch up to
    #: ``reference``): what the report shows of it besides its names (``_source_views``).
    checks: list[tuple[str, int, int, tuple[tuple[str, int], ...], str | None]]
    changes: Sequence[StoredChange]
    open_pending: list[PendingRow]
    mail: list[dict[str, Any]]
    cross_checks: list[str]


def week_parts(snap: Snapshot, index: WeekIndex, week: str, reader_zone: ZoneInfo,
                now: datetime) -> WeekParts:
    start, end = week_bounds(week, reader_zone)
    start_s, end_s = stamp(start), stamp(end)
    # For a week still running, "time since" is measured to now, not to a future Monday.
    reference = min(end, now)
    reference_s = stamp(reference)
    week_checks = index.checks_by_week.get(week, {})
    checks = []
    for j in snap.jurisdictions:
        for sid in j.sources:
            count, failures, errors = week_checks.get(sid, (0, 0, ()))
            times = index.healthy_times.get(sid)
            checks.append((sid, count, failures, errors,
                           times.last_up_to(reference_s) if times is not None else None))
    # Open items are few (announced actions awaiting a decision): a scan is cheap.
    open_in_week = [r for r in snap.pending if r.first_seen_at < end_s
                    and (r.resolved_at is None or r.resolved_at >= start_s)]
    low = bisect.bisect_left(index.mail_times, (start_s, -1))
    high = bisect.bisect_left(index.mail_times, (end_s, -1))
    mail = [mail_view(snap.failed_mail[position])
            for position in sorted(p for _, p in index.mail_times[low:high])]
    return WeekParts(start=start, end=end, reference=reference, complete=now >= end,
                 checks=checks, changes=index.changes_by_week.get(week, ()),
                 open_pending=open_in_week, mail=mail,
                 cross_checks=cross_checks(snap, min(now, end).date()))


def _source_views(snap: Snapshot, parts: WeekParts) -> list[dict[str, Any]]:
    """Each source as the report shows it: its names, its checks, failures and errors, and
    how long since its last healthy fetch (to the week's end, or to now while it runs)."""
    shown = [j for j in snap.jurisdictions for _ in j.sources]  # as week_parts made them
    views = []
    for j, (sid, count, failures, errors, last) in zip(shown, parts.checks, strict=True):
        views.append({
            "id": sid, "title": j.titles.get(sid, sid), "jurisdiction": j.code,
            "jurisdiction_name": j.name,
            "checks": count, "failures": failures, "disabled": sid in snap.disabled,
            "last_healthy_at": last, "since_healthy": _since(parts.reference, last),
            "errors": [{"error": text, "count": n} for text, n in errors]})
    return views


def _since(reference: datetime, last: str | None) -> str | None:
    return human_duration((reference - parse_stamp(last)).total_seconds()) if last else None


def weekly_context_from(snap: Snapshot, index: WeekIndex, week: str, *,
                        reader_zone: ZoneInfo, now: datetime,
                        parts: WeekParts | None = None) -> dict[str, Any]:
    """The weekly report of one ISO week (in the reader's zone); ``parts``: the week's
    ``week_parts`` when the caller made them for the fingerprint already."""
    parts = parts or week_parts(snap, index, week, reader_zone, now)
    week_changes = parts.changes
    by_jurisdiction = [{
        "code": j.code, "name": j.name,
        "changes": [change_summary(c, j.name) for c in week_changes if c.jurisdiction == j.code],
    } for j in snap.jurisdictions]
    return {
        "title": f"Weekly report {week}",
        "week": week, "start": stamp(parts.start), "end": stamp(parts.end),
        "timezone": reader_zone.key,
        "complete": parts.complete,
        "sources": _source_views(snap, parts),
        "changes_by_jurisdiction": [group for group in by_jurisdiction if group["changes"]],
        "change_count": len(week_changes),
        "pending": pending_views(parts.open_pending, snap),
        "upcoming": _upcoming(snap, index, parts.end, parts.open_pending),
        "upcoming_days": UPCOMING_DAYS,
        "mail_failures": parts.mail,
        "cross_checks": parts.cross_checks,
    }


def week_inputs(snap: Snapshot, index: WeekIndex, week: str, *, reader_zone: ZoneInfo,
                now: datetime, parts: WeekParts | None = None) -> tuple[Any, ...]:
    """What the week's report is made from, for its fingerprint, without building it: its
    small parts as the page shows them (sources' checks, changes, open items, mail,
    cross-checks) and, for the 90 days of "coming up" (hundreds of rows with ``watch =
    "all"``), a digest per day of the dated facts of every interval that day. Whatever
    changes the page changes this; a new run changes only the running week's and those
    whose 90 days hold a fact it touched."""
    parts = parts or week_parts(snap, index, week, reader_zone, now)
    # The days of the window that hold a fact, each with its digest: the window the report
    # shows (``_window``), not a look-up for each of its 91 days (most of them empty).
    low, high = _window(index, parts.end)
    window = hashlib.sha256(stamp(parts.end).encode())
    for day in dict.fromkeys(index.dated_days[low:high]):
        window.update(day.isoformat().encode() + index.day_digests[day])
    # Each source by what its row is made from: its names and whether it is disabled are
    # in the jurisdictions' key and ``disabled``; "time since" is worked out from the last
    # healthy fetch and the week's end — or, while the week runs, from now, which it
    # depends on only through what it shows (in whole minutes, as are ``complete`` and the
    # cross-checks of the day): those are in here.
    running = () if parts.complete else tuple(_since(parts.reference, last)
                                              for *_, last in parts.checks)
    return (week, parts.complete, snap.jurisdictions_key, sorted(snap.disabled), parts.checks,
            running,
            # Each change by its stored row's digest (shared with its page): what the page
            # shows of it (``change_summary``) is made from the row and its jurisdiction's
            # name, which is in the jurisdictions' key.
            [snap.change_key(change) for change in parts.changes],
            # Each open item by its digest (the view the page sorts and shows is made from
            # what it covers).
            [index.pending_digests[row.id] for row in parts.open_pending],
            parts.mail, parts.cross_checks, window.hexdigest())


def _day_digests(snap: Snapshot, dated: Sequence[tuple[date, str, StatusInterval]]
                 ) -> dict[date, bytes]:
    """day → digest of what "coming up" can show of the facts dated that day: each fact's
    label and its interval's span and shown fields (not the interval's confirmation stamp,
    which every run moves)."""
    by_day: dict[date, list[Any]] = defaultdict(list)
    for day, label, interval in dated:
        record = interval.record
        by_day[day].append((label, interval.id, interval.valid_from, interval.valid_to,
                            record.jurisdiction, record.substance, schedule_label(record),
                            record.instrument, record.provision, record.source_id,
                            snap.history_href(record.substance)))
    return {day: hashlib.sha256(repr(items).encode("utf-8", "surrogatepass")).digest()
            for day, items in by_day.items()}


def coming_up(end: datetime) -> tuple[date, date]:
    """The first and last day (both included) of the "coming up" of a week that ends at
    ``end``: from its end's day to UPCOMING_DAYS after. The report shows what falls in it,
    its fingerprint digests those days, and ``reports.week_carry`` remakes the weeks whose
    span holds a fact that changed: one span for all three."""
    first = end.date()
    return first, first + timedelta(days=UPCOMING_DAYS)


def _window(index: WeekIndex, end: datetime) -> tuple[int, int]:
    """The positions in ``index.dated`` of the facts "coming up" after a week that ends at
    ``end`` (``coming_up``). The report shows them (``_upcoming``) and its fingerprint
    digests their days (``week_inputs``): one window for both, so a fact the page shows
    always moves its fingerprint."""
    first, last = coming_up(end)
    return (bisect.bisect_left(index.dated_days, first),
            bisect.bisect_right(index.dated_days, last))


def _upcoming(snap: Snapshot, index: WeekIndex, end: datetime,
              pending: Sequence[PendingRow]) -> list[dict[str, Any]]:
    """Dated facts that fall after the week's end and within UPCOMING_DAYS of it: pending
    items open at the week's end and records in force then."""
    first, last = coming_up(end)
    end_s = stamp(end)
    result = []
    for row in pending:
        day = parse_day(row.item.date)
        if day is not None and first <= day <= last and (
                row.resolved_at is None or row.resolved_at >= end_s):
            view = pending_view(row.item, first_seen_at=row.first_seen_at,
                                jurisdiction_name=snap.jurisdiction(row.item.jurisdiction).name,
                                history=snap.history_substances)
            result.append({"date": row.item.date, "day": day.isoformat(),
                           "label": view["date_label"], "what": "pending",
                           "jurisdiction_name": view["jurisdiction_name"],
                           "substance": view["substance"], "name": view["name"],
                           "text": f"{view['action']}: {view['description']}",
                           "reference": view["reference"], "href": view["history_href"]})
    low, high = _window(index, end)
    for day, label, interval in index.dated[low:high]:
        if not _active(interval.valid_from, interval.valid_to, end_s):
            continue
        record = interval.record
        result.append({"date": day.isoformat(), "day": day.isoformat(), "label": label,
                       "what": "record",
                       "jurisdiction_name": snap.jurisdiction(record.jurisdiction).name,
                       "substance": record.substance, "name": display_name(record.substance),
                       "text": f"{schedule_label(record)}, {record.instrument}"
                               + (f" {record.provision}" if record.provision else ""),
                       "reference": record.source_id,
                       "href": snap.history_href(record.substance)})
    return sorted(result, key=lambda item: (item["day"], item["jurisdiction_name"],
                                            item["substance"]))


def weekly_index_context(weeks: Sequence[str]) -> dict[str, Any]:
    return {"title": "Weekly reports",
            "weeks": [{"week": w, "href": weekly_href(w)} for w in sorted(weeks, reverse=True)]}




@dataclass(frozen=True)
class WeeklySummary:
    """What the weekly email says besides the changes themselves, reduced from the weekly
    page's context (weeks in the reader's zone), so the email and the page agree."""

    week: str
    period: str  # "2026-11-16 to 2026-11-22 (UTC)"
    complete: bool
    change_ids: tuple[int, ...]
    sources: tuple[Mapping[str, Any], ...] = ()  # source_id, title, checks, failures, ...
    pending: tuple[str, ...] = ()
    failed_alerts: int = 0
    href: str = ""  # the weekly page, relative to the site root


def weekly_summary(context: Mapping[str, Any]) -> WeeklySummary:
    """The weekly context (``weekly_context_from``), reduced to what the email shows."""
    reader_zone = ZoneInfo(str(context["timezone"]))
    start = parse_stamp(context["start"]).astimezone(reader_zone)
    last = (parse_stamp(context["end"]) - timedelta(seconds=1)).astimezone(reader_zone)
    sources = tuple({
        "source_id": s["id"], "title": s["title"], "checks": s["checks"],
        "failures": s["failures"],
        "last_healthy": (format_utc(s["last_healthy_at"]) or "never") + (
            f" ({DISABLED_WORDS})" if s.get("disabled") else ""),
        "errors": "; ".join(f"{e['error']} (×{e['count']})" for e in s["errors"]),
    } for s in context["sources"])
    return WeeklySummary(
        week=str(context["week"]), complete=bool(context["complete"]),
        period=f"{start:%Y-%m-%d} to {last:%Y-%m-%d} ({reader_zone.key})",
        change_ids=tuple(c["id"] for group in context["changes_by_jurisdiction"]
                         for c in group["changes"]),
        sources=sources, pending=tuple(pending_line(p) for p in context["pending"]),
        failed_alerts=sum(1 for m in context["mail_failures"] if m["kind"] == "alert"),
        href=str(context.get("href") or weekly_href(str(context["week"]))))


def pending_line(item: Mapping[str, Any]) -> str:
    """``Ketamine — United States: proposed rule to Schedule II (89 FR 1, comment deadline
    2027-01-15)``."""
    target = f" to Schedule {item['proposed_schedule']}" if item.get("proposed_schedule") \
        else ""
    facts = [str(item["reference"])] if item.get("reference") else []
    if item.get("date"):
        facts.append(f"{item['date_label']} {item['date']}")
    where = f" ({', '.join(facts)})" if facts else ""
    return f"{item['name']} — {item['jurisdiction_name']}: {item['action']}{target}{where}"
