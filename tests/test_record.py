"""`schedwatch record`: a live fetch saved as fixtures, every response with its status and
headers, under file names that are counters (never parts of a URL)."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.faults import harness as h


def test_record_saves_every_response_and_the_document(httpserver: HTTPServer, tmp_path: Path,
                                                      run_cli) -> None:
    scenarios = [h.make_scenario("us-ecfr-1308"), h.make_scenario("ca-cdsa")]
    h.Router(scenarios).install(httpserver)
    base = httpserver.url_for("/").rstrip("/")
    config = h.write_config(tmp_path / "c.toml", data_dir=tmp_path / "data", email=False,
                            sources={s.source_id: s.endpoints(base) for s in scenarios})
    out = tmp_path / "recorded"
    result = run_cli("--config", str(config), "record", "us-ecfr-1308", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    folder = out / "us-ecfr-1308"
    names = sorted(p.name for p in folder.iterdir())
    # titles.json, the part, the versions: three responses, then the document itself.
    assert names == ["01.body", "01.json", "02.body", "02.json", "03.body", "03.json",
                     "document.bin", "document.json"]
    first = json.loads((folder / "01.json").read_text())
    assert first["status"] == 200 and first["url"].endswith("/api/versioner/v1/titles.json")
    assert "Content-Type" in first["headers"]
    assert (folder / "document.bin").read_bytes() == h.fixture("us/ecfr-part1308.xml")
    assert "document saved" in result.stdout
    # A recorded document parses like the live one.
    parsed = run_cli("parse", "us-ecfr-1308", str(folder / "document.bin"), "--format", "json")
    assert parsed.exit_code == 0 and "7285" in parsed.stdout

    result = run_cli("--config", str(config), "record", "ca-cdsa", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    canada = scenarios[1]
    assert isinstance(canada, h.CanadaScenario)
    assert (out / "ca-cdsa" / "document.bin").read_bytes() == canada.document


def test_record_unknown_source(run_cli) -> None:
    result = run_cli("record", "nope")
    assert result.exit_code == 2 and "unknown source 'nope'" in result.stderr
