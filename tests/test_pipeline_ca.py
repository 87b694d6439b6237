"""The whole pipeline on Canada's real documents, served by a real local HTTP server and
driven through the CLI: baseline, 304, the real 2019 → 2024 → 2026 history, rescheduling,
descheduling, every failure of the issue, and recovery."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support.cli import CliResult, changes
from tests.support.config import write_config
from tests.support.documents import (
    CDSA_2019,
    CDSA_2024,
    CDSA_2026,
    CSR_2026,
    ketamine_moved_to_schedule_iii,
    shared_doc,
    without_item,
)
from tests.support.served import Served


@pytest.fixture
def served(httpserver: HTTPServer) -> Served:
    return Served(httpserver)


@pytest.fixture
def ca_setup(tmp_path: Path, served: Served, run_cli: Callable[..., CliResult],
             monkeypatch: pytest.MonkeyPatch):
    """Serve the 2026 CDSA and the CSR; return (config path, served, cli). The clock reads
    2026-09-15, before the CSR came into force, and moves one minute per reading (runs
    stay in order)."""
    from datetime import UTC, datetime, timedelta

    from scrapers import clock

    ticks = iter(range(10**6))
    start = datetime(2026, 9, 15, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "utcnow", lambda: start + timedelta(minutes=next(ticks)))
    served.set("/eng/XML/C-38.8.xml", shared_doc(CDSA_2026))
    served.set("/eng/XML/SOR-2025-242.xml", shared_doc(CSR_2026))
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": served.url("/eng/XML/C-38.8.xml")},
        "ca-csr": {"url": served.url("/eng/XML/SOR-2025-242.xml")},
    }, read_timeout=1.0)

    def cli(*args: str) -> CliResult:
        return run_cli("--config", str(config), *args)

    return config, served, cli


def ketamine(cli: Callable[..., CliResult], source: str = "ca-cdsa") -> dict:
    rows = cli("status", "--format", "json").json()
    found = [r for r in rows if r["substance"] == "ketamine" and r["source_id"] == source]
    assert len(found) == 1, rows
    return found[0]


def test_baseline_then_not_modified(ca_setup) -> None:
    _, served, cli = ca_setup
    first = cli("run", "--jurisdiction", "ca")
    assert first.exit_code == 0, first.stderr
    assert "ca-cdsa: ok, parsed" in first.stdout
    record = ketamine(cli)
    assert record["schedule"] == "I"
    assert record["status"] == "controlled"
    assert "14(1)" in record["provision"]
    assert record["listed_as"].startswith("Ketamine (2-(2-chlorophenyl)")
    assert record["source_url"].endswith("/eng/XML/C-38.8.xml")
    assert len(record["document_sha256"]) == 64
    for field in ("jurisdiction", "substance", "status", "schedule", "provision", "listed_as",
                  "basis", "source_id", "source_url", "document_sha256", "retrieved_at"):
        assert field in record
    # The first run is a baseline, not a flood of "scheduled" changes.
    assert changes(cli) == []
    # Piped (not a terminal), the table is plain aligned text, one line a record.
    table = cli("status").stdout.splitlines()
    assert table[0].split()[:2] == ["Jur.", "Substance"]
    assert len([line for line in table[1:] if line.startswith("ca ")]) == 6

    second = cli("run", "--jurisdiction", "ca")
    assert second.exit_code == 0
    assert "ca-cdsa: ok, not modified" in second.stdout
    assert served.not_modified.get("/eng/XML/C-38.8.xml") == 1
    assert changes(cli) == []
    history = cli("history", "ketamine", "--format", "json").json()
    assert len([h for h in history if h["source_id"] == "ca-cdsa"]) == 1  # one interval


def test_esketamine_and_arketamine_have_their_own_records(ca_setup) -> None:
    _, _, cli = ca_setup
    assert cli("run").exit_code == 0
    rows = cli("status", "--format", "json").json()
    for name in ("esketamine", "arketamine"):
        row = next(r for r in rows if r["substance"] == name and r["source_id"] == "ca-cdsa")
        assert row["status"] == "controlled"
        assert row["schedule"] == "I"
        assert "isomer" in row["basis"].lower() or "analogue" in row["basis"].lower()


def test_real_history_2019_2024_2026_reports_no_ketamine_change(ca_setup) -> None:
    _, served, cli = ca_setup
    for version in (CDSA_2019, CDSA_2024, CDSA_2026):
        served.set("/eng/XML/C-38.8.xml", shared_doc(version))
        result = cli("run", "-j", "ca")
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "ca-cdsa: ok, parsed" in result.stdout
    assert [c for c in changes(cli) if c["source_id"] == "ca-cdsa"] == []
    history = cli("history", "ketamine", "--format", "json").json()
    assert len([h for h in history if h["source_id"] == "ca-cdsa"]) == 1
    # The evidence moved on to the newest document even though the status did not change.
    assert ketamine(cli)["document_sha256"] == hashlib.sha256(shared_doc(CDSA_2026)).hexdigest()




def test_rescheduled_to_schedule_iii(ca_setup) -> None:
    _, served, cli = ca_setup
    assert cli("run").exit_code == 0
    moved = ketamine_moved_to_schedule_iii(shared_doc(CDSA_2026))
    served.set("/eng/XML/C-38.8.xml", moved)
    result = cli("run")
    assert result.exit_code == 0, result.stdout
    found = [c for c in changes(cli) if c["substance"] == "ketamine"]
    assert [c["kind"] for c in found] == ["rescheduled"]
    assert found[0]["before"]["schedule"] == "I"
    assert found[0]["after"]["schedule"] == "III"
    assert "Ketamine — Canada: Schedule I → III (rescheduled)" in result.stdout
    assert ketamine(cli)["schedule"] == "III"
    # A change page exists for it.
    data = ca_setup[0].parent / "data"
    assert (data / "site" / "changes" / f"{found[0]['id']}.html").is_file()


PCP_ITEM = ("Phencyclidine (1-(1-phenylcyclohexyl)piperidine), its salts, derivatives and "
            "analogues and salts of derivatives and analogues, including:")


def test_descheduled_when_no_entry_covers_it_any_more(ca_setup) -> None:
    """The sub-item gone and item 14 no longer reaching analogues: descheduled, once."""
    _, served, cli = ca_setup
    assert cli("run").exit_code == 0
    gone = without_item(shared_doc(CDSA_2026), "Ketamine").decode("utf-8").replace(
        PCP_ITEM, "Phencyclidine (1-(1-phenylcyclohexyl)piperidine), its salts, including:")
    served.set("/eng/XML/C-38.8.xml", gone.encode("utf-8"))
    result = cli("run")
    assert result.exit_code == 0
    found = [c for c in changes(cli) if c["substance"] == "ketamine"]
    assert [c["kind"] for c in found] == ["descheduled"]
    assert found[0]["after"]["status"] == "not_controlled"
    # Running again does not repeat it.
    assert cli("run").exit_code == 0
    assert len([c for c in changes(cli) if c["substance"] == "ketamine"]) == 1


def test_removing_only_the_sub_item_keeps_ketamine_controlled_for_review(ca_setup) -> None:
    """Item 14 (phencyclidine, its analogues) still stands: never "descheduled"."""
    _, served, cli = ca_setup
    assert cli("run").exit_code == 0
    served.set("/eng/XML/C-38.8.xml", without_item(shared_doc(CDSA_2026), "Ketamine"))
    result = cli("run")
    assert result.exit_code == 0
    found = [c for c in changes(cli) if c["substance"] == "ketamine"]
    assert [c["kind"] for c in found] == ["amended"]
    assert "REVIEW:" in found[0]["summary"] and "REVIEW:" in result.stdout
    row = ketamine(cli)
    assert row["status"] == "controlled" and row["schedule"] == "I"
    assert "item 14" in row["basis"] and row["review"]
    assert "REVIEW:" in cli("status").stdout


HTML_ERROR = b"<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Service " \
             b"unavailable</h1><p>Maintenance.</p></body></html>"
NO_SCHEDULES = b'<?xml version="1.0" encoding="utf-8"?><Statute xmlns:lims="http://justice.gc.ca/' \
               b'lims"><Identification><ShortTitle>Controlled Drugs and Substances Act' \
               b'</ShortTitle><Chapter><ConsolidatedNumber>C-38.8</ConsolidatedNumber>' \
               b'</Chapter></Identification><Body/></Statute>'


@pytest.mark.parametrize(("name", "status", "body", "kind", "words"), [
    ("http-404", 404, b"not found", "source_failed", "404"),
    ("http-500", 500, b"oops", "source_failed", "500"),
    ("html-error-page", 200, HTML_ERROR, "extraction_failed", ""),
    ("empty-body", 200, b"", "extraction_failed", ""),
    ("malformed-xml", 200, b"<?xml version='1.0'?><Statute><Schedule>", "extraction_failed", ""),
    ("no-schedules", 200, NO_SCHEDULES, "extraction_failed", ""),
])
def test_failures_keep_the_last_healthy_status(ca_setup, name, status, body, kind,
                                               words) -> None:
    _, served, cli = ca_setup
    assert cli("run").exit_code == 0
    before = ketamine(cli)
    served.set("/eng/XML/C-38.8.xml", body, status=status,
               content_type="text/html" if body.startswith(b"<!DOCTYPE") else "application/xml")
    for _ in range(2):  # recorded once per state change, not every run
        result = cli("run")
        assert result.exit_code == 2
        lines = [line for line in result.stdout.splitlines() if line.startswith("ca-cdsa:")]
        assert len(lines) == 1 and ("FAILED" in lines[0])
        assert words in lines[0]
        assert "Traceback" not in result.stdout + result.stderr
        assert "ca-csr: ok" in result.stdout  # the other source completes
    found = changes(cli)
    assert [c["kind"] for c in found] == [kind]
    assert found[0]["substance"] is None
    after = ketamine(cli)
    assert (after["status"], after["schedule"], after["document_sha256"]) == \
        (before["status"], before["schedule"], before["document_sha256"])
    health = {s["id"]: s for s in cli("sources", "--format", "json").json()}
    assert health["ca-cdsa"]["health"] == kind
    assert health["ca-cdsa"]["failing_since"]

    # Recovery: the real document again → "recovered", no status change, exit 0.
    served.set("/eng/XML/C-38.8.xml", shared_doc(CDSA_2026))
    result = cli("run")
    assert result.exit_code == 0, result.stdout
    assert [c["kind"] for c in changes(cli)] == [kind, "recovered"]
    assert ketamine(cli)["schedule"] == "I"


def test_unreachable_host_and_timeout(ca_setup, tmp_path: Path, run_cli, httpserver) -> None:
    config, served, cli = ca_setup
    assert cli("run").exit_code == 0
    text = config.read_text()
    # A port nobody listens on: connection refused.
    closed = json.dumps("http://127.0.0.1:9/eng/XML/C-38.8.xml")
    config.write_text(text.replace(json.dumps(served.url("/eng/XML/C-38.8.xml")), closed))
    result = cli("run")
    assert result.exit_code == 2
    assert "connection refused" in result.stdout
    assert ketamine(cli)["schedule"] == "I"

    # A server that answers too slowly: read timeout (read_timeout = 1 s in the config).
    def slow(_request: Request) -> Response:
        time.sleep(2.5)
        return Response(shared_doc(CDSA_2026), content_type="application/xml")

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    config.write_text(text.replace(json.dumps(served.url("/eng/XML/C-38.8.xml")),
                                   json.dumps(httpserver.url_for("/slow.xml"))))
    result = cli("run")
    assert result.exit_code == 2
    assert "timed out" in result.stdout
    # One failing state, not two (the single-threaded test server also starves ca-csr).
    assert [c["kind"] for c in changes(cli) if c["source_id"] == "ca-cdsa"] == ["source_failed"]
    assert ketamine(cli)["schedule"] == "I"


def test_parse_command_on_a_saved_document(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "cdsa.xml"
    path.write_bytes(shared_doc(CDSA_2026))
    result = run_cli("parse", "ca-cdsa", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    records = {r["substance"]: r for r in result.json()["records"]}
    assert records["ketamine"]["schedule"] == "I"
    broken = tmp_path / "broken.xml"
    broken.write_bytes(HTML_ERROR)
    result = run_cli("parse", "ca-cdsa", str(broken))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_status_as_of_a_past_date(ca_setup) -> None:
    _, _, cli = ca_setup
    assert cli("run").exit_code == 0
    assert cli("status", "--as-of", "2000-01-01", "--format", "json").json() == []
    assert any(r["substance"] == "ketamine"
               for r in cli("status", "--as-of", "2999-01-01", "--format", "json").json())
    bad = cli("status", "--as-of", "yesterday")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.stderr
