"""A warm run that finds nothing changed parses nothing and never imports pandas; the
flip-flop rule keeps an alternating source from alerting on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.support.cli import changes
from tests.support.config import write_config
from tests.support.documents import CDSA_2026, CSR_2026, ROOT, shared_doc
from tests.support.served import Served

PROBE = """
import atexit, sys
def report():
    print("PANDAS-IMPORTED" if "pandas" in sys.modules else "PANDAS-NOT-IMPORTED")
    print("LXML-IMPORTED" if "lxml.etree" in sys.modules else "LXML-NOT-IMPORTED")
atexit.register(report)
from scheduler.cli import main
main()
"""


def run_subprocess(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, "--config", str(config), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_warm_run_does_not_parse_or_import_pandas(tmp_path: Path, httpserver: HTTPServer) -> None:
    served = Served(httpserver)
    served.set("/cdsa.xml", shared_doc(CDSA_2026))
    served.set("/csr.xml", shared_doc(CSR_2026))
    config = write_config(tmp_path / "c.toml", data_dir=tmp_path / "data", sources={
        "ca-cdsa": {"url": served.url("/cdsa.xml")}, "ca-csr": {"url": served.url("/csr.xml")}})
    cold = run_subprocess(config, "run", "-j", "ca")
    assert cold.returncode == 0, cold.stderr
    warm = run_subprocess(config, "run", "-j", "ca")
    assert warm.returncode == 0, warm.stderr
    assert "not modified" in warm.stdout
    assert "PANDAS-NOT-IMPORTED" in warm.stdout
    assert "parsed" not in warm.stdout  # no parser ran
    assert "LXML-NOT-IMPORTED" in warm.stdout  # nor was a parser library even loaded


def test_flip_flop_alerts_once_each_way_then_goes_quiet(tmp_path: Path, httpserver: HTTPServer,
                                                        run_cli) -> None:
    from tests.support.documents import insert_into_schedule, without_item

    served = Served(httpserver)
    original = shared_doc(CDSA_2026)
    moved = insert_into_schedule(without_item(original, "Ketamine"), "SCHEDULE III",
                                 "<Item><Label>99</Label><Text>Ketamine (2-(2-chlorophenyl)-2-"
                                 "(methylamino)cyclohexanone)</Text></Item>")
    served.set("/cdsa.xml", original)
    config = write_config(tmp_path / "c.toml", data_dir=tmp_path / "data",
                          sources={"ca-cdsa": {"url": served.url("/cdsa.xml")}},
                          extra='[email]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n'
                                '[[email.recipients]]\naddress = "officer@example.org"\n')

    def cli(*args: str):
        return run_cli("--config", str(config), *args)

    assert cli("run").exit_code == 0
    for version in (moved, original, moved, original, moved, original):
        served.set("/cdsa.xml", version)
        assert cli("run").exit_code == 0
    found = [c for c in changes(cli) if c["substance"] == "ketamine"]
    assert [c["kind"] for c in found] == ["rescheduled"] * 6  # every flip is on record
    flagged = ["flip-flop" in c["summary"] for c in found]
    assert flagged == [False, False, True, True, True, True]
    from scrapers.store import Store

    store = Store(tmp_path / "data")
    alerted = {int(cid) for row in store.outbox_rows() for cid in
               __import__("json").loads(row["change_ids"])}
    everything = changes(cli)
    assert alerted == {c["id"] for c in everything if "flip-flop" not in c["summary"]}
    assert len(alerted) == 2 * 3  # first change and first revert of each watched substance
