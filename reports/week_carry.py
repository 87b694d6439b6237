"""Which weekly reports keep their fingerprint from the last publish without their inputs
being built again.

A closed week's report (``reports.weekly.week_inputs``) is made from a few tables of the
snapshot: the jurisdictions and disabled sources (every week), the week's entry in the
fetch log's tally, each source's last healthy fetch before the week's end, the week's
changes, the pending items open in it, its undeliverable mail, the cross-checks of its
last day and the dated facts of the ninety days after it. A publish keeps those tables
(the data folder's cache, ``reports.kept``) with the fingerprints of the closed weeks; the
next one makes its own and compares them table by table. A closed week none of whose rows
differ has the fingerprint it had: building twenty years of weeks' inputs to find that out
cost ~70 ms a publish, and what it costs now is comparing tables (a few dictionary look-ups
a week). Whatever a table that differs touches is made again: a past-dated change, a late
healthy fetch, a pending item or dated fact rewritten in place — nothing is assumed of a
week for being old. A week still running, or one the last publish saw running, is always
made. Pure, but for ``load`` and ``save``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reports import kept, sorted_lines
from reports.pages import Snapshot, cross_checks, digest_of, mail_view
from reports.weekly import WeekIndex, coming_up
from reports.weeks import week_bounds
from scrapers.clock import stamp

KEPT_FILE = kept.FOLDER / "weekly-tables"
#: Bump when what the tables hold, or what a week's report is made from, changes.
_SHAPE = 2
#: A week's (start, end) stamps and the first and last day of its "coming up" (ISO dates).
Bounds = tuple[str, str, str, str]
#: A pending row as the weeks it is open in see it: (id, first seen, resolved, digest).
PendingKey = tuple[int, str, str | None, str]


@dataclass(frozen=True)
class WeekTables:
    """What one publish's weekly reports were made from, table by table, and the
    fingerprints of the weeks that had closed."""

    shared: str  # the jurisdictions (names, sources, titles) and the disabled sources
    bounds: Mapping[str, Bounds]
    checks: Mapping[str, Any]  # week → its sources' entries in the fetch log's tally
    healthy: Mapping[str, str]  # source → its healthy fetch times (``sorted_lines``)
    changes: Mapping[str, tuple[str, ...]]  # week → its changes' keys
    pending: tuple[PendingKey, ...]  # in the snapshot's order (the reports' order)
    mail: Mapping[str, tuple[str, ...]]  # week → its undeliverable mail's digests (if any)
    cross: Mapping[str, tuple[str, ...]]  # closed week → the cross-checks of its last day
    days: Mapping[str, bytes]  # day → digest of the dated facts of that day
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # closed week → its own
    #: The weeks closed at this publish (not kept: the fingerprints are theirs).
    closed: frozenset[str] = frozenset()

    def with_fingerprints(self, fingerprints: Mapping[str, str]) -> WeekTables:
        """These tables with the fingerprints of their closed weeks (``fingerprints`` may
        hold every week's: a running week's is never carried over)."""
        return replace(self, fingerprints={week: fingerprints[week] for week in self.closed
                                           if week in fingerprints})


def carry(previous: WeekTables | None, snap: Snapshot, index: WeekIndex,
          weeks: Sequence[str], reader_zone: ZoneInfo, now: datetime
          ) -> tuple[WeekTables, dict[str, str]]:
    """This publish's tables, and the closed weeks whose fingerprint is the one
    ``previous`` (the last publish's tables, made by the same code in the same zone, or
    None) holds, with that fingerprint."""
    now_s = stamp(now)
    old_bounds = previous.bounds if previous is not None else {}
    bounds = {week: old_bounds.get(week) or _bounds(week, reader_zone) for week in weeks}
    # A week ending before ``now`` to the second is over (``weekly.week_parts``: complete);
    # one ending within that second is taken as running: made, never carried over.
    closed = [week for week in weeks if bounds[week][1] < now_s]
    healthy = {source: times.text for source, times in index.healthy_times.items()}
    old_healthy = previous.healthy if previous is not None else {}
    earliest: str | None = None  # the earliest healthy fetch that may differ
    for source in healthy.keys() | old_healthy.keys():
        # The texts are the tally's, kept between publishes: one comparison of their
        # bytes, not a digest of years of times.
        since = sorted_lines.first_after(old_healthy.get(source), healthy.get(source, ""))
        if since is not None and (earliest is None or since < earliest):
            earliest = since
    mail_digests = {position: digest_of(mail_view(row))
                    for position, row in enumerate(snap.failed_mail)}
    tables = WeekTables(
        shared=digest_of((snap.jurisdictions_key, sorted(snap.disabled))),
        bounds=bounds, checks=index.checks_by_week, healthy=healthy,
        changes={week: tuple(snap.change_key(change) for change in changes)
                 for week, changes in index.changes_by_week.items()},
        pending=tuple((row.id, row.first_seen_at, row.resolved_at, index.pending_digests[row.id])
                      for row in snap.pending),
        mail=_mail_by_week(index, mail_digests, weeks, bounds),
        cross={week: lines for week in closed
               if (lines := tuple(cross_checks(snap, date.fromisoformat(bounds[week][2]))))},
        days={day.isoformat(): digest for day, digest in index.day_digests.items()},
        closed=frozenset(closed))
    if previous is None or previous.shared != tables.shared:
        return tables, {}
    return tables, _carried(previous, tables, closed, earliest)


def _carried(old: WeekTables, new: WeekTables, closed: Sequence[str], earliest: str | None
             ) -> dict[str, str]:
    changed_days = sorted({day for day in old.days.keys() | new.days.keys()
                           if old.days.get(day) != new.days.get(day)})
    spans = _changed_pending(old.pending, new.pending)
    carried = {}
    for week in closed:
        fingerprint = old.fingerprints.get(week)
        if fingerprint is None:
            continue  # running then, or not a week then
        start, end, first, last = new.bounds[week]
        if earliest is not None and earliest <= end:
            continue  # its sources' last healthy fetch before its end may differ
        if (old.checks.get(week) != new.checks.get(week)
                or old.changes.get(week) != new.changes.get(week)
                or old.mail.get(week) != new.mail.get(week)
                or old.cross.get(week) != new.cross.get(week)):
            continue
        position = bisect.bisect_left(changed_days, first)
        if position < len(changed_days) and changed_days[position] <= last:
            continue  # a fact of its "coming up" differs
        if spans is None or any(seen < end and (resolved is None or resolved >= start)
                                for seen, resolved in spans):
            continue  # a pending item it lists (or listed) differs
        carried[week] = fingerprint
    return carried


def _bounds(week: str, reader_zone: ZoneInfo) -> Bounds:
    """As ``weekly.week_parts`` and ``weekly._window`` work them out."""
    start, end = week_bounds(week, reader_zone)
    first, last = coming_up(end)
    return stamp(start), stamp(end), first.isoformat(), last.isoformat()


def _mail_by_week(index: WeekIndex, digests: Mapping[int, str], weeks: Sequence[str],
                  bounds: Mapping[str, Bounds]) -> dict[str, tuple[str, ...]]:
    """week → the digests of the undeliverable mail it lists, in its order: a message
    created from the week's start (included) to its end (excluded), as ``week_parts``
    selects them. Each message is placed in its week (weeks never overlap), not each week
    searched: there are years of weeks and, mostly, no undeliverable mail."""
    if not index.mail_times:
        return {}
    starts = [bounds[week][0] for week in weeks]
    found: dict[str, list[int]] = {}
    for created_at, position in index.mail_times:
        at = bisect.bisect_right(starts, created_at) - 1
        if at >= 0 and created_at < bounds[weeks[at]][1]:
            found.setdefault(weeks[at], []).append(position)
    return {week: tuple(digests[position] for position in sorted(positions))
            for week, positions in found.items()}


def _changed_pending(old: Sequence[PendingKey], new: Sequence[PendingKey]
                     ) -> list[tuple[str, str | None]] | None:
    """The (first seen, resolved) spans of the pending rows that differ, as they were and
    as they are; None when the rows are the same but in another order (every week)."""
    if old == new:
        return []
    changed = set(old) ^ set(new)
    kept_ids = {row[0] for row in old} & {row[0] for row in new}
    if [row for row in old if row not in changed and row[0] in kept_ids] != \
            [row for row in new if row not in changed and row[0] in kept_ids]:
        return None
    return [(seen, resolved) for _, seen, resolved, _ in changed]


def load(data_dir: Path, version: str) -> WeekTables | None:
    """The tables the last publish kept (made by this ``version`` of the code: its zone
    is in it), or None."""
    data = kept.load(data_dir / KEPT_FILE, _tag(version))
    if not (type(data) is tuple and len(data) == 10):
        return None
    shared, bounds, checks, healthy, changes, pending, mail, cross, days, fingerprints = data
    # Checked a whole table at a time (``kept.only``): years of weeks in most of them.
    if not (type(shared) is str
            and _keyed(bounds, tuple) and kept.tuples(bounds.values(), 4, {str})
            and _keyed(checks, dict)
            and _keyed(healthy, str)
            and all(_keyed(table, tuple)
                    and kept.only(itertools.chain.from_iterable(table.values()), str)
                    for table in (changes, mail, cross))
            and type(pending) is tuple and all(_is_pending(row) for row in pending)
            and _keyed(days, bytes) and _keyed(fingerprints, str)):
        return None
    return WeekTables(shared=shared, bounds=bounds, checks=checks, healthy=healthy,
                      changes=changes, pending=pending, mail=mail, cross=cross, days=days,
                      fingerprints=fingerprints)


def save(data_dir: Path, version: str, tables: WeekTables) -> None:
    """Keep ``tables`` for the next publish (left as it was when it cannot be written)."""
    kept.save(data_dir / KEPT_FILE, _tag(version),
              (tables.shared, dict(tables.bounds), dict(tables.checks), dict(tables.healthy),
               dict(tables.changes), tuple(tables.pending), dict(tables.mail),
               dict(tables.cross), dict(tables.days), dict(tables.fingerprints)))


def _tag(version: str) -> str:
    return f"{_SHAPE}\0{version}"


def _keyed(value: Any, kind: type) -> bool:
    """Whether ``value`` is a dict of text keys to values of exactly ``kind``."""
    return type(value) is dict and kept.only(value, str) and kept.only(value.values(), kind)


def _is_pending(row: Any) -> bool:
    return (type(row) is tuple and len(row) == 4 and type(row[0]) is int
            and type(row[1]) is str and (row[2] is None or type(row[2]) is str)
            and type(row[3]) is str)
