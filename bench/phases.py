"""Where a `schedwatch run` spends its time, phase by phase, in one process: imports, then per
source fetch+parse (``pipeline.process_source``) and store (``pipeline.remember``), then the
site (``reports.site.publish``, split into its own steps when they exist). Wraps the real
functions; changes nothing. Prints JSON.

    .venv/bin/python bench/phases.py CONFIG.toml
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

_T0 = time.perf_counter()

from jurisdictions import all_sources  # noqa: E402
from scheduler import pipeline  # noqa: E402
from scheduler.config import load_settings  # noqa: E402

IMPORTS = time.perf_counter() - _T0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    phases: dict[str, dict[str, float]] = {}

    def wrap(owner: Any, name: str, label: Callable[..., str]) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                entry = phases.setdefault(label(*args, **kwargs),
                                          {"seconds": 0.0, "calls": 0, "peak_mb": 0.0})
                entry["seconds"] += time.perf_counter() - started
                entry["calls"] += 1
                entry["peak_mb"] = peak_mb()

        setattr(owner, name, timed)

    wrap(pipeline, "process_source", lambda source, *a, **k: f"fetch+parse {source.id}")
    wrap(pipeline, "write_outcome", lambda writer, outcome, *a, **k:
         f"store {outcome.source.id}")
    wrap(pipeline, "publish_site", lambda *a, **k: "publish (whole)")
    try:
        from reports import exports, site

        for name in ("read_snapshot", "site_pages", "_fingerprint", "_stage_documents"):
            if hasattr(site, name):
                wrap(site, name, lambda *a, _n=name, **k: f"publish: {_n}")
        if hasattr(site, "render_into"):
            wrap(site, "render_into", lambda *a, **k: "publish: render (Jinja)")
        for name in ("write_csv", "write_json"):
            if hasattr(exports, name):
                wrap(exports, name, lambda *a, _n=name, **k: f"publish: exports.{_n}")
        import pathlib

        wrap(pathlib.Path, "write_bytes", lambda *a, **k: "publish: Path.write_bytes (any file)")
    except ImportError:
        pass
    known = {s.id: tuple(s.endpoints) for s in all_sources()}
    settings = load_settings(sys.argv[1], known_sources=known)
    started = time.perf_counter()
    report = pipeline.run(settings)
    total = time.perf_counter() - started
    print(json.dumps({"imports": IMPORTS, "run": total, "peak_mb": peak_mb(),
                      "exit_code": report.exit_code, "phases": phases}))


if __name__ == "__main__":
    main()
