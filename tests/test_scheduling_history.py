"""The scheduling history (issue 14): dated scheduling actions stored once each, observed or
backfilled; ``schedwatch history`` per jurisdiction (intervals with the action that started
each, then the history oldest first); the "Scheduling history" section of the history page
and the compliance reference; backfilled changes kept out of the feed and the outbox.

Data: a real SQLite store written through the real writer with constructed actions — the
1999 Federal Register documents on ketamine (FR Doc 99-8812, withdrawal, 64 FR 17298;
99-8815, proposal, 64 FR 17299; 99-17803, final rule, 64 FR 37673, effective 1999-08-12:
/work/shared/SOURCES.md §1.4) — plus constructed observed and backfilled intervals and
changes. The end-to-end test serves the constructed FR API fixture (tests/fixtures/us/
fr-1999/) on a local server and runs ``schedwatch backfill``."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jurisdictions import jurisdiction
from reports.diff import SourceOutcome
from reports.site import publish
from scheduler.config import Settings
from scheduler.writes import store_actions
from scrapers import clock
from scrapers.records import Document, ParseResult, ScheduledAction
from scrapers.store import Store, stamp
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import FIXTURES
from tests.support.site_data import PAYLOAD, make_settings, record

BACKFILL_AT = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
LIVE_AT = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FR = "us-federal-register"


def fr_action(date: str, date_kind: str, action: str, citation: str, number: str,
              title: str, effect: str | None = None) -> ScheduledAction:
    return ScheduledAction(
        jurisdiction="us", substance="ketamine", source_id=FR, date=date, date_kind=date_kind,
        action=action, title=title, citation=citation, document=f"FR Doc {number}",
        url=f"https://www.federalregister.gov/documents/{number}", effect=effect)


#: In the order the parser gives them (page order on 1999-04-09).
ACTIONS_1999 = (
    fr_action("1999-04-09", "published", "withdrawal of proposed rule", "64 FR 17298",
              "99-8812", "Schedules of Controlled Substances: Withdrawal of Proposed Rule",
              "withdrew the proposed rule 46 FR 29484 (published 1981-06-02)"),
    fr_action("1999-04-09", "published", "proposed rule", "64 FR 17299", "99-8815",
              "Proposed Placement of Ketamine Into Schedule III",
              "proposed placement in Schedule III"),
    fr_action("1999-07-13", "published", "final rule", "64 FR 37673", "99-17803",
              f"Placement of Ketamine Into Schedule III {PAYLOAD}", "placed in Schedule III"),
    fr_action("1999-08-12", "effective", "final rule takes effect", "64 FR 37673", "99-17803",
              "Placement of Ketamine Into Schedule III", "placed in Schedule III from this date"),
)


def _write_history(store: Store) -> dict[str, str]:
    """A backfill run (the 1999 actions, a US interval since 1999-08-12, a Canadian interval
    since the 2019-09-19 consolidation, a backfilled change), then a live run (an observed
    change and interval, one action seen again)."""
    fr_sha, _ = store.archive(b'{"constructed": "FR documents 1999"}')
    ca_sha, _ = store.archive(b"<constructed>CDSA 2019-09-19</constructed>")
    live_sha, _ = store.archive(b"<constructed>CDSA 2026-11-10</constructed>")
    us_record = record(FR, "ketamine", fr_sha, BACKFILL_AT, schedule="III", control_level="C3",
                       instrument="21 CFR 1308.13", provision="(c)(7)",
                       evidence_date="1999-08-12", in_force_since="1999-08-12",
                       in_force_since_kind="instrument",
                       in_force_since_basis="64 FR 37673, effective 1999-08-12")
    ca_old = record("ca-cdsa", "ketamine", ca_sha, BACKFILL_AT, evidence_date="2019-09-19",
                    in_force_since="2019-09-19", in_force_since_kind="earliest_evidence")
    ca_new = dataclasses.replace(ca_old, document_sha256=live_sha, evidence_date="2026-11-10",
                                 provision="Sch. I, item 14(2)", retrieved_at=stamp(LIVE_AT))
    with store.transaction(started_at=BACKFILL_AT, jurisdictions=["ca", "us"],
                           trigger="backfill") as writer:
        assert writer.add_actions(ACTIONS_1999, at=BACKFILL_AT, document_sha256=fr_sha,
                                  backfilled=True) == 4
        store.add_backfilled_interval(writer, us_record, at=BACKFILL_AT, legal_from="1999-08-12",
                                      legal_to=None, last_document_sha256=fr_sha, is_open=True)
        store.add_backfilled_interval(writer, ca_old, at=BACKFILL_AT, legal_from="2019-09-19",
                                      legal_to="2026-11-10", last_document_sha256=ca_sha,
                                      is_open=False)
        writer.add_change(detected_at=BACKFILL_AT, jurisdiction="us", substance="ketamine",
                          source_id=FR, kind="scheduled",
                          summary="BACKFILLED-CHANGE ketamine placed in Schedule III",
                          before=None, after=us_record.as_dict(), effective_date="1999-08-12",
                          after_sha256=fr_sha, details={"backfilled": True}, backfilled=True)
        writer.finish(finished_at=BACKFILL_AT, exit_code=0, summary={})
    with store.transaction(started_at=LIVE_AT, jurisdictions=["ca", "us"]) as writer:
        # seen again by a live run: stays backfilled (the first reading is kept)
        assert writer.add_actions(ACTIONS_1999[2:3], at=LIVE_AT, document_sha256=fr_sha) == 0
        writer.open_intervals([ca_new], at=LIVE_AT, spans=[("2026-11-10", None)])
        writer.add_change(detected_at=LIVE_AT, jurisdiction="ca", substance="ketamine",
                          source_id="ca-cdsa", kind="amended",
                          summary=f"OBSERVED-CHANGE provision renumbered {PAYLOAD}",
                          before=ca_old.as_dict(), after=ca_new.as_dict(),
                          before_sha256=ca_sha, after_sha256=live_sha)
        writer.finish(finished_at=LIVE_AT, exit_code=0, summary={})
    return {"fr": fr_sha, "ca": ca_sha, "live": live_sha}


@pytest.fixture
def world(tmp_path: Path, run_cli: Callable[..., CliResult],
          monkeypatch: pytest.MonkeyPatch) -> tuple[Store, dict[str, str], Callable[..., CliResult]]:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    store = Store(tmp_path / "data")
    shas = _write_history(store)
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={})

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    yield store, shas, cli
    store.close()


# --- the store ------------------------------------------------------------------------------

def test_actions_are_stored_once_each_with_document_and_origin(world: Any) -> None:
    store, shas, _ = world
    stored = store.actions("ketamine")
    assert [(s.action.date, s.action.citation, s.action.action) for s in stored] == [
        ("1999-04-09", "64 FR 17298", "withdrawal of proposed rule"),
        ("1999-04-09", "64 FR 17299", "proposed rule"),
        ("1999-07-13", "64 FR 37673", "final rule"),
        ("1999-08-12", "64 FR 37673", "final rule takes effect")]
    assert all(s.backfilled and s.document_sha256 == shas["fr"] for s in stored)
    assert {s.first_observed_at for s in stored} == {stamp(BACKFILL_AT)}
    with store.transaction(started_at=NOW, jurisdictions=["us"]) as writer:
        assert writer.add_actions(ACTIONS_1999, at=NOW, document_sha256=shas["fr"]) == 0
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    assert store.actions("ketamine") == stored
    assert store.actions(jurisdiction="ca") == [] and store.actions("esketamine") == []


def test_an_old_database_without_the_table_reads_none_and_gets_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.close()
    with sqlite3.connect(tmp_path / "data" / "schedwatch.db") as db:
        db.execute("DROP TABLE actions")
    reader = Store.open_for_reading(tmp_path / "data")
    assert reader.actions() == []
    reader.close()
    store = Store(tmp_path / "data")  # opened for writing: the table is created
    with store.transaction(started_at=NOW, jurisdictions=["us"]) as writer:
        assert writer.add_actions(ACTIONS_1999, at=NOW, document_sha256=None) == 4
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    assert len(store.actions("ketamine")) == 4
    store.close()


def test_the_pipeline_stores_the_actions_of_a_healthy_parsed_outcome_only(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    source = next(s for s in jurisdiction("us").SOURCES if s.id == FR)
    document = Document.of(b"{}", source_id=FR, url="https://example.invalid/",
                           retrieved_at=NOW)
    result = ParseResult(records=(), actions=ACTIONS_1999)
    good = SourceOutcome(source=source, started_at=NOW, elapsed_ms=0, outcome="fetched",
                         url=source.url, document=document, result=result)
    bad = dataclasses.replace(good, outcome="extraction_failed", error="not understood")
    with store.transaction(started_at=NOW, jurisdictions=["us"]) as writer:
        assert store_actions(writer, bad) == 0
        assert store_actions(writer, good) == 4
        assert store_actions(writer, good) == 0
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    stored = store.actions()
    assert len(stored) == 4 and not any(s.backfilled for s in stored)
    assert {s.document_sha256 for s in stored} == {document.sha256}
    store.close()


# --- schedwatch history -----------------------------------------------------------------------

def test_history_table_per_jurisdiction_oldest_first_with_origins(world: Any) -> None:
    _, shas, cli = world
    result = cli("history", "ketamine")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    us = out[out.index("Scheduling history", out.index("United States (us)")):]
    order = [us.index(text) for text in ("1999-04-09 (published)", "64 FR 17298", "64 FR 17299",
                                         "1999-07-13 (published)", "1999-08-12 (effective)")]
    assert order == sorted(order), out
    assert "FR Doc 99-17803" in us and "stated by the regulator's document" in us
    # the interval names the action that started it: the rule's effective date
    assert "final rule takes effect: 64 FR 37673, 1999-08-12 (effective)" in out
    assert f"Earliest evidence held: 1999-08-12 (latest Federal Register document published " \
           f"by then), us-federal-register, sha256 {shas['fr']}, backfilled" in out
    ca = out[out.index("Canada (ca)"):out.index("United States (us)")]
    assert "2019-09-19 (point-in-time date of the consolidation)" in ca
    assert f"sha256 {shas['ca']}, backfilled from the regulator's archive" in ca
    assert "observed by schedwatch" in ca and "OBSERVED-CHANGE" in ca


def test_history_json_has_the_started_by_and_the_scheduling_history(world: Any) -> None:
    _, shas, cli = world
    rows = cli("history", "ketamine", "--format", "json").json()
    us = next(r for r in rows if r["source_id"] == FR)
    assert us["origin"] == "backfilled"
    assert us["started_by"]["citation"] == "64 FR 37673"
    assert (us["started_by"]["date"], us["started_by"]["date_kind"]) == ("1999-08-12",
                                                                         "effective")
    history = us["scheduling_history"]
    assert [(r["date"], r["date_kind"], r["citation"], r["origin"]) for r in history["rows"]
            if r["row"] == "action"] == [
        ("1999-04-09", "published", "64 FR 17298", "stated by the regulator's document"),
        ("1999-04-09", "published", "64 FR 17299", "stated by the regulator's document"),
        ("1999-07-13", "published", "64 FR 37673", "stated by the regulator's document"),
        ("1999-08-12", "effective", "64 FR 37673", "stated by the regulator's document")]
    change = next(r for r in history["rows"] if r["row"] == "change")
    assert (change["origin"], change["date"], change["date_kind"]) == (
        "backfilled from the regulator's archive", "1999-08-12", "in force from")
    assert history["earliest_evidence"]["document_sha256"] == shas["fr"]
    ca = [r for r in rows if r["source_id"] == "ca-cdsa"]
    assert {r["origin"] for r in ca} == {"backfilled", "observed"}
    earliest = ca[0]["scheduling_history"]["earliest_evidence"]
    assert (earliest["date"], earliest["date_kind"], earliest["origin"]) == (
        "2019-09-19", "point-in-time date of the consolidation",
        "backfilled from the regulator's archive")


def test_history_of_a_name_with_nothing_stored_is_one_line_and_exit_1(world: Any) -> None:
    _, _, cli = world
    result = cli("history", "paracetamol")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "No scheduling history stored for 'paracetamol'" in result.stderr
    assert "`schedwatch run`" in result.stderr and "`schedwatch backfill`" in result.stderr
    status_line = cli("status").stdout  # the status command's own no-data line differs
    assert "No scheduling history" not in status_line


def test_status_as_of_names_the_backfilled_document_and_its_point_in_time(world: Any) -> None:
    _, shas, cli = world
    out = cli("status", "--as-of", "2021-06-01").stdout
    assert (f"ketamine (ca-cdsa): evidence of 2019-09-19 (point-in-time date of the "
            f"consolidation), sha256 {shas['ca']}, backfilled from the regulator's archive"
            ) in out
    assert "ketamine (us-federal-register): evidence of 1999-08-12" in out


# --- the site -------------------------------------------------------------------------------

def _site(store: Store, tmp_path: Path) -> tuple[Settings, Path]:
    settings = make_settings(tmp_path, site_url="https://schedwatch.example.org/")
    publish(settings, store, now=NOW)
    return settings, settings.site_path


def test_history_page_and_reference_show_the_scheduling_history(world: Any,
                                                                tmp_path: Path) -> None:
    store, shas, _ = world
    _, site = _site(store, tmp_path)
    for page in (site / "history" / "ketamine.html", site / "reference.html"):
        html = page.read_text("utf-8")
        assert html.count("Scheduling history") >= 2, page  # United States and Canada
        section = html[html.index("Scheduling history"):]
        for text in ("64 FR 17298", "FR Doc 99-8815", "1999-08-12 <small>(effective)",
                     "stated by the regulator&#39;s document",
                     "backfilled from the regulator&#39;s archive", "observed by schedwatch",
                     "Earliest evidence held: <strong>2019-09-19</strong> <small>(point-in-time "
                     "date of the consolidation)"):
            assert text in html, (page, text)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
        us = next(part for part in html.split('<section class="scheduling-history">')[1:]
                  if "FR Doc" in part)
        assert us.index("64 FR 17298") < us.index("64 FR 17299") < us.index("64 FR 37673")


def test_backfilled_changes_stay_out_of_the_feed(world: Any, tmp_path: Path) -> None:
    store, _, _ = world
    _, site = _site(store, tmp_path)
    feed = (site / "feed.atom").read_text("utf-8")
    assert "OBSERVED-CHANGE" in feed
    assert "BACKFILLED-CHANGE" not in feed
    assert store.outbox_rows() == []



def test_backfilled_changes_stay_out_of_the_weekly_report(world: Any, tmp_path: Path) -> None:
    """The backfill ran in week 2026-W44: its changes belong to 1999 and to the history
    pages, not to the report of the week it ran (nor to the latest changes on the index)."""
    store, _, _ = world
    _, site = _site(store, tmp_path)
    backfill_week = (site / "weekly" / "2026-W44.html")
    if backfill_week.exists():
        assert "BACKFILLED-CHANGE" not in backfill_week.read_text("utf-8")
    weekly_pages = "".join(p.read_text("utf-8") for p in (site / "weekly").glob("*.html"))
    assert "OBSERVED-CHANGE" in weekly_pages and "BACKFILLED-CHANGE" not in weekly_pages
    assert "BACKFILLED-CHANGE" not in (site / "index.html").read_text("utf-8")
    assert "BACKFILLED-CHANGE" in (site / "history" / "ketamine.html").read_text("utf-8")

@pytest.mark.parametrize("document", ["fr", None])
def test_history_page_is_rebuilt_when_an_action_is_added(world: Any, tmp_path: Path,
                                                         document: str | None) -> None:
    """Whether or not the action's document is archived (None: nothing else of the page
    changes with it)."""
    store, shas, _ = world
    settings, site = _site(store, tmp_path)
    page = site / "history" / "ketamine.html"
    assert "Correction" not in page.read_text("utf-8")
    correction = fr_action("1999-09-01", "published", "correction", "64 FR 47700", "99-22000",
                           "Correction to Placement of Ketamine")
    with store.transaction(started_at=NOW, jurisdictions=["us"]) as writer:
        writer.add_actions([correction], at=NOW,
                           document_sha256=shas[document] if document else None)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    publish(settings, store, now=NOW)
    assert "Correction to Placement of Ketamine" in page.read_text("utf-8")
    # The reference's block of the substance shows it too (not copied from the last one).
    assert "Correction to Placement of Ketamine" in (site / "reference.html").read_text("utf-8")


def test_history_page_links_the_earliest_evidence_once_its_document_is_archived(
        world: Any, tmp_path: Path) -> None:
    """A period's own document (its earliest evidence) that is not the one that last
    confirmed it: the history page links it once the site holds a copy, and not before."""
    store, shas, _ = world
    early_sha, _ = store.archive(b"<constructed>CDSA 2010-01-01</constructed>")
    early = record("ca-cdsa", "ketamine", early_sha, BACKFILL_AT, evidence_date="2010-01-01",
                   in_force_since="2010-01-01", in_force_since_kind="earliest_evidence")
    with store.transaction(started_at=NOW, jurisdictions=["ca"], trigger="backfill") as writer:
        store.add_backfilled_interval(writer, early, at=NOW, legal_from="2010-01-01",
                                      legal_to="2019-09-19", last_document_sha256=shas["ca"],
                                      is_open=False)
        writer.finish(finished_at=NOW, exit_code=0, summary={})
    archived = store.document_path(early_sha)
    assert archived is not None
    kept = archived.read_bytes()
    archived.unlink()  # not archived (yet): cited by its sha256 only
    settings, site = _site(store, tmp_path)
    page = site / "history" / "ketamine.html"
    assert early_sha in page.read_text("utf-8")
    assert f"documents/{early_sha}" not in page.read_text("utf-8")
    assert f"documents/{early_sha}" not in (site / "reference.html").read_text("utf-8")
    archived.write_bytes(kept)
    publish(settings, store, now=NOW)
    assert f"documents/{early_sha}" in page.read_text("utf-8")
    # The reference's block of the substance in Canada links it too.
    assert f"documents/{early_sha}" in (site / "reference.html").read_text("utf-8")


# --- schedwatch backfill -j us, end to end ----------------------------------------------------

FR_1999 = FIXTURES / "us" / "fr-1999"


def _serve_fr(server: HTTPServer) -> None:
    """The constructed FR API fixture: the Part 1308 query in two pages and the term query."""
    bodies = {name: (FR_1999 / f"{name}.json").read_bytes()
              for name in ("part1308-page1", "part1308-page2", "term-ketamine")}

    def first(request: Request) -> Response:
        name = "term-ketamine" if request.args.get("conditions[term]") else "part1308-page1"
        return Response(bodies[name], content_type="application/json")

    server.expect_request("/robots.txt").respond_with_data("", status=404)
    server.expect_request("/api/v1/documents.json").respond_with_handler(first)
    server.expect_request("/api/v1/documents").respond_with_data(
        bodies["part1308-page2"], content_type="application/json")


def test_backfill_stores_the_1999_actions_once_marked_backfilled(
        tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    _serve_fr(httpserver)
    data = tmp_path / "data"
    config = write_config(tmp_path / "schedwatch.toml", data_dir=data,
                          sources={FR: {"url": httpserver.url_for("").rstrip("/")}})
    first = run_cli("--config", str(config), "backfill", "-j", "us")
    assert first.exit_code == 0, first.stderr + first.stdout
    assert "dated scheduling action" in first.stdout
    with sqlite3.connect(data / "schedwatch.db") as db:
        rows = db.execute("select date, date_kind, citation, backfilled, document_sha256 "
                          "from actions where substance = 'ketamine' "
                          "order by date, id").fetchall()
        before = db.execute("select count(*) from actions").fetchone()[0]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("1999-04-09", "published", "64 FR 17298"), ("1999-04-09", "published", "64 FR 17299"),
        ("1999-07-13", "published", "64 FR 37673"), ("1999-08-12", "effective", "64 FR 37673")]
    assert all(r[3] == 1 and r[4] for r in rows)
    again = run_cli("--config", str(config), "backfill", "-j", "us")
    assert again.exit_code == 0 and "dated scheduling action" not in again.stdout
    with sqlite3.connect(data / "schedwatch.db") as db:
        assert db.execute("select count(*) from actions").fetchone()[0] == before
    out = run_cli("--config", str(config), "history", "ketamine").stdout
    assert "64 FR 37673" in out and "1999-08-12 (effective)" in out


def test_a_change_row_cites_a_us_provision_once_as_the_matrix_does() -> None:
    from reports.scheduling_history import change_row
    from scrapers.store import StoredChange

    after = record("us-ecfr-1308", "ketamine", "c" * 64, BACKFILL_AT, jurisdiction="us",
                   instrument="21 CFR 1308.13", provision="21 CFR 1308.13(c)(7)",
                   evidence_date="2021-03-01").as_dict()
    change = StoredChange(id=5, run_id=1, detected_at="2026-11-01T06:00:00+00:00",
                          jurisdiction="us", substance="ketamine", source_id="us-ecfr-1308",
                          kind="amended", summary="s", before=None, after=after,
                          effective_date=None, before_sha256=None, after_sha256=None,
                          details={})
    assert change_row(change)["citation"] == "21 CFR 1308.13(c)(7)"
