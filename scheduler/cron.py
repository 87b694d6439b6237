"""Crontab expressions as cron means them, for APScheduler 3.x: day-of-week numbered from
Sunday, "either day" semantics refused rather than silently changed, one run on the autumn
DST night; and the job ids the configuration may name. Used by the configuration's checks
and by the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from scrapers.clock import reader_zone_named

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import Settings

WEEKLY_REPORT = "weekly_report"
OUTBOX = "outbox"
#: Job ids that are not jurisdictions, in the order ``schedwatch jobs`` lists them.
FIXED_JOBS = (WEEKLY_REPORT, OUTBOX)
#: A cron value that schedules nothing for that job id.
OFF = "off"
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FORM = ("write 5 fields \"minute hour day-of-month month day-of-week\", e.g. "
              "\"15 6 * * *\", or \"off\"")


# --- cron expressions ---------------------------------------------------------------------

def _weekday(token: str) -> int:
    """A cron day-of-week token as a number 0..7 (0 and 7 are Sunday)."""
    if token.isdigit():
        value = int(token)
        if value > 7:
            raise ValueError(f"day-of-week {token} is out of range (0-7, 0 and 7 = Sunday)")
        return value
    if token in _CRON_DAYS:
        return _CRON_DAYS.index(token)
    raise ValueError(f"unknown day-of-week {token!r} (use 0-7 or sun..sat)")


def cron_day_of_week(field: str) -> str:
    """Translate a standard cron day-of-week field into APScheduler 3.x weekday names.

    APScheduler numbers Monday 0, cron numbers Sunday 0 (and 7), and the two also disagree on
    where ``*/2`` starts, so every form is expanded to the set of days cron means and written
    back as names, which both agree on: ``"1-5"`` → ``"mon,tue,wed,thu,fri"``.
    """
    text = field.lower()
    if text == "*":
        return "*"
    days: set[int] = set()
    for item in text.split(","):
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"bad step in day-of-week {item!r}")
            step = int(step_text)
        if body == "*":
            first, last = 0, 6
        elif "-" in body:
            start, _, end = body.partition("-")
            first, last = _weekday(start), _weekday(end)
            if last == 0 and first > 0:  # "fri-sun": Sunday closing a range is day 7
                last = 7
            if first > last:
                raise ValueError(f"day-of-week range {body!r} runs backwards")
        elif slash:
            # "1/2" is read differently by different crons; ask for the explicit form.
            raise ValueError(f"write day-of-week {item!r} as a range with a step, e.g. 1-5/2")
        else:
            first = last = _weekday(body)
        days.update(day % 7 for day in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    # Monday first, the order APScheduler prints them in.
    return ",".join(_CRON_DAYS[day] for day in sorted(days, key=lambda d: (d + 6) % 7))


class CrontabTrigger(CronTrigger):
    """A ``CronTrigger`` built from a standard 5-field crontab expression, with cron's
    day-of-week numbering, that keeps the expression's text so that logs and
    ``schedwatch jobs`` show ``cron[15 6 * * *]`` rather than APScheduler's field list."""

    def __init__(self, expression: str, timezone: Any) -> None:
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(f"it has {len(fields)} field{'' if len(fields) == 1 else 's'}, "
                             "not 5")
        minute, hour, day, month, day_of_week = fields
        # Vixie cron ORs the two day fields when neither starts with "*"; APScheduler ANDs
        # them. Refusing is better than running on other days than the user expects.
        if not day.startswith("*") and not day_of_week.startswith("*"):
            raise ValueError("it restricts both day-of-month and day-of-week, which cron "
                             "reads as either/or and APScheduler as both; keep one as \"*\"")
        super().__init__(minute=minute, hour=hour, day=day, month=month,
                         day_of_week=cron_day_of_week(day_of_week), timezone=timezone)
        self.crontab = " ".join(fields)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        """APScheduler's next fire time, except the second pass through a wall-clock time
        that the autumn change repeats (01:30 twice on the first Sunday of November in
        America/Toronto). A job with fixed hours ("30 1 * * *") names a time of day and runs
        once at it, as Vixie cron does; a job whose hour field is a wildcard or a step
        ("*/15 * * * *") runs by the clock through both passes, as its interval says."""
        fire = super().get_next_fire_time(previous_fire_time, now)
        fields = self.crontab.split()
        fixed_hours = len(fields) == 5 and not fields[1].startswith("*")
        while fire is not None and previous_fire_time is not None and fixed_hours:
            first = _first_pass(fire)
            if first is None or previous_fire_time < first:
                break  # not a repeated time, or its first pass did not run: run it now
            fire = super().get_next_fire_time(fire, fire)
        return fire

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state["crontab"] = self.crontab
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.crontab = state.pop("crontab", "")
        super().__setstate__(state)

    def __str__(self) -> str:
        return f"cron[{self.crontab}]"


def _first_pass(moment: datetime) -> datetime | None:
    """When ``moment`` is the second pass through a wall-clock time the zone repeats (the
    fall-back hour), the first pass (the same wall time at the earlier offset); else None."""
    wall = moment.replace(tzinfo=None)
    zone = moment.tzinfo
    earlier = wall.replace(fold=0, tzinfo=zone)
    later = wall.replace(fold=1, tzinfo=zone)
    if earlier.utcoffset() == later.utcoffset():
        return None  # not an ambiguous time
    if moment.astimezone(UTC) != later.astimezone(UTC):
        return None  # this is the first pass itself
    return earlier


def scheduler_zone(settings: Settings) -> ZoneInfo:
    """The configured ``[scheduler] timezone`` as a zone, or ConfigError."""
    return reader_zone_named(settings.scheduler.timezone)


def parse_crontab(expression: str, zone: Any) -> CrontabTrigger:
    """A trigger for a standard crontab expression; ValueError says what is wrong."""
    try:
        return CrontabTrigger(expression, zone)
    except ValueError as error:
        raise ValueError(" ".join(str(error).split())) from None


def job_ids() -> list[str]:
    """Every job id the configuration may name: the registered jurisdictions, then the
    weekly report and the outbox."""
    import jurisdictions  # only the registry's names: no jurisdiction module is imported

    return [*jurisdictions.REGISTRY, *FIXED_JOBS]


