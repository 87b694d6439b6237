"""Benchmark: a warm `schedwatch run` (nothing changed) over ALL five sources, against
urlwatch checking the same document URLs in the same way (conditional GET, its own cache).

Served on 127.0.0.1, one server per regulator host: ca-cdsa and ca-csr with the real Justice
Laws XML (../shared/regulator-documents/ca); us-ecfr-1308, us-federal-register and
au-poisons-standard through route functions answering the API paths their fetch plans
request, from the constructed fixtures (tests/fixtures/us, tests/fixtures/au) — and, as a
second case, from synthetic realistic-size documents (bench/synthetic.py). The URLs urlwatch
gets are the ones the warm schedwatch run was seen requesting (robots.txt aside: urlwatch
does not read it). The first run of each is cold and not counted; best of N warm runs.

    .venv/bin/python bench/bench_warm_all.py                 # all cases, best of 5
    .venv/bin/python bench/bench_warm_all.py --corpus fixtures --runs 9
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    Corpus,
    Measured,
    Regulators,
    best_of,
    check,
    emit_json,
    measure,
    rewritten_pages,
    schedwatch,
    settle,
    urlwatch_env,
    urlwatch_jobs,
    verdict,
)

TARGET_RATIO = 1.0
DEFAULT_WATCH = ("ketamine", "esketamine", "arketamine")


def warm_case(corpus: Corpus, watch: str | tuple[str, ...], runs: int, work: Path,
              urlwatch: Path) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    with Regulators(corpus) as regulators:
        config = work / "schedwatch.toml"
        config.write_text(regulators.config(work / "data", watch=watch))
        command = schedwatch("--config", str(config), "run")
        cold = check(measure(command, cwd=ROOT), "cold schedwatch run")
        mark = regulators.mark()
        probe = check(measure(command, cwd=ROOT), "warm schedwatch run")
        urls = regulators.requested(mark)
        robots = [u for u in regulators.requested(mark, robots=True) if u not in urls]
        unchanged = [line for line in probe.output.splitlines()
                     if "not modified" in line or "unchanged" in line]
        if len(unchanged) != 5 or " 0 changes" not in probe.output:
            sys.exit(f"the warm run was not 'nothing changed':\n{probe.output}")
        warm = best_of(runs, lambda: check(measure(command, cwd=ROOT), "warm run"))
        database = work / "data" / "schedwatch.db"
        before = database.read_bytes()
        time.sleep(1.1)  # stamps have 1 s resolution: a rewrite of the same second looks unchanged
        check(measure(command, cwd=ROOT), "warm run")
        pages = rewritten_pages(before, database)

        args = urlwatch_jobs(work / "urlwatch", urls)
        mark = regulators.mark()
        measure([str(urlwatch), *args])  # the first run fills urlwatch's cache
        seen = regulators.requested(mark)
        if sorted(seen) != sorted(urls):
            sys.exit(f"urlwatch requested other URLs than schedwatch:\n{seen}\n{urls}")
        mark = regulators.mark()
        uw = best_of(runs, lambda: measure([str(urlwatch), *args]))
        uw_requests = len(regulators.requested(mark)) // runs
    return {"cold": cold, "warm": warm, "urlwatch": uw, "urls": urls, "robots": robots,
            "pages": pages, "db_mb": len(before) / 1e6,
            "urlwatch_requests": uw_requests, "records": cold.output.count("parsed")}


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", choices=("fixtures", "realistic", "both"), default="both")
    parser.add_argument("--json", default=None, help="write the summary rows here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    urlwatch = urlwatch_env()
    work = Path(tempfile.mkdtemp(prefix="schedwatch-warm-"))
    cases: list[tuple[str, Corpus, str | tuple[str, ...]]] = []
    if args.corpus in ("fixtures", "both"):
        fixtures = Corpus.fixtures()
        cases += [("fixtures, watch=all", fixtures, "all"),
                  ("fixtures, watch=ketamine+isomers", fixtures, DEFAULT_WATCH)]
    if args.corpus in ("realistic", "both"):
        from synthetic import realistic_corpus

        cases.append(("realistic sizes, watch=all", realistic_corpus(), "all"))

    load = settle()
    results = []
    for index, (label, corpus, watch) in enumerate(cases):
        print(f"… {label}", flush=True)
        results.append((label, warm_case(corpus, watch, args.runs, work / str(index), urlwatch)))

    print()
    print("Warm cycle, nothing changed, all 5 sources (best of "
          f"{args.runs}; wall s / CPU s / peak MB)")
    print(f"{'case':38} {'schedwatch':>22} {'urlwatch':>22} {'ratio':>6}  target"
          "             database pages rewritten per run")
    rows = []
    for label, r in results:
        sw, uw = r["warm"], r["urlwatch"]
        assert isinstance(sw, Measured) and isinstance(uw, Measured)
        ratio = sw.wall / uw.wall
        print(f"{label:38} {sw.wall:7.3f} {sw.cpu:6.3f} {sw.peak_mb:7.1f} "
              f"{uw.wall:7.3f} {uw.cpu:6.3f} {uw.peak_mb:7.1f} {ratio:6.2f}  "
              f"<= {TARGET_RATIO} {verdict(ratio, TARGET_RATIO):6}  "
              f"{r['pages']:5d} of {r['db_mb']:.1f} MB ({r['pages'] * 4096 / 1e6:.1f} MB)")
        rows.append({"benchmark": "warm, all sources", "case": label,
                     "wall_s": round(sw.wall, 3), "cpu_s": round(sw.cpu, 3),
                     "peak_mb": round(sw.peak_mb, 1), "urlwatch_wall_s": round(uw.wall, 3),
                     "urlwatch_peak_mb": round(uw.peak_mb, 1), "ratio": round(ratio, 2),
                     "rewritten_mb": round(r["pages"] * 4096 / 1e6, 1),
                     "target": f"ratio <= {TARGET_RATIO}",
                     "verdict": verdict(ratio, TARGET_RATIO), "load": round(load, 1)})
    label, first = results[0]
    print(f"\nDocument URLs the warm run requests ({label}; urlwatch gets exactly these):")
    for url in first["urls"]:  # type: ignore[union-attr]
        print(f"  {url}")
    print("plus robots.txt, once per host (schedwatch only): "
          f"{len(first['robots'])} requests")  # type: ignore[arg-type]
    print(f"urlwatch made {first['urlwatch_requests']} requests per warm run "
          "(conditional: 304s for unchanged ETags)")
    print("(documents served on 127.0.0.1; bytecode caching on for both programs; load "
          f"average {load:.1f} when measuring started)")
    emit_json(args.json, rows)
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
