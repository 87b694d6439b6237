"""Helpers for the scheduler, job and lock tests: Canadian documents, configs, subprocesses.

Imported by ``test_jobs.py``, ``test_scheduler_*.py`` and ``test_lock.py``. Only the "ca" jurisdiction is used: the other
jurisdiction modules are written concurrently and must not be able to break these tests, so
subprocesses run the CLI with a registry reduced to "ca", as in-process tests do with
monkeypatch.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.config import write_config as write_test_config
from tests.support.documents import SHARED_CA

TESTS = Path(__file__).resolve().parents[1]

#: Python code that runs the schedwatch CLI with only "ca" registered.
CLI_CA_ONLY = ("import jurisdictions\n"
               "for code in [c for c in jurisdictions.REGISTRY if c != 'ca']:\n"
               "    del jurisdictions.REGISTRY[code]\n"
               "from scheduler.cli import main\n"
               "main()\n")


def _parses(source_id: str, path: Path) -> bool:
    """Whether the CA parser reads records from this file (a fixture folder may also hold
    deliberately broken documents; those would make a run unhealthy)."""
    from jurisdictions import jurisdiction
    from jurisdictions.substances import build_watch_list
    from scrapers.records import Document, validate

    try:
        content = path.read_bytes()
        source = next(s for s in jurisdiction("ca").SOURCES if s.id == source_id)
        watch = build_watch_list(("ketamine",))
        document = Document(source_id=source_id, url=path.as_uri(), content=content,
                            sha256=hashlib.sha256(content).hexdigest(),
                            retrieved_at=datetime.now(UTC))
        result = validate(source.parse(document, watch), source_id=source_id,
                          watched=watch.keys)
    except Exception:  # noqa: BLE001 - any failure means "not a usable fixture"
        return False
    return bool(result.records)


@cache
def _find(source_id: str, patterns: tuple[str, ...]) -> Path | None:
    for folder in (TESTS / "fixtures" / "ca", SHARED_CA):
        if not folder.is_dir():
            continue
        candidates: list[Path] = []
        for pattern in patterns:
            candidates += [p for p in sorted(folder.glob(pattern))
                           if p not in candidates and "-fr-" not in p.name]
        # Newest point-in-time first: the names end in the consolidation date.
        for path in sorted(candidates, key=lambda p: p.name, reverse=True):
            if _parses(source_id, path):
                return path
    return None


def ca_documents() -> dict[str, Path]:
    """source id → a Canadian document the parser reads: tests/fixtures/ca/ first, then the
    shared regulator documents; skips the test when there is no CDSA document at all."""
    import jurisdictions

    if "ca" not in jurisdictions.REGISTRY:
        pytest.skip("jurisdiction 'ca' is not registered")
    found: dict[str, Path] = {}
    cdsa = _find("ca-cdsa", ("*cdsa*.xml", "*C-38.8*.xml"))
    if cdsa is None:
        pytest.skip("no Canadian CDSA document: neither tests/fixtures/ca/ nor "
                    f"{SHARED_CA} holds one the CA parser reads")
    found["ca-cdsa"] = cdsa
    csr = _find("ca-csr", ("*csr*.xml", "*SOR-2025-242*.xml"))
    if csr is not None:
        found["ca-csr"] = csr
    return found


def serve_ca(httpserver: Any, documents: Mapping[str, Path],
             before: Callable[[str], None] | None = None) -> dict[str, str]:
    """Serve each document at /ca/<source id>.xml; ``before(source_id)`` runs in the server
    thread before answering (to make a response slow). Returns source id → URL."""
    from werkzeug import Response

    urls: dict[str, str] = {}
    for source_id, path in documents.items():
        content = path.read_bytes()

        def handler(request: Any, source_id: str = source_id, content: bytes = content
                    ) -> Response:
            if before is not None:
                before(source_id)
            return Response(content, status=200, content_type="application/xml")

        route = f"/ca/{source_id}.xml"
        httpserver.expect_request(route).respond_with_handler(handler)
        urls[source_id] = httpserver.url_for(route)
    return urls


def write_config(folder: Path, urls: Mapping[str, str] | None = None, *,
                 timezone: str = "America/Toronto", cron: Mapping[str, str] | None = None,
                 misfire_grace_time: int = 3600, heartbeat_seconds: int = 60,
                 extra: str = "") -> Path:
    """``schedwatch.toml`` in ``folder`` for a subprocess whose registry is only "ca": the
    suite's one writer (``tests.support.config``) with local Canadian URLs, no request delay,
    no robots.txt, no retries, and the given [scheduler] section."""
    cron_lines = "".join(f'{job_id} = "{expression}"\n'
                         for job_id, expression in (cron or {}).items())
    scheduler = (f'[scheduler]\ntimezone = "{timezone}"\n'
                 f"misfire_grace_time = {misfire_grace_time}\n"
                 f"heartbeat_seconds = {heartbeat_seconds}\n\n[scheduler.cron]\n{cron_lines}")
    return write_test_config(
        folder / "schedwatch.toml", data_dir=folder / "data",
        sources={source_id: {"url": url} for source_id, url in (urls or {}).items()},
        fetch={"respect_robots": False, "max_retries": 0, "read_timeout": 30},
        codes=("ca",), extra=scheduler + extra)


def only_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reduce the jurisdiction registry to "ca" for this test (restored afterwards)."""
    import jurisdictions

    for code in [c for c in jurisdictions.REGISTRY if c != "ca"]:
        monkeypatch.delitem(jurisdictions.REGISTRY, code)


def clean_env() -> dict[str, str]:
    """The environment for a subprocess, without SCHEDWATCH_* overrides from the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHEDWATCH_")}


def cli(config: Path, *args: str, **options: Any) -> subprocess.Popen[str]:
    """Start ``schedwatch --config CONFIG ARGS…`` (registry reduced to "ca")."""
    return subprocess.Popen([sys.executable, "-c", CLI_CA_ONLY, "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(), cwd=config.parent, **options)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
             process: subprocess.Popen[str] | None = None) -> Any:
    """Poll until ``condition()`` is truthy; fail with the process output if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"process exited ({process.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def stored_jobs(store: Any) -> dict[str, Any]:
    """The persistent jobs as APScheduler restores them (nothing is run)."""
    from scheduler.jobs import offline_scheduler

    with offline_scheduler(store) as scheduler:
        return {job.id: job for job in scheduler.get_jobs()}


def set_next_run_time(store: Any, job_id: str, when: datetime) -> None:
    """Move a stored job's next run time, as if the scheduler had been stopped since."""
    from scheduler.jobs import offline_scheduler

    with offline_scheduler(store) as scheduler:
        scheduler.modify_job(job_id, next_run_time=when)


def store_garbage_job(store: Any, job_id: str) -> None:
    """A stored job APScheduler cannot restore (as after renaming a job function)."""
    state = pickle.dumps({"version": 999, "id": job_id})
    with store.db.begin() as conn:
        conn.execute("INSERT INTO apscheduler_jobs (id, next_run_time, job_state) "
                     "VALUES (:id, :t, :s)", {"id": job_id, "t": 0.0, "s": state})
