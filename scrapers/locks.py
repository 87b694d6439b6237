"""The store's exclusive, non-blocking work locks (``Store.lock``): a file lock beside an
SQLite database, an advisory lock of the database server otherwise.

A refused process is told who holds the lock. A file lock is the kernel's: it is dropped
when its holder dies, so it is never stale, but the pid written in the file can be: the
lock may be held by a process that inherited it (a forked child) or that took it a moment
ago and has not written its own pid yet. The message says so rather than naming a dead
process as the holder, and names the live holder when Linux's /proc/locks shows it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scrapers.db import Database, DatabaseError
from scrapers.errors import LockedError

#: The first key of every advisory lock schedwatch takes on PostgreSQL (the second is the
#: lock name's hash), so that its locks never collide with another application's.
LOCK_NAMESPACE = 0x5C4ED


def lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFFFFFF


def alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def flock_holders(path: Path) -> list[int]:
    """The pids holding a flock on this file, from /proc/locks (empty where unavailable)."""
    try:
        inode = path.stat().st_ino
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    pids = []
    for line in text.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF" ("->" marks a waiter)
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        with contextlib.suppress(ValueError, IndexError):
            if int(fields[5].rsplit(":", 1)[1]) == inode:
                pids.append(int(fields[4]))
    return pids


def holder_words(written: str, path: Path) -> str:
    """Who holds the file lock, in words: the holder as written (``pid 42 scheduler``),
    or, when that process no longer runs, what can be said instead."""
    parts = written.split()
    recorded = int(parts[1]) if len(parts) >= 2 and parts[0] == "pid" and \
        parts[1].isdigit() else None
    if recorded is None or alive(recorded):
        return written or "unknown"
    live = [pid for pid in flock_holders(path) if pid != recorded and alive(pid)]
    now = f"now held by pid {live[0]}" if live else "held by a process that has not " \
        "written its name yet or inherited the lock"
    return (f"{written} named in {path.name}, which is no longer running: the lock is not "
            f"stale, it is {now}")


@contextlib.contextmanager
def file_lock(folder: Path, name: str, holder: str) -> Iterator[None]:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the lock
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = holder_words(handle.read().strip(), path)
            raise LockedError(f"another schedwatch process ({other}) is already working on "
                              f"{name}; nothing done") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} {holder}".strip())
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def advisory_lock(database: Database, name: str, holder: str, open_error: Any) -> Iterator[None]:
    key = {"ns": LOCK_NAMESPACE, "key": lock_key(name)}
    # The holder's description travels as the session's application_name, which the
    # refused process reads from pg_stat_activity: no table row to clean up after a crash.
    label = f"schedwatch pid {os.getpid()} on {socket.gethostname()} {holder}".strip()
    try:
        conn = database.dedicated()
    except DatabaseError as error:
        raise open_error(error) from None
    try:
        conn.scalar("SELECT set_config('application_name', :label, false)",
                    {"label": label[:63]})
        got = conn.scalar(
            "SELECT pg_try_advisory_lock(CAST(:ns AS integer), CAST(:key AS integer))", key)
        if not got:
            other = conn.scalar(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND "
                "l.classid::bigint = :ns AND l.objid::bigint = :key AND l.objsubid = 2 "
                "LIMIT 1", key)
            other = str(other or "").removeprefix("schedwatch ").strip()
            raise LockedError(f"another schedwatch process ({other or 'unknown'}) is "
                              f"already working on {name}; nothing done")
        try:
            yield
        finally:
            # A lost connection has already released it on the server.
            with contextlib.suppress(DatabaseError):
                conn.scalar("SELECT pg_advisory_unlock(CAST(:ns AS integer), "
                            "CAST(:key AS integer))", key)
                conn.execute("RESET application_name")
    finally:
        conn.close()
