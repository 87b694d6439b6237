"""Tracking never stops silently (issue 16, items 1–3 and 14): one bad answer is one source's
failure, a full disk is a clear storage failure, a failed publish is retried by the next
run, and a lost evidence file is fetched again in full. Real local servers, real SQLite, a
real (tmpfs) full disk where the machine allows mounting one."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from jurisdictions.base import Source
from jurisdictions.substances import build_watch_list
from scheduler.pipeline import process_source
from scrapers.records import ParseResult
from scrapers.store import Store
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import (
    ketamine_moved_to_schedule_iii,
    shared_doc,
)
from tests.support.served import Served

CDSA = "ca/cdsa-C-38.8-en-pit2026-06-05.xml"


def _moved_to_iii() -> bytes:
    return ketamine_moved_to_schedule_iii(shared_doc(CDSA))


@pytest.fixture
def world(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult]):
    served = Served(httpserver)
    served.set("/eng/XML/C-38.8.xml", shared_doc(CDSA))
    served.set("/api/v1/documents.json", b"{}", content_type="application/json")
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": served.url("/eng/XML/C-38.8.xml")},
    })

    def cli(*args: str) -> CliResult:
        result = run_cli("--config", str(config), *args)
        assert "Traceback" not in result.stdout + result.stderr
        return result

    return served, cli, tmp_path / "data"


def test_a_deeply_nested_api_answer_fails_only_its_source(tmp_path: Path, httpserver: HTTPServer,
                                                          run_cli) -> None:
    """A Federal Register answer nested 100,000 deep (RecursionError in json.loads) beside a
    real Canadian reschedule in the same run: the reschedule is stored and alerted."""
    served = Served(httpserver)
    served.set("/eng/XML/C-38.8.xml", shared_doc(CDSA))
    served.set("/api/v1/documents.json", b'{"results": []}', content_type="application/json")
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": served.url("/eng/XML/C-38.8.xml")},
    })
    cli = lambda *a: run_cli("--config", str(config), *a)  # noqa: E731
    assert cli("run").exit_code == 0
    # Now the Federal Register too, answering absurdly deep JSON, and Canada moves ketamine.
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": served.url("/eng/XML/C-38.8.xml")},
        "us-federal-register": {"url": served.url("/").rstrip("/")},
    })
    served.set("/api/v1/documents.json", b"[" * 100_000 + b"]" * 100_000,
               content_type="application/json")
    served.set("/eng/XML/C-38.8.xml", _moved_to_iii())
    result = cli("run")
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "us-federal-register: EXTRACTION FAILED" in result.stdout
    assert "Ketamine — Canada: Schedule I → III (rescheduled)" in result.stdout
    kinds = {(c["source_id"], c["kind"]) for c in cli("changes", "--format", "json").json()}
    assert ("ca-cdsa", "rescheduled") in kinds
    assert ("us-federal-register", "extraction_failed") in kinds


def test_any_exception_of_a_fetch_plan_is_that_sources_extraction_failure(
        tmp_path: Path) -> None:
    def plan(fetcher, context):
        raise RecursionError("maximum recursion depth exceeded")

    source = Source(id="ca-cdsa", jurisdiction="ca", title="t", endpoints={"url": "http://x"},
                    parse=lambda d, w: ParseResult(records=()), fetch_plan=plan)
    store = Store(tmp_path / "data")
    try:
        outcome = process_source(source, None, build_watch_list(["ketamine"]), object(), store,
                                 now=lambda: datetime(2026, 11, 2, tzinfo=UTC))
    finally:
        store.close()
    assert outcome.outcome == "extraction_failed"
    assert outcome.error == ("ca-cdsa: the answer could not be read (RecursionError); the "
                             "source's API or format changed")


def _tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def test_a_full_disk_is_a_storage_failure_alerted_once(world, tmp_path: Path) -> None:
    served, cli, data = world
    full = tmp_path / "full"
    if not _tmpfs(full, "256k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount): no real full disk")
    try:
        data.mkdir(parents=True)
        (data / "documents").symlink_to(full)
        first = cli("run")
        assert first.exit_code == 2
        assert "ca-cdsa: FAILED (storage) the data folder" in first.stdout
        assert "is full: 0 MB free" in first.stdout
        second = cli("run")
        assert second.exit_code == 2
        failures = [c for c in cli("changes", "--format", "json").json()
                    if c["kind"] == "source_failed"]
        assert len(failures) == 1  # alerted once, not every run
        # Space again: the next run tracks and says the source recovered.
        subprocess.run(["umount", str(full)], check=True)
        result = cli("run")
        assert result.exit_code == 0, result.stdout
        assert "source recovered" in result.stdout
        assert cli("status", "--format", "json").json()[0]["status"] == "controlled"
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)


def test_a_failed_publish_is_published_by_the_next_quiet_run(world, monkeypatch) -> None:
    served, cli, data = world
    import reports.site

    real_publish = reports.site.publish

    def broken(settings, store):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports.site, "publish", broken)
    first = cli("run")
    assert first.exit_code == 2  # a run whose site could not be rendered is not healthy
    assert "site not updated: No space left on device" in first.stderr
    assert not (data / "site" / "index.html").exists()
    monkeypatch.setattr(reports.site, "publish", real_publish)
    # A quiet run (304, nothing changed) still publishes: the site was behind the store.
    second = cli("run")
    assert second.exit_code == 0
    assert "not modified" in second.stdout
    assert (data / "site" / "index.html").exists()
    assert not (data / "site-behind").exists()


def test_a_deleted_evidence_file_is_fetched_again_in_full(world) -> None:
    served, cli, data = world
    assert cli("run").exit_code == 0
    sha = cli("status", "--format", "json").json()[0]["document_sha256"]
    path = data / "documents" / sha[:2] / sha
    path.unlink()
    before = served.not_modified.get("/eng/XML/C-38.8.xml", 0)
    result = cli("run")
    assert result.exit_code == 0
    assert served.not_modified.get("/eng/XML/C-38.8.xml", 0) == before  # no conditional GET
    assert path.is_file()  # the evidence is back
    assert "ca-cdsa: ok" in result.stdout and "0 changes" in result.stdout
