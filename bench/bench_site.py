"""Benchmark of the published site: ten years of daily history (3 jurisdictions, 5 sources,
3 substances, 50 changes, a fetch row per source per day) in a temporary store, then a
full site build and an incremental one, each in a fresh process, with wall time and peak
memory (ru_maxrss of that process; tracemalloc's peak of Python allocations with
``--tracemalloc``, which slows the run and is reported separately).

    .venv/bin/python bench/bench_site.py            # generate, build twice, print figures
    .venv/bin/python bench/bench_site.py --keep     # keep the temporary folder to look at
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.config import Settings  # noqa: E402
from scrapers.records import PendingItem, StatusRecord  # noqa: E402
from scrapers.store import SourceState, Store, stamp  # noqa: E402

YEARS = 10
CHANGES = 50
SUBSTANCES = ("ketamine", "esketamine", "arketamine")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
#: source id → (jurisdiction, media type, has status records, schedule labels to move through)
SOURCES = {
    "ca-cdsa": ("ca", "application/xml", True, ("I", "II", "III")),
    "ca-csr": ("ca", "application/xml", True, ("1", "2")),
    "us-ecfr-1308": ("us", "application/xml", True, ("III", "II", "IV")),
    "us-federal-register": ("us", "application/json", False, ()),
    "au-poisons-standard": ("au", DOCX, True, ("8", "4", "9")),
}
LEVELS = {"I": "C2", "II": "C2", "III": "C3", "IV": "C4", "1": "C2", "2": "C3", "8": "C2",
          "4": "C4", "9": "C1"}
DOCUMENT_BYTES = 300_000  # a Justice Laws XML consolidation is 100-450 KB


def settings_for(folder: Path) -> Settings:
    return Settings(data_dir=folder / "data")


def document(source_id: str, version: int) -> bytes:
    line = f"<p>{source_id} version {version}: ketamine, its salts, isomers and salts of isomers</p>\n"
    return (line * (DOCUMENT_BYTES // len(line) + 1)).encode()[:DOCUMENT_BYTES]


def record(source_id: str, substance: str, schedule: str, sha: str, at: datetime,
           version: int) -> StatusRecord:
    jurisdiction = SOURCES[source_id][0]
    return StatusRecord(
        jurisdiction=jurisdiction, substance=substance, status="controlled", schedule=schedule,
        control_level=LEVELS[schedule], instrument=f"{source_id} instrument",
        provision=f"Sch. {schedule}, item {14 + version}(1)",
        listed_as=f"{substance.capitalize()}, its salts (version {version})",
        basis="named" if substance == "ketamine" else "isomer of listed substance",
        source_id=source_id, source_url=f"https://example.org/{source_id}",
        document_sha256=sha, retrieved_at=stamp(at),
        dates=(("consolidated as of", at.date().isoformat()),))


def generate(folder: Path, seed: int = 7) -> dict[str, int]:
    """Ten years of daily runs written through RunWriter, as the pipeline writes them."""
    rng = random.Random(seed)
    store = Store(folder / "data")
    start = datetime(2016, 11, 21, 6, 0, tzinfo=UTC)
    days = YEARS * 365 + YEARS // 4
    change_days = sorted(rng.sample(range(1, days), CHANGES))
    versions = dict.fromkeys(SOURCES, 0)
    current: dict[tuple[str, str], StatusRecord] = {}
    shas: dict[str, str] = {}
    failing: dict[str, str] = {}
    counts = {"runs": 0, "changes": 0, "fetches": 0}

    def archive(writer, source_id: str, at: datetime) -> str:  # type: ignore[no-untyped-def]
        content = document(source_id, versions[source_id])
        sha, path = store.archive(content)
        writer.add_document(sha256=sha, size=len(content), media_type=SOURCES[source_id][1],
                            source_id=source_id, url=f"https://example.org/{source_id}",
                            seen_at=at, path=str(path.relative_to(store.documents_dir)))
        return sha

    for day in range(days):
        at = start + timedelta(days=day)
        with store.transaction(started_at=at, jurisdictions=["ca", "us", "au"]) as w:
            if day == 0:
                for sid in SOURCES:
                    shas[sid] = archive(w, sid, at)
                    for substance in SUBSTANCES if SOURCES[sid][2] else ():
                        rec = record(sid, substance, SOURCES[sid][3][0], shas[sid], at, 0)
                        current[(sid, substance)] = rec
                        w.open_interval(rec, at=at)
            event = change_days.index(day) if day in change_days else None
            kind = _kind(event) if event is not None else None
            target = _target(event, failing) if event is not None else None
            for sid in SOURCES:
                outcome = "unchanged"
                if sid == target:
                    outcome = _event(w, kind, sid, at, current, shas, versions, failing,
                                     archive, rng, counts, day)
                failed = sid in failing
                w.add_fetch(source_id=sid, started_at=at, url=f"https://example.org/{sid}",
                            outcome="failed" if failed else outcome,
                            error="HTTP 503" if failed else None,
                            error_kind="http" if failed else None,
                            document_sha256=None if failed else shas[sid], elapsed_ms=300)
                counts["fetches"] += 1
                w.save_source_state(_state(sid, at, shas[sid], failing.get(sid)))
            w.finish(finished_at=at, exit_code=0, summary={})
            counts["runs"] += 1
    store.beat("scheduler", now=start + timedelta(days=days))
    store.close()
    return counts


def _kind(event: int) -> str:
    """Exactly one change per event: a failure and its recovery, a proposal, and status
    changes, so that the fifty events are fifty changes."""
    return {4: "source_failed", 5: "recovered", 9: "pending"}.get(
        event % 10, "rescheduled" if event % 2 == 0 else "amended")


def _target(event: int, failing: dict[str, str]) -> str:
    kind = _kind(event)
    if kind == "recovered":
        return next(iter(failing))
    if kind == "pending":
        return "us-federal-register"
    with_records = [sid for sid, spec in SOURCES.items() if spec[2] and sid not in failing]
    return with_records[event % len(with_records)]


def _event(w, kind, sid, at, current, shas, versions, failing, archive, rng, counts, day):  # type: ignore[no-untyped-def]
    counts["changes"] += 1
    jurisdiction = SOURCES[sid][0]
    if kind == "source_failed":
        failing[sid] = stamp(at)
        w.add_change(detected_at=at, jurisdiction=jurisdiction, substance=None,
                     source_id=sid, kind=kind, summary=f"{sid}: source failing",
                     before=None, after=None,
                     details={"error": "HTTP 503", "error_kind": "http",
                              "url": f"https://example.org/{sid}", "failing_since": stamp(at)})
        return "failed"
    if kind == "recovered":
        since = failing.pop(sid)
        w.add_change(detected_at=at, jurisdiction=jurisdiction, substance=None, source_id=sid,
                     kind=kind, summary=f"{sid}: source recovered", before=None, after=None,
                     details={"failing_since": since, "previous_health": "source_failed"})
        return "unchanged"
    if kind == "pending":
        item = PendingItem(
            jurisdiction=jurisdiction, substance=rng.choice(SUBSTANCES), source_id=sid,
            key=f"FR:{day}", action="proposed_rule", description=f"Proposed rule {day}",
            reference=f"91 FR {day}", proposed_schedule="II", date_label="comment deadline",
            date=(at + timedelta(days=60)).date().isoformat())
        w.open_pending(item, at=at)
        w.add_change(detected_at=at, jurisdiction=jurisdiction, substance=item.substance,
                     source_id=sid, kind=kind, summary=item.description, before=None,
                     after=item.as_dict(), effective_date=item.date, after_sha256=shas[sid],
                     details={"pending_key": item.key})
        return "unchanged"
    versions[sid] += 1
    before_sha = shas[sid]
    shas[sid] = archive(w, sid, at)
    substance = rng.choice(SUBSTANCES)
    old = current[(sid, substance)]
    labels = SOURCES[sid][3]
    schedule = labels[(labels.index(old.schedule) + 1) % len(labels)] \
        if kind == "rescheduled" else old.schedule
    new = record(sid, substance, schedule, shas[sid], at, versions[sid])
    w.close_intervals(sid, [substance], at=at, confirmed_at=None, confirmed_sha256=None)
    w.open_interval(new, at=at)
    current[(sid, substance)] = new
    w.add_change(detected_at=at, jurisdiction=jurisdiction, substance=substance,
                 source_id=sid, kind=kind, summary=f"{substance}: {old.schedule} -> {schedule}",
                 before=old.as_dict(), after=new.as_dict(), before_sha256=before_sha,
                 after_sha256=shas[sid], details={"fields": ["schedule", "provision",
                                                             "listed_as"]})
    return "fetched"


def _state(sid: str, at: datetime, sha: str, failing_since: str | None) -> SourceState:
    return SourceState(
        source_id=sid, jurisdiction=SOURCES[sid][0],
        health="source_failed" if failing_since else "healthy", failing_since=failing_since,
        consecutive_failures=1 if failing_since else 0,
        last_error="HTTP 503" if failing_since else None, last_attempt_at=stamp(at),
        last_healthy_at=stamp(at), last_document_sha256=sha,
        last_url=f"https://example.org/{sid}", etag=None, last_modified=None, marker=None,
        watch_keys=tuple(sorted(SUBSTANCES)), document_dates=(), document_meta={},
        title=None, instrument=None)


def build(folder: Path, use_tracemalloc: bool) -> dict[str, float]:
    """One publish in this process: wall time and peak memory."""
    import tracemalloc

    from reports.site import publish

    settings = settings_for(folder)
    store = Store(settings.data_dir)
    if use_tracemalloc:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    publish(settings, store, now=datetime(2026, 11, 23, 12, tzinfo=UTC))
    wall = time.perf_counter() - started
    result = {"wall_s": round(wall, 3), "cpu_s": round(time.process_time() - cpu, 3),
              "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if use_tracemalloc:
        result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    store.close()
    return result


def _run_build(folder: Path, use_tracemalloc: bool = False) -> dict[str, float]:
    args = [sys.executable, __file__, "--build", str(folder)]
    if use_tracemalloc:
        args.append("--tracemalloc")
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--reuse", type=Path, metavar="FOLDER",
                        help="build from a folder kept by --keep instead of generating")
    args = parser.parse_args()
    if args.build:
        print(json.dumps(build(args.build, args.tracemalloc)))
        return
    folder = args.reuse or Path(tempfile.mkdtemp(prefix="schedwatch-bench-"))
    try:
        if args.reuse:
            shutil.rmtree(settings_for(folder).site_path, ignore_errors=True)
        else:
            started = time.perf_counter()
            counts = generate(folder)
            print(f"generated {counts['runs']} daily runs, {counts['fetches']} fetch rows, "
                  f"{counts['changes']} changes in {time.perf_counter() - started:.1f} s")
        full = _run_build(folder)
        site = settings_for(folder).site_path
        files = sum(1 for p in site.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 2**20
        print(f"full build:        {full['wall_s']:.3f} s wall ({full['cpu_s']:.3f} s CPU), peak RSS "
              f"{full['ru_maxrss_mb']:.1f} MB ({files} files, {size:.1f} MB)")
        again = _run_build(folder)
        print(f"incremental build: {again['wall_s']:.3f} s wall ({again['cpu_s']:.3f} s CPU), peak RSS "
              f"{again['ru_maxrss_mb']:.1f} MB (unchanged pages reused)")
        shutil.rmtree(site)
        traced = _run_build(folder, use_tracemalloc=True)
        print(f"full build under tracemalloc: {traced['wall_s']:.3f} s wall, Python "
              f"allocations peak {traced['tracemalloc_peak_mb']:.1f} MB")
        ok = full["wall_s"] < 2.0 and full["ru_maxrss_mb"] < 200
        print("target (full build < 2 s and < 200 MB):", "met" if ok else "NOT met")
    finally:
        if args.keep or args.reuse:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
