"""``make demo`` end to end: ``python -m scheduler.demo`` in a subprocess serves the fixtures
of all three jurisdictions on 127.0.0.1, runs a baseline and a cycle with a change, and prints
where the site and the change pages are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDWATCH_")}
    return subprocess.run([sys.executable, "-m", "scheduler.demo", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)


def printed_path(stdout: str, label: str) -> Path:
    match = re.search(rf"^  {label}:\s+(\S+)", stdout, re.MULTILINE)
    assert match, f"no '{label}:' line in:\n{stdout}"
    return Path(match.group(1))


def test_make_demo_shows_a_reschedule_and_a_pending_rule(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = run_demo(data)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    # Every source of the three jurisdictions was fetched from the local server.
    for source_id in ("ca-cdsa", "ca-csr", "us-ecfr-1308", "us-federal-register",
                      "au-poisons-standard"):
        assert f"{source_id}: ok, parsed" in out
    assert re.search(r"http://127\.0\.0\.1:\d+", out)

    site = printed_path(out, "site")
    assert site == data / "site" / "index.html" and site.is_file()
    index = site.read_text(encoding="utf-8")
    for words in ("Canada", "United States", "Australia"):
        assert words in index

    rescheduled = printed_path(out, "rescheduled")
    assert rescheduled.is_file() and rescheduled.parent == data / "site" / "changes"
    page = rescheduled.read_text(encoding="utf-8")
    assert "Ketamine" in page and "rescheduled" in page.lower()
    assert re.search(r"Schedule\s+III", page) and "1308.12" in page

    pending = printed_path(out, "pending")
    assert pending.is_file()
    assert "proposed rule" in pending.read_text(encoding="utf-8").lower()

    # The configuration it used is left beside the data, for the CLI afterwards.
    assert (data / "schedwatch.toml").is_file()


def test_the_demo_runs_again_in_its_own_folder_but_never_in_someone_elses(
        tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert run_demo(data).returncode == 0
    again = run_demo(data)
    assert again.returncode == 0, again.stderr
    assert "changes:     6 in all" in again.stdout  # a fresh store, not the first one's

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me\n")
    refused = run_demo(other)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"schedwatch: demo: {other} holds files the demo did not "
                                      "make; give --data-dir a new or empty folder")
    assert (other / "notes.txt").read_text() == "keep me\n"
