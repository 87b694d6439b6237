"""ISO weeks in the reader's zone: a week's name and bounds, and the week of each stored
moment (the weekly reports and their index place ten years of fetches in weeks). Pure."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scrapers.clock import parse_stamp, stamp
from scrapers.errors import SchedwatchError

_WEEK = re.compile(r"(\d{4})-W(\d{2})")


def parse_week(week: str) -> tuple[int, int]:
    """"2026-W47" → (2026, 47); anything else is a user error with a one-line message."""
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
    year, number, _ = moment.astimezone(reader_zone).isocalendar()
    return f"{year}-W{number:02d}"


def week_bounds(week: str, reader_zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in the reader's zone (the zone the weekly job
    runs in), as aware UTC datetimes."""
    year, number = parse_week(week)
    monday = date.fromisocalendar(year, number, 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=reader_zone)
    end_day = monday + timedelta(days=7)
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=reader_zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def week_finder(stamps: Iterable[str], reader_zone: ZoneInfo) -> Callable[[str], str]:
    """A function from a stored timestamp to its ISO week in the reader's zone. The week
    starts (Monday 00:00 local, in UTC) are worked out once for the span of ``stamps`` and
    each timestamp is placed among them: exact in every zone, half-hour offsets included,
    and cheap for ten years of daily rows. A stamp as schedwatch writes it (``stamp``: UTC
    to the second) is placed by comparing text, which orders as the moments do (ten years
    of fetches were parsed twice each: a third of the weekly index); any other form of a
    moment is parsed."""
    canonical: list[str] = []
    moments: list[datetime] = []
    for value in stamps:
        if _is_stamp(value):
            canonical.append(value)
        else:
            moments.append(parse_stamp(value))
    if canonical:
        moments += [parse_stamp(min(canonical)), parse_stamp(max(canonical))]
    if not moments:
        return lambda value: week_name(parse_stamp(value), reader_zone)
    first, last = min(moments), max(moments)
    week = week_name(first, reader_zone)
    starts: list[datetime] = []
    names: list[str] = []
    while True:
        start, end = week_bounds(week, reader_zone)
        starts.append(start)
        names.append(week)
        if end > last:
            break
        week = week_name(end, reader_zone)
    start_stamps = [stamp(start) for start in starts]
    end_stamp = stamp(end)

    def find(value: str) -> str:
        if _is_stamp(value):
            position = bisect.bisect_right(start_stamps, value) - 1
            if position >= 0 and value < end_stamp:
                return names[position]
            return week_name(parse_stamp(value), reader_zone)  # outside the span given
        moment = parse_stamp(value)
        position = bisect.bisect_right(starts, moment) - 1
        if position < 0 or moment >= end:
            return week_name(moment, reader_zone)  # outside the span given
        return names[position]

    return find


def _is_stamp(value: str) -> bool:
    """Whether ``value`` is a moment as ``stamp`` writes it ("2026-12-05T00:34:13+00:00"):
    such texts sort as their moments do."""
    return len(value) == 25 and value.endswith("+00:00") and value[10] == "T"
