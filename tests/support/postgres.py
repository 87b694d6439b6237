"""A throwaway PostgreSQL cluster for the tests that run the store on a real server.

``postgres_server`` (session scope) runs ``initdb`` and ``pg_ctl`` from the machine's server
binaries into a temporary folder, listening on a free port of 127.0.0.1 only (fsync off: the
cluster is thrown away), and stops it at the end of the session. It is started only when a
test asks for it. Tests that need it skip with the reason when psycopg or the server binaries
are missing. ``initdb`` refuses to run as root, so as root the cluster runs as ``nobody``.

``new_database(server)`` gives each test its own empty database (a SQLAlchemy URL); the
``database_url`` fixture of a test module parametrizes over SQLite and PostgreSQL with it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Where Debian puts the server binaries when they are not on PATH.
_DEBIAN_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def libpq(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in _DEBIAN_BINARIES:
        if (folder / name).is_file():
            return str(folder / name)
    return None


def unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here (None: they can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        return ("the PostgreSQL server binaries (initdb, pg_ctl) are not on this machine "
                "(Debian: apt-get install postgresql)")
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user() -> list[str]:
    """The command prefix that runs the server binaries as an unprivileged user when root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", _UNPRIVILEGED, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        entry = pwd.getpwnam(_UNPRIVILEGED)
        return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                "--clear-groups"]
    pytest.skip("running as root without runuser or setpriv: initdb cannot be started")
    return []  # unreachable


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresServer]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl
    prefix = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="schedwatch-pg-"))
    if prefix:
        entry = pwd.getpwnam(_UNPRIVILEGED)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = _free_port()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120,
                              cwd=folder, check=False)

    try:
        made = run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-sync")
        if made.returncode != 0:
            pytest.fail(f"initdb failed: {(made.stderr or made.stdout).strip()[-500:]}")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        started = run(pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
                      "start")
        if started.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else started.stderr
            pytest.fail(f"pg_ctl start failed: {tail.strip()}")
        try:
            yield PostgresServer("127.0.0.1", port, "postgres")
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_cluster() as server:
        yield server


_numbers = itertools.count(1)


@contextlib.contextmanager
def new_database(server: PostgresServer) -> Iterator[str]:
    """An empty database of its own for one test (dropped after it); yields its URL."""
    import psycopg

    name = f"schedwatch_test_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(server.libpq(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        with psycopg.connect(server.libpq(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    with new_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the data folder's SQLite file), then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    with new_database(server) as url:
        yield url
