"""SIGTERM and the database: ``schedwatch schedule`` stops cleanly (a running job finishes),
``schedwatch run`` killed mid-fetch leaves nothing half-written, and one scheduler per data
folder. Real subprocesses, a slow local HTTP server, no internet."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

from scheduler import jobs
from scheduler.config import load_settings
from scrapers.store import Store
from tests.support.scheduler import (
    ca_documents,
    cli,
    only_ca,
    serve_ca,
    set_next_run_time,
    stored_jobs,
    wait_for,
    write_config,
)

QUIET = {"weekly_report": "off", "outbox": "off"}


class SlowServer:
    """The Canadian documents on pytest-httpserver; while ``slow`` is set the CDSA answer
    waits ``delay`` seconds after signalling ``arrived``."""

    def __init__(self, httpserver, delay: float = 3.0) -> None:
        self.slow = threading.Event()
        self.arrived = threading.Event()
        self.delay = delay
        self.urls = serve_ca(httpserver, ca_documents(), before=self._before)

    def _before(self, source_id: str) -> None:
        if source_id == "ca-cdsa" and self.slow.is_set():
            self.arrived.set()
            time.sleep(self.delay)


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def unfinished_runs(store: Store) -> list[dict]:
    return [r for r in store.runs(limit=100) if r["finished_at"] is None]


def test_sigterm_to_an_idle_scheduler_exits_0_with_a_heartbeat(tmp_path, monkeypatch):
    only_ca(monkeypatch)
    # One enabled source (a closed port; the daily run is not due during the test): a
    # jurisdiction whose sources are all disabled would get no job.
    config = write_config(tmp_path, {"ca-cdsa": "http://127.0.0.1:9/C-38.8.xml"},
                          heartbeat_seconds=1)
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)  # tables exist before the child

    process = cli(config, "schedule")
    beat = wait_for(lambda: (store.heartbeat("scheduler") or {}).get("detail", "")
                    .startswith("running since") and store.heartbeat("scheduler"),
                    what="the first heartbeat", process=process)
    assert beat["pid"] == process.pid
    assert "next: " in beat["detail"]
    process.send_signal(signal.SIGTERM)
    code, _out, err = finish(process)

    assert code == 0, err
    assert "received SIGTERM" in err and "scheduler stopped" in err
    assert "Traceback" not in err
    final = store.heartbeat("scheduler")
    assert final is not None and final["detail"] == "stopped"
    assert set(stored_jobs(store)) == {"ca", "weekly_report", "outbox"}
    rows, heartbeat = jobs.list_jobs(settings)
    assert heartbeat == final["at"] and all(row["stored"] for row in rows)
    assert store.integrity_check() == "ok"


def test_sigterm_during_a_scheduled_run_lets_it_finish(tmp_path, httpserver, monkeypatch):
    only_ca(monkeypatch)
    server = SlowServer(httpserver)
    config = write_config(tmp_path, server.urls, cron=QUIET)
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    # The 06:00 run was missed a minute ago: the scheduler runs it as soon as it starts.
    set_next_run_time(store, "ca", datetime.now(UTC) - timedelta(minutes=1))
    server.slow.set()

    process = cli(config, "schedule")
    wait_for(server.arrived.is_set, what="the CDSA request", process=process)
    process.send_signal(signal.SIGTERM)  # while the document is still being served
    code, _out, err = finish(process)

    assert code == 0, err
    assert "letting the running job finish" in err
    runs = store.runs()
    assert len(runs) == 1, err
    assert runs[0]["trigger"] == "scheduler" and runs[0]["finished_at"] is not None
    assert any(i.record.jurisdiction == "ca" for i in store.current_intervals())
    assert store.integrity_check() == "ok"
    # The run that happened is not owed again: the next one is in the future.
    assert stored_jobs(store)["ca"].next_run_time > datetime.now(UTC)


def test_sigterm_during_a_cli_run_leaves_a_consistent_database(tmp_path, httpserver,
                                                                monkeypatch):
    only_ca(monkeypatch)
    server = SlowServer(httpserver)
    config = write_config(tmp_path, server.urls)
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)
    server.slow.set()

    process = cli(config, "run", "-j", "ca")
    wait_for(server.arrived.is_set, what="the CDSA request", process=process)
    process.send_signal(signal.SIGTERM)
    code, _out, _err = finish(process)
    assert code == -signal.SIGTERM  # `schedwatch run` has no handler: the default action

    assert store.integrity_check() == "ok"
    assert unfinished_runs(store) == []  # the run never reached its transaction
    assert store.current_intervals() == []

    server.slow.clear()
    code, out, err = finish(cli(config, "run", "-j", "ca"))
    assert code == 0, out + err
    [run] = store.runs()
    assert run["finished_at"] is not None and run["exit_code"] == 0
    assert any(i.record.substance == "ketamine" for i in store.current_intervals())
    assert store.integrity_check() == "ok"


def test_one_scheduler_per_data_folder(tmp_path, monkeypatch):
    only_ca(monkeypatch)
    config = write_config(tmp_path, heartbeat_seconds=1)
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)
    first = cli(config, "schedule")
    try:
        wait_for(lambda: (store.heartbeat("scheduler") or {}).get("pid") == first.pid,
                 what="the first scheduler", process=first)
        code, out, err = finish(cli(config, "schedule"), timeout=30)
        assert code == 0, err
        assert "already working on scheduler" in out
        assert f"pid {first.pid}" in out
        assert first.poll() is None  # the first one is unaffected
    finally:
        first.send_signal(signal.SIGTERM)
        code, _out, err = finish(first)
    assert code == 0, err


def test_sigint_stops_the_scheduler_like_sigterm(tmp_path, monkeypatch):
    only_ca(monkeypatch)
    config = write_config(tmp_path, heartbeat_seconds=1)
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)
    process = cli(config, "schedule")
    wait_for(lambda: (store.heartbeat("scheduler") or {}).get("pid") == process.pid,
             what="the scheduler", process=process)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    code, _out, err = finish(process)
    assert code == 0, err
    assert "received SIGINT" in err
    assert (store.heartbeat("scheduler") or {}).get("detail") == "stopped"
