"""The per-jurisdiction lock shared by ``schedwatch run`` and the scheduler, across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from scheduler.config import load_settings
from scrapers.errors import LockedError
from scrapers.store import Store
from tests.support.scheduler import (
    ca_documents,
    clean_env,
    cli,
    only_ca,
    serve_ca,
    write_config,
)

#: Wait for the start file, try the lock; if taken, hold it until the release file exists.
RACER = """
import sys, time
from pathlib import Path
from scrapers.errors import LockedError
from scrapers.store import Store

data, go, release, name = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
store = Store(data)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
try:
    with store.lock("jurisdiction-ca", holder=name):
        print("got", flush=True)
        while not release.exists():
            time.sleep(0.01)
except LockedError as error:
    print("locked", error, flush=True)
"""


def racer(tmp_path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "data"),
                             str(tmp_path / "go"), str(tmp_path / "release"), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())


def test_two_processes_racing_for_the_lock_only_one_gets_it(tmp_path):
    Store(tmp_path / "data")  # create the database once, before the racers open it
    racers = [racer(tmp_path, f"racer-{n}") for n in (1, 2)]
    for process in racers:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    (tmp_path / "go").touch()  # both try at the same moment
    # The winner keeps the lock until both have answered, however slow the machine is.
    results = [process.stdout.readline().strip() for process in racers]  # type: ignore[union-attr]
    (tmp_path / "release").touch()
    for process in racers:
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err

    assert sorted(r.split()[0] for r in results) == ["got", "locked"]
    winner = 1 if results[0] == "got" else 2
    [loser_line] = [r for r in results if r.startswith("locked")]
    # The loser is told who holds it, or "unknown" when it looked in the instant between the
    # winner's flock() and the winner writing its name into the lock file.
    holder = f"pid {racers[winner - 1].pid} racer-{winner}"
    assert f"({holder})" in loser_line or "(unknown)" in loser_line
    assert "already working on jurisdiction-ca" in loser_line


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    store = Store(tmp_path / "data")
    (tmp_path / "go").touch()
    holder = racer(tmp_path, "doomed")  # never released: it holds the lock until killed
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    assert holder.stdout.readline().strip() == "got"
    try:
        with store.lock("jurisdiction-ca"):
            raise AssertionError("the lock should be held by the other process")
    except LockedError:
        pass
    holder.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
    holder.communicate(timeout=30)
    with store.lock("jurisdiction-ca", holder="after the crash"):
        pass  # the kernel released it


def test_cli_run_while_the_scheduler_holds_the_lock_says_so_and_exits_0(tmp_path, httpserver,
                                                                       monkeypatch):
    only_ca(monkeypatch)
    config = write_config(tmp_path, serve_ca(httpserver, ca_documents()))
    settings = load_settings(config)
    store = Store(settings.data_dir, settings.database_url)
    with store.lock("jurisdiction-ca", holder="scheduler"):
        process = cli(config, "run", "-j", "ca")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.strip() == (f"another schedwatch process (pid {os.getpid()} scheduler) is already "
                           "working on jurisdiction-ca; nothing done")
    assert err == ""
    assert len(httpserver.log) == 0  # nothing fetched
    assert store.runs() == []

    # Once released, the same command runs.
    process = cli(config, "run", "-j", "ca")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert len(store.runs()) == 1
