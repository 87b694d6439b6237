"""Benchmark: `schedwatch backfill` over ten years of US eCFR versions and twenty Poisons
Standards (issue 14), served on 127.0.0.1.

* United States: a versions list with 40 dates from 2017-01-03 (four a year for ten years)
  for §§ 1308.11–1308.15, and Part 1308 at each date — the synthetic realistic-size Part
  (bench/synthetic.py, 686 entries), each version with its own bytes.
* The Federal Register: the synthetic realistic list (bench/synthetic.py, about 650 DEA
  documents on Part 1308 since 1994), one version per publication and effective date.
* Australia: a register API listing twenty Poisons Standards (2017 onwards, one every six
  months) and their as-made Word originals, built with the project's constructed Word
  builder (tests/fixtures/au/make_fixtures.py: fixture-size Standards, not 4,278 entries).

Each case runs the real command twice in a fresh data folder: the first backfill (wall, CPU,
peak memory, size of the data folder and of the archived documents), then a second one
(idempotent: it must add nothing).

    .venv/bin/python bench/bench_backfill.py
    .venv/bin/python bench/bench_backfill.py --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    FIXTURES,
    ROOT,
    DocumentServer,
    check,
    emit_json,
    federal_register_route,
    measure,
    schedwatch,
    split_query,
)
from synthetic import ecfr_part_1308, federal_register_pages  # noqa: E402

SCHEDULE_SECTIONS = ("1308.11", "1308.12", "1308.13", "1308.14", "1308.15")
XML, JSON, WORD = ("application/xml", "application/json",
                   "application/vnd.openxmlformats-officedocument.wordprocessingml.document")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


# --- United States --------------------------------------------------------------------------

def us_dates() -> list[str]:
    return [f"{year}-{month:02d}-{'03' if year == 2017 and month == 1 else '15'}"
            for year in range(2017, 2027) for month in (1, 4, 7, 10)]


def us_server(dates: list[str]) -> DocumentServer:
    part, _ = ecfr_part_1308()
    text = part.decode("utf-8")
    marker = "</DIV5>"
    assert marker in text, "the synthetic Part 1308 has no DIV5 end"
    versions = {"content_versions": [
        {"date": day, "amendment_date": day, "issue_date": day, "identifier": section,
         "name": f"§ {section}", "part": "1308", "substantive": True, "removed": False,
         "subpart": None, "title": "21", "type": "section"}
        for day in dates for section in SCHEDULE_SECTIONS],
        "meta": {"title": "21", "result_count": str(len(dates) * 5), "page": "1",
                 "per_page": "1000", "total_pages": "1",
                 "latest_amendment_date": dates[-1], "latest_issue_date": dates[-1]}}
    titles = (FIXTURES / "us" / "ecfr-titles.json").read_bytes()
    body = {day: text.replace(marker, f'<P>[Version of {day}.]</P>{marker}', 1).encode()
            for day in dates}

    def route(path: str, headers: Any) -> tuple[int, bytes, str] | None:
        plain, query = split_query(path)
        if plain == "/api/versioner/v1/titles.json":
            return 200, titles, JSON
        if plain == "/api/versioner/v1/versions/title-21.json":
            return 200, json.dumps(versions).encode(), JSON
        if plain.startswith("/api/versioner/v1/full/") and query.get("part") == ["1308"]:
            day = plain.split("/")[5]
            return (200, body[day], XML) if day in body else (404, b"", "text/plain")
        return None

    return DocumentServer(routes=[route])


# --- Australia ------------------------------------------------------------------------------

def _builder() -> Any:
    spec = importlib.util.spec_from_file_location("make_fixtures",
                                                  FIXTURES / "au" / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def au_server(count: int) -> DocumentServer:
    built = _builder()
    standards = []
    for index in range(count):
        year, month = 2017 + index // 2, (2 if index % 2 == 0 else 8)
        commences = date(year, month, 1)
        ident = f"F{year}L{index + 10:05d}"
        name = f"Poisons Standard {commences:%B %Y}"
        stated = f"1 {commences:%B %Y}"
        # One re-issue in the middle lists ketamine in Schedule 9 (hypothetical), once.
        schedule = "9" if index >= count - 4 else "8"
        word = built.build_docx(built.cover(name, stated) + built.schedules(schedule))
        registered = f"{year}-{month - 1 if month > 1 else 1:02d}-20T00:00:00Z"
        standards.append((ident, name, commences, registered, word))
    titles = built.titles_payload([built.title(i, n, "InForce" if k == count - 1 else
                                               "Repealed", f"{c:%Y-%m}-01T00:00:00")
                                   for k, (i, n, c, _, _) in enumerate(standards)])
    words = {f"/{i}/asmade/{r[:10]}/text/original/word": w for i, _, _, r, w in standards}

    def route(path: str, headers: Any) -> tuple[int, bytes, str] | None:
        plain, query = split_query(path)
        if plain == "/v1/titles":
            skip = int((query.get("$skip") or ["0"])[0])
            top = int((query.get("$top") or ["50"])[0])
            page = dict(titles, value=titles["value"][skip:skip + top])
            return 200, json.dumps(page).encode(), JSON
        if plain == "/v1/versions":
            title_id = (query.get("$filter") or [""])[0].split("'")[1]
            found = next(s for s in standards if s[0] == title_id)
            payload = built.versions_payload(found[0], f"{found[2]}T00:00:00", found[3])
            return 200, json.dumps(payload).encode(), JSON
        if plain in words:
            return 200, words[plain], WORD
        return None

    return DocumentServer(routes=[route])


# --- the runs -------------------------------------------------------------------------------

def config(data_dir: Path, sources: dict[str, dict[str, str]]) -> str:
    lines = [f'data_dir = "{data_dir}"', 'contact = "bench@example.org"', "[fetch]",
             "request_interval = 0", "max_retries = 0"]
    for source_id in ("ca-cdsa", "ca-csr", "us-ecfr-1308", "us-federal-register",
                      "au-poisons-standard"):
        lines.append(f"[sources.{source_id}]")
        endpoints = sources.get(source_id)
        lines += [f'{k} = "{v}"' for k, v in endpoints.items()] if endpoints else \
            ["enabled = false"]
    return "\n".join(lines) + "\n"


def case(label: str, code: str, server: DocumentServer, sources: dict[str, dict[str, str]],
         work: Path) -> list[dict[str, object]]:
    work.mkdir(parents=True)
    with server:
        path = work / "schedwatch.toml"
        path.write_text(config(work / "data", {k: {e: v.format(base=server.base)
                                                   for e, v in ends.items()}
                                               for k, ends in sources.items()}))
        command = schedwatch("--config", str(path), "backfill", "-j", code)
        first = check(measure(command, cwd=ROOT), f"backfill -j {code}")
        second = check(measure(command, cwd=ROOT), f"second backfill -j {code}")
    line = next((x for x in first.output.splitlines() if "versions read" in x
                 or "version read" in x), first.output.strip()[:200])
    again = next((x for x in second.output.splitlines() if "read" in x), "")
    return [
        {"case": f"{label}: first backfill", "wall_s": round(first.wall, 2),
         "cpu_s": round(first.cpu, 2), "peak_mb": round(first.peak_mb),
         "data_mb": round(folder_mb(work / "data"), 1),
         "documents_mb": round(folder_mb(work / "data" / "documents"), 1), "line": line},
        {"case": f"{label}: second backfill (adds nothing)", "wall_s": round(second.wall, 2),
         "cpu_s": round(second.cpu, 2), "peak_mb": round(second.peak_mb), "data_mb": "",
         "documents_mb": "", "line": again},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--standards", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1,
                        help="accepted for bench/run_all.py; a backfill is measured once "
                             "(first) and once more (the second adds nothing)")
    parser.add_argument("--json")
    args = parser.parse_args()
    dates = us_dates()
    with tempfile.TemporaryDirectory(prefix="schedwatch-bench-backfill-") as work:
        rows = case(f"US, {len(dates)} eCFR versions 2017–2026 (686-entry Part 1308)", "us",
                    us_server(dates), {"us-ecfr-1308": {"url": "{base}"}},
                    Path(work) / "us")
        pages, term, counts = federal_register_pages()
        rows += case(f"US Federal Register, {counts.get('fr_documents', 'synthetic')} "
                     "documents", "us", DocumentServer(routes=[federal_register_route(
                         {"cfr": pages, "term": term})]),
                     {"us-federal-register": {"url": "{base}"}}, Path(work) / "fr")
        rows += case(f"AU, {args.standards} Poisons Standards (fixture size)", "au",
                     au_server(args.standards),
                     {"au-poisons-standard": {"url": "{base}/v1", "register_url": "{base}"}},
                     Path(work) / "au")
    for row in rows:
        print(f"{row['case']:<62} {row['wall_s']:>6} s  cpu {row['cpu_s']:>5} s  "
              f"{row['peak_mb']:>4} MB  data {row['data_mb']} MB "
              f"(documents {row['documents_mb']} MB)\n    {row['line']}")
    emit_json(args.json, [{"benchmark": "bench_backfill.py", **row} for row in rows])


if __name__ == "__main__":
    main()
