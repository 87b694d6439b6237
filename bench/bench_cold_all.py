"""Benchmark: a cold `schedwatch run` with ``watch = "all"`` (empty data folder): fetch, parse,
normalise, diff, store and render every entry of every schedule of the five sources, the
site published after the run by ``reports.site.publish``.

Two corpora, served on 127.0.0.1 (bench/common.py): ``realistic`` — the real Canadian
documents plus synthetic realistic-size US and AU documents (bench/synthetic.py: a 4,278-entry
Poisons Standard, a ~690-entry Part 1308, ~650 Federal Register documents) — the honest
figure; and ``fixtures`` — the constructed test fixtures for US and AU (a few dozen entries).
Best of N cold runs (wall, CPU, peak RSS of the process); then one more run in-process
(bench/phases.py) to say where the time goes.

    .venv/bin/python bench/bench_cold_all.py
    .venv/bin/python bench/bench_cold_all.py --corpus realistic --runs 3 --no-phases
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PYTHON,
    ROOT,
    Corpus,
    Regulators,
    best_of,
    check,
    child_environment,
    emit_json,
    measure,
    schedwatch,
    settle,
    verdict,
)

TARGET_SECONDS = 2.0
TARGET_MB = 250.0


def site_publisher() -> str | None:
    """None when reports.site.publish exists; else what is missing."""
    sys.path.insert(0, str(ROOT))
    try:
        from reports import site
    except ImportError as error:
        return f"reports.site cannot be imported ({error})"
    return None if hasattr(site, "publish") else "reports.site has no publish()"


def counts(data: Path, site: Path) -> dict[str, object]:
    with sqlite3.connect(data / "schedwatch.db") as db:
        per_source = dict(db.execute(
            "SELECT source_id, count(*) FROM status WHERE valid_to IS NULL GROUP BY source_id"))
        pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
    files = [p for p in site.rglob("*") if p.is_file()] if site.is_dir() else []
    return {"records": per_source, "records_total": sum(per_source.values()),
            "pending": pending, "site_files": len(files),
            "site_mb": sum(p.stat().st_size for p in files) / 1e6,
            "db_mb": (data / "schedwatch.db").stat().st_size / 1e6}


def cold_case(corpus: Corpus, runs: int, work: Path, phases: bool) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    data, site = work / "data", work / "site"
    with Regulators(corpus) as regulators:
        config = work / "schedwatch.toml"
        config.write_text(regulators.config(data, watch="all", site_dir=site))
        command = schedwatch("--config", str(config), "run")

        def cold():
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(site, ignore_errors=True)
            return check(measure(command, cwd=ROOT), "cold schedwatch run")

        result = best_of(runs, cold)
        parsed = {m.group(1): int(m.group(2)) for m in re.finditer(
            r"^(\S+): ok, parsed (\d+) records", result.output, re.MULTILINE)}
        if len(parsed) != 5:
            sys.exit(f"not every source was parsed:\n{result.output}")
        found = counts(data, site)
        breakdown = None
        if phases:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(site, ignore_errors=True)
            import subprocess

            out = subprocess.run([PYTHON, str(Path(__file__).parent / "phases.py"), str(config)],
                                 capture_output=True, text=True, cwd=ROOT,
                                 env=child_environment(), check=True)
            breakdown = json.loads(out.stdout.strip().splitlines()[-1])
    return {"result": result, "parsed": parsed, "counts": found, "phases": breakdown}


def print_phases(label: str, breakdown: dict) -> None:
    print(f"\nWhere the time goes ({label}; one in-process run, wall s, peak MB after):")
    print(f"  {'imports':46} {breakdown['imports']:7.3f}")
    for name, entry in breakdown["phases"].items():
        indent = "    " if name.startswith("publish:") else "  "
        print(f"{indent}{name:{48 - len(indent)}} {entry['seconds']:7.3f}  "
              f"{entry['peak_mb']:6.0f} MB  ({int(entry['calls'])} calls)")
    print(f"  {'run() total':46} {breakdown['run']:7.3f}  {breakdown['peak_mb']:6.0f} MB")


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", choices=("fixtures", "realistic", "both"), default="both")
    parser.add_argument("--no-phases", dest="phases", action="store_false")
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    missing = site_publisher()
    cases: list[tuple[str, Corpus]] = []
    if args.corpus in ("realistic", "both"):
        from synthetic import realistic_corpus

        cases.append(("realistic sizes", realistic_corpus()))
    if args.corpus in ("fixtures", "both"):
        cases.append(("fixtures", Corpus.fixtures()))
    work = Path(tempfile.mkdtemp(prefix="schedwatch-cold-"))
    load = settle()
    results = []
    for index, (label, corpus) in enumerate(cases):
        print(f"… {label}", flush=True)
        results.append((label, corpus, cold_case(corpus, args.runs, work / str(index),
                                                 args.phases)))

    rows = []
    print(f"\nCold cycle, watch = \"all\", 5 sources, site published (best of {args.runs})")
    print(f"{'corpus':18} {'wall s':>8} {'CPU s':>7} {'peak MB':>8} {'records':>8} "
          f"{'site files':>10} {'site MB':>8} {'db MB':>6}  target")
    for label, _corpus, r in results:
        m, c = r["result"], r["counts"]
        ok = verdict(m.wall, TARGET_SECONDS) == "ok" and verdict(m.peak_mb, TARGET_MB) == "ok"
        print(f"{label:18} {m.wall:8.3f} {m.cpu:7.3f} {m.peak_mb:8.1f} {c['records_total']:8d} "
              f"{c['site_files']:10d} {c['site_mb']:8.1f} {c['db_mb']:6.1f}  "
              f"< {TARGET_SECONDS} s, < {TARGET_MB:.0f} MB {'ok' if ok else 'MISSED'}")
        rows.append({"benchmark": "cold, watch=all", "case": label,
                     "wall_s": round(m.wall, 3), "cpu_s": round(m.cpu, 3),
                     "peak_mb": round(m.peak_mb, 1), "records": c["records_total"],
                     "target": f"< {TARGET_SECONDS} s and < {TARGET_MB:.0f} MB",
                     "verdict": "ok" if ok else "MISSED", "load": round(load, 1)})
    for label, corpus, r in results:
        print(f"\nRecords ({label}): " + ", ".join(f"{k} {v}" for k, v in r["parsed"].items())
              + f"; open pending items {r['counts']['pending']}")
        print("  served: " + ", ".join(f"{k} {v / 1e3:.0f} KB" for k, v in corpus.sizes().items()))
        if corpus.notes:
            print("  synthetic: " + ", ".join(f"{k} {v}" for k, v in corpus.notes.items()
                                              if k != "folder"))
    print(f"(load average {load:.1f} when measuring started)")
    print("\nsite: " + ("published by reports.site.publish after each run" if missing is None
                        else f"NOT published: {missing}"))
    for label, _corpus, r in results:
        if r["phases"]:
            print_phases(label, r["phases"])
    emit_json(args.json, rows)
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
