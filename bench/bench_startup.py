"""Benchmark: `schedwatch status` (no run) on a populated store, as a whole command, and
``python -X importtime`` of it: which imports cost the start-up.

Stores: the ten-year ``watch = "all"`` history of bench_history.py (built once, cached), and
a store populated by one real `schedwatch run` with the default watch list (ketamine and its
isomers; the realistic corpus served on 127.0.0.1), which separates start-up from the cost
of printing thousands of rows. `schedwatch --version` is the floor (Python + click).

    .venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
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

#: The issue's targets: a person's or cron's `status` on the watch-list store, and on the
#: ten-year watch = "all" store (its `--as-of` cases are in bench_history.py).
SMALL_TARGET = 0.3
HISTORY_TARGET = 0.5
DEFAULT_WATCH = ("ketamine", "esketamine", "arketamine")


def watchlist_store(folder: Path) -> Path:
    from synthetic import realistic_corpus

    folder.mkdir(parents=True, exist_ok=True)
    with Regulators(realistic_corpus()) as regulators:
        config = folder / "run.toml"
        config.write_text(regulators.config(folder / "data", watch=DEFAULT_WATCH))
        check(measure(schedwatch("--config", str(config), "run"), cwd=ROOT), "schedwatch run")
    status = folder / "schedwatch.toml"
    status.write_text(f'data_dir = "{folder / "data"}"\ncontact = "bench@example.org"\n'
                      f'watch = {list(DEFAULT_WATCH)!r}\n'.replace("'", '"'))
    return status


def import_offenders(command: list[str], runs: int = 3, top: int = 12
                     ) -> tuple[list[tuple[float, str]], list[tuple[float, str]], float]:
    """(top-level imports by cumulative ms, packages by summed self ms, total ms): the
    minimum over ``runs`` runs of ``python -X importtime``."""
    cumulative: dict[str, list[float]] = defaultdict(list)
    packages: dict[str, list[float]] = defaultdict(list)
    totals = []
    for _ in range(runs):
        python, *rest = command
        if not python.endswith("python") and not python.endswith("python3"):
            rest = [python, *rest]
            python = sys.executable
        done = subprocess.run([python, "-X", "importtime", *rest], capture_output=True,
                              text=True, cwd=ROOT, env=child_environment())
        per_package: dict[str, float] = defaultdict(float)
        total = 0.0
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
            if not match:
                continue
            own, cum, indent, name = int(match[1]), int(match[2]), match[3], match[4]
            per_package[name.split(".")[0]] += own / 1000
            total += own / 1000
            if not indent:
                cumulative[name].append(cum / 1000)
        for name, value in per_package.items():
            packages[name].append(value)
        totals.append(total)
    by_module = sorted(((min(v), k) for k, v in cumulative.items()), reverse=True)[:top]
    by_package = sorted(((min(v), k) for k, v in packages.items()), reverse=True)[:top]
    return by_module, by_package, min(totals)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from bench_history import ensure_history, status_config

    history, _info = ensure_history()
    history_config = status_config(history)
    scratch = Path(tempfile.mkdtemp(prefix="schedwatch-startup-"))
    small = watchlist_store(scratch)
    cases = [
        ("schedwatch --version (floor)", schedwatch("--version"), None),
        ("status, watch list store (15 rows)", schedwatch("--config", str(small), "status"),
         SMALL_TARGET),
        ("status --format json, watch list store",
         schedwatch("--config", str(small), "status", "--format", "json"), SMALL_TARGET),
        ("status, 10-year watch=all store", schedwatch("--config", str(history_config),
                                                       "status"), HISTORY_TARGET),
        ("status --format json, 10-year watch=all",
         schedwatch("--config", str(history_config), "status", "--format", "json"),
         HISTORY_TARGET),
        ("status --format csv, 10-year watch=all",
         schedwatch("--config", str(history_config), "status", "--format", "csv"),
         HISTORY_TARGET),
    ]
    load = settle()
    results = []
    for label, command, target in cases:
        result = best_of(args.runs, lambda c=command, w=label: check(measure(c, cwd=ROOT), w))
        results.append((label, result, result.output.count("\n"), target))

    print(f"\n`schedwatch status` start-up (best of {args.runs}; whole command)")
    print(f"{'case':42} {'wall s':>8} {'CPU s':>7} {'peak MB':>8} {'lines':>7}  target")
    rows = []
    for label, m, lines, target in results:
        mark = "" if target is None else f"< {target} s {verdict(m.wall, target)}"
        print(f"{label:42} {m.wall:8.3f} {m.cpu:7.3f} {m.peak_mb:8.1f} {lines:7d}  {mark}")
        if target is not None:
            rows.append({"benchmark": "start-up: schedwatch status", "case": label,
                         "wall_s": round(m.wall, 3), "cpu_s": round(m.cpu, 3),
                         "peak_mb": round(m.peak_mb, 1), "target": f"< {target} s",
                         "verdict": verdict(m.wall, target), "load": round(load, 1)})
    print(f"(load average {load:.1f} when measuring started)")
    by_module, by_package, total = import_offenders(
        schedwatch("--config", str(small), "status"))
    print(f"\npython -X importtime, `schedwatch status` (min of 3 runs; all imports "
          f"{total:.0f} ms of self time)")
    print("  top-level imports by cumulative time:")
    for ms, name in by_module:
        print(f"    {ms:7.1f} ms  {name}")
    print("  packages by summed self time:")
    for ms, name in by_package:
        print(f"    {ms:7.1f} ms  {name}")
    shutil.rmtree(scratch, ignore_errors=True)
    emit_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
