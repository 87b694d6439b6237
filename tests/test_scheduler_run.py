"""The scheduler running real jobs: missed runs after downtime (coalesce, misfire grace time),
a real pipeline run on a one-second trigger, the lock, the weekly report and outbox jobs.

Everything runs against pytest-httpserver on 127.0.0.1 with the Canadian documents; the
scheduler is the one ``schedwatch schedule`` builds, in a background thread.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
)
from apscheduler.triggers.interval import IntervalTrigger

from scheduler import jobs
from scheduler.config import load_settings
from scrapers.store import Store
from tests.support.scheduler import (
    ca_documents,
    only_ca,
    serve_ca,
    set_next_run_time,
    stored_jobs,
    wait_for,
    write_config,
)
from tests.support.smtp import SmtpServer


class Events:
    """APScheduler events of the persistent jobs, collected from the scheduler thread."""

    def __init__(self, scheduler) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[int, str, object]] = []
        scheduler.add_listener(self._add, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED
                               | EVENT_JOB_MISSED | EVENT_JOB_ERROR)

    def _add(self, event) -> None:
        if event.job_id == "heartbeat":
            return
        when = getattr(event, "scheduled_run_times", None) or event.scheduled_run_time
        with self.lock:
            self.seen.append((event.code, event.job_id, when))

    def of(self, code: int, job_id: str = "ca") -> list[object]:
        with self.lock:
            return [when for c, j, when in self.seen if c == code and j == job_id]


@pytest.fixture
def ca_setup(tmp_path, httpserver, monkeypatch):
    """Canadian documents served locally; returns a function making settings + store."""
    only_ca(monkeypatch)
    urls = serve_ca(httpserver, ca_documents())

    def make(**scheduler):
        settings = load_settings(write_config(tmp_path, urls, **scheduler))
        return settings, Store(settings.data_dir, settings.database_url)

    return make


def hourly_cron_with_a_recent_fire() -> tuple[str, datetime]:
    """An hourly cron whose latest fire time was about five minutes ago, and that time; the
    next one is ~55 minutes away, so nothing else is due while the test runs."""
    last = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    return f"{last.minute} * * * *", last


def test_missed_runs_within_the_grace_time_run_once(ca_setup):
    expression, last = hourly_cron_with_a_recent_fire()
    # The grace time covers all six missed periods: without coalescing each would run.
    settings, store = ca_setup(cron={"ca": expression, "weekly_report": "off", "outbox": "off"},
                               misfire_grace_time=6 * 3600)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))  # the first start
    # ... then the scheduler was down for five hours:
    set_next_run_time(store, "ca", last - timedelta(hours=5))
    job = stored_jobs(store)["ca"]
    assert len(job._get_run_times(datetime.now(UTC))) == 6  # six run times are due

    scheduler = jobs.build_scheduler(settings, store=store, background=True)  # the restart
    events = Events(scheduler)
    scheduler.start()
    try:
        wait_for(lambda: events.of(EVENT_JOB_EXECUTED), timeout=60, what="the ca run")
        time.sleep(1.5)  # room for a second run, if the scheduler wanted one
    finally:
        scheduler.shutdown(wait=True)

    assert events.of(EVENT_JOB_SUBMITTED) == [[last]]  # one submission, the latest time
    assert events.of(EVENT_JOB_EXECUTED) == [last]
    assert events.of(EVENT_JOB_MISSED) == [] and events.of(EVENT_JOB_ERROR) == []
    runs = store.runs()
    assert len(runs) == 1
    assert runs[0]["trigger"] == "scheduler" and runs[0]["finished_at"] is not None
    assert stored_jobs(store)["ca"].next_run_time == last + timedelta(hours=1)


def test_a_run_missed_beyond_the_grace_time_is_skipped(ca_setup, httpserver):
    expression, last = hourly_cron_with_a_recent_fire()
    settings, store = ca_setup(cron={"ca": expression, "weekly_report": "off", "outbox": "off"},
                               misfire_grace_time=60)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    set_next_run_time(store, "ca", last - timedelta(hours=2))

    scheduler = jobs.build_scheduler(settings, store=store, background=True)
    events = Events(scheduler)
    scheduler.start()
    try:
        wait_for(lambda: events.of(EVENT_JOB_MISSED), timeout=30, what="the missed event")
        time.sleep(1)
    finally:
        scheduler.shutdown(wait=True)

    assert events.of(EVENT_JOB_MISSED) == [last]  # coalesced, then too late: one "missed"
    assert events.of(EVENT_JOB_EXECUTED) == []
    assert store.runs(limit=5) == []
    assert len(httpserver.log) == 0  # nothing was fetched
    assert stored_jobs(store)["ca"].next_run_time == last + timedelta(hours=1)


def test_scheduler_runs_the_pipeline_and_stops(ca_setup):
    settings, store = ca_setup(cron={"weekly_report": "off", "outbox": "off"})
    scheduler = jobs.build_scheduler(settings, store=store, background=True,
                                     overrides={"ca": IntervalTrigger(seconds=1)})
    events = Events(scheduler)
    scheduler.start()
    try:
        wait_for(lambda: any(r["finished_at"] for r in store.runs()), timeout=60,
                 what="a stored run")
    finally:
        scheduler.shutdown(wait=True)
    assert not scheduler.running
    assert events.of(EVENT_JOB_ERROR) == []

    runs = store.runs()
    assert runs and all(r["finished_at"] and r["trigger"] == "scheduler" for r in runs)
    assert runs[-1]["exit_code"] == 0
    current = {(i.record.jurisdiction, i.record.substance, i.record.source_id): i.record
               for i in store.current_intervals()}
    ketamine = current[("ca", "ketamine", "ca-cdsa")]
    assert ketamine.status == "controlled" and ketamine.schedule == "I"
    heartbeat = store.heartbeat("scheduler")
    assert heartbeat is not None and heartbeat["detail"].startswith("running since")
    assert store.integrity_check() == "ok"


def test_jurisdiction_job_skips_when_another_process_holds_the_lock(ca_setup, httpserver,
                                                                     caplog):
    settings, store = ca_setup()
    config = str(settings.config_path)
    with caplog.at_level(logging.INFO, logger="schedwatch.scheduler"), \
            store.lock("jurisdiction-ca", holder="schedwatch run"):
        jobs.jurisdiction_job(config, "ca")  # returns normally: not a failure
    assert "ca: skipped: another schedwatch process (pid" in caplog.text
    assert "schedwatch run) is already working on jurisdiction-ca" in caplog.text
    assert store.runs() == [] and len(httpserver.log) == 0

    jobs.jurisdiction_job(config, "ca")  # free again: it runs
    assert len(store.runs()) == 1


def test_jurisdiction_job_logs_user_errors_in_one_line(tmp_path, monkeypatch, caplog):
    only_ca(monkeypatch)
    config = write_config(tmp_path)
    config.write_text("data_dir = 5\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="schedwatch.scheduler"):
        jobs.jurisdiction_job(str(config), "ca")
    [record] = caplog.records
    assert record.getMessage().startswith("ca: run failed: config: 'data_dir' has a bad value")
    assert record.exc_info is None


@pytest.mark.skipif(importlib.util.find_spec("reports.site") is None,
                    reason="reports.site (the weekly report) is not written yet")
def test_weekly_report_job_writes_the_report(ca_setup, caplog):
    settings, store = ca_setup()
    jobs.jurisdiction_job(str(settings.config_path), "ca")
    with caplog.at_level(logging.INFO, logger="schedwatch.scheduler"):
        jobs.weekly_report_job(str(settings.config_path))
    written = [r for r in caplog.records if r.getMessage().startswith("weekly report written")]
    assert written, caplog.text
    assert written[0].args and Path(str(written[0].args[0])).exists()


def test_outbox_job_delivers_queued_mail(tmp_path, monkeypatch, caplog):
    only_ca(monkeypatch)
    with SmtpServer() as server:
        config = write_config(tmp_path, extra=(
            "\n[email]\n"
            f'host = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
            'from = "schedwatch@example.org"\n'
            '[[email.recipients]]\naddress = "officer@example.org"\n'))
        settings = load_settings(config)
        store = Store(settings.data_dir, settings.database_url)
        assert store.enqueue(idempotency_key="test:outbox-job", kind="test",
                             recipient="officer@example.org", change_ids=[])
        with caplog.at_level(logging.INFO, logger="schedwatch.scheduler"):
            jobs.outbox_job(str(config))
        assert [m["To"] for m in server.messages] == ["officer@example.org"]
    [row] = store.outbox_rows()
    assert row["state"] == "delivered"
    assert "outbox: email: delivered 1 message" in caplog.text


def test_outbox_job_without_email_does_nothing(tmp_path, monkeypatch, caplog):
    only_ca(monkeypatch)
    config = write_config(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="schedwatch.scheduler"):
        jobs.outbox_job(str(config))
    assert "no [email] configured" in caplog.text
    assert not (tmp_path / "data").exists()  # not even the database was opened


def test_shutdown_while_the_heartbeat_is_being_written_completes(ca_setup, monkeypatch):
    # Regression: APScheduler holds its job store lock while shutdown() waits for running
    # jobs, so a heartbeat that asked the scheduler for its jobs deadlocked a SIGTERM that
    # arrived mid-beat. The heartbeat now reads the database directly.
    settings, store = ca_setup(cron={"weekly_report": "off", "outbox": "off"})
    in_beat = threading.Event()
    read_jobs = jobs._stored_jobs

    def slow_read(store_):
        in_beat.set()
        time.sleep(1)
        return read_jobs(store_)

    monkeypatch.setattr(jobs, "_stored_jobs", slow_read)
    scheduler = jobs.build_scheduler(settings, store=store, background=True)
    scheduler.start()
    wait_for(in_beat.is_set, what="the heartbeat")
    stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(timeout=20)
    assert not stopper.is_alive(), "shutdown() hung while the heartbeat job was running"
    beat = store.heartbeat("scheduler")
    assert beat is not None and "next: ca at " in beat["detail"]
