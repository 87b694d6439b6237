"""The Poisons Standard parsed in a worker process (scheduler/fetching.py ``ParseWorker``):
the same records as a parse in the run's own process, and a parser failure there is the
same one-line extraction failure, the last known status kept."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from jurisdictions import au, jurisdiction
from jurisdictions.substances import build_watch_list
from scheduler import fetching
from scheduler.fetching import ParserCrashed, ParseWorker
from scrapers.errors import ExtractionError
from scrapers.records import Document, ParseResult
from tests.faults import harness as h
from tests.support.cli import CliResult
from tests.support.documents import FIXTURES

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2 or not hasattr(os, "fork"),
                                reason="the worker runs only where fork and two cores exist")

AU = jurisdiction("au").SOURCES[0]
CA = jurisdiction("ca").SOURCES[0]
REAL_FORK_HELPS = fetching.fork_helps


@pytest.fixture(autouse=True)
def fork_from_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is forked only from a process that runs no other thread; pytest runs the
    local servers' threads, which hold no lock the worker's parse needs, so these tests
    fork anyway (the guard itself: test_a_process_running_threads_forks_no_worker)."""
    monkeypatch.setattr(fetching, "fork_helps", lambda: True)


def test_a_process_running_threads_forks_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler daemon runs its jobs in threads: forking there could leave the child a
    lock another thread held. The parse then runs in this process, with the same result."""
    monkeypatch.setattr(fetching, "fork_helps", REAL_FORK_HELPS)
    source = dataclasses.replace(AU, parse=parse_reporting_pid)
    other = dataclasses.replace(CA, parse=parse_reporting_pid)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)
    busy.start()
    try:
        with ParseWorker([other, source]) as worker:
            here = worker.parse(source, _document(b"PK"), build_watch_list("all"))
    finally:
        stop.set()
        busy.join()
    assert here.title == str(os.getpid())


def _document(content: bytes) -> Document:
    return Document.of(content, source_id=AU.id, url="http://127.0.0.1/word",
                       retrieved_at=datetime(2026, 11, 20, 14, 3, tzinfo=UTC),
                       content_type=au.WORD_MEDIA_TYPE,
                       meta={"instrument_id": "F2026L00633"})


# Parsers the worker finds by name (module functions of this test module).

def parse_reporting_pid(document: Document, watch: object) -> ParseResult:
    return ParseResult(records=(), title=str(os.getpid()))


def parse_not_a_standard(document: Document, watch: object) -> ParseResult:
    raise ExtractionError("the Word document is not a Poisons Standard (test)")


def parse_crashing(document: Document, watch: object) -> ParseResult:
    return ParseResult(records=(), title=str(1 // 0))


def test_worker_parse_gives_the_records_of_a_parse_here() -> None:
    document = _document((FIXTURES / "au" / "poisons-standard-june-2026.docx").read_bytes())
    for watch in (build_watch_list(["ketamine"]), build_watch_list("all")):
        with ParseWorker([CA, AU]) as worker:
            there = worker.parse(AU, document, watch)
        assert there == AU.parse(document, watch)
        assert len(there.records) > 0


def test_the_parse_runs_in_another_process_and_other_sources_here() -> None:
    source = dataclasses.replace(AU, parse=parse_reporting_pid)
    other = dataclasses.replace(CA, parse=parse_reporting_pid)
    watch = build_watch_list(["ketamine"])
    with ParseWorker([other, source]) as worker:
        there = worker.parse(source, _document(b"PK"), watch)
        here = worker.parse(other, _document(b"PK"), watch)
    assert there.title != str(os.getpid())
    assert here.title == str(os.getpid())


def test_an_extraction_error_in_the_worker_is_the_same_error() -> None:
    source = dataclasses.replace(AU, parse=parse_not_a_standard)
    with ParseWorker([CA, source]) as worker, pytest.raises(ExtractionError) as raised:
        worker.parse(source, _document(b"PK"), build_watch_list(["ketamine"]))
    assert str(raised.value) == "the Word document is not a Poisons Standard (test)"


def test_a_crash_in_the_worker_names_its_type() -> None:
    source = dataclasses.replace(AU, parse=parse_crashing)
    with ParseWorker([CA, source]) as worker, pytest.raises(ParserCrashed) as raised:
        worker.parse(source, _document(b"PK"), build_watch_list(["ketamine"]))
    assert raised.value.kind == "ZeroDivisionError"


def test_a_parser_without_a_name_runs_here() -> None:
    pid = os.getpid()
    source = dataclasses.replace(AU, parse=lambda d, w: ParseResult((), title=str(pid)))
    with ParseWorker([CA, source]) as worker:
        assert worker.parse(source, _document(b"PK"), build_watch_list("all")).title == str(pid)


def test_a_run_of_one_source_starts_no_worker() -> None:
    source = dataclasses.replace(AU, parse=parse_reporting_pid)
    with ParseWorker([source]) as worker:
        assert worker.parse(source, _document(b"PK"), build_watch_list("all")).title \
            == str(os.getpid())


# --- a whole run ------------------------------------------------------------------------

class World:
    """Every source served healthy on one local server; the CLI pointed at it."""

    def __init__(self, httpserver: HTTPServer, tmp: Path, run_cli: Callable[..., CliResult]
                 ) -> None:
        self.scenarios: dict[str, Any] = {sid: h.make_scenario(sid) for sid in h.SOURCE_IDS}
        h.Router(list(self.scenarios.values())).install(httpserver)
        base = httpserver.url_for("/").rstrip("/")
        self.config = h.write_config(tmp / "schedwatch.toml", data_dir=tmp / "data", sources={
            sid: scenario.endpoints(base) for sid, scenario in self.scenarios.items()},
            email=False)
        self.run_cli = run_cli

    def cli(self, *args: str) -> CliResult:
        return self.run_cli("--config", str(self.config), *args)

    def run(self) -> CliResult:
        return self.cli("run")

    def record(self, source_id: str, substance: str = "ketamine") -> dict[str, Any]:
        [row] = [r for r in self.cli("status", "--format", "json").json()
                 if r["source_id"] == source_id and r["substance"] == substance]
        return row

    def changes(self, source_id: str) -> list[dict[str, Any]]:
        return [c for c in self.cli("changes", "--format", "json").json()
                if c["source_id"] == source_id]


@pytest.fixture
def world(httpserver: HTTPServer, tmp_path: Path, run_cli) -> World:
    return World(httpserver, tmp_path, run_cli)


@pytest.mark.parametrize(("failure", "line"), [
    (RuntimeError("boom"), "au-poisons-standard: EXTRACTION FAILED au-poisons-standard: "
                           "the parser failed on this document (RuntimeError)"),
    (ExtractionError("word/document.xml is not readable XML: test"),
     "au-poisons-standard: EXTRACTION FAILED word/document.xml is not readable XML: test"),
])
def test_a_parse_failure_in_the_worker_is_one_line_and_keeps_the_last_status(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        failure: Exception, line: str) -> None:
    # Australia first, alone: the run that fails then has other sources to parse for the
    # first time, so the Standard's parse goes to the worker.
    assert world.cli("run", "-j", "au").exit_code == 0
    assert world.record("au-poisons-standard")["schedule"] == "8"
    marker = tmp_path / "parsed-in"

    def failing(content: bytes) -> object:
        marker.write_text(str(os.getpid()))
        raise failure

    # The worker is forked when the run starts: it sees this replacement of the reader.
    monkeypatch.setattr(au, "read_docx", failing)
    world.scenarios["au-poisons-standard"].second_version(True)  # a new document to parse
    result = world.run()
    assert result.exit_code == 2
    assert line in result.stdout.splitlines(), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert marker.read_text() != str(os.getpid())  # it failed in the worker
    assert world.record("au-poisons-standard")["schedule"] == "8"  # the last known status
    assert [c["kind"] for c in world.changes("au-poisons-standard")] == \
        ["extraction_failed"]


def _recording_reads(monkeypatch: pytest.MonkeyPatch, marker: Path) -> None:
    """The Poisons Standard's reader notes the process that ran it (a worker forked after
    this sees the replacement too), then reads as before."""
    original = au.read_docx

    def recording(content: bytes) -> object:
        marker.write_text(str(os.getpid()))
        return original(content)

    monkeypatch.setattr(au, "read_docx", recording)


def test_a_first_run_parses_the_standard_in_the_worker_and_a_warm_one_here(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is forked only when another source parses for sure. A first run parses
    every source: the Standard goes to the worker. On a later day every other source has a
    document it trusts (a 304 or the same bytes parse nothing) and a new Standard is parsed
    here, with the same result as a parse in the worker."""
    marker = tmp_path / "parsed-in"
    _recording_reads(monkeypatch, marker)
    assert world.run().exit_code == 0
    assert marker.read_text() != str(os.getpid())
    first = world.record("au-poisons-standard")

    marker.unlink()
    world.scenarios["au-poisons-standard"].second_version(True)  # a new Standard
    result = world.run()
    assert result.exit_code == 0, result.stdout
    assert "au-poisons-standard: ok, parsed" in result.stdout, result.stdout
    assert marker.read_text() == str(os.getpid())
    # The second version's schedule (schedule 9), parsed here.
    assert (first["schedule"], world.record("au-poisons-standard")["schedule"]) == ("8", "9")


def test_another_source_without_a_trusted_document_brings_the_worker_back(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source whose archived evidence was deleted asks for its whole document and parses
    it: the run forks the worker again for a new Standard beside it."""
    from scrapers.store import Store

    assert world.run().exit_code == 0
    store = Store(tmp_path / "data")
    try:
        evidence = store.document_path(store.source_states()["ca-cdsa"].last_document_sha256
                                       or "")
    finally:
        store.close()
    evidence.unlink()
    marker = tmp_path / "parsed-in"
    _recording_reads(monkeypatch, marker)
    world.scenarios["au-poisons-standard"].second_version(True)
    result = world.run()
    assert result.exit_code == 0, result.stdout
    assert "ca-cdsa: ok, unchanged" in result.stdout or "ca-cdsa: ok, parsed" in \
        result.stdout, result.stdout
    assert marker.read_text() != str(os.getpid())
    assert evidence.is_file()  # archived again
