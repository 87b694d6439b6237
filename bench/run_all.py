"""Run every benchmark (``make bench``) and print one summary table (Markdown).

    .venv/bin/python bench/run_all.py                 # every one, best of 5 each
    .venv/bin/python bench/run_all.py --runs 3 --only warm cold
    .venv/bin/python bench/run_all.py --also-site     # plus bench/bench_site.py's own output

Each benchmark runs in its own process (its output is shown as it goes) and hands its rows
back as JSON. Figures are wall time (best of N), CPU time (user + system) and peak RSS of the
measured `schedwatch` process; on a busy machine trust CPU time more than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: name → the script and its own arguments (``--runs`` and ``--json`` are added to all).
BENCHMARKS = {
    "ca": ("bench_ca_cycle.py",),
    "warm": ("bench_warm_all.py",),
    "cold": ("bench_cold_all.py",),
    "history": ("bench_history.py",),
    "startup": ("bench_startup.py",),
    "latency": ("bench_latency.py",),
    "backfill": ("bench_backfill.py",),
    # The publish cases again on 5, 10 and 20 years of history: how they grow with it; and
    # on histories of the same substances at every length, where the one-change day
    # rightly rewrites the same pages whatever the length (the fair verdict).
    "lengths": ("bench_history.py", "--lengths", "5,10,20"),
    "steady": ("bench_history.py", "--lengths", "5,10,20", "--steady"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=None)
    parser.add_argument("--also-site", action="store_true",
                        help="also run bench/bench_site.py (its output only, no summary row)")
    args = parser.parse_args()

    rows: list[dict[str, object]] = []
    failed: list[str] = []
    started = time.perf_counter()
    for name in args.only or list(BENCHMARKS):
        file, *extra = BENCHMARKS[name]
        script = HERE / file
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            print(f"\n===== {' '.join((script.name, *extra))} =====", flush=True)
            done = subprocess.run([sys.executable, str(script), *extra, "--runs",
                                   str(args.runs), "--json", out.name], check=False)
            if done.returncode != 0:
                failed.append(" ".join((script.name, *extra)))
                continue
            text = Path(out.name).read_text()
            rows += json.loads(text) if text.strip() else []
    if args.also_site and (HERE / "bench_site.py").exists():
        print("\n===== bench_site.py =====", flush=True)
        if subprocess.run([sys.executable, str(HERE / "bench_site.py")], check=False).returncode:
            failed.append("bench_site.py")

    load = os.getloadavg()[0]
    print(f"\n## Summary (best of {args.runs}; {os.cpu_count()} CPUs, load average "
          f"{load:.1f} at the end; {time.perf_counter() - started:.0f} s in all)\n")
    print("| benchmark | case | wall s | CPU s | peak MB | other | target | result | load |")
    print("|---|---|---:|---:|---:|---|---|---|---:|")
    for row in rows:
        other = []
        if "ratio" in row:
            other.append(f"urlwatch {row['urlwatch_wall_s']} s / {row['urlwatch_peak_mb']} MB, "
                         f"ratio {row['ratio']}")
        if "rewritten_mb" in row:
            other.append(f"{row['rewritten_mb']} MB of database pages rewritten")
        if "records" in row:
            other.append(f"{row['records']} records")
        if "db_mb" in row:
            other.append(f"db {row['db_mb']} MB")
        if "note" in row:
            other.append(str(row["note"]))
        print(f"| {row['benchmark']} | {row['case']} | {row.get('wall_s', '')} | "
              f"{row.get('cpu_s', '')} | {row.get('peak_mb', '')} | {'; '.join(other)} | "
              f"{row.get('target', '—')} | {row.get('verdict', '-')} | {row.get('load', '')} |")
    if failed:
        print(f"\nFAILED to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
