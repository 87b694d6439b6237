"""Benchmark: `schedwatch run --jurisdiction ca` against the real Canadian documents served
on localhost — cold (empty data folder) and warm (nothing changed) — and urlwatch checking
the same two URLs in the same way. Prints wall time and peak memory of each process."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    SHARED,
    DocumentServer,
    best_of,
    emit_json,
    measure,
    schedwatch,
    urlwatch_env,
    urlwatch_jobs,
    verdict,
)

RUNS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--json", default=None)
    options = parser.parse_args()
    runs = options.runs
    ca = SHARED / "ca"
    if not ca.is_dir():
        sys.exit("../shared/regulator-documents/ca is absent: nothing to benchmark")
    documents = {
        "/eng/XML/C-38.8.xml": ((ca / "cdsa-C-38.8-en-pit2026-06-05.xml").read_bytes(),
                                "application/xml"),
        "/eng/XML/SOR-2025-242.xml": ((ca / "csr-SOR-2025-242-en-pit2026-04-17.xml").read_bytes(),
                                      "application/xml"),
    }
    work = Path(tempfile.mkdtemp(prefix="schedwatch-bench-"))
    with DocumentServer(documents) as server:
        urls = [server.base + path for path in documents]
        config = work / "schedwatch.toml"
        config.write_text(
            f'data_dir = "{work / "data"}"\ncontact = "bench@example.org"\n'
            "[fetch]\nrequest_interval = 0\n"
            f'[sources.ca-cdsa]\nurl = "{urls[0]}"\n[sources.ca-csr]\nurl = "{urls[1]}"\n')

        def cold():
            shutil.rmtree(work / "data", ignore_errors=True)
            return measure(schedwatch("--config", str(config), "run", "-j", "ca"), cwd=ROOT)

        cold_result = best_of(runs, cold)
        assert cold_result.exit_code == 0, cold_result.output
        measure(schedwatch("--config", str(config), "run", "-j", "ca"), cwd=ROOT)
        warm_result = best_of(runs, lambda: measure(
            schedwatch("--config", str(config), "run", "-j", "ca"), cwd=ROOT))
        assert warm_result.exit_code == 0, warm_result.output
        assert "not modified" in warm_result.output, warm_result.output

        binary = urlwatch_env(Path(tempfile.gettempdir()) / "schedwatch-bench")
        args = urlwatch_jobs(work / "urlwatch", urls)
        measure([str(binary), *args])  # first run fills urlwatch's cache
        uw = best_of(runs, lambda: measure([str(binary), *args]))

    print(f"{'case':44} {'wall s':>8} {'peak MB':>8}")
    print(f"{'schedwatch run -j ca, cold (parse, store, site)':44} {cold_result.wall:8.3f} "
          f"{cold_result.peak_mb:8.1f}")
    print(f"{'schedwatch run -j ca, warm (nothing changed)':44} {warm_result.wall:8.3f} "
          f"{warm_result.peak_mb:8.1f}")
    print(f"{'urlwatch, same two URLs, warm':44} {uw.wall:8.3f} {uw.peak_mb:8.1f}")
    print(f"warm ratio schedwatch/urlwatch: {warm_result.wall / uw.wall:.2f} (target <= 1.0)")
    print(f"(best of {runs} runs each; documents served on 127.0.0.1)")
    ratio = warm_result.wall / uw.wall
    emit_json(options.json, [
        {"benchmark": "schedwatch run -j ca", "case": "cold (parse, store, site)",
         "wall_s": round(cold_result.wall, 3), "peak_mb": round(cold_result.peak_mb, 1)},
        {"benchmark": "schedwatch run -j ca", "case": "warm (two 304s)",
         "wall_s": round(warm_result.wall, 3), "peak_mb": round(warm_result.peak_mb, 1),
         "ratio": round(ratio, 2), "urlwatch_wall_s": round(uw.wall, 3),
         "urlwatch_peak_mb": round(uw.peak_mb, 1), "target": "ratio <= 1.0",
         "verdict": verdict(ratio, 1.0)}])
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
