"""``schedwatch backfill``: history from the regulators' own archives.

Each source that declares an archive (``Source.archive``, see ``jurisdictions.base``) yields
its past versions oldest first. Every version read is archived exactly as a live document
(content-addressed by sha256, a ``documents`` row) and parsed with the source's own parser
and ``scrapers.records.validate``; a version that cannot be parsed is reported and skipped,
never read as a status change.

The versions are decided one by one with ``reports.diff.decide`` — the live rules, not a
second copy of them — against an in-memory ``Prior`` that holds only the chain built so far
(it starts empty), with "today" = the version's own legal date, so that the chain's
intervals carry the legal spans of ``law_on``/``legal_span``. The whole chain of one source
is then written in one transaction (a run with trigger ``backfill``): intervals and changes
marked ``backfilled`` (changes never alerted: no outbox rows), with the dated scheduling
actions every parsed version states (``ParseResult.actions``, stored once each, marked
``backfilled`` unless a live run read them first).

* A source with no stored history: the chain's last segments become its open intervals and
  its state is saved, so that the next live run fetching the same document says "unchanged"
  and a different document with the same status changes nothing.
* A source with stored history: only versions that speak for dates before the first
  evidence held are used (the gap); the chain ends on that date, and where its final status
  is the stored one, the stored records get the earlier ``in_force_since``
  (``earliest_evidence``): one continuous history, no spurious change.
* Idempotent: after a backfill the chain is itself the first evidence held, so a second
  backfill finds no gap and adds nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jurisdictions import REGISTRY, jurisdiction
from jurisdictions.base import ArchivedVersion, FetchContext, Fetched, Source
from jurisdictions.substances import WatchList, build_watch_list
from reports.diff import (
    Closing,
    Decision,
    NewChange,
    Opening,
    PendingStep,
    Replacement,
    SourceOutcome,
    check_early_warning,
    classify,
    decide,
    evidence_day,
    same_status,
    summarise,
)
from scheduler.pipeline import local_day, make_fetcher, selected_sources
from scrapers import clock
from scrapers.clock import stamp
from scrapers.errors import ExtractionError, FetchError, SchedwatchError
from scrapers.records import Document, ParseResult, ScheduledAction, StatusRecord, validate
from scrapers.store import PendingRow, Prior, SourceState, StatusInterval, Store

if TYPE_CHECKING:  # pragma: no cover
    from scheduler.config import Settings

__all__ = ["BackfillReport", "SourceBackfill", "backfill", "backfill_source"]

TRIGGER = "backfill"


# --- the in-memory chain --------------------------------------------------------------------

@dataclass
class _Segment:
    """One status interval of the chain being built (mutable: the builder's own state)."""

    record: StatusRecord
    legal_from: str
    legal_to: str | None
    last_sha: str


@dataclass
class _Chain:
    """The backfilled history of one source, built by applying decisions' steps."""

    source: Source
    at: datetime
    open: dict[str, _Segment] = field(default_factory=dict)
    closed: list[_Segment] = field(default_factory=list)
    changes: list[NewChange] = field(default_factory=list)
    pending: dict[int, PendingRow] = field(default_factory=dict)
    state: SourceState | None = None
    last_sha: str | None = None
    last_day: str | None = None
    #: (sha256 of the version, the dated scheduling actions it states), oldest first.
    actions: list[tuple[str, tuple[ScheduledAction, ...]]] = field(default_factory=list)

    def prior(self) -> Prior:
        sid = self.source.id
        when = stamp(self.at)
        current = tuple(StatusInterval(
            id=index, record=seg.record, valid_from=when, valid_to=None,
            last_confirmed_at=when, last_document_sha256=seg.last_sha,
            legal_from=seg.legal_from, legal_to=seg.legal_to, backfilled=True)
            for index, seg in enumerate(self.open.values()))
        return Prior(states={sid: self.state} if self.state else {}, current={sid: current},
                     pending={sid: tuple(self.pending.values())}, recent={})

    def apply(self, decision: Decision, sha: str, day: str) -> None:
        for step in decision.steps:
            if isinstance(step, Closing):
                seg = self.open.pop(step.substance, None)
                if seg is not None:
                    # A Closing without a legal date (no longer watched) ends on this day.
                    seg.legal_to = step.legal_to or day
                    seg.last_sha = decision.confirmed_sha256 or seg.last_sha
                    self.closed.append(seg)
            elif isinstance(step, Opening):
                seg = _Segment(step.record, step.legal_from, step.legal_to, sha)
                if step.closed:
                    self.closed.append(seg)
                else:
                    self.open[step.record.substance] = seg
            elif isinstance(step, Replacement) and step.record.substance in self.open:
                self.open[step.record.substance].record = step.record
        for seg in self.open.values():  # this version confirms every segment still open
            seg.last_sha = sha
        self.changes.extend(decision.changes)
        for pending_step in decision.pending:
            self._pending(pending_step)
        self.state = decision.state
        self.last_sha, self.last_day = sha, day

    def _pending(self, step: PendingStep) -> None:
        when = stamp(self.at)
        if step.action == "open" and step.item is not None:
            ident = len(self.pending) + 1
            self.pending[ident] = PendingRow(ident, step.item, when, when, None)
        elif step.row_id in self.pending:
            row = self.pending[step.row_id]
            if step.action == "resolve":
                self.pending[row.id] = dataclasses.replace(row, resolved_at=when)
            elif step.item is not None:  # touch | reopen
                self.pending[row.id] = dataclasses.replace(row, item=step.item,
                                                           last_seen_at=when, resolved_at=None)



@dataclass(frozen=True)
class _Archived:
    """An archived version as its ``documents`` row needs it."""

    size: int
    url: str
    content_type: str | None


# --- one source -------------------------------------------------------------------------------

@dataclass
class SourceBackfill:
    """What the backfill of one source did (its line in the report)."""

    source_id: str
    no_archive: bool = False
    read: int = 0
    skipped: list[str] = field(default_factory=list)
    covered: int = 0  # versions at or after the first evidence held: not needed
    before_since: int = 0
    intervals: int = 0
    changes: int = 0
    extended: int = 0  # stored records whose in_force_since moved back
    actions: int = 0  # dated scheduling actions stored (new ones only)
    error: str | None = None

    def line(self) -> str:
        sid = self.source_id
        if self.no_archive:
            return f"{sid}: no archive to read"
        if self.error:
            return f"{sid}: ARCHIVE NOT READ: {self.error}; nothing of this source was stored"

        def plural(n: int, word: str) -> str:
            return f"{n} {word}{'' if n == 1 else 's'}"

        line = (f"{sid}: {plural(self.read, 'version')} read, {len(self.skipped)} skipped, "
                f"{plural(self.intervals, 'status interval')}, {plural(self.changes, 'change')}")
        if self.covered:
            line += (f"; {self.covered} already covered by the evidence held (nothing added "
                     "for them)")
        if self.before_since:
            line += f"; {self.before_since} before --since"
        if self.extended:
            line += f"; {plural(self.extended, 'stored record')} now in force since earlier"
        if self.actions:
            line += f"; {plural(self.actions, 'dated scheduling action')}"
        return line


def _with_evidence_date(result: ParseResult, day: str) -> ParseResult:
    """Records without an evidence date get the version's own (read from its bytes by the
    archive plan): a parser that does not set it yet must not make the version speak for
    the day it was backfilled."""
    if all(r.evidence_date for r in result.records):
        return result
    return dataclasses.replace(result, records=tuple(
        r if r.evidence_date else dataclasses.replace(r, evidence_date=day)
        for r in result.records))


def _first_evidence(intervals: Sequence[StatusInterval]) -> str | None:
    """The earliest date the stored history of a source speaks for."""
    return min((evidence_day(i.record) for i in intervals), default=None)


def backfill_source(source: Source, store: Store, fetcher: Any, watch: WatchList, *,
                    now: datetime, since: date | None = None,
                    on_version: Callable[[str, ArchivedVersion], None] | None = None
                    ) -> SourceBackfill:
    """Read one source's archive and write its backfilled history (one transaction)."""
    report = SourceBackfill(source.id)
    reader = source.archive
    if reader is None:
        report.no_archive = True
        return report
    name = jurisdiction(source.jurisdiction).NAME
    existing = store.source_intervals(source.id)
    boundary = _first_evidence(existing)
    chain = _Chain(source, now)
    # What the documents rows need, not the versions' bytes: ten years of versions must not
    # be held in memory until the final write.
    read: list[tuple[str, _Archived]] = []
    context = FetchContext(source_id=source.id, endpoints=source.endpoints,
                           today=local_day(now, source.jurisdiction))
    try:
        for version in reader(fetcher, context, since):
            report.read += 1
            if on_version is not None:
                on_version(source.id, version)
            sha, _path = store.archive(version.content)
            read.append((sha, _Archived(len(version.content), version.url,
                                        version.content_type)))
            _read_version(chain, report, source, version, sha, watch, name=name, now=now,
                          since=since, boundary=boundary)
    except (FetchError, ExtractionError) as error:
        report.error = str(error)
        return report
    except OSError as error:
        report.error = (f"a version could not be archived under {store.documents_dir} "
                        f"({error.strerror or type(error).__name__})")
        return report
    except Exception as error:  # noqa: BLE001 - an archive's odd answer stops this source only
        report.error = (f"the archive's answer could not be read ({type(error).__name__}); "
                        "its API or format changed")
        return report
    if chain.state is not None:
        _catch_up(chain, source, watch, name=name, now=now, boundary=boundary)
    _write(store, chain, report, read, existing, boundary=boundary, name=name)
    return report


def _read_version(chain: _Chain, report: SourceBackfill, source: Source,
                  version: ArchivedVersion, sha: str, watch: WatchList, *, name: str,
                  now: datetime, since: date | None, boundary: str | None) -> None:
    """Parse one archived version and, when it is in the gap, decide it into the chain."""
    day = version.evidence_date
    label = f"{day or 'unknown date'} ({sha[:12]})"
    if day is None:
        report.skipped.append(f"skipped version of {label}: it does not state the date it "
                              "speaks for")
        return
    if since is not None and day < since.isoformat():
        report.before_since += 1
        return
    if boundary is not None and day >= boundary:
        report.covered += 1
        return
    # A republished older point in time (the mirror has 2023-01-14 after 2023-05-19) is
    # read, but the chain's calendar never runs backwards.
    today = max(day, chain.last_day or day)
    document = Document.of(version.content, source_id=source.id, url=version.url,
                           retrieved_at=now, content_type=version.content_type,
                           meta=version.meta, sha256=sha)
    try:
        result = validate(source.parse(document, watch), source_id=source.id,
                          watched=watch.keys)
    except ExtractionError as error:
        report.skipped.append(f"skipped version of {label}: {error}")
        return
    except Exception as error:  # noqa: BLE001 - a parser crash skips this version only
        report.skipped.append(f"skipped version of {label}: the parser failed on it "
                              f"({type(error).__name__})")
        return
    result = _with_evidence_date(result, day)
    fetched = Fetched(url=version.url, content=version.content,
                      content_type=version.content_type, meta=version.meta)
    prior = chain.prior()
    outcome = check_early_warning(SourceOutcome(
        source=source, started_at=now, elapsed_ms=0, outcome="fetched", url=version.url,
        final_url=version.url, document=document, result=result, fetched=fetched), prior)
    if not outcome.healthy:
        report.skipped.append(f"skipped version of {label}: {outcome.error}")
        return
    if result.actions:  # stored with the first version that states each (idempotent)
        chain.actions.append((sha, result.actions))
    decision = decide(outcome, prior, watch, jurisdiction_name=name,
                      today=date.fromisoformat(today))
    chain.apply(decision, sha, today)


def _catch_up(chain: _Chain, source: Source, watch: WatchList, *, name: str, now: datetime,
              boundary: str | None) -> None:
    """Dated changes held in the chain's last version take effect up to where the chain
    ends (today, or the day before the first evidence held), as a live run would apply
    them, so that the next live run does not report them as news."""
    assert chain.last_day is not None and chain.last_sha is not None
    end = (date.fromisoformat(boundary) - timedelta(days=1)) if boundary \
        else local_day(now, source.jurisdiction)
    if end.isoformat() <= chain.last_day:
        return
    outcome = SourceOutcome(source=source, started_at=now, elapsed_ms=0,
                            outcome="not_modified", url=source.url)
    decision = decide(outcome, chain.prior(), watch, jurisdiction_name=name, today=end)
    last_day = chain.last_day
    chain.apply(decision, chain.last_sha, end.isoformat())
    chain.last_day = last_day


# --- writing ----------------------------------------------------------------------------------

def _write(store: Store, chain: _Chain, report: SourceBackfill,
           read: Sequence[tuple[str, _Archived]], existing: Sequence[StatusInterval], *,
           boundary: str | None, name: str) -> None:
    source, now = chain.source, chain.at
    fresh = not existing
    with store.transaction(started_at=now, jurisdictions=[source.jurisdiction],
                           trigger=TRIGGER) as writer:
        for sha, version in _unique(read):
            writer.add_document(sha256=sha, size=version.size,
                                media_type=version.content_type, source_id=source.id,
                                url=version.url, seen_at=now,
                                path=str(store.document_path(sha).relative_to(
                                    store.documents_dir)))
        for seg in chain.closed:
            store.add_backfilled_interval(writer, seg.record, at=now, legal_from=seg.legal_from,
                                          legal_to=seg.legal_to, last_document_sha256=seg.last_sha,
                                          is_open=False)
            report.intervals += 1
        changes = list(chain.changes)
        for seg in chain.open.values():
            if fresh:
                store.add_backfilled_interval(writer, seg.record, at=now,
                                              legal_from=seg.legal_from, legal_to=seg.legal_to,
                                              last_document_sha256=seg.last_sha, is_open=True)
                report.intervals += 1
                continue
            assert boundary is not None
            end = min(seg.legal_to or boundary, boundary)
            store.add_backfilled_interval(writer, seg.record, at=now, legal_from=seg.legal_from,
                                          legal_to=end, last_document_sha256=seg.last_sha,
                                          is_open=False)
            report.intervals += 1
            change = _join(store, writer, seg, existing, report, name=name)
            if change is not None:
                changes.append(change)
        for change in changes:
            writer.add_change(
                detected_at=now, jurisdiction=change.jurisdiction, substance=change.substance,
                source_id=change.source_id, kind=change.kind, summary=change.summary,
                before=change.before, after=change.after, effective_date=change.effective_date,
                before_sha256=change.before_sha256, after_sha256=change.after_sha256,
                details={**change.details, "backfilled": True}, backfilled=True)
            report.changes += 1
        for sha, found in chain.actions:
            report.actions += writer.add_actions(found, at=now, document_sha256=sha,
                                                 backfilled=True)
        if fresh and chain.state is not None:
            for row in chain.pending.values():
                if row.resolved_at is None:
                    writer.open_pending(row.item, at=now)
            writer.save_source_state(_state_to_save(store, chain.state))
        writer.finish(finished_at=clock.utcnow(), exit_code=0,
                      summary={source.id: report.line()})


def _unique(read: Sequence[tuple[str, _Archived]]) -> Iterator[tuple[str, _Archived]]:
    seen: set[str] = set()
    for sha, version in read:
        if sha not in seen:
            seen.add(sha)
            yield sha, version


def _state_to_save(store: Store, state: SourceState) -> SourceState:
    """The chain's state, except that a failing live state stays failing (a backfill reads
    an archive, it does not prove the live source healthy)."""
    stored = store.source_state(state.source_id)
    if stored is None or stored.health in ("healthy", "unknown"):
        return state
    return dataclasses.replace(state, health=stored.health, failing_since=stored.failing_since,
                               consecutive_failures=stored.consecutive_failures,
                               last_error=stored.last_error)


def _join(store: Store, writer: Any, seg: _Segment, existing: Sequence[StatusInterval],
          report: SourceBackfill, *, name: str) -> NewChange | None:
    """Join the chain's last segment of a substance to its first stored interval: the same
    status moves the stored records' ``in_force_since`` back (earliest evidence); another
    status is a backfilled change on the first stored evidence's date."""
    mine = [i for i in existing if i.record.substance == seg.record.substance]
    if not mine:
        return None
    first = min(mine, key=lambda i: (evidence_day(i.record), i.valid_from, i.id))
    if not same_status(seg.record, first.record):
        verdict = classify(seg.record, first.record)
        if verdict is None:
            return None
        kind, *fields = verdict
        return NewChange(
            kind=kind, jurisdiction=first.record.jurisdiction, substance=seg.record.substance,
            source_id=seg.record.source_id,
            summary=summarise(kind, seg.record.substance, name, seg.record, first.record),
            before=seg.record.as_dict(), after=first.record.as_dict(),
            effective_date=evidence_day(first.record), before_sha256=seg.last_sha,
            after_sha256=first.record.document_sha256,
            details={"fields": list(fields), "at_first_evidence_held": True})
    since = seg.record.in_force_since or seg.legal_from
    old_since = first.record.in_force_since
    if first.record.in_force_since_kind == "instrument" or (old_since and old_since <= since):
        return None  # a dated instrument states it, or the stored date is already earlier
    basis = (f"held in every archived version since {since} ({seg.record.instrument}; read "
             "by `schedwatch backfill` from the regulator's archive); earlier is not known "
             "to schedwatch")
    for interval in mine:
        record = interval.record
        if same_status(record, first.record) and record.in_force_since == old_since \
                and record.in_force_since_kind != "instrument":
            store.rewrite_interval_record(writer, interval.id, dataclasses.replace(
                record, in_force_since=since, in_force_since_kind="earliest_evidence",
                in_force_since_basis=basis))
            report.extended += 1
    return None


# --- the command ------------------------------------------------------------------------------

@dataclass
class BackfillReport:
    sources: list[SourceBackfill]
    exit_code: int = 0

    @property
    def lines(self) -> list[str]:
        lines: list[str] = []
        for result in self.sources:
            lines.append(result.line())
            lines += [f"  {result.source_id}: {line}" for line in result.skipped]
        return lines


def backfill(settings: Settings, *, codes: Sequence[str] | None = None,
             since: date | None = None, store: Store | None = None, fetcher: Any = None,
             now: Callable[[], datetime] | None = None,
             on_version: Callable[[str, ArchivedVersion], None] | None = None,
             on_source: Callable[[Source], None] | None = None) -> BackfillReport:
    """Backfill the chosen jurisdictions' sources (default: all), holding their locks like a
    run. Exit code 2 when a source's archive could not be read (the others are still done)."""
    now = now or clock.utcnow
    for code in codes or ():
        if code not in REGISTRY:
            raise SchedwatchError(f"unknown jurisdiction {code!r}; known: {', '.join(REGISTRY)}")
    own_store = store is None
    store = store or Store(settings.data_dir, settings.database_url)
    sources = selected_sources(settings, codes)
    watch = build_watch_list(settings.watch)
    chosen = sorted({s.jurisdiction for s in sources})
    own_fetcher = fetcher is None
    try:
        with contextlib.ExitStack() as locks:
            for code in chosen:
                locks.enter_context(store.lock(f"jurisdiction-{code}", holder=TRIGGER))
            if own_fetcher and any(s.archive for s in sources):
                fetcher = make_fetcher(settings)
            results = []
            for source in sources:
                if on_source is not None:
                    on_source(source)
                results.append(backfill_source(source, store, fetcher, watch, now=now(),
                                               since=since, on_version=on_version))
        return BackfillReport(results, exit_code=2 if any(r.error for r in results) else 0)
    finally:
        if own_fetcher and fetcher is not None:
            fetcher.close()
        if own_store:
            store.close()
