"""The Federal Register as an archive (issue 14): the parser's dated scheduling actions
(``ParseResult.actions``) and ``schedwatch backfill -j us`` reading the FR API's whole
document list once and deciding one version per publication / effective date.

Fixture: tests/fixtures/us/fr-1999/ (constructed, see tests/fixtures/README.md): the Part 1308
query in two pages (the real ``next_page_url`` form) and the ketamine term query, with the
real 1999 documents 99-8812, 99-8815 and 99-17803 and invented unrelated DEA documents. The
clock is set by the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jurisdictions.base import FetchContext
from jurisdictions.substances import build_watch_list
from jurisdictions.us import FR_SOURCE_ID, SOURCES, parse_federal_register
from jurisdictions.us.fr_archive import archive_days, read_federal_register_archive, versions_of
from scrapers import clock
from scrapers.records import Document, ScheduledAction
from tests.support.cli import CliResult, changes
from tests.support.config import write_config
from tests.support.documents import FIXTURES, shared_doc

FR_1999 = FIXTURES / "us" / "fr-1999"
WATCH = build_watch_list(("ketamine", "esketamine", "arketamine"))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _results(name: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads((FR_1999 / name).read_text("utf-8"))["results"]
    return results


def listing() -> dict[str, list[dict[str, Any]]]:
    return {"cfr-21-part-1308": _results("part1308-page1.json") + _results("part1308-page2.json"),
            "term-ketamine": _results("term-ketamine.json")}


def parse_version(version: Any) -> Any:
    """Parse an archived version (its bytes, read as of its ``meta["as_of"]``) or, given
    bytes, a live answer."""
    content, meta = (version, {}) if isinstance(version, bytes) else (version.content,
                                                                      version.meta)
    document = Document.of(content, source_id=FR_SOURCE_ID, url="https://example.invalid/",
                           retrieved_at=NOW, meta=meta)
    return parse_federal_register(document, WATCH)


def versions(data: Any = None, **options: Any) -> list[Any]:
    return list(versions_of(listing() if data is None else data,
                            url=options.pop("url", "https://example.invalid/"),
                            today=NOW.date(), **options))


def ketamine_actions() -> list[ScheduledAction]:
    last = versions()[-1]
    return [a for a in parse_version(last).actions if a.substance == "ketamine"]


# --- the parser's actions -----------------------------------------------------------------------

def test_ketamine_history_is_the_1999_actions_oldest_first() -> None:
    rows = [(a.date, a.date_kind, a.action, a.citation, a.document)
            for a in ketamine_actions()]
    assert rows == [
        ("1999-04-09", "published", "withdrawal of proposed rule", "64 FR 17298",
         "FR Doc 99-8812"),
        ("1999-04-09", "published", "proposed rule", "64 FR 17299", "FR Doc 99-8815"),
        ("1999-07-13", "published", "final rule", "64 FR 37673", "FR Doc 99-17803"),
        ("1999-08-12", "effective", "final rule takes effect", "64 FR 37673",
         "FR Doc 99-17803"),
    ]


def test_actions_say_what_they_did_with_the_document_link() -> None:
    withdrawal, proposal, final, effective = ketamine_actions()
    # The real 99-8812 withdraws the 1981 NPRM, which predates the API: named from its text.
    assert withdrawal.effect == "withdrew the proposed rule 46 FR 29484 (published 1981-06-02)"
    assert proposal.effect == "proposed placement in Schedule III"
    assert final.effect == "placed in Schedule III"
    assert effective.effect == "placed in Schedule III from this date"
    assert final.title == "Schedules of Controlled Substances: Placement of Ketamine into " \
                          "Schedule III"
    assert final.url == ("https://www.federalregister.gov/documents/1999/07/13/99-17803/"
                         "schedules-of-controlled-substances-placement-of-ketamine-into-"
                         "schedule-iii")


def test_actions_titles_and_actions_match_the_gpo_text() -> None:
    excerpt = shared_doc("us/govinfo-FR-1999-ketamine-documents-header-excerpts.txt") \
        .decode("utf-8")
    flat = " ".join(excerpt.split())
    for action in ketamine_actions():
        assert action.title in flat
    raw = {r["document_number"]: r for r in _results("term-ketamine.json")}
    for number, words in (("99-8812", "ACTION: Notice of withdrawal of proposed rule."),
                          ("99-8815", "ACTION: Notice of proposed rulemaking."),
                          ("99-17803", "ACTION: Final rule.")):
        assert words in flat and raw[number]["action"] == words.removeprefix("ACTION: ")


def test_an_isomer_gets_the_rule_that_covers_it_but_not_the_1981_withdrawal() -> None:
    last = versions()[-1]
    esketamine = [a for a in parse_version(last).actions if a.substance == "esketamine"]
    # The 1981 NPRM named "ketamine, and salts thereof": no isomers.
    assert [a.document for a in esketamine] == ["FR Doc 99-8815", "FR Doc 99-17803",
                                                 "FR Doc 99-17803"]
    assert all("as an isomer of ketamine" in (a.effect or "") for a in esketamine)


def test_unrelated_documents_make_no_ketamine_action_and_a_link_elsewhere_is_dropped() -> None:
    links = {"html_url": "https://evil.example/99-17803",
             "pdf_url": "http://www.govinfo.gov/content/pkg/FR-1999-07-13/pdf/99-17803.pdf"}
    data = {q: [{**r, **links} if r["document_number"] == "99-17803" else r for r in rs]
            for q, rs in listing().items()}
    last = versions(data)[-1]
    actions = parse_version(last).actions
    final = [a for a in actions if a.substance == "ketamine" and a.action == "final rule"]
    assert final and final[0].url is None  # neither https on FR/govinfo
    assert not [a for a in actions if "Fictadrone" in a.title or "Exemplarone" in a.title]


# --- the versions -------------------------------------------------------------------------------

def test_one_version_per_publication_and_effective_date() -> None:
    assert archive_days(listing()) == [
        "1997-05-01", "1997-06-02", "1999-04-09", "1999-07-13", "1999-08-12", "2001-03-15",
        "2002-01-10", "2002-02-11"]
    found = versions()
    assert [v.evidence_date for v in found] == archive_days(listing())
    # One file for the whole history (the list as answered on the backfill's day), each
    # version reading it as of its own day: the archive grows with the list, not its square.
    assert len({v.content for v in found}) == 1
    by_day = {v.evidence_date: v.meta for v in found}
    assert by_day["1999-04-09"] == {"as_of": "1999-04-09", "documents": "3"}
    assert "as_of" not in json.loads(found[0].content)  # the live form, byte for byte
    held = parse_version(found[2])
    assert held.document_dates == (("latest Federal Register document published",
                                    "1999-04-09"),)
    since = versions(since=date(1999, 7, 1))
    assert since[0].evidence_date == "1999-07-13" and since[0].meta["documents"] == "4"


def test_each_version_reads_the_law_of_its_own_day() -> None:
    found = {}
    for version in versions():
        result = parse_version(version)
        record = next(r for r in result.records if r.substance == "ketamine")
        found[version.evidence_date] = (
            record.status, record.schedule, record.in_force_since, record.evidence_date,
            [p.key for p in result.pending if p.substance == "ketamine"])
    assert found["1997-05-01"] == ("not_controlled", None, None, "1997-05-01", [])
    assert found["1999-04-09"] == ("not_controlled", None, None, "1999-04-09", ["FR:99-8815"])
    assert found["1999-07-13"] == ("not_controlled", None, None, "1999-07-13",
                                   ["FR:99-17803"])
    assert found["1999-08-12"] == ("controlled", "III", "1999-08-12", "1999-08-12", [])
    assert found["2002-02-11"][:3] == ("controlled", "III", "1999-08-12")


def test_a_live_answer_without_the_1999_rule_is_still_refused() -> None:
    """``as_of`` relaxes the completeness check only for days before 64 FR 37673."""
    data = listing()
    data = {q: [r for r in rs if r["document_number"] != "99-17803"] for q, rs in data.items()}
    last = versions(data)[-1]
    with pytest.raises(Exception, match="lacks FR Doc 99-17803"):
        parse_version(last)


# --- schedwatch backfill -j us ------------------------------------------------------------------

@dataclass
class FrApi:
    """The FR API's documents.json on the local server: the Part 1308 query in two pages
    (page 2 at the real next_page_url path, /api/v1/documents?…&format=json&page=2) and the
    term query."""

    server: HTTPServer
    bodies: dict[str, bytes] = field(default_factory=dict)
    hits: int = 0

    def install(self) -> None:
        for name in ("part1308-page1", "part1308-page2", "term-ketamine"):
            self.bodies[name] = (FR_1999 / f"{name}.json").read_bytes()
        self.server.expect_request("/robots.txt").respond_with_data("", status=404)
        self.server.expect_request("/api/v1/documents.json").respond_with_handler(self._first)
        self.server.expect_request("/api/v1/documents").respond_with_handler(self._next)

    def _answer(self, name: str) -> Response:
        self.hits += 1
        return Response(self.bodies[name], content_type="application/json")

    def _first(self, request: Request) -> Response:
        if request.args.get("conditions[term]") == "ketamine":
            return self._answer("term-ketamine")
        assert request.args.get("conditions[cfr][part]") == "1308"
        return self._answer("part1308-page1")

    def _next(self, request: Request) -> Response:
        assert request.args.get("page") == "2" and request.args.get("format") == "json"
        return self._answer("part1308-page2")


@dataclass
class Us:
    cli: Callable[..., CliResult]
    api: FrApi
    data: Path

    def backfill(self) -> CliResult:
        return self.cli("backfill", "-j", "us")

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return result.json()

    def ketamine(self, *args: str) -> dict[str, Any]:
        rows = [r for r in self.json("status", *args)
                if (r["source_id"], r["substance"]) == (FR_SOURCE_ID, "ketamine")]
        assert len(rows) == 1, rows
        return rows[0]

    def stored_changes(self) -> list[bool]:
        """The ``backfilled`` flag of every stored change."""
        import sqlite3

        with sqlite3.connect(self.data / "schedwatch.db") as db:
            return [bool(r[0]) for r in db.execute("select backfilled from changes")]

    def outbox(self) -> int:
        import sqlite3

        with sqlite3.connect(self.data / "schedwatch.db") as db:
            tables = {r[0] for r in db.execute("select name from sqlite_master")}
            assert "outbox" in tables
            return int(db.execute("select count(*) from outbox").fetchone()[0])


@pytest.fixture
def us(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
       monkeypatch: pytest.MonkeyPatch) -> Us:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    api = FrApi(httpserver)
    api.install()
    data = tmp_path / "data"
    config = write_config(tmp_path / "schedwatch.toml", data_dir=data,
                          sources={FR_SOURCE_ID: {"url": httpserver.url_for("").rstrip("/")}})

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    return Us(cli, api, data)


def _fr_changes(us: Us) -> list[dict[str, Any]]:
    return [c for c in changes(us.cli) if c["source_id"] == FR_SOURCE_ID
            and c["substance"] == "ketamine"]


def test_the_fr_source_declares_its_archive() -> None:
    fr = next(s for s in SOURCES if s.id == FR_SOURCE_ID)
    assert fr.archive is read_federal_register_archive


def test_backfill_gives_the_1999_proposal_pending_rule_and_entry_into_force(us: Us) -> None:
    result = us.backfill()
    assert result.exit_code == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"{FR_SOURCE_ID}: "))
    assert line.startswith(f"{FR_SOURCE_ID}: 8 versions read, 0 skipped, "), line
    assert us.api.hits == 3  # the list is read once: two queries, one of them two pages
    found = [(c["kind"], c["summary"], c["effective_date"]) for c in _fr_changes(us)]
    assert found == [
        ("pending", "Ketamine — United States: proposed rule to Schedule III (64 FR 17299, "
         "comment deadline 1999-06-08) (pending)", "1999-06-08"),
        ("pending", "Ketamine — United States: final rule to Schedule III (64 FR 37673, "
         "effective 1999-08-12) (pending)", "1999-08-12"),
        ("scheduled", "Ketamine — United States: not controlled → Schedule III (scheduled)",
         "1999-08-12"),
    ]
    assert us.stored_changes() and all(us.stored_changes())  # every change backfilled
    assert us.outbox() == 0  # none alerted
    row = us.ketamine()
    assert (row["status"], row["schedule"]) == ("controlled", "III")
    assert row["in_force_since"] == "1999-08-12"
    assert row["in_force_since_kind"] == "instrument"
    assert row["in_force_since_basis"].startswith("64 FR 37673, effective 1999-08-12")
    assert row["backfilled"] is True


def test_status_as_of_the_days_between_proposal_and_rule(us: Us) -> None:
    assert us.backfill().exit_code == 0
    pending = us.ketamine("--as-of", "1999-07-20")
    assert (pending["status"], pending["backfilled"]) == ("not_controlled", True)
    assert pending["legal_from"] == "1997-05-01" and pending["legal_to"] == "1999-08-12"
    after = us.ketamine("--as-of", "1999-09-01")
    assert (after["status"], after["schedule"], after["in_force_since"]) == (
        "controlled", "III", "1999-08-12")


def test_a_second_backfill_adds_nothing(us: Us) -> None:
    assert us.backfill().exit_code == 0
    before = (changes(us.cli), us.json("history", "ketamine"))
    again = us.backfill()
    assert again.exit_code == 0, again.stdout
    line = next(x for x in again.stdout.splitlines() if x.startswith(f"{FR_SOURCE_ID}: "))
    assert ", 0 status intervals, 0 changes" in line, line
    assert (changes(us.cli), us.json("history", "ketamine")) == before
    assert us.outbox() == 0


def test_a_listing_that_is_not_json_is_one_line_and_nothing_stored(us: Us) -> None:
    us.api.bodies["part1308-page2"] = b"<html><title>Service unavailable</title></html>"
    result = us.backfill()
    assert result.exit_code == 2
    assert f"{FR_SOURCE_ID}: ARCHIVE NOT READ: " in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert _fr_changes(us) == []


def test_a_version_the_parser_refuses_is_skipped_and_reported(us: Us) -> None:
    """A 2001 result without a title (the API's fields changed): every version from that day
    on is refused, reported, and never read as a change of ketamine's status."""
    page = json.loads(us.api.bodies["part1308-page2"])
    broken = next(r for r in page["results"] if r["document_number"] == "01-22222")
    broken["title"] = ""
    us.api.bodies["part1308-page2"] = json.dumps(page).encode()
    result = us.backfill()
    assert result.exit_code == 0, result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"{FR_SOURCE_ID}: "))
    assert line.startswith(f"{FR_SOURCE_ID}: 8 versions read, 3 skipped, "), line
    skipped = [x for x in result.stdout.splitlines() if "skipped version of" in x]
    assert [x.split("skipped version of ")[1][:10] for x in skipped] == [
        "2001-03-15", "2002-01-10", "2002-02-11"]
    assert all("01-22222 has no title" in x for x in skipped), skipped
    row = us.ketamine()
    assert (row["status"], row["schedule"], row["in_force_since"]) == (
        "controlled", "III", "1999-08-12")
    assert row["evidence_date"] == "1999-08-12"


def test_the_reader_reads_the_list_once_through_the_fetcher(us: Us) -> None:
    from scheduler.config import load_settings
    from scheduler.pipeline import make_fetcher

    settings = load_settings(us.data.parent / "schedwatch.toml")
    fetcher = make_fetcher(settings)
    try:
        fr = next(s for s in SOURCES if s.id == FR_SOURCE_ID)
        endpoints = {**fr.endpoints, **settings.sources[FR_SOURCE_ID].endpoints}
        context = FetchContext(source_id=FR_SOURCE_ID, endpoints=endpoints,
                               today=date(2026, 12, 2))
        days = [v.evidence_date for v in read_federal_register_archive(fetcher, context, None)]
    finally:
        fetcher.close()
    assert days == archive_days(listing())
    assert us.api.hits == 3


def test_a_live_run_after_the_backfill_reports_nothing_new(us: Us) -> None:
    assert us.backfill().exit_code == 0
    before = changes(us.cli)
    run = us.cli("run")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert f"{FR_SOURCE_ID}: ok" in run.stdout, run.stdout
    assert changes(us.cli) == before
    row = us.ketamine()
    assert (row["schedule"], row["in_force_since"]) == ("III", "1999-08-12")
    assert us.outbox() == 0
