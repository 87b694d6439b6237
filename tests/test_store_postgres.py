"""The team case: schedwatch on a real PostgreSQL server (a throwaway cluster, see
``tests/support/postgres.py``), skipped with the reason when psycopg or the server binaries
are missing.

The Canadian pipeline gives the same answers on PostgreSQL as on SQLite; two processes (two
"machines": two data folders, one database) never run the same jurisdiction or scheduler at
once, because the locks are the database's own; and the outbox delivers each alert once when
two deliverers run at the same moment.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from scrapers.errors import LockedError
from scrapers.store import Store
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import (
    ketamine_moved_to_schedule_iii,
    shared_doc,
)
from tests.support.postgres import postgres_server  # noqa: F401 - the session fixture
from tests.support.served import Served
from tests.support.smtp import SmtpServer

CDSA_2026 = "ca/cdsa-C-38.8-en-pit2026-06-05.xml"
CSR_2026 = "ca/csr-SOR-2025-242-en-pit2026-04-17.xml"


@pytest.fixture
def postgres_url(postgres_server):  # noqa: F811 - the imported session fixture
    from tests.support.postgres import new_database

    with new_database(postgres_server) as url:
        yield url


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SCHEDWATCH_")}


# --- the pipeline: the same answers on both databases -------------------------------------

def _scenario(folder: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
              monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> dict[str, Any]:
    """Baseline, a 304, a reschedule to Schedule III; then status, --as-of, changes and
    history as JSON."""
    from scrapers import clock

    ticks = iter(range(10**6))
    start = datetime(2026, 9, 15, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "utcnow", lambda: start + timedelta(minutes=next(ticks)))
    if database_url:
        monkeypatch.setenv("SCHEDWATCH_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("SCHEDWATCH_DATABASE_URL", raising=False)
    folder.mkdir()
    httpserver.clear()
    served = Served(httpserver)
    served.set("/eng/XML/C-38.8.xml", shared_doc(CDSA_2026))
    served.set("/eng/XML/SOR-2025-242.xml", shared_doc(CSR_2026))
    config = write_config(folder / "schedwatch.toml", data_dir=folder / "data", sources={
        "ca-cdsa": {"url": served.url("/eng/XML/C-38.8.xml")},
        "ca-csr": {"url": served.url("/eng/XML/SOR-2025-242.xml")}}, read_timeout=5.0)

    def cli(*args: str) -> CliResult:
        result = run_cli("--config", str(config), *args)
        assert result.exit_code == 0, result.stdout + result.stderr
        return result

    outputs: dict[str, Any] = {}
    outputs["baseline"] = cli("run", "-j", "ca").stdout
    outputs["not modified"] = cli("run", "-j", "ca").stdout
    moved = ketamine_moved_to_schedule_iii(shared_doc(CDSA_2026))
    served.set("/eng/XML/C-38.8.xml", moved)
    outputs["reschedule"] = cli("run", "-j", "ca").stdout
    outputs["status"] = cli("status", "--format", "json").json()
    outputs["as of"] = cli("status", "--as-of", "2026-01-01", "--format", "json").json()
    outputs["changes"] = cli("changes", "--format", "json").json()
    outputs["history"] = cli("history", "ketamine", "--format", "json").json()
    outputs["sources"] = cli("sources", "--format", "json").json()
    return outputs


def test_the_ca_pipeline_gives_the_same_answers_on_postgresql_as_on_sqlite(
        tmp_path: Path, httpserver: HTTPServer, run_cli, monkeypatch, postgres_url) -> None:
    on_sqlite = _scenario(tmp_path / "sqlite", httpserver, run_cli, monkeypatch, None)
    on_postgres = _scenario(tmp_path / "pg", httpserver, run_cli, monkeypatch, postgres_url)

    assert "ca-cdsa: ok, not modified" in on_postgres["not modified"]
    assert "Ketamine — Canada: Schedule I → III (rescheduled)" in on_postgres["reschedule"]
    [ketamine] = [r for r in on_postgres["status"]
                  if r["substance"] == "ketamine" and r["source_id"] == "ca-cdsa"]
    assert ketamine["schedule"] == "III"
    kinds = [c["kind"] for c in on_postgres["changes"] if c["substance"] == "ketamine"]
    assert kinds == ["rescheduled"]
    assert [h["schedule"] for h in on_postgres["history"] if h["source_id"] == "ca-cdsa"] == [
        "I", "III"]
    # Everything else, row for row and in the same order (ids, stamps, orderings included):
    # nothing on PostgreSQL sorts or rounds differently. Only the local URLs differ.
    def portable(value: Any) -> Any:
        text = json.dumps(value, sort_keys=True)
        for port_url in (httpserver.url_for("/"),):
            text = text.replace(port_url, "http://served/")
        return json.loads(text)

    assert portable(on_postgres) == portable(on_sqlite)
    # The database really is the server's: the data folder holds no SQLite file.
    assert not (tmp_path / "pg" / "data" / "schedwatch.db").exists()
    reader = Store.open_for_reading(tmp_path / "pg" / "data", postgres_url)
    assert len(reader.runs()) == 3
    reader.close()


# --- locks of the database -----------------------------------------------------------------

#: Wait for the start file, try the lock; if taken, hold it until the release file exists.
RACER = """
import sys, time
from pathlib import Path
from scrapers.errors import LockedError
from scrapers.store import Store

data, url, go, release, name = (Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]),
                                Path(sys.argv[4]), sys.argv[5])
store = Store(data, url)
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


def _racer(tmp_path: Path, url: str, name: str) -> subprocess.Popen[str]:
    # Each racer has its own data folder: two machines, one database.
    return subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / name), url,
                             str(tmp_path / "go"), str(tmp_path / "release"), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_environment())


def test_two_machines_racing_for_a_jurisdiction_only_one_gets_it(tmp_path: Path,
                                                                   postgres_url) -> None:
    Store(tmp_path / "setup", postgres_url).close()  # the schema, before the racers
    racers = [_racer(tmp_path, postgres_url, f"machine-{n}") for n in (1, 2)]
    for process in racers:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.stderr
    (tmp_path / "go").touch()
    results = [process.stdout.readline().strip() for process in racers]  # type: ignore[union-attr]
    (tmp_path / "release").touch()
    for process in racers:
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
    assert sorted(r.split()[0] for r in results) == ["got", "locked"], results
    winner = 1 if results[0] == "got" else 2
    [loser_line] = [r for r in results if r.startswith("locked")]
    assert loser_line.startswith(f"locked another schedwatch process (pid "
                                 f"{racers[winner - 1].pid} on ")
    assert loser_line.endswith(f"machine-{winner}) is already working on jurisdiction-ca; "
                               "nothing done")


def test_a_dead_holder_releases_the_database_lock(tmp_path: Path, postgres_url) -> None:
    store = Store(tmp_path / "here", postgres_url)
    (tmp_path / "go").touch()
    holder = _racer(tmp_path, postgres_url, "doomed")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    assert holder.stdout.readline().strip() == "got"
    with pytest.raises(LockedError, match=r"\(pid \d+ on .* doomed\) is already working"), \
            store.lock("jurisdiction-ca"):
        pass
    # The file-lock folder of this machine plays no part: the lock is the database's.
    assert not (tmp_path / "here" / "locks" / "jurisdiction-ca.lock").exists()
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while True:  # the server notices the closed connection at once, give it a moment
        try:
            with store.lock("jurisdiction-ca", holder="after the crash"):
                break
        except LockedError:
            assert datetime.now(UTC) < deadline, "the lock outlived its holder"
    store.close()


def test_two_schedulers_on_two_machines_share_one_database_and_run_each_job_once(
        tmp_path: Path, httpserver: HTTPServer, monkeypatch, postgres_url) -> None:
    from scheduler import jobs
    from scheduler.config import load_settings
    from tests.support.scheduler import (
        ca_documents,
        cli,
        only_ca,
        serve_ca,
        set_next_run_time,
        wait_for,
    )
    from tests.support.scheduler import write_config as write_scheduler_config

    only_ca(monkeypatch)
    urls = serve_ca(httpserver, ca_documents())
    configs = []
    for machine in ("one", "two"):
        folder = tmp_path / machine
        folder.mkdir()
        config = write_scheduler_config(folder, urls, cron={"ca": "0 6 * * *"},
                                        heartbeat_seconds=1)
        config.write_text(f"database_url = {json.dumps(postgres_url)}\n" + config.read_text())
        configs.append(config)
    settings = load_settings(configs[0])
    assert settings.database_url == postgres_url
    store = Store(settings.data_dir, settings.database_url)
    jobs.reconcile_jobs(settings, store, jobs.job_specs(settings))
    # The 06:00 run was missed a minute ago: whichever scheduler starts runs it at once.
    set_next_run_time(store, "ca", datetime.now(UTC) - timedelta(minutes=1))

    first, second = (cli(config, "schedule") for config in configs)
    try:
        refused = wait_for(lambda: first.poll() is not None or second.poll() is not None,
                           timeout=60, what="one of the schedulers to be refused")
        assert refused
        loser, winner = (first, second) if first.poll() is not None else (second, first)
        out, err = loser.communicate(timeout=30)
        assert loser.returncode == 0, err
        assert out.startswith(f"another schedwatch process (pid {winner.pid} on ")
        assert out.strip().endswith("schedwatch schedule) is already working on scheduler; "
                                    "nothing done")
        wait_for(lambda: [r for r in store.runs() if r["finished_at"]], timeout=60,
                 what="the missed run", process=winner)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=60)
    runs = store.runs()
    assert [(r["trigger"], r["jurisdictions"]) for r in runs] == [("scheduler", "ca")]
    store.close()


# --- the outbox -----------------------------------------------------------------------------

DELIVER = """
import sys, time
from pathlib import Path
from datetime import UTC, datetime
from reports.outbox import deliver_outbox
from scheduler.config import load_settings

go = Path(sys.argv[2])
settings = load_settings(sys.argv[1])
from scrapers.store import Store
store = Store(settings.data_dir, settings.database_url)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
for line in deliver_outbox(settings, store, now=datetime(2026, 11, 18, 9, 1, tzinfo=UTC)):
    print(line, flush=True)
"""


def test_two_deliverers_on_two_machines_send_each_alert_once(tmp_path: Path,
                                                              postgres_url) -> None:
    from reports.outbox import enqueue_alerts
    from scheduler.config import load_settings
    from scheduler.pipeline import CreatedChange

    at = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
    with SmtpServer() as server:
        configs = []
        for machine in ("one", "two"):
            config = tmp_path / f"{machine}.toml"
            config.write_text(textwrap.dedent(f"""\
                data_dir = "{tmp_path / machine}"
                database_url = "{postgres_url}"
                [email]
                host = "127.0.0.1"
                port = {server.port}
                security = "none"
                from = "schedwatch@example.org"
                timeout = 5
                [[email.recipients]]
                address = "officer@example.org"
                [[email.recipients]]
                address = "ca@example.org"
                jurisdictions = ["ca"]
                """))
            configs.append(config)
        settings = load_settings(configs[0])
        store = Store(settings.data_dir, settings.database_url)
        with store.transaction(started_at=at, jurisdictions=["ca"]) as writer:
            created = []
            for n, substance in enumerate(("ketamine", "esketamine", "arketamine")):
                change_id = writer.add_change(
                    detected_at=at, jurisdiction="ca", substance=substance,
                    source_id="ca-cdsa", kind="rescheduled",
                    summary=f"{substance} — Canada: Schedule I → III (rescheduled) {n}",
                    before={"schedule": "I"}, after={"schedule": "III"})
                created.append(CreatedChange(change_id, "rescheduled", "ca", substance, ""))
            enqueue_alerts(writer, settings, created, now=at)  # type: ignore[arg-type]
            # Queued twice (a retried run): the idempotency keys keep one row each.
            enqueue_alerts(writer, settings, created, now=at)  # type: ignore[arg-type]
            writer.finish(finished_at=at, exit_code=0, summary={})
        assert len(store.outbox_rows()) == 6

        deliverers = [subprocess.Popen([sys.executable, "-c", DELIVER, str(config),
                                        str(tmp_path / "go")], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=_environment())
                      for config in configs]
        for process in deliverers:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready", process.stderr
        (tmp_path / "go").touch()
        outputs = []
        for process in deliverers:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            outputs.append(out)

        delivered = [line for out in outputs for line in out.splitlines()
                     if "delivered" in line]
        assert delivered == ["email: delivered 2 messages (6 alerts) to 2 recipients via "
                             f"127.0.0.1:{server.port}"], outputs
        assert sorted(a for r in server.received for a in r.rcpt_tos) == [
            "ca@example.org", "officer@example.org"]
        assert {r["state"] for r in store.outbox_rows()} == {"delivered"}
        store.close()


def test_a_fetch_committed_late_with_a_lower_id_is_counted_in_the_weekly_reports(
        tmp_path: Path, postgres_url) -> None:
    """Two machines write fetches at once: the one that took the lower id commits last. A
    publish between the two commits has seen the higher id only; the kept tally of the fetch
    log (``reports.check_tally``) must still count the lower one when it becomes visible."""
    from reports import site, weekly
    from reports.render import zone
    from tests.support.site_data import make_settings

    settings = make_settings(tmp_path / "publisher", timezone="UTC")
    here = Store(settings.data_dir, postgres_url)
    there = Store(tmp_path / "other" / "data", postgres_url)
    monday = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

    def week_checks(**options: Any) -> Any:
        snap = site.read_snapshot(settings, here, **options)
        return weekly.week_index(snap, zone("UTC")).checks_by_week["2026-W10"]

    try:
        with there.transaction(started_at=monday, jurisdictions=["ca"]) as slow:
            slow.add_fetch(source_id="ca-cdsa", started_at=monday, url="https://a.example/",
                           outcome="failed", error="HTTP 503")  # the lower id, not committed
            with here.transaction(started_at=monday, jurisdictions=["ca"]) as quick:
                quick.add_fetch(source_id="ca-cdsa", started_at=monday + timedelta(hours=1),
                                url="https://a.example/", outcome="not_modified")
            ids = [row["id"] for row in here.check_log()]
            assert len(ids) == 1  # only the higher id is visible
            assert week_checks() == {"ca-cdsa": (1, 0, ())}
        # Now the lower id is committed too, below the last id the kept tally counted.
        assert week_checks() == {"ca-cdsa": (2, 1, (("HTTP 503", 1),))}
        assert week_checks() == week_checks(reuse=False)
        assert min(row["id"] for row in here.check_log()) < ids[0]
    finally:
        here.close()
        there.close()
