"""One tracking cycle: read → fetch/parse → decide → write → publish → notify.

The prior state is read once, before anything is fetched. Network and parsing happen before
the transaction opens; ``reports.diff.decide`` then decides, from the prior state alone, what
each source's outcome changes (the law moving on, health, records, pending items), and the
writer applies those decisions in one transaction, so a crash leaves either the whole run or
none of it. Publishing and email come after the commit and never undo the tracking.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jurisdictions import REGISTRY, jurisdiction
from jurisdictions.base import FetchContext, Source
from jurisdictions.substances import WatchList, build_watch_list
from reports.diff import (
    FLIP_FLOP_WINDOW,
    HEALTHY,
    Decision,
    SourceOutcome,
    check_early_warning,
    clock_problem,
    decide,
    watch_signature,
    with_law_dates,
)
from scheduler.fetching import PARSE_IN_WORKER, ParserCrashed, ParseWorker, fetch_sources
from scheduler.writes import apply_pending, apply_steps, store_actions
from scrapers import clock
from scrapers.clock import utcnow
from scrapers.errors import ExtractionError, FetchError, SchedwatchError
from scrapers.faults import checkpoint
from scrapers.records import Document, validate
from scrapers.store import RunWriter, SourceState, Store
from scrapers.version import version

if TYPE_CHECKING:  # pragma: no cover
    from scheduler.config import Settings

@dataclass(frozen=True)
class CreatedChange:
    """A change written in this run (enough to route alerts and print the summary)."""

    id: int
    kind: str
    jurisdiction: str
    substance: str | None
    summary: str
    alert: bool = True  # False for a flip-flop: stored, reported, not alerted
    review: bool = False  # the status now rests on a generic entry: alerted for review


@dataclass
class RunReport:
    run_id: int
    exit_code: int
    outcomes: list[SourceOutcome]
    change_ids: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    site_published: bool = True  # False: the site could not be published (see warnings)


def user_agent(settings: Settings) -> str:
    return f"schedwatch/{version()} (+{settings.contact})"


def selected_sources(settings: Settings, codes: Sequence[str] | None = None) -> list[Source]:
    """The enabled sources of the chosen jurisdictions, with configured URL overrides."""
    chosen = list(codes) if codes else list(REGISTRY)
    for code in chosen:
        if code not in REGISTRY:
            raise SchedwatchError(f"unknown jurisdiction {code!r}; known: "
                                  f"{', '.join(REGISTRY)}")
    sources: list[Source] = []
    for code in chosen:
        for source in jurisdiction(code).SOURCES:
            configured = settings.source(source.id)
            if not configured.enabled:
                continue
            if configured.endpoints:
                source = dataclasses.replace(
                    source, endpoints={**source.endpoints, **configured.endpoints})
            sources.append(source)
    return sources


def make_fetcher(settings: Settings) -> Any:
    from scrapers.fetch import FetchPolicy, HttpFetcher

    f = settings.fetch
    return HttpFetcher(FetchPolicy(
        user_agent=user_agent(settings), connect_timeout=f.connect_timeout,
        read_timeout=f.read_timeout, max_retries=f.max_retries, backoff=f.backoff,
        max_wait=f.max_wait, min_interval=f.request_interval,
        max_bytes=f.max_document_mb * 1024 * 1024, verify_tls=not f.insecure_skip_tls_verify,
        respect_robots=f.respect_robots, robots_cache=settings.data_dir / "cache" / "robots"))


# --- fetch and parse (no writes) ----------------------------------------------------------

def process_source(source: Source, state: SourceState | None, watch: WatchList, fetcher: Any,
                   store: Store, *, now: Callable[[], datetime] = utcnow,
                   worker: ParseWorker | None = None) -> SourceOutcome:
    """Fetch one source and, when its document is new, parse (here, or in ``worker``'s
    process) and validate it. Never raises for what a source serves: any failure is this
    source's outcome, the others go on."""
    from scrapers.fetch import simple_plan

    started = now()
    clock = time.monotonic()
    # A parsed document of the same watch list, its evidence file still there: its
    # validators and marker may be sent (``parses_for_sure``).
    trusted = not parses_for_sure(state, watch, store)
    context = FetchContext(
        source_id=source.id, endpoints=source.endpoints,
        etag=state.etag if trusted and state else None,
        last_modified=state.last_modified if trusted and state else None,
        marker=state.marker if trusted and state else None,
        today=started.date())

    def elapsed() -> int:
        return int((time.monotonic() - clock) * 1000)

    def failed(outcome: str, kind: str, error: str, **more: Any) -> SourceOutcome:
        return SourceOutcome(source=source, started_at=started, elapsed_ms=elapsed(),
                             outcome=outcome, url=source.url, error_kind=kind, error=error,
                             **more)

    plan = source.fetch_plan or simple_plan
    seen_redirects = len(getattr(fetcher, "redirects", ()))
    try:
        fetched = plan(fetcher, context)
    except FetchError as error:
        return failed("failed", error.kind, str(error), http_status=error.status)
    except ExtractionError as error:
        return failed("extraction_failed", "extraction", str(error))
    except Exception as error:  # noqa: BLE001 - one bad answer never stops the other sources
        return failed("extraction_failed", "extraction",
                      f"{source.id}: the answer could not be read ({type(error).__name__}); "
                      "the source's API or format changed")
    checkpoint("fetched")
    moves = tuple(dict.fromkeys(getattr(fetcher, "redirects", [])[seen_redirects:]))
    if fetched.redirected_from and not moves:
        moves = ((fetched.redirected_from, fetched.url),)
    common = dict(source=source, started_at=started, url=source.url, final_url=fetched.url,
                  moves=moves, fetched=fetched)
    if fetched.content is None:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="not_modified", **common)  # type: ignore[arg-type]
    try:
        sha, _path = store.archive(fetched.content)
    except OSError as error:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="failed", error_kind="storage",
                             error=store.storage_error(error), **common)  # type: ignore[arg-type]
    checkpoint("archived")
    document = Document.of(fetched.content, source_id=source.id, url=fetched.url,
                           retrieved_at=started, content_type=fetched.content_type,
                           meta=fetched.meta, sha256=sha)
    if trusted and state and sha == state.last_document_sha256:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="unchanged", document=document,
                             **common)  # type: ignore[arg-type]
    try:
        parsed = worker.parse(source, document, watch) if worker else \
            source.parse(document, watch)
        result = validate(parsed, source_id=source.id, watched=watch.keys)
    except ExtractionError as error:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="extraction_failed",
                             error_kind="extraction", error=str(error), document=document,
                             **common)  # type: ignore[arg-type]
    except Exception as error:  # noqa: BLE001 - a parser crash is an extraction failure
        kind = error.kind if isinstance(error, ParserCrashed) else type(error).__name__
        message = f"{source.id}: the parser failed on this document ({kind})"
        return SourceOutcome(elapsed_ms=elapsed(), outcome="extraction_failed",
                             error_kind="extraction", error=message, document=document,
                             **common)  # type: ignore[arg-type]
    return SourceOutcome(elapsed_ms=elapsed(), outcome="fetched", document=document,
                         result=result, **common)  # type: ignore[arg-type]


def _healthy_before(state: SourceState | None, store: Store) -> bool:
    """Whether the source's last check ended in a healthy, parsed document whose archived
    copy still exists. Validators and markers are only trusted from such a document: after
    a failure (or a lost evidence file) we want the full document back, not a 304."""
    return state is not None and state.health == HEALTHY \
        and state.last_document_sha256 is not None \
        and store.has_document_file(state.last_document_sha256)


def parses_for_sure(state: SourceState | None, watch: WatchList, store: Store) -> bool:
    """Whether a source will parse a document this run whatever its server answers: it has
    none it can trust (never checked, last check failed, evidence file lost) or the watch
    list changed since it parsed one, so ``process_source`` asks for the whole document
    and parses it. A trusted source parses only when its document changed, which is not
    known before it is fetched."""
    return not (_healthy_before(state, store) and state is not None
                and state.watch_keys == watch_signature(watch))


# --- write (one transaction) ----------------------------------------------------------------

def local_day(moment: datetime, code: str) -> date:
    """The calendar date of a moment in a jurisdiction's own time zone: the law of Canada
    changes at midnight in Canada."""
    return moment.astimezone(ZoneInfo(jurisdiction(code).TIMEZONE)).date()


def write_outcome(writer: RunWriter, outcome: SourceOutcome, decision: Decision,
                  store: Store, *, backfilled: bool = False) -> list[CreatedChange]:
    """Apply one source's decision: the archive and fetch log, then its steps in order."""
    source = outcome.source
    at = outcome.started_at
    document = outcome.document
    if document is not None:
        writer.add_document(sha256=document.sha256, size=len(document.content),
                            media_type=document.content_type, source_id=source.id,
                            url=document.url, seen_at=at,
                            path=str(store.document_path(document.sha256).relative_to(
                                store.documents_dir)))
    writer.add_fetch(source_id=source.id, started_at=at, url=outcome.url,
                     final_url=outcome.final_url, outcome=outcome.outcome,
                     error_kind=outcome.error_kind, error=outcome.error,
                     http_status=outcome.http_status,
                     document_sha256=document.sha256 if document else None,
                     elapsed_ms=outcome.elapsed_ms)
    apply_steps(writer, decision, source_id=source.id, at=at, backfilled=backfilled)
    checkpoint("status_written")
    created: list[CreatedChange] = []
    for change in decision.changes:
        change_id = writer.add_change(
            detected_at=at, jurisdiction=change.jurisdiction, substance=change.substance,
            source_id=change.source_id, kind=change.kind, summary=change.summary,
            before=change.before, after=change.after, effective_date=change.effective_date,
            before_sha256=change.before_sha256, after_sha256=change.after_sha256,
            details=change.details, backfilled=backfilled)
        created.append(CreatedChange(change_id, change.kind, change.jurisdiction,
                                     change.substance, change.summary,
                                     alert=change.alert and not backfilled,
                                     review="review" in change.details))
    checkpoint("changes_written")
    apply_pending(writer, decision.pending, at=at)
    store_actions(writer, outcome, backfilled=backfilled)
    writer.save_source_state(decision.state)
    return created


# --- the run --------------------------------------------------------------------------------

def run(settings: Settings, *, codes: Sequence[str] | None = None, store: Store | None = None,
        fetcher: Any = None, now: Callable[[], datetime] | None = None, trigger: str = "cli",
        publish: bool = True, notify: bool = True) -> RunReport:
    """One tracking cycle over the chosen jurisdictions (default: all registered). ``now``
    is the run's clock (default: ``scrapers.clock.utcnow``, read when the run starts)."""
    now = now or clock.utcnow
    own_store = store is None
    store = store or Store(settings.data_dir, settings.database_url)
    sources = selected_sources(settings, codes)
    watch = build_watch_list(settings.watch)
    chosen_codes = sorted({s.jurisdiction for s in sources})
    try:
        with contextlib.ExitStack() as locks:
            for code in chosen_codes:
                locks.enter_context(store.lock(f"jurisdiction-{code}", holder=trigger))
            report = _run_locked(settings, store, sources, watch, chosen_codes, fetcher, now,
                                 trigger)
        if publish and needs_publishing(settings, report, store):
            publish_site(settings, store, report)
        if notify and settings.email is not None:
            report.warnings.extend(deliver_after_run(settings, store))
        return report
    finally:
        if own_store:
            store.close()


def _run_locked(settings: Settings, store: Store, sources: Sequence[Source],
                watch: WatchList, codes: Sequence[str], fetcher: Any,
                now: Callable[[], datetime], trigger: str) -> RunReport:
    started = now()
    # The parse worker is forked first: before the prior state is read (its copy of this
    # process stays small) and before the fetch threads start. Only when another source
    # parses for sure: else the worker's parse would have nothing beside it (a warm day, or
    # only a new Poisons Standard: measured the same wall time without the worker), and
    # forking it costs a warm run ~10 ms.
    states = store.source_states()
    beside = any(parses_for_sure(states.get(s.id), watch, store) for s in sources
                 if s.id not in PARSE_IN_WORKER)
    with ParseWorker(sources, beside=beside) as worker:
        prior = store.prior([s.id for s in sources], since=started - FLIP_FLOP_WINDOW)
        problem = clock_problem(prior, started)
        if problem:
            raise SchedwatchError(problem)
        fetched = fetch_sources(sources, lambda source, fetcher: process_source(
            source, prior.states.get(source.id), watch, fetcher, store, now=now,
            worker=worker), make_fetcher=lambda: make_fetcher(settings), fetcher=fetcher,
            max_workers=settings.fetch.parallel_hosts)
    outcomes = [check_early_warning(outcome, prior) for outcome in fetched]
    outcomes = with_law_dates(outcomes, prior, {
        code: getattr(jurisdiction(code), "law_dates", None) for code in codes})
    decisions = [decide(outcome, prior, watch,
                        jurisdiction_name=jurisdiction(outcome.source.jurisdiction).NAME,
                        today=local_day(outcome.started_at, outcome.source.jurisdiction),
                        failures_before_alert=settings.failures_before_alert)
                 for outcome in outcomes]
    exit_code = 0 if all(o.healthy for o in outcomes) else 2
    created: list[CreatedChange] = []
    with store.transaction(started_at=started, jurisdictions=codes, trigger=trigger) as writer:
        for outcome, decision in zip(outcomes, decisions, strict=True):
            created += write_outcome(writer, outcome, decision, store)
        if settings.email is not None:
            from reports.outbox import enqueue_alerts

            enqueue_alerts(writer, settings, [c for c in created if c.alert], now=now())
        checkpoint("before_commit")
        writer.finish(finished_at=now(), exit_code=exit_code, summary={
            o.source.id: o.outcome for o in outcomes})
        run_id = writer.run_id
    report = RunReport(run_id=run_id, exit_code=exit_code, outcomes=outcomes,
                       change_ids=[c.id for c in created])
    report.lines = [summary_line(o) for o in outcomes]
    for change in created:
        report.lines.append(f"change #{change.id}: {change.summary}")
    if settings.fetch.insecure_skip_tls_verify:
        report.warnings.append("warning: TLS certificate verification is OFF "
                               "(fetch.insecure_skip_tls_verify); documents could be forged")
    return report


def summary_line(outcome: SourceOutcome) -> str:
    source = outcome.source.id
    if outcome.outcome == "failed":
        return f"{source}: FAILED ({outcome.error_kind}) {outcome.error}"
    if outcome.outcome == "extraction_failed":
        return f"{source}: EXTRACTION FAILED {outcome.error}"
    moved = "".join(f"; moved to {new} (was {old}), update [sources.{source}] url"
                    for old, new in outcome.moves)
    if outcome.outcome == "not_modified":
        return f"{source}: ok, not modified{moved}"
    if outcome.outcome == "unchanged":
        return f"{source}: ok, unchanged (sha256 {outcome.document.sha256[:12]}){moved}" \
            if outcome.document else f"{source}: ok, unchanged{moved}"
    count = len(outcome.result.records) if outcome.result else 0
    sha = outcome.document.sha256[:12] if outcome.document else "?"
    return f"{source}: ok, parsed {count} records (sha256 {sha}){moved}"


def needs_publishing(settings: Settings, report: RunReport, store: Store) -> bool:
    """A run where every source was unchanged renders nothing (and never imports pandas);
    the site is rebuilt when a document was parsed, a source failed, a change was made, or
    an earlier publish did not finish (the site is behind the store)."""
    if report.change_ids or not (settings.site_path / "index.html").exists():
        return True
    if store.site_behind():
        return True
    return any(o.outcome not in ("not_modified", "unchanged") for o in report.outcomes)


def publish_site(settings: Settings, store: Store, report: RunReport) -> None:
    """Publish; a site that could not be rendered is a failed run (exit 2), and the store
    remembers that the site is behind so that the next run publishes even if quiet."""
    from reports.site import publish

    store.mark_site_behind()
    try:
        publish(settings, store)
    except SchedwatchError as error:
        report.warnings.append(f"site not updated: {error}")
    except OSError as error:
        report.warnings.append(f"site not updated: {error.strerror or error}; the previous "
                               "site is unchanged")
    else:
        store.clear_site_behind()
        return
    report.site_published = False
    report.exit_code = max(report.exit_code, 2)


def deliver_after_run(settings: Settings, store: Store | None = None) -> list[str]:
    """Deliver what is due (``schedwatch run`` calls this after printing the run's lines).
    Never raises for email or a locked database: those come back as lines."""
    from reports.outbox import deliver_outbox

    mine = store is None
    try:
        store = store or Store(settings.data_dir, settings.database_url)
        return deliver_outbox(settings, store)
    except SchedwatchError as error:
        return [f"email: {error}"]
    finally:
        if mine and store is not None:
            store.close()
