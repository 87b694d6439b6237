"""All three jurisdictions end to end through the CLI against one local HTTP server: the US
(eCFR Part 1308 and the Federal Register) and Australia (the Poisons Standard) beside Canada,
their changes classified, their pages published."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.faults import harness as h
from tests.support.cli import CliResult
from tests.support.documents import FIXTURES


class ReplacedStandard(h.PoisonsStandardScenario):
    """The register can also answer with a wholesale replacement (October 2026, a new
    register id) whose Schedule 8 entries are unchanged."""

    october = False

    def route(self, path, args, headers):
        if self.october:
            if path == h.AU_TITLES:
                return h.json_reply(h.fixture("au/api-titles-october.json"))
            if path == h.AU_VERSIONS:
                return h.json_reply(h.fixture("au/api-versions-october.json"))
            if path == "/F2026L01302/asmade/2026-09-25/text/original/word":
                return h.Reply(200, h.fixture("au/poisons-standard-october-2026.docx"),
                               {"Content-Type": "application/octet-stream"})
        return super().route(path, args, headers)


class World:
    """Every source served healthy on one server; the CLI pointed at it."""

    def __init__(self, httpserver: HTTPServer, tmp: Path,
                 run_cli: Callable[..., CliResult]) -> None:
        self.scenarios: dict[str, Any] = {sid: h.make_scenario(sid) for sid in h.SOURCE_IDS}
        self.scenarios["au-poisons-standard"] = ReplacedStandard()
        router = h.Router(list(self.scenarios.values()))
        router.install(httpserver)
        base = httpserver.url_for("/").rstrip("/")
        self.data = tmp / "data"
        self.config = h.write_config(tmp / "schedwatch.toml", data_dir=self.data, sources={
            sid: scenario.endpoints(base) for sid, scenario in self.scenarios.items()},
            email=False)
        self.run_cli = run_cli

    def cli(self, *args: str) -> CliResult:
        return self.run_cli("--config", str(self.config), *args)

    def run(self, *args: str) -> CliResult:
        result = self.cli("run", *args)
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def status(self) -> list[dict[str, Any]]:
        return self.cli("status", "--format", "json").json()

    def record(self, source_id: str, substance: str = "ketamine") -> dict[str, Any]:
        [row] = [r for r in self.status()
                 if r["source_id"] == source_id and r["substance"] == substance]
        return row

    def changes(self, **match: str) -> list[dict[str, Any]]:
        return [c for c in self.cli("changes", "--format", "json").json()
                if all(c[k] == v for k, v in match.items())]


@pytest.fixture
def world(httpserver: HTTPServer, tmp_path: Path, run_cli) -> World:
    return World(httpserver, tmp_path, run_cli)


def test_all_three_jurisdictions_side_by_side(world: World) -> None:
    result = world.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    for source_id in h.SOURCE_IDS:
        assert f"{source_id}: ok, parsed" in result.stdout
    us = world.record("us-ecfr-1308")
    assert (us["schedule"], us["code"], us["status"]) == ("III", "7285", "controlled")
    assert "1308.13(c)(7)" in us["provision"]
    assert "Depressants" in (us["parent_entry"] or "")
    esketamine = world.record("us-ecfr-1308", "esketamine")
    assert esketamine["schedule"] == "III" and "isomer" in esketamine["basis"]
    au = world.record("au-poisons-standard")
    assert (au["schedule"], au["instrument"]) == ("8", "F2026L00633")
    assert world.record("au-poisons-standard", "esketamine")["schedule"] == "8"
    assert world.record("au-poisons-standard", "arketamine")["status"] == "not_controlled"
    fr = world.record("us-federal-register")
    assert (fr["instrument"], fr["in_force_since"]) == ("64 FR 37673", "1999-08-12")
    assert fr["in_force_since_kind"] == "instrument"
    assert fr["in_force_since_basis"] == "64 FR 37673, effective 1999-08-12"
    # The eCFR does not cite the rule: the Federal Register's date is carried over.
    ecfr = world.record("us-ecfr-1308")
    assert (ecfr["in_force_since"], ecfr["in_force_since_kind"]) == ("1999-08-12", "instrument")
    assert world.record("ca-cdsa")["schedule"] == "I"
    assert world.changes() == []  # a baseline

    # The published matrix shows every jurisdiction's cell.
    index = (world.data / "site" / "index.html").read_text(encoding="utf-8")
    for words in ("Canada", "United States", "Australia", "1308.13(c)(7)", "item 14(1)"):
        assert words in index


def test_us_reschedule_and_a_proposed_rule(world: World) -> None:
    assert world.run().exit_code == 0
    world.scenarios["us-ecfr-1308"].second_version(True)  # ketamine into Schedule II
    world.scenarios["us-federal-register"].pending_version(True)  # a proposal appears
    result = world.run("-j", "us")
    assert result.exit_code == 0, result.stdout
    [moved] = world.changes(source_id="us-ecfr-1308", substance="ketamine")
    assert moved["kind"] == "rescheduled"
    assert (moved["before"]["schedule"], moved["after"]["schedule"]) == ("III", "II")
    assert "Ketamine — United States: Schedule III → II (rescheduled)" in result.stdout
    pending = world.changes(source_id="us-federal-register", substance="ketamine")
    assert [c["kind"] for c in pending] == ["pending"]
    assert pending[0]["after"]["action"] == "proposed_rule"
    assert pending[0]["after"]["date_label"] == "comment deadline"
    assert pending[0]["effective_date"] == pending[0]["after"]["date"]
    page = world.data / "site" / "changes" / f"{moved['id']}.html"
    assert "1308.1" in page.read_text(encoding="utf-8")
    # Canada, not run this time, is untouched and still shown.
    assert world.record("ca-cdsa")["schedule"] == "I"


def test_australia_replacement_instrument_is_amended_not_rescheduled(world: World) -> None:
    assert world.run("-j", "au").exit_code == 0
    world.scenarios["au-poisons-standard"].october = True
    result = world.run("-j", "au")
    assert result.exit_code == 0, result.stdout
    found = world.changes(source_id="au-poisons-standard", substance="ketamine")
    assert [c["kind"] for c in found] == ["amended"]
    assert (found[0]["before"]["instrument"], found[0]["after"]["instrument"]) == \
        ("F2026L00633", "F2026L01302")
    assert found[0]["after"]["schedule"] == "8"
    assert world.record("au-poisons-standard")["instrument"] == "F2026L01302"


def test_australia_move_to_schedule_9(world: World) -> None:
    assert world.run("-j", "au").exit_code == 0
    world.scenarios["au-poisons-standard"].second_version(True)
    assert world.run("-j", "au").exit_code == 0
    [moved] = world.changes(source_id="au-poisons-standard", substance="ketamine")
    assert moved["kind"] == "rescheduled"
    assert (moved["before"]["schedule"], moved["after"]["schedule"]) == ("8", "9")


def test_parse_commands_print_the_us_and_au_status(run_cli) -> None:
    us = run_cli("parse", "us-ecfr-1308", str(FIXTURES / "us" / "ecfr-part1308.xml"),
                 "--format", "json")
    assert us.exit_code == 0, us.stderr
    ketamine = next(r for r in us.json()["records"] if r["substance"] == "ketamine")
    assert ketamine["schedule"] == "III" and ketamine["code"] == "7285"
    assert "1308.13(c)(7)" in ketamine["provision"]
    au = run_cli("parse", "au-poisons-standard",
                 str(FIXTURES / "au" / "poisons-standard-june-2026.docx"), "--format", "json")
    assert au.exit_code == 0, au.stderr
    records = {r["substance"]: r for r in au.json()["records"]}
    assert records["ketamine"]["schedule"] == records["esketamine"]["schedule"] == "8"


def test_watch_all_matches_substances_across_jurisdictions(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import scheduler.cli

    monkeypatch.setattr(scheduler.cli, "RICH_ROWS", 50)  # the fixtures are small
    text = world.config.read_text()
    world.config.write_text('watch = "all"\n' + text)
    result = world.run()
    assert result.exit_code == 0, result.stdout
    rows = world.status()
    by_key: dict[str, set[str]] = {}
    for row in rows:
        if row["status"] == "controlled":
            by_key.setdefault(row["substance"], set()).add(row["jurisdiction"])
    assert by_key["ketamine"] == {"ca", "us", "au"}
    # LYSERGIDE and PSILOCYBINE (Australia's names) are the US's Lysergic acid diethylamide
    # and Psilocybin: one key each.
    assert {"us", "au"} <= by_key.get("lysergic acid diethylamide", set()), sorted(by_key)
    assert {"us", "au"} <= by_key.get("psilocybin", set())
    assert len(rows) > 100
    # Thousands of rows print as plain aligned text, one line per record.
    table = world.cli("status")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["Jur.", "Substance"]
    records = [line for line in lines[1:] if line[:3] in ("ca ", "us ", "au ")]
    assert len(records) == len(rows)
    index = (world.data / "site" / "index.html").read_text(encoding="utf-8")
    assert "unmatched" in index and 'id="filter"' in index
    assert json.loads((world.data / "site" / "status.json").read_text())


def test_a_replaced_standard_with_watch_all_is_one_amendment_not_thousands(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text('watch = "all"\n' + text)
    assert world.run("-j", "au").exit_code == 0
    entries = [r for r in world.status() if r["source_id"] == "au-poisons-standard"]
    world.scenarios["au-poisons-standard"].october = True
    result = world.run("-j", "au")
    assert result.exit_code == 0, result.stdout
    found = world.changes(source_id="au-poisons-standard")
    watched = [c for c in found if c["substance"] is not None]
    bulk = [c for c in found if c["substance"] is None]
    # The watched substances keep a change each; every other entry is in one change.
    assert sorted(c["substance"] for c in watched) == ["arketamine", "esketamine", "ketamine"]
    assert {c["kind"] for c in watched} == {"amended"}
    assert len(bulk) == 1 and bulk[0]["kind"] == "amended"
    assert f"for {len(entries) - 3} other entries" in bulk[0]["summary"]
    # Every entry now names the new instrument, without a new interval for the bulk.
    after = [r for r in world.status() if r["source_id"] == "au-poisons-standard"]
    assert {r["instrument"] for r in after if r["status"] == "controlled"} == {"F2026L01302"}
    history = world.cli("history", "paracetamol", "--format", "json").json()
    assert len(history) == 1 and history[0]["instrument"] == "F2026L01302"
