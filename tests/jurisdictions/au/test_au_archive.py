"""`schedwatch backfill -j au` (issue 14) on the Federal Register of Legislation: every Poisons
Standard, in force or repealed, read from its as-made Word original. A real local server
(pytest-httpserver) plays the register's API and website; the API rows and the Word
originals are CONSTRUCTED (tests/fixtures/README.md): the rows in the shape of the real ones
(regulator-documents/au/), the documents with the project's constructed Word builder
(tests/fixtures/au/make_fixtures.py). The reschedule of ketamine to Schedule 9 is
HYPOTHETICAL. The clock is set by the tests (never today's date)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jurisdictions import au
from jurisdictions.au.archive import (
    EVIDENCE_DATE_KIND,
    archived_standards,
    read_poisons_standard_archive,
)
from jurisdictions.base import FetchContext
from scrapers import clock
from scrapers.errors import ExtractionError
from scrapers.fetch import FetchPolicy, HttpFetcher
from scrapers.store import Store
from tests.fixtures.au import make_fixtures as built
from tests.support.cli import CliResult
from tests.support.config import write_config


@dataclass(frozen=True)
class Standard:
    """One constructed Poisons Standard as the register lists it."""

    id: str
    name: str
    status: str
    making: str
    commences: date
    registered: str  # registeredAt as the API writes it
    ketamine: str | None = "8"

    @property
    def word_path(self) -> str:
        return f"/{self.id}/asmade/{self.registered[:10]}/text/original/word"

    def word(self) -> bytes:
        stated = f"{self.commences.day} {self.commences.strftime('%B')} {self.commences.year}"
        return built.build_docx(built.cover(self.name, stated) + built.schedules(self.ketamine))


OCT_2024 = "Therapeutic Goods (Poisons Standard\u2014October 2024) Instrument 2024"
STANDARDS = (
    Standard("F2017L00057", "Poisons Standard February 2017", "Repealed",
             "2017-01-25T00:00:00", date(2017, 2, 1), "2017-01-27T04:12:00Z"),
    Standard("F2020L01169", "Poisons Standard October 2020", "Repealed",
             "2020-09-14T00:00:00", date(2020, 10, 1), "2020-09-16T05:30:00Z"),
    # HYPOTHETICAL: ketamine moved from Schedule 8 to Schedule 9 on 1 October 2024.
    Standard("F2024L01228", OCT_2024, "Repealed", "2024-09-24T00:00:00", date(2024, 10, 1),
             "2024-09-30T02:00:00Z", ketamine="9"),
    Standard("F2026L00633", built.JUNE, "InForce", "2026-05-27T00:00:00", date(2026, 6, 1),
             "2026-05-28T12:59:30Z", ketamine="9"),
)
AMENDING = built.title("F2026L00634", "Therapeutic Goods (Poisons Standard\u2014June 2026) "
                       "Amendment Instrument 2026", "InForce", "2026-05-27T00:00:00",
                       principal=False)


@dataclass
class Register:
    """api.prod.legislation.gov.au (/v1) and www.legislation.gov.au on one local server."""

    server: HTTPServer
    standards: tuple[Standard, ...] = STANDARDS
    words: dict[str, bytes] = field(default_factory=dict)
    word_hits: list[str] = field(default_factory=list)
    title_queries: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.words = {s.word_path: s.word() for s in self.standards}

    def install(self) -> None:
        s = self.server
        s.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /assets/\n",
                                                          content_type="text/plain")
        s.expect_request("/v1/titles").respond_with_handler(self._titles)
        s.expect_request("/v1/versions").respond_with_handler(self._versions)
        for path in self.words:
            s.expect_request(path).respond_with_handler(self._word)

    def _titles(self, request: Request) -> Response:
        self.title_queries.append(dict(request.args))
        assert request.args["$filter"] == au.TITLE_FILTER
        # Newest first, the amending instrument among them: the reader must not rely on order.
        rows = [AMENDING, *(built.title(s.id, s.name, s.status, s.making)
                            for s in reversed(self.standards))]
        skip, top = int(request.args.get("$skip", "0")), int(request.args["$top"])
        return Response(json.dumps(built.titles_payload(rows[skip:skip + top])),
                        content_type="application/json; odata.metadata=minimal")

    def _versions(self, request: Request) -> Response:
        title_id = request.args["$filter"].split("'")[1]
        standard = next(s for s in self.standards if s.id == title_id)
        payload = built.versions_payload(standard.id, f"{standard.commences}T00:00:00",
                                         standard.registered)
        if standard.status == "Repealed":
            payload["value"][0].update(status="Repealed", isCurrent=False, isLatest=False,
                                       end="2030-01-01T00:00:00")
        if standard.id == "F2020L01169":  # a later compilation, with its own register id
            payload["value"].append({**payload["value"][0], "registerId": "F2021C00100",
                                     "start": "2021-02-01T00:00:00.0000000",
                                     "compilationNumber": "1"})
        return Response(json.dumps(payload), content_type="application/json")

    def _word(self, request: Request) -> Response:
        self.word_hits.append(request.path)
        return Response(self.words[request.path], content_type=au.WORD_MEDIA_TYPE)


@dataclass
class Australia:
    cli: Callable[..., CliResult]
    register: Register
    set_clock: Callable[[datetime], None]
    config: Path
    data_dir: Path

    def backfill(self, *args: str) -> CliResult:
        return self.cli("backfill", "-j", "au", *args)

    def json(self, *args: str) -> list[dict]:
        result = self.cli(*args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return result.json()

    def history(self, substance: str = "ketamine") -> list[dict]:
        return [r for r in self.json("history", substance)
                if r["source_id"] == au.SOURCE_ID]

    def changes(self) -> list[dict]:
        return [c for c in self.json("changes") if c["source_id"] == au.SOURCE_ID]

    def outbox_rows(self) -> int:
        store = Store(self.data_dir)
        try:
            with store.db.connect() as connection:
                return int(connection.scalar("SELECT COUNT(*) FROM outbox"))
        finally:
            store.close()

    def watch_all(self) -> None:
        self.config.write_text('watch = "all"\n' + self.config.read_text())


@pytest.fixture
def australia(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Australia]:
    register = Register(httpserver)
    register.install()
    moment = [datetime(2026, 7, 1, 2, 0, tzinfo=UTC)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        au.SOURCE_ID: {"url": httpserver.url_for("/v1"),
                       "register_url": httpserver.url_for("/").rstrip("/")}})

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    def set_clock(when: datetime) -> None:
        moment[0] = when

    yield Australia(cli, register, set_clock, config, tmp_path / "data")


def spans(rows: list[dict]) -> list[tuple]:
    return [(r["origin"], r["legal_from"], r["legal_to"], r["schedule"]) for r in rows]


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def by_status(rows: list[dict]) -> list[tuple]:
    """The history as status spans: consecutive intervals of the same schedule joined."""
    joined: list[list] = []
    for row in rows:
        if joined and joined[-1][2] == row["schedule"] and joined[-1][1] == row["legal_from"]:
            joined[-1][1] = row["legal_to"]
        else:
            joined.append([row["legal_from"], row["legal_to"], row["schedule"]])
    return [tuple(span) for span in joined]


# --- backfill through the CLI -----------------------------------------------------------------

def test_backfill_reads_every_standard_oldest_first_as_made(australia: Australia) -> None:
    result = australia.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "au-poisons-standard: 4 versions read, 0 skipped, "), result.stdout
    # In force and repealed alike, by commencement; the amending instrument and the
    # compilation of 2021 are not read.
    assert australia.register.word_hits == [s.word_path for s in STANDARDS]
    rows = australia.history()
    assert rows[0]["first_document_sha256"] == sha(STANDARDS[0].word())
    assert rows[-1]["document_sha256"] == sha(STANDARDS[-1].word())
    assert {r["origin"] for r in rows} == {"backfilled"}
    assert by_status(rows) == [("2017-02-01", "2024-10-01", "8"), ("2024-10-01", None, "9")]
    for standard in STANDARDS:  # archived by sha256 like a live document
        content = standard.word()
        stored = australia.data_dir / "documents" / sha(content)[:2] / sha(content)
        assert stored.read_bytes() == content
    assert australia.outbox_rows() == 0


def test_each_standard_is_its_own_interval_tiling_the_history(australia: Australia) -> None:
    """A re-issue keeps the status (and its in_force_since) but the record now cites the new
    instrument: one interval per Standard, each from its own commencement, edge to edge —
    so that ``status --as-of`` cites the Standard in force that day, and no record is left
    an empty span (issue 14; the boundary used to be the status's in_force_since)."""
    assert australia.backfill().exit_code == 0
    rows = australia.history()
    assert [(r["legal_from"], r["legal_to"], r["schedule"], r["instrument"]) for r in rows] == [
        ("2017-02-01", "2020-10-01", "8", "F2017L00057"),
        ("2020-10-01", "2024-10-01", "8", "F2020L01169"),
        ("2024-10-01", "2026-06-01", "9", "F2024L01228"),
        ("2026-06-01", None, "9", "F2026L00633")]
    assert all(r["legal_to"] is None or r["legal_to"] > r["legal_from"] for r in rows)
    # The status itself is dated from when it began, not from each re-issue.
    assert [r["in_force_since"] for r in rows] == ["2017-02-01", "2017-02-01", "2024-10-01",
                                                   "2024-10-01"]


def test_a_reschedule_between_two_standards_is_one_backfilled_change(australia: Australia
                                                                     ) -> None:
    assert australia.backfill().exit_code == 0
    changes = australia.changes()
    [moved] = [c for c in changes if c["kind"] == "rescheduled"]
    assert moved["substance"] == "ketamine"
    assert (moved["before"]["schedule"], moved["after"]["schedule"]) == ("8", "9")
    assert (moved["before"]["instrument"], moved["after"]["instrument"]) == \
        ("F2020L01169", "F2024L01228")
    # Its legal date is the commencement of the Standard that first lists it in Schedule 9.
    assert moved["after"]["evidence_date"] == "2024-10-01"
    assert moved["after"]["in_force_since"] == "2024-10-01"
    assert [au.COMMENCEMENT_LABEL, "2024-10-01"] in moved["after"]["dates"]
    store = Store(australia.data_dir)
    try:
        assert all(c.details.get("backfilled") is True for c in store.changes()
                   if c.source_id == au.SOURCE_ID)
    finally:
        store.close()
    assert australia.outbox_rows() == 0
    as_of = [r for r in australia.json("status", "--as-of", "2022-06-01")
             if r["source_id"] == au.SOURCE_ID and r["substance"] == "ketamine"]
    assert [(r["schedule"], r["evidence_date"], r["instrument"]) for r in as_of] == \
        [("8", "2020-10-01", "F2020L01169")]


def test_a_reissue_with_every_entry_renamed_is_one_bulk_amendment(australia: Australia) -> None:
    australia.watch_all()
    result = australia.backfill()
    assert result.exit_code == 0, result.stderr
    changes = australia.changes()
    bulk = [c for c in changes if c["substance"] is None]
    # One per re-issue (2020, 2024, 2026), never one per entry; the watched substances keep
    # their own change (the live rule, reports.diff.split_bulk_amendments).
    assert len(bulk) == 3, [c["summary"] for c in bulk]
    assert {c["kind"] for c in bulk} == {"amended"}
    assert "instrument F2017L00057 → F2020L01169 for " in bulk[0]["summary"]
    assert "other entries, their status unchanged" in bulk[0]["summary"]
    assert {c["substance"] for c in changes} <= {None, "ketamine", "esketamine", "arketamine"}
    paracetamol = australia.history("paracetamol")
    assert [(r["legal_from"], r["legal_to"], r["instrument"]) for r in paracetamol] == \
        [("2017-02-01", None, "F2026L00633")]
    assert australia.outbox_rows() == 0


def test_a_broken_word_file_is_skipped_and_reported(australia: Australia) -> None:
    broken = STANDARDS[1].word()[:3000]  # cut short: not a zip any more
    australia.register.words[STANDARDS[1].word_path] = broken
    result = australia.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "au-poisons-standard: 4 versions read, 1 skipped, "), result.stdout
    skipped = [line for line in result.stdout.splitlines() if "skipped version" in line]
    assert len(skipped) == 1
    assert f"skipped version of 2020-10-01 ({sha(broken)[:12]}): " in skipped[0]
    # Never read as a change: ketamine stays Schedule 8 until 2024.
    assert by_status(australia.history()) == [("2017-02-01", "2024-10-01", "8"),
                                              ("2024-10-01", None, "9")]
    assert [c["substance"] for c in australia.changes() if c["kind"] != "amended"] == \
        ["ketamine"]


def test_a_second_backfill_adds_nothing(australia: Australia) -> None:
    assert australia.backfill().exit_code == 0
    history, changes = australia.history(), australia.json("changes")
    australia.set_clock(datetime(2026, 7, 2, 2, 0, tzinfo=UTC))
    again = australia.backfill()
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[0].startswith(
        "au-poisons-standard: 4 versions read, 0 skipped, 0 status intervals, 0 changes"), \
        again.stdout
    assert australia.history() == history
    assert australia.json("changes") == changes


def test_backfill_then_a_live_run_is_one_continuous_history(australia: Australia) -> None:
    assert australia.backfill().exit_code == 0
    before, changes = australia.history(), australia.json("changes")
    australia.set_clock(datetime(2026, 7, 1, 3, 0, tzinfo=UTC))
    run = australia.cli("run", "-j", "au")
    assert run.exit_code == 0, run.stderr + run.stdout
    assert australia.json("changes") == changes  # no spurious change
    after = australia.history()
    assert [(r["legal_from"], r["legal_to"], r["schedule"]) for r in after] == \
        [(r["legal_from"], r["legal_to"], r["schedule"]) for r in before]
    assert after[-1]["document_sha256"] == sha(STANDARDS[-1].word())
    assert australia.outbox_rows() == 0


def test_since_skips_the_standards_that_commenced_before_it(australia: Australia) -> None:
    result = australia.backfill("--since", "2024-01-01")
    assert result.exit_code == 0, result.stderr
    assert australia.register.word_hits == [s.word_path for s in STANDARDS[2:]]
    assert by_status(australia.history()) == [("2024-10-01", None, "9")]


def test_the_live_paragraph_cap_applies_to_archived_versions(australia: Australia,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setattr("jurisdictions.au.word.MAX_PARAGRAPHS", 20)
    result = australia.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "au-poisons-standard: 4 versions read, 4 skipped, 0 status intervals"), result.stdout
    assert australia.changes() == []


def test_the_live_document_size_cap_applies_to_archived_versions(australia: Australia
                                                                 ) -> None:
    australia.config.write_text(australia.config.read_text().replace(
        "[fetch]\n", "[fetch]\nmax_document_mb = 1\n"))
    australia.register.words[STANDARDS[2].word_path] = b"PK" + b"\0" * (1024 * 1024 + 1)
    result = australia.backfill()
    assert result.exit_code == 2
    assert result.stdout.startswith("au-poisons-standard: ARCHIVE NOT READ: "), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert australia.changes() == []
    assert [r for r in australia.json("status") if r["source_id"] == au.SOURCE_ID] == []


# --- the reader itself ------------------------------------------------------------------------

@pytest.fixture
def fetcher() -> Iterator[HttpFetcher]:
    with HttpFetcher(FetchPolicy(user_agent="schedwatch-test", min_interval=0, backoff=0,
                                 max_retries=1)) as http:
        yield http


def context(httpserver: HTTPServer) -> FetchContext:
    return FetchContext(source_id=au.SOURCE_ID,
                        endpoints={"url": httpserver.url_for("/v1"),
                                   "register_url": httpserver.url_for("/").rstrip("/")},
                        today=date(2026, 7, 1))


def test_versions_say_what_their_date_is(httpserver: HTTPServer, fetcher: HttpFetcher,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    register = Register(httpserver)
    register.install()
    monkeypatch.setattr("jurisdictions.au.archive.TITLE_PAGE", 2)  # three pages of titles
    versions = list(read_poisons_standard_archive(fetcher, context(httpserver), None))
    assert [v.ident for v in versions] == [s.id for s in STANDARDS]
    assert [v.evidence_date for v in versions] == [str(s.commences) for s in STANDARDS]
    assert [q["$skip"] for q in register.title_queries] == ["0", "2", "4"]
    first = versions[0]
    assert first.meta["evidence_date_kind"] == EVIDENCE_DATE_KIND
    assert first.meta["commencement"] == "2017-02-01"
    assert first.meta["register_id"] == "F2017L00057"  # as made, not a compilation
    assert first.content == STANDARDS[0].word()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "F2017L00057?x=1", 17, None])
def test_an_id_that_is_not_a_register_id_stops_the_archive(httpserver: HTTPServer,
                                                          fetcher: HttpFetcher, bad: object
                                                          ) -> None:
    rows = [built.title("F2017L00057", "Poisons Standard February 2017", "Repealed",
                        "2017-01-25T00:00:00")]
    rows[0]["id"] = bad
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/v1/titles").respond_with_json(built.titles_payload(rows))
    with pytest.raises(ExtractionError, match="not a register id"):
        archived_standards(fetcher, httpserver.url_for("/v1"))
    assert [r.path for r, _ in httpserver.log if r.path != "/robots.txt"] == ["/v1/titles"]


@pytest.mark.parametrize("payload", [{"titles": []}, {"value": [{"id": "F2017L00057"}]},
                                     {"value": [{"name": "Poisons Standard May 2019",
                                                 "id": "F2019L00600", "status": "Repealed"}]}])
def test_an_answer_of_another_shape_is_an_extraction_error(httpserver: HTTPServer,
                                                           fetcher: HttpFetcher,
                                                           payload: dict) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/v1/titles").respond_with_json(payload)
    httpserver.expect_request("/v1/versions").respond_with_json({"value": [{"start": 3}]})
    with pytest.raises(ExtractionError):
        list(read_poisons_standard_archive(fetcher, context(httpserver), None))
