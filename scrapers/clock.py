"""UTC stamps: the one way schedwatch writes and reads moments.

Moments are stored as ISO 8601 UTC strings to the second, which sort as they compare. A
naive datetime is taken to be UTC already (never the machine's local time), both when it is
stamped and when it is read back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scrapers.errors import ConfigError


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def as_utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive one is UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stamp(moment: datetime) -> str:
    return as_utc(moment).replace(microsecond=0).isoformat()


def parse_stamp(value: str) -> datetime:
    return as_utc(datetime.fromisoformat(value))


def reader_zone_named(name: str) -> ZoneInfo:
    """``[scheduler] timezone`` as a zone, or ConfigError naming the key: the one check of
    it (configuration load, the scheduler, the site). A name zoneinfo does not know is a
    configuration error, not a reason to show times in a zone nobody asked for."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config: 'scheduler.timezone' = {name!r} is not a known IANA time "
                          "zone; use a name such as \"America/Toronto\" or \"UTC\"") from None
