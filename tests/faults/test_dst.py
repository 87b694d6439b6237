"""The autumn DST night (issue 16, item 17): in America/Toronto the clocks go back from 02:00
EDT to 01:00 EST on Sunday 1 November 2026, so 01:00–01:59 happens twice. A daily job at
01:30 runs once that night, not twice; a job whose hours are a wildcard keeps running by the
clock through both passes. The triggers' next fire times are computed for a fixed clock, as
the scheduler computes them (previous fire time in, next out): nothing sleeps."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.jobs import parse_crontab

TORONTO = ZoneInfo("America/Toronto")
SATURDAY_NOON = datetime(2026, 10, 31, 12, 0, tzinfo=TORONTO)


def fire_times(trigger, start: datetime, until: datetime) -> list[datetime]:
    """Every fire time from ``start`` to ``until``, each computed from the previous one, as
    APScheduler does after each run."""
    times: list[datetime] = []
    previous = None
    now = start
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire > until:
            return times
        times.append(fire)
        previous = now = fire


def on(day: date, times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times if t.astimezone(TORONTO).date() == day]


@pytest.mark.parametrize("expression", ["30 1 * * *", "30 1 * * 0", "0 1 1 11 *"])
def test_a_job_inside_the_repeated_hour_runs_once(expression: str) -> None:
    trigger = parse_crontab(expression, TORONTO)
    times = fire_times(trigger, SATURDAY_NOON, SATURDAY_NOON + timedelta(days=3))
    night = on(date(2026, 11, 1), times)
    assert len(night) == 1, night
    assert night[0].endswith("-04:00")  # the first pass, EDT
    if expression == "30 1 * * *":  # and every other day as before
        assert on(date(2026, 11, 2), times) == ["2026-11-02T01:30:00-05:00"]


def test_the_stored_trigger_also_runs_once() -> None:
    """The job store pickles triggers: the restored one behaves the same, also when the
    scheduler resumes from the first pass it stored (a restart inside the repeated hour)."""
    trigger = pickle.loads(pickle.dumps(parse_crontab("30 1 * * *", TORONTO)))
    first = datetime(2026, 11, 1, 1, 30, tzinfo=TORONTO)  # fold=0: EDT
    assert first.utcoffset() == timedelta(hours=-4)
    restarted = datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=TORONTO)  # EST, after the first
    assert trigger.get_next_fire_time(first, restarted) \
        == datetime(2026, 11, 2, 1, 30, tzinfo=TORONTO)


def test_a_new_job_in_the_repeated_hour_still_runs_that_night() -> None:
    """A job added between the two passes has not run at 01:30 yet: it runs at the second."""
    trigger = parse_crontab("30 1 * * *", TORONTO)
    between = datetime(2026, 11, 1, 1, 45, tzinfo=TORONTO)  # EDT, after the first pass
    fire = trigger.get_next_fire_time(None, between)
    assert fire is not None
    assert fire.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST


def test_wildcard_hours_run_through_both_passes() -> None:
    trigger = parse_crontab("30 * * * *", TORONTO)
    times = fire_times(trigger, SATURDAY_NOON, SATURDAY_NOON + timedelta(days=2))
    night = on(date(2026, 11, 1), times)
    assert len(night) == 25  # a 25-hour day, every hour of it
    assert "2026-11-01T01:30:00-04:00" in night and "2026-11-01T01:30:00-05:00" in night
    every_15 = fire_times(parse_crontab("*/15 * * * *", TORONTO), SATURDAY_NOON,
                          SATURDAY_NOON + timedelta(days=2))
    assert len(on(date(2026, 11, 1), every_15)) == 25 * 4


def test_spring_forward_still_runs_the_daily_job_once() -> None:
    """02:30 does not exist on 8 March 2026: the job still runs once that day."""
    trigger = parse_crontab("30 2 * * *", TORONTO)
    start = datetime(2026, 3, 7, 12, 0, tzinfo=TORONTO)
    times = fire_times(trigger, start, start + timedelta(days=3))
    assert len(on(date(2026, 3, 8), times)) == 1
