"""One tracking cycle: fetch → archive → (unchanged? stop) → parse → validate → diff →
remember (one transaction) → publish → notify.

Network and parsing happen before the transaction opens; everything the run learnt is then
written at once, so a crash leaves either the whole run or none of it. Publishing and email
come after the commit and can never undo or fail the tracking.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jurisdictions import REGISTRY, jurisdiction
from jurisdictions.base import FetchContext, Fetched, Source
from jurisdictions.substances import WatchList, build_watch_list
from scrapers.errors import ExtractionError, FetchError, SchedwatchError
from scrapers.faults import checkpoint
from scrapers.records import Document, ParseResult, validate
from scrapers.store import RunWriter, SourceState, Store, parse_stamp, stamp, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from reports.diff import Change
    from scheduler.config import Settings

__version__ = "0.1.0"

HEALTHY = "healthy"
FAILURE_KINDS = {"failed": "source_failed", "extraction_failed": "extraction_failed"}


@dataclass(frozen=True)
class SourceOutcome:
    """What happened to one source in this run, before anything is written."""

    source: Source
    started_at: datetime
    elapsed_ms: int
    outcome: str  # fetched | not_modified | unchanged | failed | extraction_failed
    url: str
    final_url: str | None = None
    #: Every (requested, final) URL pair that came through a redirect while fetching.
    moves: tuple[tuple[str, str], ...] = ()
    error_kind: str | None = None
    error: str | None = None
    http_status: int | None = None
    document: Document | None = None
    result: ParseResult | None = None
    fetched: Fetched | None = None

    @property
    def healthy(self) -> bool:
        return self.outcome not in FAILURE_KINDS


@dataclass(frozen=True)
class CreatedChange:
    """A change written in this run (enough to route alerts and print the summary)."""

    id: int
    kind: str
    jurisdiction: str
    substance: str | None
    summary: str
    alert: bool = True  # False for a flip-flop: stored, reported, not alerted


@dataclass
class RunReport:
    run_id: int
    exit_code: int
    outcomes: list[SourceOutcome]
    change_ids: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def user_agent(settings: Settings) -> str:
    return f"schedwatch/{__version__} (+{settings.contact})"


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
        respect_robots=f.respect_robots))


def watch_signature(watch: WatchList) -> tuple[str, ...]:
    return ("*all*",) if watch.all_entries else tuple(sorted(watch.keys))


# --- fetch and parse (no writes) ----------------------------------------------------------

def process_source(source: Source, state: SourceState | None, watch: WatchList, fetcher: Any,
                   store: Store, *, now: Callable[[], datetime] = utcnow) -> SourceOutcome:
    """Fetch one source and, when its document is new, parse and validate it."""
    from scrapers.fetch import simple_plan

    started = now()
    clock = time.monotonic()
    healthy_before = state is not None and state.health == HEALTHY \
        and state.last_document_sha256 is not None
    same_watch = state is not None and state.watch_keys == watch_signature(watch)
    context = FetchContext(
        source_id=source.id, endpoints=source.endpoints,
        # Validators and markers are only trusted from a healthy, parsed document: after a
        # failure we want the full document back, not a 304.
        etag=state.etag if healthy_before and same_watch and state else None,
        last_modified=state.last_modified if healthy_before and same_watch and state else None,
        marker=state.marker if healthy_before and same_watch and state else None,
        today=started.date())

    def elapsed() -> int:
        return int((time.monotonic() - clock) * 1000)

    plan = source.fetch_plan or simple_plan
    seen_redirects = len(getattr(fetcher, "redirects", ()))
    try:
        fetched = plan(fetcher, context)
    except FetchError as error:
        return SourceOutcome(source=source, started_at=started, elapsed_ms=elapsed(),
                             outcome="failed", url=source.url, error_kind=error.kind,
                             error=str(error), http_status=error.status)
    except ExtractionError as error:
        return SourceOutcome(source=source, started_at=started, elapsed_ms=elapsed(),
                             outcome="extraction_failed", url=source.url,
                             error_kind="extraction", error=str(error))
    checkpoint("fetched")
    moves = tuple(dict.fromkeys(getattr(fetcher, "redirects", [])[seen_redirects:]))
    if fetched.redirected_from and not moves:
        moves = ((fetched.redirected_from, fetched.url),)
    common = dict(source=source, started_at=started, url=source.url, final_url=fetched.url,
                  moves=moves, fetched=fetched)
    if fetched.content is None:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="not_modified", **common)  # type: ignore[arg-type]
    sha, _path = store.archive(fetched.content)
    checkpoint("archived")
    document = Document(source_id=source.id, url=fetched.url, content=fetched.content,
                        sha256=sha, retrieved_at=started, content_type=fetched.content_type,
                        meta=dict(fetched.meta))
    if healthy_before and same_watch and state and sha == state.last_document_sha256:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="unchanged", document=document,
                             **common)  # type: ignore[arg-type]
    try:
        result = validate(source.parse(document, watch), source_id=source.id,
                          watched=watch.keys)
    except ExtractionError as error:
        return SourceOutcome(elapsed_ms=elapsed(), outcome="extraction_failed",
                             error_kind="extraction", error=str(error), document=document,
                             **common)  # type: ignore[arg-type]
    except Exception as error:  # noqa: BLE001 - a parser crash is an extraction failure
        message = f"{source.id}: the parser failed on this document ({type(error).__name__})"
        return SourceOutcome(elapsed_ms=elapsed(), outcome="extraction_failed",
                             error_kind="extraction", error=message, document=document,
                             **common)  # type: ignore[arg-type]
    return SourceOutcome(elapsed_ms=elapsed(), outcome="fetched", document=document,
                         result=result, **common)  # type: ignore[arg-type]


# --- remember (one transaction) -----------------------------------------------------------

def _default_state(source: Source) -> SourceState:
    return SourceState(source_id=source.id, jurisdiction=source.jurisdiction, health="unknown",
                       failing_since=None, consecutive_failures=0, last_error=None,
                       last_attempt_at=None, last_healthy_at=None, last_document_sha256=None,
                       last_url=None, etag=None, last_modified=None, marker=None,
                       watch_keys=None, document_dates=(), document_meta={}, title=None,
                       instrument=None)


def remember(writer: RunWriter, outcome: SourceOutcome, state: SourceState | None,
             watch: WatchList, store: Store, settings: Settings) -> list[CreatedChange]:
    """Write one source's outcome; returns [(change id, Change-or-source-kind)]."""
    from reports.diff import source_summary

    source = outcome.source
    prev = state or _default_state(source)
    name = jurisdiction(source.jurisdiction).NAME
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
    created: list[CreatedChange] = []

    if not outcome.healthy:
        kind = FAILURE_KINDS[outcome.outcome]
        failures = prev.consecutive_failures + 1
        failing_since = prev.failing_since if prev.consecutive_failures else stamp(at)
        health = prev.health
        if failures >= settings.failures_before_alert and prev.health != kind:
            change_id = writer.add_change(
                detected_at=at, jurisdiction=source.jurisdiction, substance=None,
                source_id=source.id, kind=kind,
                summary=source_summary(kind, source.id, name, outcome.error or ""),
                before=None, after=None,
                details={"error": outcome.error, "error_kind": outcome.error_kind,
                         "url": outcome.url, "failing_since": failing_since,
                         "document_sha256": document.sha256 if document else None})
            created.append(CreatedChange(change_id, kind, source.jurisdiction, None,
                                         source_summary(kind, source.id, name,
                                                        outcome.error or "")))
            health = kind
        writer.save_source_state(dataclasses.replace(
            prev, health=health, consecutive_failures=failures, failing_since=failing_since,
            last_error=outcome.error, last_attempt_at=stamp(at)))
        return created

    if prev.health in FAILURE_KINDS.values():
        change_id = writer.add_change(
            detected_at=at, jurisdiction=source.jurisdiction, substance=None,
            source_id=source.id, kind="recovered",
            summary=source_summary("recovered", source.id, name,
                                   f"failing since {prev.failing_since}"),
            before=None, after=None,
            details={"failing_since": prev.failing_since, "previous_health": prev.health,
                     "previous_error": prev.last_error})
        created.append(CreatedChange(change_id, "recovered", source.jurisdiction, None,
                                     f"{name} — {source.id}: source recovered"))
    new_state = dataclasses.replace(
        prev, health=HEALTHY, consecutive_failures=0, failing_since=None, last_error=None,
        last_attempt_at=stamp(at), last_healthy_at=stamp(at),
        last_url=outcome.final_url or prev.last_url)

    if outcome.outcome in ("not_modified", "unchanged"):
        # The new last_healthy_at confirms every open interval: no status row is rewritten.
        writer.save_source_state(new_state)
        return created

    assert outcome.result is not None and document is not None and outcome.fetched is not None
    created += _remember_records(writer, outcome, prev, watch, store, name)
    fetched = outcome.fetched
    result = outcome.result
    writer.save_source_state(dataclasses.replace(
        new_state, last_document_sha256=document.sha256, etag=fetched.etag,
        last_modified=fetched.last_modified, marker=fetched.marker,
        watch_keys=watch_signature(watch), document_dates=result.document_dates,
        document_meta=dict(fetched.meta), title=result.title,
        instrument=result.instrument))
    return created


def _remember_records(writer: RunWriter, outcome: SourceOutcome, prev: SourceState,
                      watch: WatchList, store: Store, name: str) -> list[CreatedChange]:
    from reports.diff import diff_records, pending_summary

    source = outcome.source
    at = outcome.started_at
    assert outcome.result is not None and outcome.document is not None
    result = outcome.result
    before = store.current_records(source.id)
    baseline = not before
    new_signature = watch_signature(watch)
    old_signature = prev.watch_keys
    created: list[CreatedChange] = []
    after_keys = {r.substance for r in result.records}

    # A substance no longer watched is dropped quietly; a disappearance counts only when
    # every entry was watched before and still is (otherwise the parser reports a watched
    # substance that is not listed as "not_controlled", never by omission).
    both_all = old_signature == ("*all*",) and new_signature == ("*all*",)
    kept_before = [r for r in before if r.substance in after_keys or both_all]
    kept_keys = {r.substance for r in kept_before}

    def close(substances: list[str]) -> None:
        writer.close_intervals(source.id, substances, at=at, confirmed_at=prev.last_healthy_at,
                               confirmed_sha256=prev.last_document_sha256)

    close([r.substance for r in before if r.substance not in kept_keys])
    previously_watched = set(old_signature or ())
    newly_watched = [key for key in after_keys
                     if old_signature != ("*all*",) and key not in previously_watched]

    if baseline:
        writer.open_intervals(result.records, at=at)
    else:
        changes: list[Change] = diff_records(kept_before, result.records,
                                             jurisdiction_name=name,
                                             newly_watched=newly_watched)
        changes, bulk = split_bulk_amendments(changes, watch)
        for change in bulk:  # the same entry under a new instrument id: updated in place
            assert change.after is not None
            writer.replace_open_record(change.after)
        close([c.substance for c in changes if c.before is not None and c.substance])
        writer.open_intervals([c.after for c in changes if c.after is not None], at=at)
        checkpoint("status_written")
        if bulk:
            created.append(_bulk_amendment(writer, bulk, source, name, prev, outcome))
        for change in changes:
            assert change.substance is not None
            flapping = is_flip_flop(store, change, at)
            summary = change.summary + (" [flip-flop: the source alternates between two "
                                        "versions; not alerted again]" if flapping else "")
            change_id = writer.add_change(
                detected_at=at, jurisdiction=change.jurisdiction, substance=change.substance,
                source_id=source.id, kind=change.kind, summary=summary,
                before=change.before.as_dict() if change.before else None,
                after=change.after.as_dict() if change.after else None,
                effective_date=change.effective_date,
                before_sha256=prev.last_document_sha256, after_sha256=outcome.document.sha256,
                details={"fields": list(change.fields), "flip_flop": flapping})
            created.append(CreatedChange(change_id, change.kind, change.jurisdiction,
                                         change.substance, summary, alert=not flapping))
        checkpoint("changes_written")
        changed = {c.substance for c in changes} | {c.substance for c in bulk}
        # Newly watched substances: a baseline of their own.
        writer.open_intervals([r for r in result.records
                               if r.substance not in kept_keys and r.substance not in changed],
                              at=at)

    known_rows = {(row.item.key, row.item.substance): row
                  for row in store.pending_items(source_id=source.id, open_only=False)}
    open_rows = {ident: row for ident, row in known_rows.items() if row.resolved_at is None}
    seen: set[tuple[str, str]] = set()
    for item in result.pending:
        ident = (item.key, item.substance)
        seen.add(ident)
        if ident in open_rows:
            writer.touch_pending(open_rows[ident].id, item, at=at)
            continue
        earlier = known_rows.get(ident)
        if earlier is not None:
            writer.reopen_pending(earlier.id, item, at=at)
            # The same proposal back after a short absence (a flaky search result, a
            # flip-flopping mirror) was alerted already; after a long one it is news again.
            assert earlier.resolved_at is not None
            if parse_stamp(earlier.resolved_at) > at - FLIP_FLOP_WINDOW:
                continue
        else:
            writer.open_pending(item, at=at)
        if not baseline:
            change_id = writer.add_change(
                detected_at=at, jurisdiction=item.jurisdiction, substance=item.substance,
                source_id=source.id, kind="pending", summary=pending_summary(item, name),
                before=None, after=item.as_dict(), effective_date=item.date,
                after_sha256=outcome.document.sha256, details={"pending_key": item.key})
            created.append(CreatedChange(change_id, "pending", item.jurisdiction,
                                         item.substance, pending_summary(item, name)))
    for ident, row in open_rows.items():
        if ident not in seen:
            writer.resolve_pending(row.id, at=at)
    return created


def split_bulk_amendments(changes: list[Change], watch: WatchList
                          ) -> tuple[list[Change], list[Change]]:
    """(changes to record one by one, bulk amendments). A bulk amendment is an entry that is
    not on the watch list and whose only difference is the instrument: a wholesale
    replacement (a new Poisons Standard every few months) would otherwise record thousands
    of identical "amended" changes. Watched substances always keep their own change."""
    watched = set(watch.keys)
    bulk = [c for c in changes if c.kind == "amended" and c.fields == ("instrument",)
            and c.substance not in watched and c.before is not None and c.after is not None]
    chosen = {id(c) for c in bulk}
    return [c for c in changes if id(c) not in chosen], bulk


def _bulk_amendment(writer: RunWriter, bulk: list[Change], source: Source, name: str,
                    prev: SourceState, outcome: SourceOutcome) -> CreatedChange:
    """One source-level "amended" change for a bulk of entries under a new instrument."""
    assert outcome.document is not None
    first = bulk[0]
    assert first.before is not None and first.after is not None
    summary = (f"{name} — {source.id}: instrument {first.before.instrument} → "
               f"{first.after.instrument} for {len(bulk)} other entries, their status "
               "unchanged (amended)")
    change_id = writer.add_change(
        detected_at=outcome.started_at, jurisdiction=source.jurisdiction, substance=None,
        source_id=source.id, kind="amended", summary=summary, before=None, after=None,
        before_sha256=prev.last_document_sha256, after_sha256=outcome.document.sha256,
        details={"fields": ["instrument"], "entries": len(bulk),
                 "substances": sorted(str(c.substance) for c in bulk)[:200],
                 "instrument_before": first.before.instrument,
                 "instrument_after": first.after.instrument})
    return CreatedChange(change_id, "amended", source.jurisdiction, None, summary)


#: Within this window, a change that repeats a transition already seen and undone since
#: (A→B, B→A, A→B …: a load-balanced source serving two versions, a stale cache) is a
#: flip-flop: stored and reported, but not alerted again. The first change and the first
#: revert are alerted: a real correction by the regulator is never silenced.
FLIP_FLOP_WINDOW = timedelta(days=7)


def is_flip_flop(store: Store, change: Change, at: datetime) -> bool:
    from scrapers.records import StatusRecord

    if change.substance is None:
        return False
    recent = store.recent_changes(change.source_id, change.substance,
                                  since=at - FLIP_FLOP_WINDOW, limit=2)
    if len(recent) < 2:
        return False

    def material(data: dict | None) -> tuple | None:
        return StatusRecord.from_dict(data).material() if data else None

    newest, older = recent
    before = change.before.material() if change.before else None
    after = change.after.material() if change.after else None
    return (material(newest.before) == after and material(newest.after) == before
            and material(older.before) == before and material(older.after) == after)


# --- the run --------------------------------------------------------------------------------

def run(settings: Settings, *, codes: Sequence[str] | None = None, store: Store | None = None,
        fetcher: Any = None, now: Callable[[], datetime] = utcnow, trigger: str = "cli",
        publish: bool = True, notify: bool = True) -> RunReport:
    """One tracking cycle over the chosen jurisdictions (default: all registered)."""
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
        if publish and needs_publishing(settings, report):
            _publish(settings, store, report)
        if notify and settings.email is not None:
            _notify(settings, store, report)
        return report
    finally:
        if own_store:
            store.close()


def _run_locked(settings: Settings, store: Store, sources: Sequence[Source],
                watch: WatchList, codes: Sequence[str], fetcher: Any,
                now: Callable[[], datetime], trigger: str) -> RunReport:
    states = store.source_states()
    started = now()
    own_fetcher = fetcher is None
    fetcher = fetcher or make_fetcher(settings)
    try:
        outcomes = [process_source(source, states.get(source.id), watch, fetcher, store,
                                   now=now) for source in sources]
    finally:
        if own_fetcher:
            fetcher.close()
    exit_code = 0 if all(o.healthy for o in outcomes) else 2
    created: list[CreatedChange] = []
    with store.transaction(started_at=started, jurisdictions=codes, trigger=trigger) as writer:
        for outcome in outcomes:
            created += remember(writer, outcome, states.get(outcome.source.id), watch, store,
                                settings)
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


def needs_publishing(settings: Settings, report: RunReport) -> bool:
    """A run where every source was unchanged renders nothing (and never imports pandas);
    the site is rebuilt when a document was parsed, a source failed or a change was made."""
    if report.change_ids or not (settings.site_path / "index.html").exists():
        return True
    return any(o.outcome not in ("not_modified", "unchanged") for o in report.outcomes)


def _publish(settings: Settings, store: Store, report: RunReport) -> None:
    try:
        from reports.site import publish
    except ImportError:  # the site module is optional until installed
        return
    try:
        publish(settings, store)
    except SchedwatchError as error:
        report.warnings.append(f"site not updated: {error}")
    except OSError as error:
        report.warnings.append(f"site not updated: {error.strerror or error}; the previous "
                               "site is unchanged")


def _notify(settings: Settings, store: Store, report: RunReport) -> None:
    try:
        from reports.email import deliver_outbox
    except ImportError:
        return
    try:
        for line in deliver_outbox(settings, store):
            report.warnings.append(line)
    except SchedwatchError as error:
        report.warnings.append(f"email: {error}")

