"""Stored jobs: triggers and time zone, reconciliation with the configuration, ``jobs`` listing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler import jobs
from scheduler.cli import main
from scheduler.config import load_settings
from scrapers.store import Store
from tests.support.scheduler import (
    only_ca,
    set_next_run_time,
    store_garbage_job,
    stored_jobs,
    write_config,
)

TORONTO = ZoneInfo("America/Toronto")
#: Saturday 7 March 2026, 12:07 in Toronto (EST, -05:00); DST starts on Sunday at 02:00.
SATURDAY = datetime(2026, 3, 7, 12, 7, tzinfo=TORONTO)
CRON = {"ca": "15 6 * * *", "weekly_report": "0 8 * * 1", "outbox": "*/15 * * * *"}


@pytest.fixture
def registry(monkeypatch):
    """A registry under the test's control: "ca" plus a fake "zz" (a module with one source
    and nothing else: building jobs reads only which sources a jurisdiction has)."""
    import sys
    import types

    import jurisdictions

    only_ca(monkeypatch)
    fake = types.ModuleType("jurisdictions.zz")
    fake.SOURCES = (types.SimpleNamespace(id="zz-register"),)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jurisdictions.zz", fake)
    monkeypatch.setitem(jurisdictions.REGISTRY, "zz", "jurisdictions.zz")
    return jurisdictions.REGISTRY


#: One enabled Canadian source (never fetched here): a jurisdiction whose sources are all
#: disabled gets no job.
CA_URL = {"ca-cdsa": "http://127.0.0.1:9/C-38.8.xml"}


def load(tmp_path, **scheduler):
    settings = load_settings(write_config(tmp_path, CA_URL, **scheduler))
    return settings, Store(settings.data_dir, settings.database_url)


def test_stored_jobs_have_the_configured_triggers_zone_and_options(tmp_path, registry):
    settings, store = load(tmp_path, cron=CRON, misfire_grace_time=1800)
    done = jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    assert done["added"] == ["ca", "zz", "weekly_report", "outbox"]

    stored = stored_jobs(store)
    assert set(stored) == {"ca", "zz", "weekly_report", "outbox"}
    config = str((tmp_path / "schedwatch.toml").resolve())
    ca = stored["ca"]
    assert str(ca.trigger) == "cron[15 6 * * *]"
    assert ca.trigger.timezone == TORONTO
    assert ca.func_ref == "scheduler.jobs:jurisdiction_job"
    assert ca.args == (config, "ca")
    assert (ca.coalesce, ca.max_instances, ca.misfire_grace_time) == (True, 1, 1800)
    assert stored["zz"].args == (config, "zz")
    assert str(stored["zz"].trigger) == "cron[0 6 * * *]"  # the default cadence
    assert stored["weekly_report"].func_ref == "scheduler.jobs:weekly_report_job"
    assert stored["outbox"].func_ref == "scheduler.jobs:outbox_job"

    # The stored triggers, asked for a fixed "now" on the Saturday before DST starts: the
    # daily run is 06:15 Toronto time, which on Sunday is already EDT (-04:00).
    ca_next = ca.trigger.get_next_fire_time(None, SATURDAY)
    assert ca_next.isoformat() == "2026-03-08T06:15:00-04:00"
    assert ca_next.astimezone(UTC).isoformat() == "2026-03-08T10:15:00+00:00"
    weekly_next = stored["weekly_report"].trigger.get_next_fire_time(None, SATURDAY)
    assert weekly_next.isoformat() == "2026-03-09T08:00:00-04:00"  # "1" is Monday, as in cron
    assert weekly_next.strftime("%A") == "Monday"
    outbox_next = stored["outbox"].trigger.get_next_fire_time(None, SATURDAY)
    assert outbox_next == SATURDAY.replace(minute=15)
    # And what the reconciliation stored is the real next fire time from now.
    now = datetime.now(TORONTO)
    assert now < ca.next_run_time <= now + timedelta(days=1)
    assert ca.next_run_time == ca.trigger.get_next_fire_time(None, now)


def test_list_jobs_before_the_scheduler_ever_ran_computes_rows(tmp_path, registry):
    settings, _store = load(tmp_path, cron=CRON)
    rows, heartbeat = jobs.list_jobs(settings, now=SATURDAY)
    assert heartbeat is None
    by_id = {row["id"]: row for row in rows}
    assert [row["id"] for row in rows] == ["ca", "zz", "weekly_report", "outbox"]
    assert by_id["ca"] == {
        "id": "ca", "trigger": "cron[15 6 * * *]", "timezone": "America/Toronto",
        "next_run_time": "2026-03-08T06:15:00-04:00",
        "next_run_time_utc": "2026-03-08T10:15:00+00:00", "stored": False, "configured": True}
    assert by_id["weekly_report"]["next_run_time"] == "2026-03-09T08:00:00-04:00"
    assert by_id["outbox"]["next_run_time_utc"] == "2026-03-07T17:15:00+00:00"
    # Listing created nothing: no job table, no jobs.
    with Store(settings.data_dir).db.connect() as conn:
        assert "apscheduler_jobs" not in conn.tables()


def test_list_jobs_reads_the_stored_jobs_and_the_heartbeat(tmp_path, registry):
    settings, store = load(tmp_path, cron=CRON)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    moment = datetime(2026, 7, 1, 6, 15, tzinfo=TORONTO)
    set_next_run_time(store, "ca", moment)
    store.beat("scheduler", now=datetime(2026, 7, 1, 10, 0, 5, tzinfo=UTC), detail="running")
    # A job stored but no longer configured is listed as such until the next start.
    registry.pop("zz")

    rows, heartbeat = jobs.list_jobs(settings)
    assert heartbeat == "2026-07-01T10:00:05+00:00"
    by_id = {row["id"]: row for row in rows}
    assert by_id["ca"]["stored"] is True
    assert by_id["ca"]["trigger"] == "cron[15 6 * * *]"
    assert by_id["ca"]["next_run_time"] == "2026-07-01T06:15:00-04:00"
    assert by_id["ca"]["next_run_time_utc"] == "2026-07-01T10:15:00+00:00"
    assert by_id["zz"]["configured"] is False and by_id["zz"]["stored"] is True
    for row in rows:
        local = datetime.fromisoformat(row["next_run_time"])
        assert local == datetime.fromisoformat(row["next_run_time_utc"])
        assert local.utcoffset() in (timedelta(hours=-4), timedelta(hours=-5))


def test_reconcile_follows_configuration_changes(tmp_path, registry):
    settings, store = load(tmp_path, cron=CRON)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    # The scheduler was stopped over a weekly report: its stored next run time is past.
    missed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    set_next_run_time(store, "weekly_report", missed)

    # New cadence for ca, "zz" leaves the registry, the outbox is switched off.
    registry.pop("zz")
    settings, store = load(tmp_path, cron={**CRON, "ca": "45 7 * * *", "outbox": "off"})
    done = jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    assert done == {"added": [], "rescheduled": ["ca"], "kept": ["weekly_report"],
                    "removed": ["outbox", "zz"]}

    stored = stored_jobs(store)
    assert set(stored) == {"ca", "weekly_report"}
    ca = stored["ca"]
    assert str(ca.trigger) == "cron[45 7 * * *]"
    local = ca.next_run_time.astimezone(TORONTO)
    assert (local.hour, local.minute) == (7, 45)
    assert local > datetime.now(TORONTO)
    # Same cadence: the missed run is kept, so the scheduler runs it once when it starts.
    assert stored["weekly_report"].next_run_time == missed


def test_reconcile_reschedules_when_the_zone_changes(tmp_path, registry):
    settings, store = load(tmp_path, cron=CRON)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    settings, store = load(tmp_path, cron=CRON, timezone="Australia/Sydney")
    done = jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    assert done["rescheduled"] == ["ca", "zz", "weekly_report", "outbox"]
    ca = stored_jobs(store)["ca"]
    assert ca.trigger.timezone == ZoneInfo("Australia/Sydney")
    local = ca.next_run_time.astimezone(ZoneInfo("Australia/Sydney"))
    assert (local.hour, local.minute) == (6, 15)


def test_unreadable_stored_job_is_listed_then_replaced(tmp_path, registry, caplog):
    settings, store = load(tmp_path, cron=CRON)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    # e.g. a job pickled by a future version, or whose function was renamed
    with store.db.begin() as conn:
        conn.execute("DELETE FROM apscheduler_jobs WHERE id = 'ca'")
    store_garbage_job(store, "ca")

    rows, _ = jobs.list_jobs(settings)
    ca = next(row for row in rows if row["id"] == "ca")
    assert ca["trigger"].startswith("unreadable") and ca["next_run_time"] is None
    assert "ca" in {row[0] for row in jobs._stored_jobs(store)}  # listing deleted nothing

    with caplog.at_level(logging.ERROR):
        done = jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    assert done["added"] == ["ca"]
    assert str(stored_jobs(store)["ca"].trigger) == "cron[15 6 * * *]"


def test_cli_jobs_json_and_table(tmp_path, monkeypatch, capsys):
    only_ca(monkeypatch)
    config = write_config(tmp_path, CA_URL, cron=CRON)
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config), "jobs", "--format", "json"])
    assert exited.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in rows] == ["ca", "weekly_report", "outbox"]
    assert rows[0]["trigger"] == "cron[15 6 * * *]" and rows[0]["stored"] is False

    with pytest.raises(SystemExit):
        main(["--config", str(config), "jobs"])
    out = capsys.readouterr().out
    assert "cron[15 6 * * *]" in out and "last heartbeat: never" in out


def test_the_weekly_job_reports_the_week_that_has_just_ended() -> None:
    from datetime import UTC, datetime

    from scheduler.jobs import last_complete_week

    # Monday 2026-11-23 08:00 in Toronto is in ISO week 48; the report is for week 47.
    monday = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert last_complete_week("America/Toronto", monday) == "2026-W47"
    # Early on 2027-01-04 (a Monday, week 1) the week that ended is 2026-W53.
    assert last_complete_week("UTC", datetime(2027, 1, 4, 8, 0, tzinfo=UTC)) == "2026-W53"


def test_every_scheduler_job_releases_its_garbage(tmp_path, monkeypatch) -> None:
    """The daemon runs a cycle a day for months: each job ends with a full collection
    (scheduler.jobs.release_memory), whether it succeeded or failed — the soak's flat memory
    rests on it."""
    import gc

    from scheduler import jobs

    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    missing = str(tmp_path / "missing.toml")
    for job, args in ((jobs.jurisdiction_job, (missing, "ca")),
                      (jobs.weekly_report_job, (missing,)), (jobs.outbox_job, (missing,))):
        before = len(collected)
        job(*args)  # a configuration that cannot be read: logged, not raised
        assert len(collected) == before + 1, job.__name__
