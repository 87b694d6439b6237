"""The law as of a date (issue 13): dated changes held in a document take effect on their
date, even when no document changed; `status --as-of` answers the law from the evidence's
legal dates; every date says what it is. On the real Canadian documents, with the clock set
by the tests (never today's date)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from scrapers import clock
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import shared_doc
from tests.support.served import Served

CDSA_2026 = "ca/cdsa-C-38.8-en-pit2026-06-05.xml"
CSR_2026 = "ca/csr-SOR-2025-242-en-pit2026-04-17.xml"


class Clock:
    """The one clock schedwatch reads (``scrapers.clock.utcnow``), set by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moment = datetime(2026, 9, 15, 12, 0, tzinfo=UTC)
        monkeypatch.setattr(clock, "utcnow", lambda: self.moment)

    def set(self, *args: int) -> None:
        self.moment = datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def the_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def canada(tmp_path: Path, httpserver: HTTPServer, run_cli: Callable[..., CliResult]
           ) -> Iterator[Callable[..., CliResult]]:
    served = Served(httpserver)
    served.set("/eng/XML/C-38.8.xml", shared_doc(CDSA_2026))
    served.set("/eng/XML/SOR-2025-242.xml", shared_doc(CSR_2026))
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": served.url("/eng/XML/C-38.8.xml")},
        "ca-csr": {"url": served.url("/eng/XML/SOR-2025-242.xml")},
    })

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    yield cli


def _rows(cli: Callable[..., CliResult], *args: str) -> dict[tuple[str, str], dict]:
    result = cli("status", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return {(r["source_id"], r["substance"]): r for r in result.json()}


def _changes(cli: Callable[..., CliResult]) -> list[dict]:
    result = cli("changes", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_csr_takes_effect_on_its_date_without_a_new_document(canada, the_clock) -> None:
    cli = canada
    the_clock.set(2026, 9, 15, 12, 0)
    assert cli("run").exit_code == 0
    before = _rows(cli)[("ca-csr", "ketamine")]
    assert before["status"] == "not_in_force"
    assert before["in_force_since"] == "2026-10-01"
    assert before["status_label"] == "Schedule 1 (not yet in force; in force from 2026-10-01)"

    # 2026-10-02 in Toronto: the same consolidation is served again (a 304), the law moved.
    the_clock.set(2026, 10, 2, 14, 0)
    second = cli("run")
    assert second.exit_code == 0, second.stderr
    assert "not modified" in second.stdout
    after = _rows(cli)[("ca-csr", "ketamine")]
    assert after["status"] == "controlled"
    assert after["in_force_since"] == "2026-10-01"
    assert after["in_force_since_kind"] == "instrument"
    assert "239" in after["in_force_since_basis"]
    assert "point in time 2026-04-17" in after["legal_note"]
    assert after["first_observed_at"] == "2026-10-02T14:00:00+00:00"
    in_force = [c for c in _changes(cli) if c["kind"] == "in_force"]
    # One per watched substance (ketamine and the isomers it covers), none twice.
    assert sorted(c["substance"] for c in in_force) == ["arketamine", "esketamine", "ketamine"]
    in_force = [c for c in in_force if c["substance"] == "ketamine"]
    assert in_force[0]["effective_date"] == "2026-10-01"
    assert "(in force)" in in_force[0]["summary"]

    # A third run adds no second in_force change.
    the_clock.set(2026, 10, 3, 14, 0)
    assert cli("run").exit_code == 0
    assert len([c for c in _changes(cli) if c["kind"] == "in_force"]) == 3

    # The law as it was on each day.
    sept = _rows(cli, "--as-of", "2026-09-15")[("ca-csr", "ketamine")]
    octo = _rows(cli, "--as-of", "2026-10-15")[("ca-csr", "ketamine")]
    assert sept["status"] == "not_in_force" and octo["status"] == "controlled"


def test_baseline_after_the_date_states_the_law_and_its_past(canada, the_clock) -> None:
    cli = canada
    the_clock.set(2026, 12, 2, 9, 0)
    first = cli("run")
    assert first.exit_code == 0, first.stderr
    now = _rows(cli)[("ca-csr", "ketamine")]
    assert now["status"] == "controlled" and now["in_force_since"] == "2026-10-01"
    assert not [c for c in _changes(cli) if c["kind"] in ("in_force", "pending")]
    assert _rows(cli, "--as-of", "2026-09-15")[("ca-csr", "ketamine")]["status"] == \
        "not_in_force"
    assert _rows(cli, "--as-of", "2026-10-15")[("ca-csr", "ketamine")]["status"] == \
        "controlled"
    # The table says what each date is.
    table = cli("status")
    assert "In force since" in table.stdout and "First observed" in table.stdout
    assert "Since " not in table.stdout.replace("In force since", "")


def test_as_of_before_any_evidence_says_so(canada, the_clock) -> None:
    cli = canada
    the_clock.set(2026, 12, 2, 9, 0)
    assert cli("status", "--as-of", "2025-01-31").stdout.startswith("No status stored yet")
    assert cli("run").exit_code == 0
    result = cli("status", "--as-of", "2020-01-31")
    assert result.exit_code == 0
    assert result.stdout.startswith("No evidence on or before 2020-01-31; the earliest "
                                    "evidence held is of 2026-")


def test_a_consolidation_is_evidence_from_its_point_in_time(canada, the_clock) -> None:
    """The CDSA consolidation of 2026-06-05, fetched on 2026-12-02, answers for 2026-09-15."""
    cli = canada
    the_clock.set(2026, 12, 2, 9, 0)
    assert cli("run").exit_code == 0
    cdsa = _rows(cli, "--as-of", "2026-09-15")[("ca-cdsa", "ketamine")]
    assert cdsa["status"] == "controlled" and cdsa["schedule"] == "I"
    assert cdsa["evidence_date"] == "2026-06-05"
    assert cdsa["in_force_since_kind"] == "earliest_evidence"
    assert cdsa["in_force_since"] == "2026-06-05"
    # The consolidation's element date is not called "effective" or "in force from".
    labels = [label for label, _ in cdsa["dates"]]
    assert "in force from" not in labels and "effective" not in labels


def test_history_labels_legal_and_observed(canada, the_clock) -> None:
    cli = canada
    the_clock.set(2026, 12, 2, 9, 0)
    assert cli("run").exit_code == 0
    table = cli("history", "ketamine")
    assert table.exit_code == 0
    assert "Legal (in force)" in table.stdout and "Observed by schedwatch" in table.stdout
    rows = cli("history", "ketamine", "--format", "json").json()
    csr = [r for r in rows if r["source_id"] == "ca-csr"]
    assert [(r["legal_from"], r["legal_to"], r["status"]) for r in csr] == [
        ("2026-04-17", "2026-10-01", "not_in_force"), ("2026-10-01", None, "controlled")]
    assert all(r["origin"] == "observed" for r in rows)


def test_a_clock_before_the_last_run_is_refused(canada, the_clock) -> None:
    cli = canada
    the_clock.set(2026, 12, 2, 9, 0)
    assert cli("run").exit_code == 0
    the_clock.set(2026, 11, 1, 9, 0)
    result = cli("run")
    assert result.exit_code == 2
    assert "the system clock (2026-11-01T09:00:00+00:00) is before the last run" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(cli("changes", "--format", "json").json()) == 0


def test_local_day_decides_when_the_law_changes(canada, the_clock) -> None:
    """2026-10-01 03:00 UTC is still 2026-09-30 in Toronto: not yet in force there."""
    cli = canada
    the_clock.set(2026, 9, 20, 12, 0)
    assert cli("run").exit_code == 0
    the_clock.set(2026, 10, 1, 3, 0)
    assert cli("run").exit_code == 0
    assert _rows(cli)[("ca-csr", "ketamine")]["status"] == "not_in_force"
    the_clock.set(2026, 10, 1, 5, 0)
    assert cli("run").exit_code == 0
    assert _rows(cli)[("ca-csr", "ketamine")]["status"] == "controlled"


def test_status_applies_a_date_passed_since_the_last_run(canada, the_clock) -> None:
    """No run since 2026-09-15: on 2026-10-05 `status` states the law, not the stale row."""
    cli = canada
    the_clock.set(2026, 9, 15, 12, 0)
    assert cli("run").exit_code == 0
    the_clock.set(2026, 10, 5, 12, 0)
    row = _rows(cli)[("ca-csr", "ketamine")]
    assert row["status"] == "controlled"
    assert "in force per" in row["legal_note"]
    assert date.fromisoformat(row["in_force_since"]) == date(2026, 10, 1)
