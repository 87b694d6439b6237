"""Benchmark: fetching across hosts with a simulated network round trip (issue 18).

Every local server sleeps ``--delay`` seconds (default 0.3) before each answer, as a distant
regulator would. Two cases, each fetched one host at a time (``[fetch] parallel_hosts = 1``)
and with one worker per host (the default):

* the five real sources, warm (every answer a 304 after a cold first run), through the real
  ``schedwatch run`` command;
* fifty jurisdictions: fifty sources on fifty hosts, one conditional GET each, through the
  run's own fetching code (``scheduler.fetching.fetch_sources`` with real ``HttpFetcher``s).

    .venv/bin/python bench/bench_latency.py
    .venv/bin/python bench/bench_latency.py --delay 0.3 --runs 3 --json out.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    Corpus,
    DocumentServer,
    Regulators,
    best_of,
    check,
    emit_json,
    measure,
    schedwatch,
)


def five_sources(delay: float, runs: int, work: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with Regulators(Corpus.fixtures(), delay=delay) as regulators:
        for parallel in (1, 8):
            folder = work / f"p{parallel}"
            folder.mkdir(parents=True)
            config = folder / "schedwatch.toml"
            config.write_text(_with_parallel(regulators.config(folder / "data", watch="all"),
                                             parallel))
            command = schedwatch("--config", str(config), "run")
            check(measure(command, cwd=ROOT), "cold run")
            warm = best_of(runs, lambda command=command: check(measure(command, cwd=ROOT),
                                                               "warm run"))
            rows.append({"case": f"warm, 5 sources, parallel_hosts = {parallel}",
                         "wall_s": round(warm.wall, 2), "peak_mb": round(warm.peak_mb)})
    return rows


def _with_parallel(config: str, parallel: int) -> str:
    """The benchmark servers' config with ``parallel_hosts`` in its [fetch] table."""
    return config.replace("[fetch]\n", f"[fetch]\nparallel_hosts = {parallel}\n", 1)


def fifty_hosts(delay: float, hosts: int) -> list[dict[str, object]]:
    import dataclasses

    from jurisdictions.ca import SOURCES
    from scheduler.fetching import fetch_sources
    from scrapers.fetch import FetchPolicy, HttpFetcher

    servers = [DocumentServer({"/doc.xml": (b"<doc/>", "application/xml")}, delay=delay)
               for _ in range(hosts)]
    for server in servers:
        server.__enter__()
    try:
        sources = [dataclasses.replace(SOURCES[0], id=f"j{index}-doc",
                                       endpoints={"url": server.base + "/doc.xml"})
                   for index, server in enumerate(servers)]
        policy = FetchPolicy(user_agent="schedwatch-bench", min_interval=0,
                             respect_robots=False)
        rows: list[dict[str, object]] = []
        for parallel in (1, 8, hosts):
            started = time.perf_counter()
            fetch_sources(sources, lambda source, fetcher: fetcher.get(source.url),
                          make_fetcher=lambda: HttpFetcher(policy), max_workers=parallel)
            rows.append({"case": f"{hosts} hosts, one GET each, {parallel} at a time",
                         "wall_s": round(time.perf_counter() - started, 2), "peak_mb": ""})
        return rows
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schedwatch-bench-latency-") as work:
        rows = five_sources(args.delay, args.runs, Path(work)) + fifty_hosts(args.delay,
                                                                             args.hosts)
    print(f"round trip simulated: {args.delay * 1000:.0f} ms per answer")
    for row in rows:
        print(f"{row['case']:<48} {row['wall_s']:>6} s  {row['peak_mb']} MB")
    emit_json(args.json, [{"benchmark": "bench_latency.py", **row} for row in rows])


if __name__ == "__main__":
    main()
