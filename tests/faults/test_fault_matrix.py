"""The fault matrix: every fault, served by a real local HTTP server, for every source of every
jurisdiction, with the outcome schedwatch promises.

A FAILURE row: the source is ``source_failed`` (or ``extraction_failed``) once when the state
begins (two runs under the fault, one change), ``recovered`` once when the healthy document
is back; its last healthy status is kept (status, schedule, document sha256); the OTHER source
served in the same run is ``ok`` and unchanged; exit code 2; no status change; the only
alerts queued are the failure notice and the recovery.

A HEALTHY row (a redirect, a short ``Retry-After``, the right document in another encoding):
exit code 0 on both runs, no change at all, no alert, the status unchanged.

Marker-based sources (eCFR, the Poisons Standard) download their document only when the API
announces a new version: a fault "at the document" is injected together with such an
announcement (``Scenario.bump``), as a real run would meet it.

Rows that show a production bug are ``xfail(strict=True)`` with the bug in the reason
(``KNOWN_BUGS``); the checks a row makes before the buggy one still run.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import DEFAULT_ALERT_KINDS
from tests.faults import harness as h
from tests.support.cli import CliResult

#: Timeout rows: short, still far above a loopback round trip.
FAST_TIMEOUTS = {"connect_timeout": 0.3, "read_timeout": 0.3}


# --- the bench: servers, configuration, runs, what the store holds ----------------------------

@dataclass
class Snapshot:
    """What the store holds, read in one go."""

    changes: list[Any]
    status: dict[str, list[tuple[str, str, str | None, str]]]
    alerted: set[int]
    health: dict[str, str]

    def core(self, source_id: str) -> list[tuple[str, str, str | None]]:
        """(substance, status, schedule): the status without its evidence."""
        return [row[:3] for row in self.status[source_id]]


@dataclass
class Bench:
    """One row's world: the faulty source and a healthy companion on one pytest-httpserver,
    a raw-socket server beside it, a configuration, the CLI."""

    tmp: Path
    httpserver: Any
    run_cli: Callable[..., CliResult]
    source_id: str
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    injected_at: int = 0  # index in router.hits when the fault was injected

    def __post_init__(self) -> None:
        self.scenario = h.make_scenario(self.source_id)
        self.companion = h.make_scenario(h.companion_of(self.source_id))
        self.other = self.companion.source_id
        self.router = h.Router([self.scenario, self.companion])
        self.router.install(self.httpserver)
        self._raw: h.RawServer | None = None
        self.config = self.tmp / "schedwatch.toml"
        self.configure()

    @property
    def base(self) -> str:
        return self.httpserver.url_for("/").rstrip("/")

    @property
    def raw(self) -> h.RawServer:
        """The raw-socket server (started on first use), serving the same router."""
        if self._raw is None:
            self._raw = h.RawServer(self.router)
            self.stack.callback(self._raw.close)
        return self._raw

    def configure(self, overrides: Mapping[str, str] | None = None,
                  fetch: Mapping[str, Any] | None = None) -> None:
        h.write_config(self.config, data_dir=self.tmp / "data", fetch=fetch, sources={
            self.source_id: self.scenario.endpoints(self.base, overrides),
            self.other: self.companion.endpoints(self.base)})

    def run(self) -> tuple[CliResult, float]:
        started = time.monotonic()
        result = self.run_cli("--config", str(self.config), "run")
        elapsed = time.monotonic() - started
        assert "Traceback" not in result.stdout + result.stderr
        assert "internal error" not in result.stderr, result.stderr
        return result, elapsed

    @staticmethod
    def line(result: CliResult, source_id: str) -> str:
        lines = [line for line in result.stdout.splitlines() if line.startswith(f"{source_id}:")]
        assert len(lines) == 1, result.stdout
        return lines[0]

    def snapshot(self) -> Snapshot:
        from scrapers.store import Store

        store = Store(self.tmp / "data")
        try:
            status = {source: sorted((i.record.substance, i.record.status, i.record.schedule,
                                      i.last_document_sha256)
                                     for i in store.current_intervals(source))
                      for source in (self.source_id, self.other)}
            states = store.source_states()
            return Snapshot(
                changes=list(store.changes()), status=status,
                alerted={int(cid) for row in store.outbox_rows()
                         for cid in json.loads(row["change_ids"])},
                health={source: state.health for source, state in states.items()})
        finally:
            store.close()

    def fault_hits(self, target: str) -> list[h.Hit]:
        """Requests at the faulty path since the fault was injected."""
        path = self.scenario.fault_path(target)
        return [hit for hit in self.router.hits[self.injected_at:] if hit.path == path]

    def baseline(self) -> Snapshot:
        result, _ = self.run()
        assert result.exit_code == 0, result.stdout + result.stderr
        snap = self.snapshot()
        assert snap.changes == [] and snap.alerted == set()
        assert snap.status[self.source_id] and snap.status[self.other]
        return snap


@pytest.fixture(autouse=True)
def fast_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Speed, not behaviour: the site is not rebuilt in these runs (reports/site has its own
    tests, failing sources included; rendering it costs more than the rest of a run)."""
    import scheduler.pipeline

    monkeypatch.setattr(scheduler.pipeline, "needs_publishing", lambda *_args: False)


@pytest.fixture
def bench(tmp_path: Path, httpserver: Any, run_cli: Callable[..., CliResult]
          ) -> Iterator[Callable[[str], Bench]]:
    made: list[Bench] = []

    def make(source_id: str) -> Bench:
        made.append(Bench(tmp_path, httpserver, run_cli, source_id))
        return made[-1]

    yield make
    for one in made:
        one.stack.close()


# --- the faults ------------------------------------------------------------------------------

Inject = Callable[[Bench, str], Mapping[str, str]]
Check = Callable[[Bench, str, list[tuple[CliResult, float]]], None]


@dataclass(frozen=True)
class Row:
    """One fault: how to inject it at a target of a scenario, and what must happen."""

    name: str
    expect: str  # "source_failed" | "extraction_failed" | "healthy"
    #: inject(bench, target) → endpoint overrides for the faulty source's configuration.
    inject: Inject
    error_kind: str | None = None  # the FetchError kind the run line must show
    fetch: Mapping[str, Any] = field(default_factory=dict)
    api: bool = False  # also a row at the first API request (titles.json, OData titles)
    #: A connection-level fault: needs an endpoint whose host can be changed alone; where
    #: the document has none (the eCFR builds its ``full`` URL from the API base), the row
    #: is played at the first API request instead.
    connection: bool = False
    only: tuple[str, ...] | None = None  # source ids (None: every source)
    doc: bool = True  # a row at the document (False: at the first API request only)
    check: Check | None = None


def at_path(make_fault: Callable[[Bench, str], h.Fault]) -> Inject:
    def inject(bench: Bench, target: str) -> dict[str, str]:
        bench.router.faults[bench.scenario.fault_path(target)] = make_fault(bench, target)
        return {}
    return inject


def on_raw(raw_fault: Callable[..., None], name: str) -> Inject:
    def inject(bench: Bench, target: str) -> dict[str, str]:
        bench.router.faults[bench.scenario.fault_path(target)] = h.Fault(name, raw=raw_fault)
        return {bench.scenario.raw_endpoint[target]: bench.raw.base}
    return inject


def unreachable(base: Callable[[], contextlib.AbstractContextManager[str]] | str) -> Inject:
    def inject(bench: Bench, target: str) -> dict[str, str]:
        if base == h.DNS_FAILURE_BASE and (problem := h.dns_failure_problem()):
            pytest.skip(problem)
        where = base if isinstance(base, str) else bench.stack.enter_context(base())
        endpoint = bench.scenario.conn_endpoint.get(target)
        assert endpoint is not None
        return {endpoint: where}
    return inject


def content(name: str, make: Callable[[h.Scenario, str], bytes],
            content_type: str = "application/octet-stream") -> Inject:
    return at_path(lambda bench, target: h.body_fault(name, make(bench.scenario, target),
                                                      content_type))


def transformed(name: str, make: Callable[[h.Scenario, str], Callable[[bytes], bytes]],
                content_type: str | None = None) -> Inject:
    return at_path(lambda bench, target: h.transformed(name, make(bench.scenario, target),
                                                       content_type))


def reencoded(encoding: str) -> Callable[[h.Scenario, str], Callable[[bytes], bytes]]:
    def make(scenario: h.Scenario, target: str) -> Callable[[bytes], bytes]:
        change = scenario.reencoded(target, encoding)
        assert change is not None  # the rows where it is None are skipped
        return change
    return make


def requests_per_run(count: int, *, min_gap: float | None = None) -> Check:
    """The faulty path was asked ``count`` times in each run under the fault (retries are
    bounded), ``min_gap`` seconds apart at least (a Retry-After honoured)."""
    def check(bench: Bench, target: str, runs: list[tuple[CliResult, float]]) -> None:
        hits = bench.fault_hits(target)
        assert len(hits) == count * len(runs), hits
        if min_gap is not None:
            for first, second in zip(hits[::count], hits[1::count], strict=True):
                assert second.at - first.at >= min_gap, (first, second)
    return check


def waited_once(min_gap: float) -> Check:
    """The first run got the Retry-After status, waited at least ``min_gap`` seconds, asked
    again and got the document."""
    def check(bench: Bench, target: str, runs: list[tuple[CliResult, float]]) -> None:
        first, second = bench.fault_hits(target)[:2]
        assert first.status in (429, 503) and second.status == 200, (first, second)
        assert second.at - first.at >= min_gap, (first, second)
    return check


def without_sleeping(limit: float) -> Check:
    """No run under the fault slept for the Retry-After (an hour): one request, a fast run."""
    def check(bench: Bench, target: str, runs: list[tuple[CliResult, float]]) -> None:
        assert all(elapsed < limit for _, elapsed in runs), [e for _, e in runs]
        requests_per_run(1)(bench, target, runs)
    return check


def streamed_less_than_all(bench: Bench, target: str, runs: list[Any]) -> None:
    """The client hung up soon after the cap: the server never wrote the whole body."""
    assert len(bench.raw.sent) == len(runs), bench.raw.sent  # one endless body per run
    assert all(sent < 16 * 1024 * 1024 for sent in bench.raw.sent), bench.raw.sent


MB3 = b"<?xml version='1.0'?><x>" + b"A" * (3 * 1024 * 1024) + b"</x>"
CA = ("ca-cdsa",)

ROWS: tuple[Row, ...] = (
    # --- the network -------------------------------------------------------------------------
    Row("connection_refused", "source_failed", unreachable(h.refused_base),
        error_kind="connection", connection=True, api=True),
    Row("dns_failure", "source_failed", unreachable(h.DNS_FAILURE_BASE), error_kind="dns",
        connection=True),
    Row("connect_timeout", "source_failed", unreachable(h.unanswered_syn_base),
        error_kind="timeout", connection=True, fetch=FAST_TIMEOUTS),
    Row("read_timeout_no_answer", "source_failed", on_raw(h.raw_hang, "hang"),
        error_kind="timeout", fetch=FAST_TIMEOUTS, api=True, check=requests_per_run(2)),
    Row("cut_off_mid_body", "source_failed", on_raw(h.raw_cut_chunked, "cut"),
        error_kind="truncated", check=requests_per_run(2)),
    Row("content_length_larger_than_body", "source_failed",
        on_raw(h.raw_short_content_length, "short"), error_kind="truncated"),
    Row("stall_mid_body", "source_failed", on_raw(h.raw_stall_mid_body, "stall"),
        error_kind="timeout", fetch=FAST_TIMEOUTS, only=CA),
    # --- HTTP --------------------------------------------------------------------------------
    Row("moved_301", "healthy", at_path(lambda b, t: h.redirect(301)), api=True),
    Row("moved_302", "healthy", at_path(lambda b, t: h.redirect(302))),
    Row("redirect_loop", "source_failed", at_path(lambda b, t: h.redirect_loop()),
        error_kind="redirect"),
    Row("http_403", "source_failed", at_path(lambda b, t: h.fixed(403, b"Forbidden")),
        error_kind="http", check=requests_per_run(1)),
    Row("http_404", "source_failed", at_path(lambda b, t: h.fixed(404, b"Not Found")),
        error_kind="http", api=True, check=requests_per_run(1)),
    Row("http_410", "source_failed", at_path(lambda b, t: h.fixed(410, b"Gone")),
        error_kind="http", check=requests_per_run(1)),
    Row("http_500", "source_failed", at_path(lambda b, t: h.fixed(500, b"Internal error")),
        error_kind="http", check=requests_per_run(2)),
    Row("retry_after_429_short_then_ok", "healthy",
        at_path(lambda b, t: h.retry_after(429, "1", times=1)), check=waited_once(0.9)),
    Row("retry_after_503_short_then_ok", "healthy",
        at_path(lambda b, t: h.retry_after(503, "1", times=1)), api=True, doc=False,
        check=waited_once(0.9)),
    Row("retry_after_503_persistent", "source_failed",
        at_path(lambda b, t: h.retry_after(503, "0")), error_kind="http",
        check=requests_per_run(2)),
    Row("retry_after_429_beyond_max_wait", "source_failed",
        at_path(lambda b, t: h.retry_after(429, "3600")), error_kind="http",
        check=without_sleeping(10)),
    Row("retry_after_503_date_beyond_max_wait", "source_failed",
        at_path(lambda b, t: h.retry_after(503, lambda: h.http_date(3600))),
        error_kind="http", check=without_sleeping(10), only=CA),
    # --- what a 200 carries ------------------------------------------------------------------
    Row("empty_body", "extraction_failed", content("empty", lambda s, t: b""), api=True),
    Row("html_maintenance_page", "extraction_failed",
        content("maintenance", lambda s, t: h.HTML_MAINTENANCE, "text/html"), api=True),
    Row("html_login_page", "extraction_failed",
        content("login", lambda s, t: h.HTML_LOGIN, "text/html"), only=CA),
    Row("different_document", "extraction_failed",
        content("different", lambda s, t: s.different(t)), api=True),
    Row("malformed", "extraction_failed", content("malformed", lambda s, t: s.malformed(t)),
        api=True),
    Row("structure_changed", "extraction_failed", transformed(
        "structure", lambda s, t: lambda body: s.structure_changed(t, body)), api=True),
    Row("utf16", "healthy", transformed("utf16", reencoded("utf-16")), api=True),
    Row("iso_8859_1", "healthy", transformed("latin1", reencoded("iso-8859-1"))),
    Row("huge_declared_3mb", "source_failed", content("huge", lambda s, t: MB3),
        error_kind="too_large", fetch={"max_document_mb": 1}, api=True,
        check=requests_per_run(1)),
    Row("huge_streamed", "source_failed", on_raw(h.raw_stream_huge, "endless"),
        error_kind="too_large", fetch={"max_document_mb": 1}, check=streamed_less_than_all,
        only=CA),
)

#: (source_id, target, row name) → a known production bug the row shows (strict xfail). The
#: bugs this suite found (redirects not reported, a stalled body labelled "connection", a
#: renamed Federal Register field read as "descheduled") are fixed; keep this for new ones.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def skip_reason(scenario: h.Scenario, target: str, row: Row) -> str:
    fmt = scenario.doc_format if target == "doc" else scenario.api_format
    if row.name in ("utf16", "iso_8859_1"):
        if fmt == "docx":
            return ("a Word document is a zip of XML parts, each declaring its own encoding: "
                    "there is no 'same document in another encoding' to serve")
        if fmt == "json" and row.name == "iso_8859_1":
            return "JSON is UTF-8/16/32 (RFC 8259): ISO-8859-1 JSON is not meaningful"
    return ""


def row_targets(scenario: h.Scenario, row: Row) -> list[str]:
    targets = ["doc"] if row.doc else []
    if row.connection and scenario.conn_endpoint.get("doc") is None:
        targets = []  # the document's host cannot be changed alone: play it at the API
    if (row.api or (row.connection and not targets)) and "api" in scenario.targets:
        targets.append("api")
    return targets


def matrix() -> list[Any]:
    params = []
    for source_id in h.SOURCE_IDS:
        scenario = h.make_scenario(source_id)
        for row in ROWS:
            if row.only is not None and source_id not in row.only:
                continue
            for target in row_targets(scenario, row):
                marks = []
                reason = skip_reason(scenario, target, row)
                if reason:
                    marks.append(pytest.mark.skip(reason=reason))
                bug = KNOWN_BUGS.get((source_id, target, row.name))
                if bug:
                    marks.append(pytest.mark.xfail(strict=True, reason=bug))
                params.append(pytest.param(source_id, target, row, marks=marks,
                                           id=f"{source_id}-{target}-{row.name}"))
    return params


# --- the matrix ------------------------------------------------------------------------------

@pytest.mark.parametrize(("source_id", "target", "row"), matrix())
def test_fault(bench: Callable[[str], Bench], source_id: str, target: str, row: Row) -> None:
    one = bench(source_id)
    one.configure(fetch=row.fetch)
    before = one.baseline()
    if one.scenario.marker_based and target == "doc":
        one.scenario.bump()  # a new version is announced: its download meets the fault
    one.injected_at = len(one.router.hits)
    one.configure(row.inject(one, target), row.fetch)
    if row.expect == "healthy":
        check_healthy(one, target, row, before)
    else:
        check_failure(one, target, row, before)


def check_failure(one: Bench, target: str, row: Row, before: Snapshot) -> None:
    source, other = one.source_id, one.other
    runs = []
    for _ in range(2):  # recorded once per state change, not once per run
        result, elapsed = one.run()
        runs.append((result, elapsed))
        assert result.exit_code == 2, result.stdout + result.stderr
        line = one.line(result, source)
        if row.expect == "extraction_failed":
            assert line.startswith(f"{source}: EXTRACTION FAILED"), line
        else:
            assert line.startswith(f"{source}: FAILED ("), line
        assert one.line(result, other).startswith(f"{other}: ok"), result.stdout
    during = one.snapshot()
    assert [(c.kind, c.source_id, c.substance) for c in during.changes] == \
        [(row.expect, source, None)], [c.summary for c in during.changes]
    assert during.health[source] == row.expect
    assert during.status == before.status  # the last healthy status, with its evidence
    assert during.alerted == {during.changes[0].id}
    if row.check is not None:
        row.check(one, target, runs)

    # Recovery: the healthy source again → "recovered", exit 0, the same status.
    one.router.faults.clear()
    one.configure(fetch=row.fetch)
    result, _ = one.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert one.line(result, source).startswith(f"{source}: ok"), result.stdout
    after = one.snapshot()
    assert [(c.kind, c.source_id) for c in after.changes] == \
        [(row.expect, source), ("recovered", source)]
    assert after.health[source] == "healthy"
    assert after.core(source) == before.core(source)
    assert after.status[other] == before.status[other]
    assert after.alerted == {c.id for c in after.changes}
    if row.error_kind is not None:  # last: how the report classifies the failure
        kinds = {one.line(result, source).split("(", 1)[1].split(")", 1)[0]
                 for result, _ in runs}
        assert kinds == {row.error_kind}, [one.line(r, source) for r, _ in runs]


def check_healthy(one: Bench, target: str, row: Row, before: Snapshot) -> None:
    source, other = one.source_id, one.other
    runs = []
    for _ in range(2):
        result, elapsed = one.run()
        runs.append((result, elapsed))
        assert result.exit_code == 0, result.stdout + result.stderr
        assert one.line(result, source).startswith(f"{source}: ok"), result.stdout
        assert one.line(result, other).startswith(f"{other}: ok"), result.stdout
    after = one.snapshot()
    assert after.changes == [] and after.alerted == set()
    assert after.health[source] == "healthy"
    assert after.core(source) == before.core(source)
    assert after.status[other] == before.status[other]
    if row.check is not None:
        row.check(one, target, runs)
    if row.name.startswith("moved_"):  # last: the run names the new URL
        for result, _ in runs:
            line = one.line(result, source)
            assert f"; moved to {one.base}{h.MOVED}/" in line, line
            assert f"update [sources.{source}] url" in line, line


def test_the_matrix_covers_every_source() -> None:
    """Every source of every registered jurisdiction has a scenario and rows."""
    from jurisdictions import all_sources

    assert {s.id for s in all_sources()} == set(h.SOURCE_IDS)
    covered = {param.values[0] for param in matrix()}
    assert covered == set(h.SOURCE_IDS)


# --- flip-flop: a source alternating between two versions ---------------------------------

@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """The run's clock (``pipeline.run(now=...)``): ``clock(step)`` makes every reading
    ``step`` seconds after the previous one (0: frozen), from the real time."""
    import scheduler.pipeline

    def set_step(step: float) -> None:
        moment = [datetime.now(UTC).replace(microsecond=0)]

        def now() -> datetime:
            moment[0] += timedelta(seconds=step)
            return moment[0]
        defaults = scheduler.pipeline.run.__kwdefaults__
        assert defaults is not None and "now" in defaults
        monkeypatch.setitem(defaults, "now", now)
    return set_step


@pytest.mark.parametrize("source_id", h.SOURCE_IDS)
def test_flip_flop_alerts_the_first_change_and_revert_only(
        bench: Callable[[str], Bench], clock: Callable[[float], None], source_id: str) -> None:
    """A, B, A, B, A, B, A: every change is stored, the first change and the first revert
    alert, the later repeats (within 7 days) are marked flip-flop and not alerted."""
    clock(600)  # runs ten minutes apart: all within the 7-day flip-flop window
    one = bench(source_id)
    before = one.baseline()
    for second in (True, False) * 3:
        one.scenario.second_version(second)
        result, _ = one.run()
        assert result.exit_code == 0, result.stdout + result.stderr
        assert one.line(result, one.other).startswith(f"{one.other}: ok")
    snap = one.snapshot()
    mine = [c for c in snap.changes if c.source_id == source_id]
    assert mine and all(c.substance for c in mine), [c.summary for c in mine]
    assert not [c for c in snap.changes if c.source_id != source_id]
    by_substance: dict[str, list[Any]] = {}
    for change in mine:
        by_substance.setdefault(change.substance, []).append(change)
    assert {c.kind for c in mine} & {"scheduled", "descheduled", "rescheduled"}
    for substance, changes in by_substance.items():
        assert len(changes) == 6, (substance, [c.summary for c in changes])
        assert {c.kind for c in changes} <= {"scheduled", "descheduled", "rescheduled",
                                             "amended"}, [c.summary for c in changes]
        flagged = ["flip-flop" in c.summary for c in changes]
        assert flagged == [False, False, True, True, True, True], (substance, flagged)
    # Alerted: the first change and the first revert of each substance (of the kinds the
    # recipient takes by default: "amended" is in the report, not in the email).
    assert snap.alerted == {c.id for c in mine if "flip-flop" not in c.summary
                            and c.kind in DEFAULT_ALERT_KINDS}
    assert snap.core(source_id) == before.core(source_id)  # back on version A


def alternate_proposal(one: Bench) -> Snapshot:
    scenario = one.scenario
    assert isinstance(scenario, h.FederalRegisterScenario)
    one.baseline()
    for second in (True, False) * 3:
        scenario.pending_version(second)
        result, _ = one.run()
        assert result.exit_code == 0, result.stdout + result.stderr
    return one.snapshot()


def test_flip_flop_of_a_proposed_rule_does_not_alert_every_appearance(
        bench: Callable[[str], Bench], clock: Callable[[float], None]) -> None:
    clock(600)  # runs ten minutes apart
    snap = alternate_proposal(bench("us-federal-register"))
    pending = [c for c in snap.changes if c.kind == "pending"]
    assert pending, [c.summary for c in snap.changes]
    assert {c.kind for c in snap.changes} == {"pending"}  # no status change from a proposal
    first_appearance = {c.substance: c.id for c in reversed(pending)}
    # The first appearance alerts; its reappearances are not alerted again.
    assert snap.alerted == set(first_appearance.values()), \
        [(c.id, c.substance, c.summary) for c in pending]


def test_a_proposal_flickering_within_one_second_does_not_crash_the_run(
        bench: Callable[[str], Bench], clock: Callable[[float], None]) -> None:
    clock(0)  # every run in the same second
    snap = alternate_proposal(bench("us-federal-register"))
    assert {c.kind for c in snap.changes} == {"pending"}


# --- one more structure change: the register's API renames its status fields -----------------

def test_poisons_standard_titles_with_renamed_status_fields(
        bench: Callable[[str], Bench]) -> None:
    one = bench("au-poisons-standard")
    scenario = one.scenario
    assert isinstance(scenario, h.PoisonsStandardScenario)
    before = one.baseline()
    one.router.faults[h.AU_TITLES] = h.body_fault("renamed", scenario.fields_renamed(),
                                                  "application/json")
    for _ in range(2):
        result, _ = one.run()
        assert result.exit_code == 2
    snap = one.snapshot()
    assert snap.status == before.status
    assert [c.kind for c in snap.changes] == ["extraction_failed"], \
        [c.summary for c in snap.changes]
