"""ISO weeks in the reader's zone: a week's name and bounds, and the week of each stored
moment (the weekly reports and their index place ten years of fetches in weeks). Pure."""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scrapers.clock import parse_stamp, stamp
from scrapers.errors import SchedwatchError

_WEEK = re.compile(r"(\d{4})-W(\d{2})")


def parse_week(week: str) -> tuple[int, int]:
    """"2026-W47" → (2026, 47); anything else is a user error with a one-line message."""
    if type(week) is str:
        # Each publish names every week of the history several times (a page's address,
        # its bounds, the site's weekly folder): each text is parsed once per process.
        return _parsed_week(week)
    return _parse_week(week)


@functools.lru_cache(maxsize=8192)
def _parsed_week(week: str) -> tuple[int, int]:
    return _parse_week(week)  # an error is raised, not kept: bad text raises every time


def _parse_week(week: str) -> tuple[int, int]:
    match = _WEEK.fullmatch(week.strip()) if isinstance(week, str) else None
    if match:
        year, number = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, number, 1)
            return year, number
        except ValueError:
            pass
    raise SchedwatchError(f"bad week {week!r}: write an ISO week such as 2026-W47 "
                          "(year, \"-W\", two-digit week 01-53 that exists in that year)")


def week_name(moment: datetime, reader_zone: ZoneInfo) -> str:
    return _name(moment.astimezone(reader_zone).isocalendar())


def week_bounds(week: str, reader_zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in the reader's zone (the zone the weekly job
    runs in), as aware UTC datetimes."""
    year, number = parse_week(week)
    monday = date.fromisocalendar(year, number, 1)
    return _midnight(monday, reader_zone), _midnight(monday + timedelta(days=7), reader_zone)


def _name(iso: tuple[int, int, int]) -> str:
    year, number, _ = iso
    return f"{year}-W{number:02d}"


def _midnight(day: date, reader_zone: ZoneInfo) -> datetime:
    """00:00 of ``day`` in the reader's zone, as an aware UTC datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=reader_zone).astimezone(UTC)


def week_finder(stamps: Iterable[str], reader_zone: ZoneInfo) -> WeekFinder:
    """The weeks of the span of ``stamps`` in the reader's zone, to place stored timestamps
    in: exact in every zone, half-hour offsets included, and cheap for ten years of daily
    rows. A stamp as schedwatch writes it (``stamp``: UTC to the second) is placed by
    comparing text, which orders as the moments do (ten years of fetches were parsed twice
    each: a third of the weekly index); any other form of a moment is parsed."""
    canonical: list[str] = []
    moments: list[datetime] = []
    for value in stamps:
        if _is_stamp(value):
            canonical.append(value)
        else:
            moments.append(parse_stamp(value))
    if canonical:
        moments += [parse_stamp(min(canonical)), parse_stamp(max(canonical))]
    return WeekFinder(moments, reader_zone)


class WeekFinder:
    """The weeks of the span of some moments (made by ``week_finder``): call it with one
    stored timestamp, or give ``weeks_of`` many."""

    def __init__(self, moments: list[datetime], reader_zone: ZoneInfo) -> None:
        self._zone = reader_zone
        self._names: list[str] = []
        # The weeks' starts and the last week's end (``_bounds``: the same as ``stamp`` text).
        self._edges: list[datetime] = []
        if moments:
            last = max(moments)
            # Monday by Monday (not ``week_bounds`` per week, which parses each week's
            # name): ten years are 522 weeks, made once per publish.
            first = min(moments).astimezone(reader_zone).date()
            monday = first - timedelta(days=first.weekday())
            self._edges.append(_midnight(monday, reader_zone))
            while self._edges[-1] <= last:
                self._names.append(_name(monday.isocalendar()))
                monday += timedelta(days=7)
                self._edges.append(_midnight(monday, reader_zone))
        self._bounds = [stamp(edge) for edge in self._edges]

    def __call__(self, value: str) -> str:
        if _is_stamp(value):
            position = self._position_of_stamp(value)
            if position is not None:
                return self._names[position]
            return week_name(parse_stamp(value), self._zone)  # outside the span given
        moment = parse_stamp(value)
        if self._names and self._edges[0] <= moment < self._edges[-1]:
            return self._names[bisect.bisect_right(self._edges, moment) - 1]
        return week_name(moment, self._zone)  # outside the span given

    def weeks_of(self, values: Iterable[str]) -> list[str]:
        """The week of each of ``values``, in order. Stored rows come mostly in time order:
        a stamp in the same week as the one before it is placed by two comparisons of text
        (ten years of daily fetches, 36,000 look-ups, were a third of the weekly index)."""
        weeks: list[str] = []
        low = high = name = ""
        for value in values:
            if not _is_stamp(value):
                weeks.append(self(value))
                continue
            if not low <= value < high:
                position = self._position_of_stamp(value)
                if position is None:
                    weeks.append(self(value))  # outside the span: not a week to reuse
                    continue
                name = self._names[position]
                low, high = self._bounds[position], self._bounds[position + 1]
            weeks.append(name)
        return weeks

    def _position_of_stamp(self, value: str) -> int | None:
        """The week of a stamp as ``stamp`` writes it, as a position among the span's weeks;
        None outside the span."""
        if not self._names or not self._bounds[0] <= value < self._bounds[-1]:
            return None
        return bisect.bisect_right(self._bounds, value) - 1


def _is_stamp(value: str) -> bool:
    """Whether ``value`` is a moment as ``stamp`` writes it ("2026-12-05T00:34:13+00:00"):
    such texts sort as their moments do."""
    return len(value) == 25 and value.endswith("+00:00") and value[10] == "T"
