"""A locked database right after the SMTP server accepted an alert (issue 16, item 4).

A real SQLite file held by another connection (``BEGIN IMMEDIATE``, as a backup tool or a
second writer would) and a real aiosmtpd server: the lock is taken the moment the server
accepts the message, before schedwatch marks it delivered.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import load_settings
from scrapers import outbox_rows
from scrapers.store import Store
from tests.support.config import write_config
from tests.support.documents import (
    CDSA_2026,
    ketamine_moved_to_schedule_iii,
    shared_doc,
)
from tests.support.served import CDSA_URL_PATH, Served, canada_sources, serve_canada
from tests.support.smtp import SmtpServer, email_section

pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning")


class Locker:
    """Takes the database's write lock from another connection when asked."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.conn: sqlite3.Connection | None = None

    def take(self, _data: bytes = b"") -> None:
        if self.conn is None:
            self.conn = sqlite3.connect(self.database, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


def _baseline(tmp_path: Path, httpserver: Any, run_cli: Any,
              server: SmtpServer) -> tuple[Path, Served]:
    served = serve_canada(httpserver)
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data",
                          sources=canada_sources(served), extra=email_section(server.port))
    baseline = run_cli("--config", str(config), "run", "-j", "ca")
    assert baseline.exit_code == 0, baseline.stderr
    served.set(CDSA_URL_PATH, ketamine_moved_to_schedule_iii(shared_doc(CDSA_2026)))
    return config, served


def test_a_lock_that_outlasts_the_wait_keeps_the_run_lines_and_never_resends(
        tmp_path: Path, httpserver: Any, run_cli: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_rows, "MARK_WAIT_SECONDS", 1.0)
    with SmtpServer() as server:
        config, _ = _baseline(tmp_path, httpserver, run_cli, server)
        locker = Locker(tmp_path / "data" / "schedwatch.db")
        server.on_accept = locker.take
        try:
            moved = run_cli("--config", str(config), "run", "-j", "ca")
        finally:
            server.on_accept = None
        try:
            # Not "internal error … database is locked", exit 1: the run committed and says
            # what it found; the email line says the alert went and will not go again.
            assert moved.exit_code == 0, moved.stdout + moved.stderr
            assert "internal error" not in moved.stderr
            assert "ca-cdsa: ok, parsed" in moved.stdout
            assert "change #" in moved.stdout and "run 2:" in moved.stdout
            assert "accepted 3 alerts, but the outbox could not be marked" in moved.stderr
            assert "database stayed locked for 1 s" in moved.stderr
            assert "not sent again" in moved.stderr
            assert len(server.messages) == 1
        finally:
            locker.release()
        # The next pass marks the noted delivery instead of sending it again.
        again = run_cli("--config", str(config), "email", "send")
        assert again.exit_code == 0, again.stderr
        assert again.stdout.strip() == "email: nothing queued"
        assert len(server.messages) == 1
    store = Store(load_settings(config).data_dir)
    try:
        rows = store.outbox_rows()
        assert rows and all(r["state"] == "delivered" for r in rows)
        assert {r["message_id"] for r in rows} == {server.messages[0]["Message-ID"]}
    finally:
        store.close()


def test_a_lock_released_within_the_wait_is_waited_for(
        tmp_path: Path, httpserver: Any, run_cli: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_rows, "MARK_WAIT_SECONDS", 10.0)
    with SmtpServer() as server:
        config, _ = _baseline(tmp_path, httpserver, run_cli, server)
        locker = Locker(tmp_path / "data" / "schedwatch.db")

        def take_briefly(data: bytes) -> None:
            locker.take(data)
            threading.Timer(1.5, locker.release).start()

        server.on_accept = take_briefly
        moved = run_cli("--config", str(config), "run", "-j", "ca")
        server.on_accept = None
        assert moved.exit_code == 0, moved.stdout + moved.stderr
        assert "email: delivered 1 message (3 alerts)" in moved.stderr
        assert "could not be marked" not in moved.stderr
        assert run_cli("--config", str(config), "email", "send").stdout.strip() == \
            "email: nothing queued"
        assert len(server.messages) == 1


def test_the_run_lines_are_printed_before_delivery(tmp_path: Path, httpserver: Any,
                                                   run_cli: Any, capsys: Any) -> None:
    """What the run found is on stdout before the SMTP server is even contacted."""
    with SmtpServer() as server:
        config, _ = _baseline(tmp_path, httpserver, run_cli, server)
        seen: list[str] = []
        server.on_accept = lambda _data: seen.append(capsys.readouterr().out)
        moved = run_cli("--config", str(config), "run", "-j", "ca")
        server.on_accept = None
    assert moved.exit_code == 0, moved.stderr
    assert seen and "ca-cdsa: ok, parsed" in seen[0] and "change #" in seen[0]


# --- a lock message naming a dead process (issue 16, item 16) --------------------------------

def test_a_busy_lock_whose_named_holder_is_dead_says_so(tmp_path: Path) -> None:
    import fcntl
    import os
    import subprocess
    import sys

    from scrapers.errors import LockedError

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store = Store(tmp_path / "data")
    try:
        path = tmp_path / "data" / "locks" / "email-outbox.lock"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"pid {gone.pid} email delivery")
        # Held by this process through another open file (as a forked child that inherited
        # it, or a process that has not written its pid yet, would hold it).
        with open(path, "a+") as holder:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(LockedError) as refused, store.lock("email-outbox"):
                pass
        message = str(refused.value)
        assert f"pid {gone.pid} email delivery" in message
        assert "no longer running" in message and "not stale" in message
        if Path("/proc/locks").is_file():
            assert f"now held by pid {os.getpid()}" in message
        # A live holder is named as before.
        path.write_text(f"pid {os.getpid()} scheduler")
        with open(path, "a+") as holder:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(LockedError) as refused, store.lock("email-outbox"):
                pass
        assert str(refused.value) == (f"another schedwatch process (pid {os.getpid()} "
                                      "scheduler) is already working on email-outbox; "
                                      "nothing done")
    finally:
        store.close()
