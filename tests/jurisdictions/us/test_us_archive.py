"""`schedwatch backfill -j us` (issue 14) on the eCFR versioner archive and, when robots.txt
forbids the versioner's ``full/``, on govinfo's annual CFR editions; both served on a local
server (pytest-httpserver). Part 1308 at each date is the constructed eCFR table fixture
(``DIV class="gpotbl_div"/TABLE/TR/TD``) with its § 1308.13 source note marked with the
version date; the reschedule of ketamine to Schedule II is HYPOTHETICAL. The clock is set by
the tests (never today's date)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jurisdictions.us import annual
from jurisdictions.us.archive import annual_years, schedule_versions
from scrapers import clock
from scrapers.errors import ExtractionError
from scrapers.store import Store
from tests.support.cli import CliResult
from tests.support.config import write_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "us"
PART = (FIXTURES / "ecfr-part1308.xml").read_text(encoding="utf-8")
VERSIONS = (FIXTURES / "archive" / "ecfr-versions-1308.json").read_bytes()
ANNUAL = (FIXTURES / "archive" / "CFR-2023-title21-vol9.xml").read_text(encoding="utf-8")
TITLES = (FIXTURES / "ecfr-titles.json").read_bytes()
DATES = ["2017-01-03", "2019-03-15", "2021-03-01", "2023-08-10"]
SOURCE_NOTE = '<CITA TYPE="N">[39 FR 22142, June 20, 1974]</CITA>'
DISALLOW_FULL = "User-agent: *\nDisallow: /api/versioner/v1/full/\n"

KETAMINE_ROWS = (
    '<TR><TD align="left" class="gpotbl_cell" scope="row">(7) Ketamine, its salts, isomers, '
    'and salts of isomers</TD><TD align="right" class="gpotbl_cell">7285</TD></TR>\n'
    '<TR><TD align="left" class="gpotbl_cell" scope="row">[Some other names for ketamine: '
    '(±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone]</TD><TD align="right" '
    'class="gpotbl_cell"/></TR>\n')
SECOBARBITAL = ('<TR><TD align="left" class="gpotbl_cell" scope="row">(5) Secobarbital</TD>'
                '<TD align="right" class="gpotbl_cell">2315</TD></TR>\n')


def part_at(day: str, *, schedule_ii: bool = False) -> bytes:
    """Part 1308 as of ``day``: the fixture, its § 1308.13 source note naming the version
    (so that every version has its own bytes), ketamine moved to § 1308.12(e)(6) when
    ``schedule_ii`` (hypothetical)."""
    assert SOURCE_NOTE in PART and KETAMINE_ROWS in PART and SECOBARBITAL in PART
    text = PART.replace(SOURCE_NOTE, f'<CITA TYPE="N">[39 FR 22142, June 20, 1974; text as '
                                     f'of {day}]</CITA>')
    if schedule_ii:
        text = text.replace(KETAMINE_ROWS, "").replace(
            SECOBARBITAL, SECOBARBITAL + KETAMINE_ROWS.replace("(7) Ketamine", "(6) Ketamine"))
    return text.encode("utf-8")


def annual_of(year: int) -> bytes:
    """The annual-edition fixture (revised as of April 1, 2023) renamed to ``year``."""
    return ANNUAL.replace("2023", str(year)).encode("utf-8")


@dataclass
class Ecfr:
    """www.ecfr.gov and www.govinfo.gov as the archive reader and the live plan see them."""

    server: HTTPServer
    robots: str = ""
    versions: bytes = VERSIONS
    full: dict[str, bytes] = field(default_factory=dict)
    editions: dict[int, bytes] = field(default_factory=dict)
    live: bytes = field(default_factory=lambda: part_at("2026-06-10"))
    hits: list[str] = field(default_factory=list)

    def install(self) -> None:
        s = self.server
        s.expect_request("/robots.txt").respond_with_handler(
            lambda r: Response(self.robots, content_type="text/plain") if self.robots
            else Response("", status=404))
        s.expect_request("/api/versioner/v1/titles.json").respond_with_data(
            TITLES, content_type="application/json")
        s.expect_request("/api/versioner/v1/versions/title-21.json").respond_with_handler(
            self._versions)
        s.expect_request(re.compile(r"^/api/versioner/v1/full/.*")).respond_with_handler(
            self._full)
        s.expect_request(re.compile(r"^/bulkdata/CFR/.*")).respond_with_handler(self._annual)

    def _versions(self, request: Request) -> Response:
        # The current API refuses a versions call without an issue_date parameter.
        if "issue_date[gte]" not in request.args or request.args.get("part") != "1308":
            return Response('{"error": "An issue_date parameter must be provided."}',
                            status=400, content_type="application/json")
        return Response(self.versions, content_type="application/json")

    def _full(self, request: Request) -> Response:
        self.hits.append(request.path)
        day = request.path.split("/")[5]
        assert request.args.get("part") == "1308"
        if day == "2026-06-10":
            return Response(self.live, content_type="application/xml")
        if day in self.full:
            return Response(self.full[day], content_type="application/xml")
        return Response("not found", status=404)

    def _annual(self, request: Request) -> Response:
        self.hits.append(request.path)
        match = re.fullmatch(r"/bulkdata/CFR/(\d{4})/title-21/CFR-\1-title21-vol9\.xml",
                             request.path)
        if match and int(match.group(1)) in self.editions:
            return Response(self.editions[int(match.group(1))], content_type="application/xml")
        return Response("not found", status=404)


@dataclass
class Us:
    cli: Callable[..., CliResult]
    ecfr: Ecfr
    set_clock: Callable[[datetime], None]
    data_dir: Path

    def backfill(self, *args: str) -> CliResult:
        return self.cli("backfill", "-j", "us", *args)

    def json(self, *args: str) -> list[dict]:
        result = self.cli(*args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return result.json()

    def history(self) -> list[dict]:
        return [r for r in self.json("history", "ketamine") if r["source_id"] == "us-ecfr-1308"]

    def changes(self) -> list[dict]:
        return [c for c in self.json("changes") if c["substance"] == "ketamine"]

    def backfilled_flags(self) -> list[bool]:
        """Whether each stored change of ketamine is marked backfilled (in its details:
        ``changes --format json`` does not show it)."""
        store = Store(self.data_dir)
        try:
            return [c.details.get("backfilled") is True for c in store.changes()
                    if c.substance == "ketamine"]
        finally:
            store.close()


@pytest.fixture
def us(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
       monkeypatch: pytest.MonkeyPatch) -> Iterator[Us]:
    ecfr = Ecfr(httpserver)
    ecfr.full = {day: part_at(day) for day in DATES}
    ecfr.install()
    moment = [datetime(2026, 6, 11, 12, 0, tzinfo=UTC)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    base = httpserver.url_for("/").rstrip("/")
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "us-ecfr-1308": {"url": base, "annual_url": f"{base}/bulkdata/CFR",
                         "bulk_url": f"{base}/bulkdata/ECFR/title-21/ECFR-title21.xml"}})

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    def set_clock(when: datetime) -> None:
        moment[0] = when

    yield Us(cli, ecfr, set_clock, tmp_path / "data")


def spans(rows: list[dict]) -> list[tuple]:
    return [(r["origin"], r["legal_from"], r["legal_to"], r["status_label"]) for r in rows]


# --- the versioner ----------------------------------------------------------------------------

def test_backfill_reads_every_schedule_version_date_oldest_first(us: Us) -> None:
    result = us.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "us-ecfr-1308: 4 versions read, 0 skipped, "), result.stdout
    # § 1308.01 (2017) and § 1308.49 (2025) are not schedules; no date is fetched twice.
    assert us.ecfr.hits == [f"/api/versioner/v1/full/{d}/title-21.xml" for d in DATES]
    rows = us.history()
    assert spans(rows) == [("backfilled", "2017-01-03", None, rows[0]["status_label"])]
    assert rows[0]["legal_note"].startswith("granularity: eCFR point in time")
    assert rows[0]["first_document_sha256"] == hashlib.sha256(part_at(DATES[0])).hexdigest()
    assert rows[0]["document_sha256"] == hashlib.sha256(part_at(DATES[-1])).hexdigest()
    assert us.changes() == []


def test_a_reschedule_between_two_versions_is_a_backfilled_change(us: Us) -> None:
    for day in DATES[2:]:  # HYPOTHETICAL: ketamine moved to Schedule II on 2021-03-01
        us.ecfr.full[day] = part_at(day, schedule_ii=True)
    result = us.backfill()
    assert result.exit_code == 0, result.stderr
    # ketamine and its isomers esketamine and arketamine (covered by its entry)
    assert result.stdout.splitlines()[0].endswith(", 3 changes"), result.stdout
    rows = us.history()
    assert [(r["origin"], r["legal_from"], r["legal_to"], r["schedule"]) for r in rows] == [
        ("backfilled", "2017-01-03", "2021-03-01", "III"),
        ("backfilled", "2021-03-01", None, "II")]
    assert all(r["legal_note"].startswith("granularity: eCFR point in time") for r in rows)
    assert rows[1]["provision"] == "21 CFR 1308.12(e)(6)"
    [change] = us.changes()
    # The eCFR states no legal date of its own (the Federal Register does): the change is
    # dated by the version that first shows it.
    assert (change["before"]["schedule"], change["after"]["schedule"]) == ("III", "II")
    assert change["after"]["evidence_date"] == "2021-03-01"
    assert us.backfilled_flags() == [True]
    as_of_2020 = [r for r in us.json("status", "--as-of", "2020-06-01")
                  if r["source_id"] == "us-ecfr-1308" and r["substance"] == "ketamine"]
    assert [r["schedule"] for r in as_of_2020] == ["III"]


def test_a_version_that_cannot_be_parsed_is_skipped_and_reported(us: Us) -> None:
    broken = part_at("2019-03-15")[:4000]  # cut short: malformed XML
    us.ecfr.full["2019-03-15"] = broken
    result = us.backfill()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "us-ecfr-1308: 4 versions read, 1 skipped, "), result.stdout
    skipped = [line for line in result.stdout.splitlines() if "skipped version" in line]
    sha = hashlib.sha256(broken).hexdigest()
    assert len(skipped) == 1 and f"skipped version of 2019-03-15 ({sha[:12]}): " in skipped[0]
    assert us.changes() == []
    assert spans(us.history())[0][1:3] == ("2017-01-03", None)


def test_a_second_backfill_adds_nothing(us: Us) -> None:
    assert us.backfill().exit_code == 0
    history, changes = us.history(), us.json("changes")
    us.set_clock(datetime(2026, 6, 12, 12, 0, tzinfo=UTC))
    again = us.backfill()
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[0].startswith(
        "us-ecfr-1308: 4 versions read, 0 skipped, 0 status intervals, 0 changes"), again.stdout
    assert us.history() == history
    assert us.json("changes") == changes


def test_backfill_then_a_live_run_is_one_continuous_history(us: Us) -> None:
    assert us.backfill().exit_code == 0
    before = us.history()
    us.set_clock(datetime(2026, 6, 11, 13, 0, tzinfo=UTC))
    run = us.cli("run")
    assert run.exit_code == 0, run.stderr + run.stdout
    assert us.changes() == []
    after = us.history()
    assert [(r["legal_from"], r["legal_to"], r["status_label"]) for r in after] == \
        [(r["legal_from"], r["legal_to"], r["status_label"]) for r in before]
    assert after[0]["legal_from"] == "2017-01-03"
    # The live document (another version, the same status) now confirms the interval.
    assert after[-1]["document_sha256"] == hashlib.sha256(us.ecfr.live).hexdigest()


def test_the_versions_list_unreadable_stops_the_source_with_exit_2(us: Us) -> None:
    us.ecfr.versions = b"<html><title>Service unavailable</title></html>"
    result = us.backfill()
    assert result.exit_code == 2
    assert "us-ecfr-1308" in result.stdout + result.stderr
    assert us.ecfr.hits == []


# --- the annual editions ----------------------------------------------------------------------

def test_robots_forbidding_full_switches_to_the_annual_editions(us: Us) -> None:
    us.ecfr.robots = DISALLOW_FULL
    us.ecfr.editions = {year: annual_of(year) for year in (2022, 2023, 2024, 2025)}
    result = us.backfill("--since", "2022-01-01")
    assert result.exit_code == 0, result.stderr
    # 2026's edition (revised as of April 1, 2026) is not published yet: a 404 ends the list.
    assert result.stdout.splitlines()[0].startswith(
        "us-ecfr-1308: 4 versions read, 0 skipped, "), result.stdout
    assert not any("/versioner/v1/full/" in hit for hit in us.ecfr.hits)
    assert us.ecfr.hits == [f"/bulkdata/CFR/{y}/title-21/CFR-{y}-title21-vol9.xml"
                            for y in (2022, 2023, 2024, 2025, 2026)]
    rows = us.history()
    assert spans(rows) == [("backfilled", "2022-04-01", None, rows[0]["status_label"])]
    assert rows[0]["schedule"] == "III" and rows[0]["provision"] == "21 CFR 1308.13(c)(7)"
    assert rows[0]["legal_note"].startswith(
        "granularity: annual edition (revised as of April 1)")
    # What is archived is the edition's Part 1308, reduced while streaming.
    part, _facts = annual.part_1308(annual_of(2022))
    assert rows[0]["first_document_sha256"] == hashlib.sha256(part).hexdigest()


def test_an_annual_reschedule_is_dated_by_the_first_edition_showing_it(us: Us) -> None:
    us.ecfr.robots = DISALLOW_FULL
    moved = annual.as_ecfr  # the reader of the edition, for a sanity check below
    ii = ANNUAL.replace(
        '<ROW><ENT I="01">(7) Ketamine, its salts, isomers, and salts of isomers</ENT>'
        '<ENT>7285</ENT></ROW>\n<ROW><ENT I="03">[Some other names for ketamine: '
        '(±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone]</ENT><ENT/></ROW>\n', "")
    assert ii != ANNUAL
    ii = ii.replace('<ROW><ENT I="01">(5) Secobarbital</ENT><ENT>2315</ENT></ROW>',
                    '<ROW><ENT I="01">(5) Secobarbital</ENT><ENT>2315</ENT></ROW>\n<ROW><ENT '
                    'I="01">(6) Ketamine, its salts, isomers, and salts of isomers</ENT><ENT>'
                    '7285</ENT></ROW>')
    assert b"(6) Ketamine" in moved(ii.encode())[0]
    us.ecfr.editions = {2023: annual_of(2023), 2024: ii.replace("2023", "2024").encode(),
                        2025: ii.replace("2023", "2025").encode()}
    result = us.backfill("--since", "2023-01-01")
    assert result.exit_code == 0, result.stderr
    rows = us.history()
    assert [(r["legal_from"], r["legal_to"], r["schedule"]) for r in rows] == [
        ("2023-04-01", "2024-04-01", "III"), ("2024-04-01", None, "II")]
    assert all("annual edition" in r["legal_note"] for r in rows)
    [change] = us.changes()
    assert (change["before"]["schedule"], change["after"]["schedule"]) == ("III", "II")
    assert change["after"]["evidence_date"] == "2024-04-01"
    assert us.backfilled_flags() == [True]


def test_an_unreadable_annual_edition_is_skipped_and_reported(us: Us) -> None:
    us.ecfr.robots = DISALLOW_FULL
    us.ecfr.editions = {2024: b"<html><title>Maintenance</title></html>",
                        2025: annual_of(2025)}
    result = us.backfill("--since", "2024-01-01")
    assert result.exit_code == 0, result.stderr
    skipped = [line for line in result.stdout.splitlines() if "skipped version" in line]
    assert len(skipped) == 1 and "skipped version of 2024-04-01" in skipped[0], result.stdout
    assert spans(us.history())[0][1:3] == ("2025-04-01", None)


# --- pure parts -------------------------------------------------------------------------------

def test_schedule_versions_are_distinct_schedule_dates_with_their_facts() -> None:
    found = schedule_versions([VERSIONS])
    assert [day for day, _ in found] == DATES
    facts = dict(found)
    assert facts["2021-03-01"]["sections_changed"] == "1308.12, 1308.13"
    assert facts["2023-08-10"]["substantive"] == "false"
    assert facts["2019-03-15"]["amended_on:1308.13"] == "2019-03-15"
    assert facts["2017-01-03"]["amended_on:1308.13"] == "2016-06-24"
    assert [d for d, _ in schedule_versions([VERSIONS], first="2020-01-01")] == DATES[2:]


@pytest.mark.parametrize("bad", ["2019-02-30", "2019-03-15/../../x", "2019-3-15", 20190315])
def test_a_version_date_that_is_not_an_iso_date_is_refused(bad: object) -> None:
    text = VERSIONS.decode().replace('"date": "2019-03-15"', f'"date": {bad!r}'.replace(
        "'", '"'))
    with pytest.raises(ExtractionError, match="valid date"):
        schedule_versions([text.encode()])


def test_annual_years() -> None:
    assert annual_years(date(2026, 6, 11), None) == list(range(2017, 2027))
    assert annual_years(date(2026, 3, 31), None)[-1] == 2025
    assert annual_years(date(2026, 6, 11), date(2022, 4, 1))[0] == 2022
    assert annual_years(date(2026, 6, 11), date(2022, 4, 2))[0] == 2023
    assert annual_years(date(2026, 6, 11), date(1980, 1, 1))[0] == 1996


def test_an_annual_volume_without_part_1308_is_an_extraction_error() -> None:
    without = re.sub(r"<PART>\n<EAR>Pt\. 1308</EAR>.*?</PART>\n", "", ANNUAL, flags=re.DOTALL)
    assert without != ANNUAL
    with pytest.raises(ExtractionError, match="no PART 1308.*1300, 1310"):
        annual.part_1308(without.encode())
