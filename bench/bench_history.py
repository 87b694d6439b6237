"""Benchmark: ten years of daily checks with ``watch = "all"`` in a real store, then
`schedwatch status --as-of DATE` as a whole command (best of N), and the database size.

The history is generated into a real ``scrapers.store.Store`` (cached under
/tmp/schedwatch-bench, reused by bench_startup.py, rebuilt when the store, pipeline, diff or
record code changes):

* day 0, the baseline: a real ``scheduler.pipeline.run`` against the realistic corpus served on
  127.0.0.1 (bench/common.py, bench/synthetic.py): every record of every source;
* ~3,650 daily runs. An unchanged day adds a run row and one fetch row per source and no
  status row; its "confirmed on" stamp (the source's last healthy fetch) is written once,
  before the source's next event and at the end, which leaves exactly the rows a daily
  confirmation leaves, without rewriting every open interval 3,650 times;
* events through the real ``reports.diff.decide`` and ``pipeline.write_outcome`` (real diff, classification, intervals, change
  rows): per year about 10 eCFR amendment days (1–3 substances added, moved or removed),
  2 + 2 Canadian amendments, 12 new Federal Register documents that change no record, and
  3 one-day outages per source (``source_failed`` then ``recovered``);
* a new Australian Poisons Standard ``--au-replacements`` times a year (default 3, as the
  register has made them: February, June, October), each with ~8 entries added or moved.
  The register id is the records' ``instrument``, a material field, so each replacement
  amends every Australian record (one bulk-amendment change, as the pipeline writes it).

Then the site of that store, each publish a whole process (wall, CPU, peak RSS, against the
targets of issue 18): a full rebuild (no previous site), and the publish after a daily run
with one change (an eCFR entry moved), reusing the previous site, and — no target, the
floor under it — the publish after a daily run that changes nothing (every source 304:
every open interval is confirmed again, which every page showing "last confirmed" shows).

Then, as a whole command, the daily run of the day a new Poisons Standard comes into force
(after a cold baseline run; the AU API answers the fixtures' October 2026 instrument, the
Word file has the same entries under the new cover): what one such day costs.

    .venv/bin/python bench/bench_history.py                  # build (once) and time
    .venv/bin/python bench/bench_history.py --rebuild --au-replacements 0
    .venv/bin/python bench/bench_history.py --only-publish   # the publish cases
    .venv/bin/python bench/bench_history.py --lengths 5,10,20   # the publish cases at each
                                                   # length, and their growth per year
    .venv/bin/python bench/bench_history.py --lengths 5,20 --steady  # the same, on histories
                                                   # of the same substances at every length

Why ``--steady``: the default generator adds substances over the years (most scheduling
actions are additions), so a longer history also has more of them, and the one-change day's
new eCFR document is rightly the latest evidence of more history pages (92 on five years,
316 on twenty: a substance has one once it has a change). Its growth is then partly what
changed. On the steady histories every event moves entries of the same few per source
(``steady_pool``), so the store holds the same substances, the same ones have a history
page, and the day rewrites the same pages at every length: what is left of the growth is the
history's length alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CACHE,
    ROOT,
    Regulators,
    best_of,
    check,
    emit_json,
    measure,
    schedwatch,
    settle,
    verdict,
)

TARGET_SECONDS = 0.5
#: The whole run on the day a new Poisons Standard is in force (issue 18).
NEW_STANDARD_TARGET = 3.0
YEARS = 10
#: Bump when the generator changes (or run with --rebuild after changing what
#: pipeline.remember / reports.diff write): a cached history is keyed by this, the
#: parameters and the store's schema, so that unrelated edits do not cost a regeneration.
GENERATOR = "5"
EVENTS_PER_YEAR = {"us-ecfr-1308": 10, "ca-cdsa": 2, "ca-csr": 2, "us-federal-register": 12}
OUTAGES_PER_YEAR = 3


def schema_fingerprint() -> str:
    sys.path.insert(0, str(ROOT))
    from scrapers import schema

    return "|".join(
        f"{table.name}:{','.join(f'{c.name}/{c.type}' for c in table.columns)}:"
        f"{','.join(sorted(str(i.name) for i in table.indexes))}"
        for table in schema.TABLES)


def history_folder(years: int, au_rate: int, seed: int, steady: bool = False) -> Path:
    # The steady population's key has one more part; the growing one's is unchanged, so
    # that its cached stores stay valid.
    population = "/steady" if steady else ""
    digest = hashlib.sha256(f"{GENERATOR}/{years}/{au_rate}/{seed}{population}/"
                            f"{schema_fingerprint()}".encode())
    return CACHE / f"history-{digest.hexdigest()[:12]}"


def status_config(folder: Path) -> Path:
    config = folder / "schedwatch.toml"
    config.write_text(f'data_dir = "{folder / "data"}"\ncontact = "bench@example.org"\n'
                      'watch = "all"\n')
    return config


# --- the generator (runs in this process) ---------------------------------------------------

def _plan(rng: random.Random, days: int, years: int, au_rate: int,
          sources: list[str]) -> dict[int, dict[str, str]]:
    """day → {source id: event}; events: change, fr-new, au-replacement, fail, recover."""
    plan: dict[int, dict[str, str]] = {}

    def free_day(source: str, lo: int = 1) -> int:
        while True:
            day = rng.randint(lo, days - 2)
            if source not in plan.get(day, {}) and source not in plan.get(day + 1, {}):
                return day

    for year in range(years):
        start = 1 + year * 365
        for source, count in EVENTS_PER_YEAR.items():
            for _ in range(count):
                day = min(days - 2, start + rng.randint(0, 364))
                if source not in plan.get(day, {}):
                    plan.setdefault(day, {})[source] = \
                        "fr-new" if source == "us-federal-register" else "change"
        for index in range(au_rate):
            day = min(days - 2, start + 40 + index * (365 // max(au_rate, 1)))
            plan.setdefault(day, {})["au-poisons-standard"] = "au-replacement"
    for source in sources:
        for _ in range(OUTAGES_PER_YEAR * years):
            day = free_day(source)
            plan.setdefault(day, {})[source] = "fail"
            plan.setdefault(day + 1, {})[source] = "recover"
    return plan


def _new_name(rng: random.Random, taken: set[str]) -> str:
    from synthetic import _names

    return _names(rng, 1, taken)[0]


#: Never removed; and in the steady population never moved.
_WATCHED = ("ketamine", "esketamine", "arketamine")


def _mutate(rng: random.Random, current: dict[str, Any], levels: dict[str, str], sha: str,
            at: datetime, taken: set[str], count: int, pool: deque[str] | None = None
            ) -> tuple[list[Any], int]:
    """The next document's records: ``count`` substances added, moved or removed; with a
    ``pool`` (the steady population, ``steady_pool``), ``count`` of its substances moved in
    turn."""
    records = dict(current)
    changed = 0
    controlled = [r for r in records.values() if r.status == "controlled" and r.schedule
                  and r.schedule in levels]
    # Move between the labels this source prints (a CDSA entry goes to another Roman
    # schedule, a CSR entry to another numbered one).
    printed = sorted({r.schedule for r in records.values() if r.schedule in levels})
    levels = {label: levels[label] for label in printed} if len(printed) > 1 else levels

    def move(record: Any) -> None:
        label = rng.choice([s for s in levels if s != record.schedule])
        records[record.substance] = dataclasses.replace(
            record, schedule=label, control_level=levels[label], document_sha256=sha,
            retrieved_at=at.isoformat())

    for _ in range(count):
        if pool:
            move(records[pool[0]])
            pool.rotate(-1)
            changed += 1
            continue
        roll = rng.random()
        if roll < 0.55 or not controlled:  # an addition, as most scheduling actions are
            model = rng.choice(controlled or list(records.values()))
            key = _new_name(rng, taken)
            label = rng.choice(list(levels))
            records[key] = dataclasses.replace(
                model, substance=key, status="controlled", schedule=label, control_level=levels[label],
                listed_as=key.capitalize(), provision=f"{model.instrument} (new entry)",
                code=None, parent_entry=None, document_sha256=sha,
                retrieved_at=at.isoformat())
        elif roll < 0.9:  # a move to another schedule
            move(rng.choice(controlled))
        else:  # a removal
            record = rng.choice(controlled)
            if record.substance in _WATCHED:
                continue
            records.pop(record.substance, None)
        changed += 1
    return list(records.values()), changed


#: How many of a source's entries the steady population moves.
STEADY_POOL = 8


def steady_pool(records: dict[str, Any], levels: dict[str, str]) -> deque[str]:
    """The entries the steady population moves, in turn: the last ``STEADY_POOL`` controlled
    ones in alphabetical order (not the watched ones). Every one has moved within a year or
    two of events, so the substances with a history page are the same at every length; and
    the one-change day's entry (the first of Schedule IV in that order) is never one of
    them, so it is the same one at every length."""
    movable = sorted(key for key, r in records.items() if r.status == "controlled"
                     and r.schedule in levels and key not in _WATCHED)
    return deque(movable[-STEADY_POOL:])


def _remember(writer: Any, outcome: Any, state: Any, watch: Any, store: Any) -> list[Any]:
    """What a run writes for one source's outcome (``reports.diff.decide`` then
    ``pipeline.write_outcome``), deciding from the committed store and the generator's own
    (possibly not yet committed) source state."""
    from jurisdictions import jurisdiction
    from reports.diff import FLIP_FLOP_WINDOW, decide
    from scheduler import pipeline

    source = outcome.source
    prior = store.prior([source.id], since=outcome.started_at - FLIP_FLOP_WINDOW)
    prior = dataclasses.replace(prior, states={source.id: state})
    decision = decide(outcome, prior, watch,
                      jurisdiction_name=jurisdiction(source.jurisdiction).NAME,
                      today=pipeline.local_day(outcome.started_at, source.jurisdiction))
    return pipeline.write_outcome(writer, outcome, decision, store)


def _watch_all() -> Any:
    from jurisdictions.substances import build_watch_list

    return build_watch_list("all")


def generate(folder: Path, years: int, au_rate: int, seed: int, steady: bool = False
             ) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from synthetic import realistic_corpus

    from jurisdictions import all_sources, jurisdiction
    from jurisdictions.base import Fetched
    from scheduler import pipeline
    from scheduler.config import load_settings
    from scrapers.records import Document, ParseResult
    from scrapers.store import Store, stamp

    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    days = 365 * years
    day0 = today - timedelta(days=days)
    corpus = realistic_corpus()
    known = {s.id: tuple(s.endpoints) for s in all_sources()}
    with Regulators(corpus) as regulators:
        config = folder / "baseline.toml"
        config.write_text(regulators.config(folder / "data", watch="all"))
        settings = load_settings(config, known_sources=known)
        baseline = pipeline.run(settings, now=lambda: day0, publish=False, notify=False,
                                trigger="cron")
    if baseline.exit_code != 0:
        sys.exit("the baseline run failed:\n" + "\n".join(baseline.lines))
    baseline_seconds = time.perf_counter() - started

    store = Store(settings.data_dir)
    # Generation only: no fsync per day (the figures measured later read the result).
    # The pooled connection keeps the pragma: the generator writes from this one thread.
    with store.db.connect() as conn:
        conn.execute("PRAGMA synchronous=OFF")
    sources = all_sources()  # the production URLs in the fetch rows, not the baseline's
    watch = _watch_all()
    states = store.source_states()
    current = {s.id: {r.substance: r for r in store.current_records(s.id)} for s in sources}
    taken = {key for records in current.values() for key in records}
    documents = {"ca-cdsa": corpus.cdsa, "ca-csr": corpus.csr, "us-ecfr-1308": corpus.ecfr_part,
                 "us-federal-register": corpus.fr_cfr_pages[0],
                 "au-poisons-standard": corpus.au_word}
    plan = _plan(rng, days, years, au_rate, [s.id for s in sources])
    pools = {s.id: steady_pool(current[s.id], jurisdiction(s.jurisdiction).SCHEDULE_LEVELS)
             for s in sources} if steady else {}
    deferred: dict[str, datetime | None] = {s.id: None for s in sources}
    codes = sorted({s.jurisdiction for s in sources})
    counters = {"runs": 0, "events": 0, "changes": 0, "au_replacements": 0}
    version = 0

    def flush(writer: Any, source_id: str) -> None:
        moment = deferred[source_id]
        state = states[source_id]
        if moment is not None and state.last_document_sha256:
            # Open intervals are confirmed through the source's state (last healthy fetch).
            states[source_id] = dataclasses.replace(state, last_healthy_at=stamp(moment),
                                                    last_attempt_at=stamp(moment))
            writer.save_source_state(states[source_id])
        deferred[source_id] = None

    for day in range(1, days + 1):
        at = day0 + timedelta(days=day, minutes=rng.randint(0, 20))
        events = plan.get(day, {})
        with store.transaction(started_at=at, jurisdictions=codes, trigger="cron") as writer:
            summary = {}
            for source in sources:
                event = events.get(source.id)
                state = states[source.id]
                summary[source.id] = "not_modified"
                if event is None:
                    unchanged = source.id == "us-ecfr-1308"  # its date moves: re-downloaded
                    writer.add_fetch(source_id=source.id, started_at=at, url=source.url,
                                     final_url=source.url,
                                     outcome="unchanged" if unchanged else "not_modified",
                                     http_status=200 if unchanged else 304,
                                     document_sha256=state.last_document_sha256
                                     if unchanged else None,
                                     elapsed_ms=rng.randint(80, 900))
                    states[source.id] = dataclasses.replace(
                        state, health="healthy", consecutive_failures=0, failing_since=None,
                        last_error=None, last_attempt_at=stamp(at), last_healthy_at=stamp(at))
                    writer.save_source_state(states[source.id])
                    deferred[source.id] = at
                    continue
                flush(writer, source.id)
                counters["events"] += 1
                if event == "fail":
                    outcome = pipeline.SourceOutcome(
                        source=source, started_at=at, elapsed_ms=30000, outcome="failed",
                        url=source.url, error_kind="timeout",
                        error=f"{source.url} timed out (connect 10 s, read 60 s)")
                elif event == "recover":
                    outcome = pipeline.SourceOutcome(
                        source=source, started_at=at, elapsed_ms=300, outcome="not_modified",
                        url=source.url, final_url=source.url)
                else:
                    version += 1
                    content = documents[source.id] + f"<!-- version {version} -->".encode()
                    sha = hashlib.sha256(content).hexdigest()
                    document = Document(source_id=source.id, url=source.url, content=content,
                                        sha256=sha, retrieved_at=at,
                                        content_type=source.media_type)
                    levels = jurisdiction(source.jurisdiction).SCHEDULE_LEVELS
                    if event == "au-replacement":
                        records, _ = _mutate(rng, current[source.id], levels, sha, at, taken,
                                             8, pools.get(source.id))
                        register = f"F{at.year}L{rng.randint(100, 1999):05d}"
                        records = [dataclasses.replace(r, instrument=register,
                                                       document_sha256=sha,
                                                       retrieved_at=at.isoformat())
                                   for r in records]
                        counters["au_replacements"] += 1
                    elif event == "fr-new":
                        records = list(current[source.id].values())
                    else:
                        records, _ = _mutate(rng, current[source.id], levels, sha, at, taken,
                                             rng.randint(1, 3), pools.get(source.id))
                    current[source.id] = {r.substance: r for r in records}
                    # The new document still announces what the old one did.
                    pending = tuple(row.item for row in store.pending_items(source_id=source.id))
                    outcome = pipeline.SourceOutcome(
                        source=source, started_at=at, elapsed_ms=2000, outcome="fetched",
                        url=source.url, final_url=source.url, document=document,
                        result=ParseResult(records=tuple(records), pending=pending),
                        fetched=Fetched(url=source.url, content=content, marker=sha))
                summary[source.id] = outcome.outcome
                created = _remember(writer, outcome, state, watch, store)
                counters["changes"] += len(created)
            writer.finish(finished_at=at + timedelta(seconds=40), exit_code=0, summary=summary)
        counters["runs"] += 1
        if events:
            states = store.source_states()
    with store.transaction(started_at=today, jurisdictions=codes, trigger="cron") as writer:
        for source in sources:
            flush(writer, source.id)
        writer.finish(finished_at=today, exit_code=0, summary={})
    store.close()
    with sqlite3.connect(folder / "data" / "schedwatch.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    info = {"params": [years, au_rate, seed, *(["steady"] if steady else [])],
            "generated_in_s": round(time.perf_counter() - started, 1),
            "baseline_s": round(baseline_seconds, 1), "day0": day0.date().isoformat(),
            "last_day": (day0 + timedelta(days=days)).date().isoformat(), **counters}
    (folder / "generated.json").write_text(json.dumps(info))
    status_config(folder)
    for other in CACHE.glob("history-*"):  # earlier generations of the same history
        marker = other / "generated.json"
        if other != folder and (not marker.exists() or
                                json.loads(marker.read_text()).get("params") == info["params"]):
            shutil.rmtree(other, ignore_errors=True)
    return info


# --- measuring ----------------------------------------------------------------------------------

def new_standard_day(work: Path) -> tuple[Any, str]:
    """A whole `schedwatch run` (watch = "all", site published) on the day a new Poisons
    Standard is in force, after a cold baseline run on the previous one."""
    from synthetic import next_standard_corpus, realistic_corpus

    corpus = realistic_corpus()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "schedwatch.toml"
    with Regulators(corpus) as regulators:
        config.write_text(regulators.config(work / "data", watch="all", site_dir=work / "site"))
        check(measure(schedwatch("--config", str(config), "run"), cwd=ROOT), "baseline run")
    with Regulators(next_standard_corpus(corpus)) as regulators:
        config.write_text(regulators.config(work / "data", watch="all", site_dir=work / "site"))
        before = (work / "data" / "schedwatch.db").stat().st_size
        result = check(measure(schedwatch("--config", str(config), "run"), cwd=ROOT),
                       "new-Standard run")
    growth = ((work / "data" / "schedwatch.db").stat().st_size - before) / 1e6
    summary = result.output.strip().splitlines()[-1] + f"; database +{growth:.1f} MB"
    return result, summary


PUBLISH_TARGETS: dict[str, float | None] = {
    "incremental publish after a one-change run": 1.0, "full rebuild": 5.0,
    # No target of its own: what a daily run that changes nothing costs the site (every
    # open interval's "last confirmed" moves), the floor under the one-change case.
    "incremental publish after a no-change run": None}


def _publish_settings(work: Path) -> Any:
    from reports.settings import Settings

    return Settings(data_dir=work / "data", site_dir=work / "site", watch="all")


def publish_once(work: Path, moment: str) -> None:
    """One ``reports.site.publish`` of the copied store in this process (measured from the
    outside, by ``publish_cases``)."""
    sys.path.insert(0, str(ROOT))
    from reports.site import publish
    from scrapers.store import Store

    store = Store(work / "data")
    publish(_publish_settings(work), store, now=datetime.fromisoformat(moment))
    store.close()


def one_change_run(work: Path, at: datetime) -> str:
    """A daily run that changes one thing: every source checked (unchanged), the eCFR's
    next document moves one substance to another schedule (real ``decide`` and
    ``write_outcome``)."""
    sys.path.insert(0, str(ROOT))
    from jurisdictions import all_sources, jurisdiction
    from jurisdictions.base import Fetched
    from scheduler import pipeline
    from scrapers.records import Document, ParseResult
    from scrapers.store import Store

    store = Store(work / "data")
    states = store.source_states()
    watch = _watch_all()
    sources = all_sources()
    with store.transaction(started_at=at, jurisdictions=sorted({s.jurisdiction for s in sources}),
                           trigger="cron") as writer:
        for source in sources:
            state = states[source.id]
            if source.id != "us-ecfr-1308":
                writer.add_fetch(source_id=source.id, started_at=at, url=source.url,
                                 final_url=source.url, outcome="not_modified", http_status=304,
                                 elapsed_ms=120)
                writer.save_source_state(dataclasses.replace(
                    state, last_attempt_at=stamp_of(at), last_healthy_at=stamp_of(at)))
                continue
            records = {r.substance: r for r in store.current_records(source.id)}
            moved = sorted(k for k, r in records.items() if r.status == "controlled"
                           and r.schedule == "IV" and k not in ("ketamine", "esketamine"))[0]
            content = b"<eCFR part 1308, one substance moved>" + moved.encode()
            sha, _ = store.archive(content)
            records[moved] = dataclasses.replace(
                records[moved], schedule="V", control_level=jurisdiction("us").SCHEDULE_LEVELS[
                    "V"], document_sha256=sha, retrieved_at=at.isoformat())
            outcome = pipeline.SourceOutcome(
                source=source, started_at=at, elapsed_ms=900, outcome="fetched",
                url=source.url, final_url=source.url,
                document=Document(source_id=source.id, url=source.url, content=content,
                                  sha256=sha, retrieved_at=at, content_type=source.media_type),
                result=ParseResult(records=tuple(records.values()), pending=tuple(
                    row.item for row in store.pending_items(source_id=source.id))),
                fetched=Fetched(url=source.url, content=content, marker=sha))
            created = _remember(writer, outcome, state, watch, store)
        writer.finish(finished_at=at + timedelta(seconds=30), exit_code=0, summary={})
    store.close()
    return f"{len(created)} change(s): {moved} moved to Schedule V"


def no_change_run(work: Path, at: datetime) -> None:
    """A daily run that changes nothing: every source answers 304 (its open intervals are
    confirmed again, as a real unchanged day confirms them)."""
    sys.path.insert(0, str(ROOT))
    from jurisdictions import all_sources
    from scrapers.store import Store

    store = Store(work / "data")
    states = store.source_states()
    sources = all_sources()
    with store.transaction(started_at=at, jurisdictions=sorted({s.jurisdiction for s in sources}),
                           trigger="cron") as writer:
        for source in sources:
            writer.add_fetch(source_id=source.id, started_at=at, url=source.url,
                             final_url=source.url, outcome="not_modified", http_status=304,
                             elapsed_ms=120)
            writer.save_source_state(dataclasses.replace(
                states[source.id], last_attempt_at=stamp_of(at), last_healthy_at=stamp_of(at)))
        writer.finish(finished_at=at + timedelta(seconds=30), exit_code=0, summary={})
    store.close()


def stamp_of(moment: datetime) -> str:
    from scrapers.clock import stamp

    return stamp(moment)


def spare_of(site: Path) -> Path:
    """The spare site beside ``site``: the one swapped out last, which the next publish
    builds in (``reports.site_folder.spare_of``'s name, written out here: the benchmarks
    also measure versions of the code from before that module, with ``--against``)."""
    return site.parent / f".{site.name}.spare"


def copy_site(site: Path, into: Path) -> None:
    """``site`` and its spare, as hard links, at ``into`` and beside it (as a daily
    schedule leaves them: the live site and the one before)."""
    shutil.copytree(site, into, copy_function=os.link)
    if spare_of(site).is_dir():
        shutil.copytree(spare_of(site), spare_of(into), copy_function=os.link)


def publish_daily(work: Path, moment: datetime) -> None:
    """The site at ``moment`` as a daily schedule leaves it: published then, and at six
    hours before (which is its spare)."""
    publish_once(work, (moment - timedelta(hours=6)).isoformat())
    publish_once(work, moment.isoformat())


@contextlib.contextmanager
def publish_rig(folder: Path, info: dict[str, Any]
                ) -> Iterator[tuple[str, dict[str, Callable[[], Any]], dict[str, Path]]]:
    """The publish cases of the generated store, each ready to be measured again and again
    (a whole process measured from outside: wall time, CPU, its own peak RSS): a full
    rebuild (no previous site); the publish after a daily run with one change, reusing the
    site published before it (and building in its spare, the site before that); and the
    publish after a day that changed nothing, reusing the one-change day's site. Each case has its own copy of the store in its state; a measured
    publish starts from the same site every time. Yields what the one change was, case →
    its measurement, and case → its folder (``pages_written`` reads what it wrote)."""
    import tempfile

    sys.path.insert(0, str(ROOT))
    from reports.kept import FOLDER as KEPT

    last = datetime.fromisoformat(info["last_day"]).replace(tzinfo=UTC)
    run_at = last + timedelta(days=1, hours=6)
    quiet_at = run_at + timedelta(days=1)
    root = Path(tempfile.mkdtemp(prefix="schedwatch-publish-"))
    command = [sys.executable, __file__, "--publish-once"]
    try:
        def stage(name: str, source: Path, site: Path | None) -> Path:
            """A case's folder: a copy of ``source``'s store and, as its previous site,
            ``site`` (hard links, as they will be for every measured publish), and what
            the previous publish kept in the data folder's cache (the fetch log's tally,
            the status rows' texts), put back before every measured publish."""
            work = root / name
            shutil.copytree(source / "data", work / "data")
            if (work / "data" / KEPT).is_dir():
                shutil.copytree(work / "data" / KEPT, work / "kept.baseline")
            if site is not None:
                copy_site(site, work / "site.baseline")
            return work

        retired = root / "retired"
        retired.mkdir()
        retired_names = itertools.count()

        def set_aside(path: Path) -> None:
            """What the last measured publish left, moved out of the way and deleted only
            when the rig is done. On an ext4 file system without a journal (this
            machine's), a new file is never given an inode freed in the last one to five
            minutes (ext4's ``recently_deleted``) and looking for one steps over each of
            them in turn. Deleting the previous measurement's site (4,000 files after a
            full rebuild) just before the next publish made every file that publish
            created step over the inodes just freed: the ten-year full rebuild measured
            3.9–4.6 s that way and 2.4–3.3 s with the sites set aside (2026-12-07, four
            batches of each in turns; ``perf`` put 6.5 % of a whole batch's samples in
            ``recently_deleted``). A daily publish, whose last deletions are a day old,
            never spends that time. The rig's own deletions come when it closes: a rig
            opened within minutes of another's closing (``make bench`` runs the ten-year
            cases before ``--lengths``) may still pay for some of them."""
            if path.exists():
                path.rename(retired / str(next(retired_names)))

        def case(work: Path, at: datetime, what: str) -> Callable[..., Any]:
            def measured(count_files: bool = False) -> Any:
                """The measured publish, from the staged state; with ``count_files``, the
                same publish unmeasured, and the file-system calls it makes."""
                set_aside(work / "site")
                set_aside(spare_of(work / "site"))
                set_aside(work / "data" / KEPT)
                if (work / "kept.baseline").exists():
                    shutil.copytree(work / "kept.baseline", work / "data" / KEPT)
                if (work / "site.baseline").exists():
                    copy_site(work / "site.baseline", work / "site")
                if count_files:
                    counted = subprocess.run(
                        [sys.executable, __file__, "--count-files", str(work), at.isoformat()],
                        cwd=ROOT, check=True, capture_output=True, text=True)
                    return Counter(json.loads(counted.stdout.splitlines()[-1]))
                return check(measure([*command, str(work), at.isoformat()], cwd=ROOT), what)
            return measured

        evolving = stage("evolving", folder, None)
        full = stage("full", folder, None)
        publish_daily(evolving, last + timedelta(hours=12))
        what = one_change_run(evolving, run_at)
        one_change = stage("one-change", evolving, evolving / "site")
        publish_once(evolving, (run_at + timedelta(minutes=1)).isoformat())
        no_change_run(evolving, quiet_at)
        quiet = stage("no-change", evolving, evolving / "site")
        plan = {"full rebuild": (full, last + timedelta(hours=12), "full publish"),
                "incremental publish after a one-change run": (
                    one_change, run_at + timedelta(minutes=1), "incremental publish"),
                "incremental publish after a no-change run": (
                    quiet, quiet_at + timedelta(minutes=1), "no-change publish")}
        yield (what, {name: case(*args) for name, args in plan.items()},
               {name: args[0] for name, args in plan.items()})
    finally:
        shutil.rmtree(root, ignore_errors=True)


#: The audit events (PEP 578) of the file-system calls that change a folder, by what they do.
FILE_EVENTS = {"os.link": "links", "os.remove": "deletions", "os.rename": "renames",
               "os.chmod": "mode changes", "os.mkdir": "folders made",
               "os.rmdir": "folders deleted"}


def count_file_operations(work: Path, moment: str) -> Counter[str]:
    """One ``publish_once`` in this process, without the page worker (the same calls, all
    made here), counting the file-system calls it makes in the site's folders (the site,
    its spare, the folder it builds in, the site it retires) by what they do: files
    created or written, links, deletions, renames, modes set. How many files a publish
    touches does not depend on the machine's speed, as its time does."""
    sys.path.insert(0, str(ROOT))
    import reports.page_worker

    reports.page_worker.fork_helps = lambda: False
    ours = (os.fspath(work / "site"), os.fspath(work / ".site"))
    counts: Counter[str] = Counter()
    counting = [False]

    def in_site(path: object, dir_fd: object = None) -> bool:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return False
        # A name relative to an open folder: ``shutil.rmtree`` deleting a retired site.
        return path.startswith(ours) or (dir_fd not in (None, -1) and "/" not in path)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not counting[0]:
            return
        if event == "open" and len(args) >= 3 and in_site(args[0]):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    mode is None and isinstance(flags, int) and flags & os.O_CREAT):
                counts["files written"] += 1
        elif event in FILE_EVENTS and args and in_site(
                args[0], args[-1] if event != "os.rename" else None):
            counts[FILE_EVENTS[event]] += 1

    sys.addaudithook(hook)
    counting[0] = True
    try:
        publish_once(work, moment)
    finally:
        counting[0] = False
    return counts


def pages_written(work: Path) -> Counter[str]:
    """The pages the last publish in ``work`` wrote, by folder ("." for the top): those not
    hard-linked from the previous site (an unchanged page is linked, not written). After a
    day's run, what a publish rightly remakes (pages whose content changed) is the measure
    of "what changed"; the rest of its cost is what the history's length adds. A page kept
    as the spare held it, or linked from the live site, is not written."""
    new = work / "site"
    olds = (work / "site.baseline", spare_of(work / "site.baseline"))
    written: Counter[str] = Counter()
    for path in new.rglob("*"):
        if path.is_file():
            relative = path.relative_to(new)
            before = {(old / relative).stat().st_ino for old in olds if (old / relative).exists()}
            if path.stat().st_ino not in before:
                written[relative.parent.as_posix()] += 1
    return written


def publish_cases(folder: Path, info: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    """The publish cases of the generated store (``publish_rig``), best of ``runs`` each,
    printed against their targets."""
    rows = []
    with publish_rig(folder, info) as (what, cases, _folders):
        figures = {name: best_of(runs, measured) for name, measured in cases.items()}
    years = info["params"][0]
    print(f"\nPublishing the site of the {years}-year store (watch = \"all\"; best of {runs}; "
          f"whole process; one-change run: {what})")
    print(f"{'case':46} {'wall s':>8} {'CPU s':>7} {'peak MB':>8}  target")
    for case, m in figures.items():
        target = PUBLISH_TARGETS[case]
        goal = f"< {target} s" if target is not None else "(none set)"
        outcome = verdict(m.wall, target) if target is not None else "-"
        print(f"{case:46} {m.wall:8.3f} {m.cpu:7.3f} {m.peak_mb:8.1f}  {goal} {outcome}")
        rows.append({"benchmark": f"publish, {years}-year history", "case": case,
                     "wall_s": round(m.wall, 3), "cpu_s": round(m.cpu, 3),
                     "peak_mb": round(m.peak_mb, 1), "target": goal, "verdict": outcome})
    return rows


def database_facts(folder: Path) -> dict[str, Any]:
    path = folder / "data" / "schedwatch.db"
    with sqlite3.connect(path) as db:
        rows = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("runs", "fetches", "status", "changes", "documents", "pending")}
        try:
            by_object = dict(db.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"))
        except sqlite3.DatabaseError:
            by_object = {}
        archive = db.execute("SELECT sum(size) FROM documents").fetchone()[0] or 0
        kinds = dict(db.execute("SELECT kind, count(*) FROM changes GROUP BY kind"))
    return {"db_mb": path.stat().st_size / 1e6, "rows": rows, "by_object": by_object,
            "archive_mb": archive / 1e6, "change_kinds": kinds}


def publish_scaling(lengths: Sequence[int], au_rate: int, seed: int, runs: int,
                    steady: bool = False) -> list[dict[str, Any]]:
    """The publish cases (``publish_rig``) on stores of several history lengths (the same
    generator, the same seed), measured in turns — every case of every length, then again,
    ``runs`` times — so that the machine's drift falls on all lengths alike; then how each
    case grows per year of history: the least-squares slope of its median wall and CPU time
    against the years. Issue 18's target is an incremental publish that costs what changed
    "whatever its length": a slope of zero, within the noise. With ``steady``, on histories
    whose substances are the same at every length (``ensure_history``)."""
    stores = {years: ensure_history(years, au_rate, seed, steady=steady) for years in lengths}
    taken: dict[tuple[int, str], list[Any]] = defaultdict(list)
    with contextlib.ExitStack() as stack:
        rigs = {years: stack.enter_context(publish_rig(*stores[years])) for years in lengths}
        for _ in range(runs):
            for years in lengths:
                for case, measured in rigs[years][1].items():
                    taken[(years, case)].append(measured())
        after_a_day = ("incremental publish after a one-change run",
                       "incremental publish after a no-change run")
        written = {case: [pages_written(rigs[y][2][case]) for y in lengths]
                   for case in after_a_day}
        touched = {case: [rigs[y][1][case](count_files=True) for y in lengths]
                   for case in after_a_day}
    population = POPULATIONS[steady]
    print(f"\nThe publish against the history's length ({population}; watch = \"all\"; "
          f"median of {runs} taken in turns; whole process; the slope: least squares over "
          "the lengths)")
    print(f"{'case':46} " + " ".join(f"{str(y) + ' y':>7}" for y in lengths)
          + f" {'wall/year':>10} {'CPU/year':>9}  target")
    rows: list[dict[str, Any]] = []
    for case in rigs[lengths[0]][1]:
        walls = [statistics.median(m.wall for m in taken[(y, case)]) for y in lengths]
        cpus = [statistics.median(m.cpu for m in taken[(y, case)]) for y in lengths]
        wall_slope, cpu_slope = _slope(lengths, walls), _slope(lengths, cpus)
        incremental = case == "incremental publish after a one-change run"
        goal = "no growth with the history" if incremental else "(none set)"
        # "No growth" allows the longest history 5 % more CPU than the shortest, by the
        # slope: less than the drift between two batches.
        grows = cpu_slope * (lengths[-1] - lengths[0]) > 0.05 * cpus[0]
        outcome = ("MISSED" if grows else "ok") if incremental else "-"
        print(f"{case:46} " + " ".join(f"{w:7.3f}" for w in walls)
              + f" {wall_slope * 1000:7.0f} ms {cpu_slope * 1000:6.0f} ms  {goal} {outcome}")
        rows.append({"benchmark": f"publish against the history's length, {population}",
                     "case": case,
                     "wall_s": " / ".join(f"{w:.3f}" for w in walls),
                     "cpu_s": " / ".join(f"{c:.3f}" for c in cpus),
                     "note": f"median of {runs}; {' / '.join(map(str, lengths))} years: "
                             f"{wall_slope * 1000:.0f} ms wall, {cpu_slope * 1000:.0f} ms CPU "
                             "a year of history", "target": goal, "verdict": outcome})
    # What each publish after a day's run wrote: part of the growth is pages whose content
    # did change (a new eCFR document is the latest evidence of every history page citing
    # it, and a longer history has more of them).
    for case, counts in written.items():
        print(f"pages written, {case.removeprefix('incremental publish ')}: " + " / ".join(
            f"{sum(c.values())} ({c['history']} history)" for c in counts)
            + f" on {' / '.join(map(str, lengths))} years")
    # And what it did in the site's folders: a publish that costs what changed touches the
    # files that changed, not every file of the site.
    for case, operations in touched.items():
        print(f"file-system calls in the site's folders, "
              f"{case.removeprefix('incremental publish ')}: " + " / ".join(
                  f"{sum(c.values())} ({', '.join(f'{k} {v}' for k, v in sorted(c.items()))})"
                  for c in operations) + f" on {' / '.join(map(str, lengths))} years")
        rows.append({"benchmark": f"publish against the history's length, {population}",
                     "case": f"file-system calls, {case}",
                     "note": " / ".join(str(sum(c.values())) for c in operations)
                     + f" on {' / '.join(map(str, lengths))} years"})
    return rows


#: How the lengths' histories are made, as the figures name them: substances added and
#: removed over the years (the one-change day's new eCFR document is the latest evidence of
#: more history pages on a longer history), or the same substances at every length.
POPULATIONS = {False: "substances added over the years", True: "the same substances"}


def _slope(xs: Sequence[int], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` against ``xs`` (two or more distinct ``xs``)."""
    return statistics.linear_regression(xs, ys).slope


def _lengths(text: str) -> list[int]:
    """``--lengths``: two or more distinct whole numbers of years, smallest first."""
    try:
        lengths = sorted({int(part) for part in text.split(",")})
    except ValueError:
        lengths = []
    if len(lengths) < 2 or lengths[0] < 1:
        raise argparse.ArgumentTypeError("two or more lengths in years, e.g. 5,10,20")
    return lengths


def ensure_history(years: int = YEARS, au_rate: int = 3, seed: int = 7,
                   rebuild: bool = False, steady: bool = False) -> tuple[Path, dict[str, Any]]:
    """The cached store of this history (generated once), and what its generation said.
    ``steady``: every event moves entries of the same few (``steady_pool``), never adds or
    removes one, so that the store's substances, and the pages a day's change rightly
    rewrites, are the same whatever the history's length."""
    folder = history_folder(years, au_rate, seed, steady)
    if rebuild or not (folder / "generated.json").exists():
        print(f"… generating {years} years of {'steady ' if steady else ''}daily history "
              f"into {folder} (once; cached)", flush=True)
        info = generate(folder, years, au_rate, seed, steady)
    else:
        info = json.loads((folder / "generated.json").read_text())
    return folder, info


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--years", type=int, default=YEARS)
    parser.add_argument("--au-replacements", type=int, default=3,
                        help="new Poisons Standards per year (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-change-day", dest="change_day", action="store_false",
                        help="skip the run of the day a new Poisons Standard appears")
    parser.add_argument("--no-publish", dest="publish", action="store_false",
                        help="skip the publish cases (full rebuild, incremental publish)")
    parser.add_argument("--only-publish", action="store_true",
                        help="only the publish cases")
    parser.add_argument("--lengths", default=None, type=_lengths, metavar="YEARS,YEARS,...",
                        help="only the publish cases, on stores of these history lengths "
                             "(e.g. 5,10,20), and how each grows per year")
    parser.add_argument("--steady", action="store_true",
                        help="with --lengths: histories whose events move the same few "
                             "entries, never add or remove one, so that the one-change day "
                             "rightly rewrites the same pages at every length")
    parser.add_argument("--publish-once", nargs=2, metavar=("WORK", "NOW"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--count-files", nargs=2, metavar=("WORK", "NOW"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.publish_once:
        publish_once(Path(args.publish_once[0]), args.publish_once[1])
        return []
    if args.count_files:
        print(json.dumps(count_file_operations(Path(args.count_files[0]), args.count_files[1])))
        return []

    if args.lengths:
        rows = publish_scaling(args.lengths, args.au_replacements, args.seed, args.runs,
                               args.steady)
        emit_json(args.json, rows)
        return rows
    folder, info = ensure_history(args.years, args.au_replacements, args.seed, args.rebuild)
    if args.only_publish:
        rows = publish_cases(folder, info, min(args.runs, 3))
        emit_json(args.json, rows)
        return rows
    config = status_config(folder)
    facts = database_facts(folder)
    last = datetime.fromisoformat(info["last_day"])
    dates = {"mid-history": (last - timedelta(days=365 * args.years // 2)).date().isoformat(),
             "last day": (last - timedelta(days=1)).date().isoformat()}
    load = settle()
    results = []
    for label, day in dates.items():
        for fmt in ("table", "json"):
            extra = () if fmt == "table" else ("--format", fmt)
            command = schedwatch("--config", str(config), "status", "--as-of", day, *extra)
            result = best_of(args.runs, lambda c=command: check(measure(c, cwd=ROOT),
                                                                "schedwatch status --as-of"))
            lines = result.output.count("\n")
            results.append((label, day, fmt, result, lines))

    print(f"\nHistory: {info['day0']} → {info['last_day']}, {info['runs']} daily runs, "
          f"{info['events']} source events, {info['changes']} changes written, "
          f"{info['au_replacements']} new Poisons Standards (generated in "
          f"{info['generated_in_s']} s, baseline {info['baseline_s']} s)")
    rows_text = ", ".join(f"{k} {v}" for k, v in facts["rows"].items())
    print(f"Database: {facts['db_mb']:.1f} MB ({rows_text}); archived documents referenced "
          f"{facts['archive_mb']:.0f} MB")
    if facts["by_object"]:
        print("  by table/index: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in
                                                list(facts["by_object"].items())[:8]))
    print("  changes by kind: " + ", ".join(f"{k} {v}" for k, v in facts["change_kinds"].items()))
    print(f"\n`schedwatch status --as-of DATE` (best of {args.runs}; whole command)")
    print(f"{'date':24} {'format':6} {'wall s':>8} {'CPU s':>7} {'peak MB':>8} {'lines':>7}  target")
    rows = []
    for label, day, fmt, m, lines in results:
        print(f"{label + ' ' + day:24} {fmt:6} {m.wall:8.3f} {m.cpu:7.3f} {m.peak_mb:8.1f} "
              f"{lines:7d}  < {TARGET_SECONDS} s {verdict(m.wall, TARGET_SECONDS)}")
        rows.append({"benchmark": "status --as-of, 10-year history",
                     "case": f"{label}, --format {fmt}", "wall_s": round(m.wall, 3),
                     "cpu_s": round(m.cpu, 3), "peak_mb": round(m.peak_mb, 1),
                     "db_mb": round(facts["db_mb"], 1), "target": f"< {TARGET_SECONDS} s",
                     "verdict": verdict(m.wall, TARGET_SECONDS), "load": round(load, 1)})
    print(f"(store: {folder}; load average {load:.1f} when measuring started)")
    if args.change_day:
        import tempfile

        # Best of a few: each is a fresh baseline run, then the measured one.
        day, summary = None, ""
        for _ in range(min(args.runs, 3)):
            work = Path(tempfile.mkdtemp(prefix="schedwatch-newstandard-"))
            result, said = new_standard_day(work)
            shutil.rmtree(work, ignore_errors=True)
            if day is None or result.wall < day.wall:
                day, summary = result, said
        assert day is not None
        ok = verdict(day.wall, NEW_STANDARD_TARGET)
        print(f"\nThe day a new Poisons Standard is in force (one whole `schedwatch run`, "
              f"watch = \"all\", after a baseline run; best of {min(args.runs, 3)}): "
              f"{day.wall:.2f} s wall, {day.cpu:.2f} s CPU, {day.peak_mb:.0f} MB peak  "
              f"< {NEW_STANDARD_TARGET} s {ok}\n  {summary}")
        rows.append({"benchmark": "daily run, new Poisons Standard day", "case":
                     "realistic sizes, watch=all", "wall_s": round(day.wall, 3),
                     "cpu_s": round(day.cpu, 3), "peak_mb": round(day.peak_mb, 1),
                     "target": f"< {NEW_STANDARD_TARGET} s", "verdict": ok,
                     "load": round(load, 1)})
    if args.publish:
        rows += publish_cases(folder, info, min(args.runs, 3))
    emit_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
