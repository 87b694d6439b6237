"""Classify changes: the previous table of a source against the new one → ``Change`` list.

A keyed diff (on substance, not ``DataFrame.compare``) so that rows that appear, disappear or
move are each classified once. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from jurisdictions.base import Fetched, Source
from jurisdictions.substances import WatchList
from scrapers.clock import parse_stamp, stamp
from scrapers.records import (
    MATERIAL_FIELDS,
    RECORD_COLUMNS,
    STATUS_FIELDS,
    Document,
    ParseResult,
    PendingItem,
    StatusRecord,
)
from scrapers.store import Prior, SourceState, StoredChange

_RECORD_FIELDS = frozenset(RECORD_COLUMNS)

# --- the one table of change kinds ----------------------------------------------------------

@dataclass(frozen=True)
class ChangeKind:
    """What a change kind is called and how it is treated, everywhere (config validation,
    pages, email, the pipeline)."""

    name: str
    label: str  # in running text and tables: "document not understood"
    heading: str  # as a heading (email sections, badges): "Document not understood"
    colour: str  # the email badge colour (the site uses style.css classes kind-<name>)
    alerted: bool  # alerted by default
    level: str  # "record" (one substance) or "source" (a source's health)


#: Most significant first: a grouped alert's subject names the first kind it holds.
CHANGE_KINDS: dict[str, ChangeKind] = {kind.name: kind for kind in (
    ChangeKind("scheduled", "scheduled", "Scheduled", "#b3261e", True, "record"),
    ChangeKind("descheduled", "descheduled", "Descheduled", "#1b6e3a", True, "record"),
    ChangeKind("rescheduled", "rescheduled", "Rescheduled", "#b35c00", True, "record"),
    ChangeKind("in_force", "in force (a dated change took effect)",
               "In force (a dated change took effect)", "#b3261e", True, "record"),
    ChangeKind("pending", "pending change", "Pending (not yet in force)", "#1f5fa8", True,
               "record"),
    ChangeKind("amended", "amended", "Amended (status unchanged)", "#5f5f5a", False, "record"),
    ChangeKind("extraction_failed", "document not understood", "Document not understood",
               "#7a4b00", True, "source"),
    ChangeKind("source_failed", "source failing", "Source failing", "#7a4b00", True, "source"),
    ChangeKind("recovered", "source recovered", "Source recovered", "#1b6e3a", True, "source"),
)}
KIND_ORDER: tuple[str, ...] = tuple(CHANGE_KINDS)
ALERT_KINDS: tuple[str, ...] = KIND_ORDER
DEFAULT_ALERT_KINDS: tuple[str, ...] = tuple(k for k, v in CHANGE_KINDS.items() if v.alerted)
#: Kinds that concern a source, not a substance.
SOURCE_KINDS: tuple[str, ...] = tuple(k for k, v in CHANGE_KINDS.items() if v.level == "source")


def kind_label(kind: str) -> str:
    found = CHANGE_KINDS.get(kind)
    return found.label if found else kind.replace("_", " ")


@dataclass(frozen=True)
class Change:
    """A classified difference for one substance of one source."""

    kind: str
    jurisdiction: str
    substance: str | None
    source_id: str
    summary: str
    before: StatusRecord | None
    after: StatusRecord | None
    effective_date: str | None = None
    fields: tuple[str, ...] = ()  # which material fields differ


def display_name(substance: str) -> str:
    return substance[:1].upper() + substance[1:]


def schedule_label(record: StatusRecord | None) -> str:
    if record is None or record.status == "not_controlled":
        return "not controlled"
    label = f"Schedule {record.schedule}" if record.schedule else "controlled"
    if record.status == "not_in_force":
        if record.in_force_until:
            label += f" (no longer in force from {record.in_force_until})"
        elif record.in_force_since:
            label += f" (not yet in force; in force from {record.in_force_since})"
        else:
            label += " (not yet in force)"
    return label


def classify(before: StatusRecord | None, after: StatusRecord | None) -> tuple[str, ...] | None:
    """(kind, *differing fields) for a pair, or None when nothing material changed."""
    if before is None and after is None:
        return None
    if before is not None and after is not None:
        differing = tuple(f for f in MATERIAL_FIELDS
                          if getattr(before, f) != getattr(after, f))
        if not differing:
            return None
    else:
        differing = MATERIAL_FIELDS
    was = before is not None and before.status == "controlled"
    now = after is not None and after.status == "controlled"
    if not was and now:
        return ("scheduled", *differing)
    if was and not now:
        return ("descheduled", *differing)
    if was and now and any(f in differing for f in STATUS_FIELDS):
        return ("rescheduled", *differing)
    return ("amended", *differing)


def diff_records(before: Sequence[StatusRecord], after: Sequence[StatusRecord], *,
                 jurisdiction_name: str, newly_watched: Iterable[str] = ()) -> list[Change]:
    """Changes between a source's previous current records and its new ones.

    ``newly_watched`` substances had no record because they were not watched before: their
    first record is a baseline, not a "scheduled" change.

    A keyed diff on substance, in plain Python: every substance on either side, in sorted
    order, classified once (``classify`` compares the material fields). This is the result
    the pandas outer merge it replaced (tests/support/pandas_diff.py) gives on records with
    one record per substance a side (``validate`` guarantees it; the store holds one open record per
    substance) and no NUL in a material field (the merge's "no value" sentinel;
    ``normalise_text`` drops control characters at the record boundary): the merge only
    pre-filters the substances that ``classify`` then decides, and a substance present on
    one side or differing in a field is one that ``classify`` classifies either way.
    tests/test_diff_keyed.py compares the two on the fixtures' real records. It
    spares importing pandas (~0.5 s) and building two frames on the day a document changed.
    """
    by_before = {r.substance: r for r in before}
    by_after = {r.substance: r for r in after}
    baseline = set(newly_watched)
    result: list[Change] = []
    for substance in sorted(by_before.keys() | by_after.keys()):
        old, new = by_before.get(substance), by_after.get(substance)
        if old is None and substance in baseline:
            continue
        if old is not None and new is not None and old.material() == new.material():
            continue  # the common case on a new document: most entries did not change
        change = change_of(substance, old, new, jurisdiction_name)
        if change is not None:
            result.append(change)
    return result


def change_of(substance: str, old: StatusRecord | None, new: StatusRecord | None,
            jurisdiction_name: str) -> Change | None:
    """The classified change of one substance, or None when nothing material changed."""
    verdict = classify(old, new)
    if verdict is None:
        return None
    kind, *fields = verdict
    reference = new or old
    assert reference is not None
    return Change(
        kind=kind, jurisdiction=reference.jurisdiction, substance=substance,
        source_id=reference.source_id,
        summary=summarise(kind, substance, jurisdiction_name, old, new),
        before=old, after=new,
        effective_date=legal_date_of(new),
        fields=tuple(fields))


def summarise(kind: str, substance: str, jurisdiction_name: str, before: StatusRecord | None,
              after: StatusRecord | None) -> str:
    """The one-line headline: ``Ketamine — Canada: Schedule I → III (rescheduled)``."""
    name = display_name(substance)
    if kind == "rescheduled" and before is not None and after is not None:
        move = f"Schedule {before.schedule} → {after.schedule}" \
            if before.schedule != after.schedule else \
            f"control level {before.control_level} → {after.control_level}"
        return f"{name} — {jurisdiction_name}: {move} ({kind})"
    if kind == "amended" and before is not None and after is not None:
        differing = [f for f in MATERIAL_FIELDS if getattr(before, f) != getattr(after, f)]
        what = ", ".join(f.replace("_", " ") for f in differing)
        return f"{name} — {jurisdiction_name}: {what} changed, {schedule_label(after)} " \
               f"unchanged ({kind})"
    return f"{name} — {jurisdiction_name}: {schedule_label(before)} → {schedule_label(after)} " \
           f"({kind})"


def pending_summary(item: PendingItem, jurisdiction_name: str) -> str:
    target = f" to Schedule {item.proposed_schedule}" if item.proposed_schedule else ""
    when = f", {item.date_label} {item.date}" if item.date else ""
    action = item.action.replace("_", " ")
    return f"{display_name(item.substance)} — {jurisdiction_name}: {action}{target} " \
           f"({item.reference}{when}) (pending)"


def source_summary(kind: str, source_id: str, jurisdiction_name: str, detail: str) -> str:
    words = {"source_failed": "source failing", "extraction_failed": "document not understood",
             "recovered": "source recovered"}
    return f"{jurisdiction_name} — {source_id}: {words.get(kind, kind)}" + (
        f": {detail}" if detail else "")




def legal_date_of(record: StatusRecord | None) -> str | None:
    """The legal date a change takes effect on, when a dated instrument states it."""
    if record is None or record.in_force_since_kind != "instrument":
        return None
    return record.in_force_since


# --- the law on a date ----------------------------------------------------------------------

def evidence_day(record: StatusRecord) -> str:
    """The date a record's document speaks for: its ``evidence_date``, else the day it was
    retrieved (UTC)."""
    return record.evidence_date or record.retrieved_at[:10]


def law_on(record: StatusRecord, day: date) -> StatusRecord:
    """The record as the law stands on ``day``: a listing held in a document that is not in
    force yet takes effect on its coming-into-force date, a listing whose repeal the document
    announces ceases on that date. Consolidations lag weeks behind the law; the tracker must
    not (the CSR came into force on 2026-10-01 while its consolidation of 2026-04-17 still
    printed in-force="no")."""
    iso = day.isoformat()
    if record.in_force_until and record.in_force_until <= iso and record.status == "controlled":
        basis = record.in_force_until_basis or "the document announces it"
        return dataclasses.replace(
            record, status="not_in_force", in_force_since=record.in_force_until,
            in_force_since_basis=basis, in_force_since_kind="instrument",
            legal_note=(f"the document served (point in time {evidence_day(record)}) "
                        f"predates this; no longer in force from {record.in_force_until} "
                        f"({basis})"))
    if (record.status == "not_in_force" and record.in_force_since
            and record.in_force_since_kind == "instrument" and not record.in_force_until
            and record.in_force_since <= iso):
        basis = record.in_force_since_basis or "its coming-into-force provision"
        return dataclasses.replace(
            record, status="controlled",
            legal_note=(f"the consolidation served (point in time {evidence_day(record)}) "
                        f"predates this; in force per {basis}"))
    return record


def transition_date(record: StatusRecord) -> str | None:
    """The future date on which ``law_on`` changes this record, if it holds one."""
    if record.status == "controlled" and record.in_force_until:
        return record.in_force_until
    if (record.status == "not_in_force" and record.in_force_since_kind == "instrument"
            and not record.in_force_until):
        return record.in_force_since
    return None


def legal_span(record: StatusRecord) -> tuple[str, str | None]:
    """(legal from, legal to) of a stored record: from its in-force date (an instrument's, or
    the earliest evidence), to the date a dated change held in it takes effect."""
    if record.status == "not_in_force" and transition_date(record) is not None:
        start = evidence_day(record)
    else:
        start = record.in_force_since or evidence_day(record)
    end = transition_date(record)
    return start, (end if end is not None and end > start else None)


def same_status(a: StatusRecord, b: StatusRecord) -> bool:
    """The same legal status (status and schedule), whatever the wording or instrument."""
    return a.status == b.status and a.schedule == b.schedule


def _replace(record: StatusRecord, **changes: Any) -> StatusRecord:
    """``dataclasses.replace`` for a record, without its per-field ``__init__`` (a frozen
    dataclass sets its 30 fields one ``object.__setattr__`` at a time; ``with_since`` runs
    once per stored record, thousands with watch = "all"). The same record: StatusRecord has
    no ``__post_init__`` and every field is an init field, held in ``__dict__``."""
    unknown = changes.keys() - _RECORD_FIELDS
    if unknown:
        raise TypeError(f"StatusRecord has no field(s) {', '.join(sorted(unknown))}")
    new = object.__new__(StatusRecord)
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new


def with_since(record: StatusRecord, before: StatusRecord | None, *, observed_at: str
               ) -> StatusRecord:
    """The record as stored: ``in_force_since`` and ``first_observed_at`` filled in.

    A status that did not change keeps its dates (a new wording or a new consolidation is not
    a new status). Otherwise a dated instrument's date stands; failing that the status holds
    from the earliest evidence, the date this document speaks for."""
    if before is not None and before.status == record.status \
            and before.schedule == record.schedule and record.in_force_since_kind != "instrument":
        return _replace(
            record, in_force_since=before.in_force_since,
            in_force_since_basis=before.in_force_since_basis,
            in_force_since_kind=before.in_force_since_kind,
            first_observed_at=before.first_observed_at or observed_at)
    if before is not None and before.status == record.status \
            and before.schedule == record.schedule:
        return _replace(record, first_observed_at=before.first_observed_at
                                   or observed_at)
    if record.in_force_since and record.in_force_since_kind == "instrument":
        return _replace(record, first_observed_at=observed_at)
    day = evidence_day(record)
    what = "point-in-time version" if record.evidence_date else "document retrieved"
    return _replace(
        record, in_force_since=day, in_force_since_kind="earliest_evidence",
        in_force_since_basis=(f"earliest evidence held: the {what} of {day} "
                              f"({record.instrument}); earlier is not known to schedwatch"),
        first_observed_at=observed_at)


def in_force_summary(before: StatusRecord, after: StatusRecord, jurisdiction_name: str) -> str:
    basis = after.in_force_since_basis or after.instrument
    return (f"{display_name(after.substance)} — {jurisdiction_name}: {schedule_label(before)} "
            f"→ {schedule_label(after)} on {after.in_force_since} ({basis}) (in force)")


def early_warning_losses(before: Sequence[StatusRecord], after: Sequence[StatusRecord]
                         ) -> list[str]:
    """Substances an early-warning source would turn from controlled to not controlled: it
    never may by itself (a Federal Register answer lacking the 1999 rule is incomplete, not a
    descheduling)."""
    now = {r.substance: r for r in after}
    return sorted(r.substance for r in before if r.status == "controlled"
                  and r.substance in now and now[r.substance].status == "not_controlled")


def pending_passed(item: PendingItem, day: date) -> bool:
    """Whether a pending item's date has passed and it is therefore resolved, not pending: a
    not-in-force amendment or a final rule on its in-force/effective date. A proposal's
    comment deadline passing resolves nothing."""
    if not item.date or item.action not in ("not_in_force", "final_rule"):
        return False
    return item.date <= day.isoformat()


# =========================================================================================
# Decisions: what one source's outcome changes, decided from the prior state alone (pure).
# The pipeline's writer applies a Decision inside the run's transaction.
# =========================================================================================

HEALTHY = "healthy"
#: A source outcome → the change kind (and health) it means.
FAILURE_KINDS = {"failed": "source_failed", "extraction_failed": "extraction_failed"}

#: Within this window, a change that repeats a transition already seen and undone since
#: (A→B, B→A, A→B …: a load-balanced source serving two versions, a stale cache) is a
#: flip-flop: stored and reported, but not alerted again. The first change and the first
#: revert are alerted: a real correction by the regulator is never silenced.
FLIP_FLOP_WINDOW = timedelta(days=7)


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
class NewChange:
    """A change to store (and, when ``alert``, to route to recipients)."""

    kind: str
    jurisdiction: str
    substance: str | None
    source_id: str
    summary: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    effective_date: str | None = None
    before_sha256: str | None = None
    after_sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    alert: bool = True  # False for a flip-flop: stored, reported, not alerted


@dataclass(frozen=True)
class Opening:
    """A status interval to open at the run's time, with its legal span. ``closed``: a past
    legal segment learnt now (a baseline after a held coming-into-force date passed), stored
    as observed at this run and already over."""

    record: StatusRecord
    legal_from: str
    legal_to: str | None
    closed: bool = False


@dataclass(frozen=True)
class Closing:
    """End the open interval of a substance at the run's time; ``legal_to`` is the legal
    date its status ended (None: not a legal end, e.g. no longer watched)."""

    substance: str
    legal_to: str | None


@dataclass(frozen=True)
class Replacement:
    """Rewrite an open interval's record in place (a bulk re-issue, status unchanged)."""

    record: StatusRecord


IntervalStep = Opening | Closing | Replacement


@dataclass(frozen=True)
class PendingStep:
    action: str  # open | touch | reopen | resolve
    item: PendingItem | None = None
    row_id: int | None = None


@dataclass(frozen=True)
class Decision:
    """Everything one source's outcome changes, in the order the writer applies it."""

    source_id: str
    state: SourceState
    #: The last healthy observation before this run: it confirmed the intervals closed now.
    confirmed_at: str | None = None
    confirmed_sha256: str | None = None
    steps: tuple[IntervalStep, ...] = ()
    changes: tuple[NewChange, ...] = ()
    pending: tuple[PendingStep, ...] = ()


def default_state(source: Source) -> SourceState:
    return SourceState(source_id=source.id, jurisdiction=source.jurisdiction, health="unknown",
                       failing_since=None, consecutive_failures=0, last_error=None,
                       last_attempt_at=None, last_healthy_at=None, last_document_sha256=None,
                       last_url=None, etag=None, last_modified=None, marker=None,
                       watch_keys=None, document_dates=(), document_meta={}, title=None,
                       instrument=None)


def watch_signature(watch: WatchList) -> tuple[str, ...]:
    return ("*all*",) if watch.all_entries else tuple(sorted(watch.keys))


def check_early_warning(outcome: SourceOutcome, prior: Prior) -> SourceOutcome:
    """An early-warning source's parse that would turn a controlled status into not
    controlled is an incomplete answer: an extraction failure, never a descheduling."""
    if not outcome.source.early_warning or outcome.result is None:
        return outcome
    before = [interval.record for interval in prior.current.get(outcome.source.id, ())]
    lost = early_warning_losses(before, outcome.result.records)
    if not lost:
        return outcome
    error = (f"{outcome.source.id}: this answer would make {', '.join(lost)} not controlled; "
             "an early-warning source never does that by itself (the answer lacks the "
             "documents that establish the current status)")
    return dataclasses.replace(outcome, outcome="extraction_failed", error_kind="extraction",
                               error=error, result=None)


def is_flip_flop(change: Change, recent: Sequence[StoredChange]) -> bool:
    """``recent``: the substance's two newest non-pending changes in this source within
    FLIP_FLOP_WINDOW, newest first."""
    if change.substance is None or len(recent) < 2:
        return False

    def material(data: dict | None) -> tuple | None:
        return StatusRecord.from_dict(data).material() if data else None

    newest, older = recent[0], recent[1]
    before = change.before.material() if change.before else None
    after = change.after.material() if change.after else None
    return (material(newest.before) == after and material(newest.after) == before
            and material(older.before) == before and material(older.after) == after)


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


class _Decider:
    """Builds one source's Decision step by step (the steps' order is the writing order)."""

    def __init__(self, outcome: SourceOutcome, prior: Prior, *, jurisdiction_name: str,
                 today: date) -> None:
        self.outcome = outcome
        self.source = outcome.source
        self.prior = prior
        self.name = jurisdiction_name
        self.today = today
        self.at = stamp(outcome.started_at)
        self.prev = prior.states.get(self.source.id) or default_state(self.source)
        self._current: dict[str, StatusRecord] | None = None
        self.steps: list[IntervalStep] = []
        self.changes: list[NewChange] = []
        self.pending: list[PendingStep] = []

    @property
    def current(self) -> dict[str, StatusRecord]:
        """The source's current records by substance, read from the prior when first needed
        (not on a day its document did not change and no dated change fell due)."""
        if self._current is None:
            self._current = {iv.record.substance: iv.record
                             for iv in self.prior.current.get(self.source.id, ())}
        return self._current

    def decision(self, state: SourceState) -> Decision:
        return Decision(source_id=self.source.id, state=state,
                        confirmed_at=self.prev.last_healthy_at,
                        confirmed_sha256=self.prev.last_document_sha256, steps=tuple(self.steps),
                        changes=tuple(self.changes), pending=tuple(self.pending))

    def open(self, record: StatusRecord, before: StatusRecord | None) -> StatusRecord:
        stored = with_since(record, before, observed_at=self.at)
        start, end = legal_span(stored)
        self.steps.append(Opening(stored, start, end))
        return stored

    def open_baseline(self, raw: StatusRecord) -> None:
        """A first record: its past legal segment too when a date it holds has passed."""
        effective = law_on(raw, self.today)
        if effective is raw:
            self.open(raw, None)
            return
        past = with_since(raw, None, observed_at=self.at)
        start, end = legal_span(past)
        self.steps.append(Opening(past, start, end, closed=True))
        self.open(effective, past)

    # -- the law moves on ------------------------------------------------------------------

    def advance(self) -> None:
        """Dated changes held in the stored records whose date has now passed take effect,
        whether or not a document changed today (kind ``in_force``)."""
        sha = self.prev.last_document_sha256
        for interval in self.prior.dated_intervals(self.source.id):
            substance = interval.record.substance
            record = self.current[substance] if self._current is not None else interval.record
            advanced = law_on(record, self.today)
            if advanced is record:
                continue
            self.steps.append(Closing(substance, advanced.in_force_since))
            stored = self.open(advanced, record)
            self.changes.append(NewChange(
                kind="in_force", jurisdiction=record.jurisdiction, substance=substance,
                source_id=self.source.id, summary=in_force_summary(record, stored, self.name),
                before=record.as_dict(), after=stored.as_dict(),
                effective_date=stored.in_force_since, before_sha256=sha, after_sha256=sha,
                details={"fields": ["status"], "basis": stored.in_force_since_basis,
                         "legal_note": stored.legal_note}))
            self.current[substance] = stored
        for row in self.prior.pending.get(self.source.id, ()):
            if row.resolved_at is None and pending_passed(row.item, self.today):
                self.pending.append(PendingStep("resolve", row_id=row.id))

    # -- health ----------------------------------------------------------------------------

    def failure(self, failures_before_alert: int) -> Decision:
        outcome, prev = self.outcome, self.prev
        kind = FAILURE_KINDS[outcome.outcome]
        failures = prev.consecutive_failures + 1
        failing_since = prev.failing_since if prev.consecutive_failures else self.at
        health = prev.health
        if failures >= failures_before_alert and prev.health != kind:
            document = outcome.document
            self.changes.append(NewChange(
                kind=kind, jurisdiction=self.source.jurisdiction, substance=None,
                source_id=self.source.id,
                summary=source_summary(kind, self.source.id, self.name, outcome.error or ""),
                details={"error": outcome.error, "error_kind": outcome.error_kind,
                         "url": outcome.url, "failing_since": failing_since,
                         "document_sha256": document.sha256 if document else None}))
            health = kind
        return self.decision(dataclasses.replace(
            prev, health=health, consecutive_failures=failures, failing_since=failing_since,
            last_error=outcome.error, last_attempt_at=self.at))

    def recovered(self) -> SourceState:
        prev = self.prev
        if prev.health in FAILURE_KINDS.values():
            self.changes.append(NewChange(
                kind="recovered", jurisdiction=self.source.jurisdiction, substance=None,
                source_id=self.source.id,
                summary=source_summary("recovered", self.source.id, self.name,
                                       f"failing since {prev.failing_since}"),
                details={"failing_since": prev.failing_since, "previous_health": prev.health,
                         "previous_error": prev.last_error}))
        return dataclasses.replace(
            prev, health=HEALTHY, consecutive_failures=0, failing_since=None, last_error=None,
            last_attempt_at=self.at, last_healthy_at=self.at,
            last_url=self.outcome.final_url or prev.last_url)

    # -- a parsed document -----------------------------------------------------------------

    def records(self, watch: WatchList) -> None:
        outcome, prev = self.outcome, self.prev
        assert outcome.result is not None and outcome.document is not None
        new_sha = outcome.document.sha256
        raw = {r.substance: r for r in outcome.result.records}
        effective = [law_on(r, self.today) for r in outcome.result.records]
        before = list(self.current.values())
        baseline = not before
        new_signature = watch_signature(watch)
        old_signature = prev.watch_keys
        after_keys = set(raw)
        # A substance no longer watched is dropped quietly; a disappearance counts only when
        # every entry was watched before and still is (otherwise the parser reports a watched
        # substance that is not listed as "not_controlled", never by omission).
        both_all = old_signature == ("*all*",) and new_signature == ("*all*",)
        kept_before = [r for r in before if r.substance in after_keys or both_all]
        kept_keys = {r.substance for r in kept_before}
        for record in before:
            if record.substance not in kept_keys:
                self.steps.append(Closing(record.substance, None))
        if baseline:
            for record in outcome.result.records:
                self.open_baseline(record)
            return
        previously_watched = set(old_signature or ())
        newly_watched = [key for key in after_keys
                         if old_signature != ("*all*",) and key not in previously_watched]
        found = diff_records(kept_before, effective, jurisdiction_name=self.name,
                             newly_watched=newly_watched)
        found, bulk = split_bulk_amendments(found, watch)
        by_before = {r.substance: r for r in kept_before}
        for change in bulk:  # the same entry under a new instrument id: updated in place
            assert change.after is not None and change.substance is not None
            self.steps.append(Replacement(with_since(change.after, by_before.get(
                change.substance), observed_at=self.at)))
        if bulk:
            self.changes.append(self.bulk_amendment(bulk, new_sha))
        new_day = evidence_day(outcome.result.records[0])
        for change in found:
            assert change.substance is not None
            stored: StatusRecord | None = None
            start: str = new_day
            stop: str | None = None
            if change.after is not None:
                stored = with_since(change.after, change.before, observed_at=self.at)
                start, stop = legal_span(stored)
                if change.before is not None and same_status(change.before, stored):
                    # The same status under a new wording, provision or instrument (a new
                    # Poisons Standard re-issuing the entry): the status keeps its
                    # in_force_since, but the new record speaks from the day its document
                    # does. Starting it at in_force_since would leave the old record an
                    # empty span and answer "as of" dates before the change with the new one.
                    start = max(start, evidence_day(stored))
                    stop = stop if stop is not None and stop > start else None
            if change.before is not None:
                self.steps.append(Closing(change.substance, start))
            if stored is not None:
                self.steps.append(Opening(stored, start, stop))
            flapping = is_flip_flop(change, self.prior.recent.get(
                (self.source.id, change.substance), ()))
            summary = change.summary + (" [flip-flop: the source alternates between two "
                                        "versions; not alerted again]" if flapping else "")
            if stored is not None and stored.review and not (
                    change.before is not None and change.before.review):
                summary += f" — REVIEW: {stored.review}"
            self.changes.append(NewChange(
                kind=change.kind, jurisdiction=change.jurisdiction, substance=change.substance,
                source_id=self.source.id, summary=summary,
                before=change.before.as_dict() if change.before else None,
                after=stored.as_dict() if stored else None,
                effective_date=change.effective_date, before_sha256=prev.last_document_sha256,
                after_sha256=new_sha,
                details={"fields": list(change.fields), "flip_flop": flapping,
                         **({"review": stored.review} if stored and stored.review else {})},
                alert=not flapping))
        changed = {c.substance for c in found} | {c.substance for c in bulk}
        for record in outcome.result.records:  # newly watched substances: their own baseline
            if record.substance not in kept_keys and record.substance not in changed:
                self.open_baseline(record)

    def bulk_amendment(self, bulk: list[Change], new_sha: str) -> NewChange:
        """One source-level "amended" change for a bulk of entries under a new instrument."""
        first = bulk[0]
        assert first.before is not None and first.after is not None
        summary = (f"{self.name} — {self.source.id}: instrument {first.before.instrument} → "
                   f"{first.after.instrument} for {len(bulk)} other entries, their status "
                   "unchanged (amended)")
        return NewChange(
            kind="amended", jurisdiction=self.source.jurisdiction, substance=None,
            source_id=self.source.id, summary=summary,
            before_sha256=self.prev.last_document_sha256, after_sha256=new_sha,
            details={"fields": ["instrument"], "entries": len(bulk),
                     "substances": sorted(str(c.substance) for c in bulk)[:200],
                     "instrument_before": first.before.instrument,
                     "instrument_after": first.after.instrument})

    def pending_items(self, baseline: bool) -> None:
        outcome = self.outcome
        assert outcome.result is not None and outcome.document is not None
        rows = self.prior.pending.get(self.source.id, ())
        known = {(row.item.key, row.item.substance): row for row in rows}
        already = {step.row_id for step in self.pending if step.action == "resolve"}
        open_rows = {ident: row for ident, row in known.items()
                     if row.resolved_at is None and row.id not in already}
        seen: set[tuple[str, str]] = set()
        moment = outcome.started_at
        for item in outcome.result.pending:
            if pending_passed(item, self.today):
                continue  # its date has passed: the law now, not a pending change
            ident = (item.key, item.substance)
            if ident in seen:
                continue
            seen.add(ident)
            if ident in open_rows:
                self.pending.append(PendingStep("touch", item, open_rows[ident].id))
                continue
            earlier = known.get(ident)
            if earlier is not None:
                if earlier.id in already:
                    continue
                self.pending.append(PendingStep("reopen", item, earlier.id))
                # The same proposal back after a short absence (a flaky search result, a
                # flip-flopping mirror) was alerted already; after a long one it is news.
                assert earlier.resolved_at is not None
                if parse_stamp(earlier.resolved_at) > moment - FLIP_FLOP_WINDOW:
                    continue
            else:
                self.pending.append(PendingStep("open", item))
            if not baseline:
                self.changes.append(NewChange(
                    kind="pending", jurisdiction=item.jurisdiction, substance=item.substance,
                    source_id=self.source.id, summary=pending_summary(item, self.name),
                    after=item.as_dict(), effective_date=item.date,
                    after_sha256=outcome.document.sha256, details={"pending_key": item.key}))
        for ident, row in open_rows.items():
            if ident not in seen:
                self.pending.append(PendingStep("resolve", row_id=row.id))


def decide(outcome: SourceOutcome, prior: Prior, watch: WatchList, *, jurisdiction_name: str,
           today: date, failures_before_alert: int = 1) -> Decision:
    """What one source's outcome changes: the law moving on (dated changes whose date has
    passed), the source's health, record changes, pending items. ``today`` is the
    jurisdiction's own calendar date of the run."""
    decider = _Decider(outcome, prior, jurisdiction_name=jurisdiction_name, today=today)
    decider.advance()
    if not outcome.healthy:
        return decider.failure(failures_before_alert)
    state = decider.recovered()
    if outcome.outcome in ("not_modified", "unchanged"):
        # The new last_healthy_at confirms every open interval: no status row is rewritten.
        return decider.decision(state)
    assert outcome.result is not None and outcome.document is not None
    assert outcome.fetched is not None
    baseline = not decider.current
    decider.records(watch)
    decider.pending_items(baseline)
    fetched, result = outcome.fetched, outcome.result
    return decider.decision(dataclasses.replace(
        state, last_document_sha256=outcome.document.sha256, etag=fetched.etag,
        last_modified=fetched.last_modified, marker=fetched.marker,
        watch_keys=watch_signature(watch), document_dates=result.document_dates,
        document_meta=dict(fetched.meta), title=result.title,
        instrument=result.instrument))


def with_law_dates(outcomes: Sequence[SourceOutcome], prior: Prior,
                   hooks: Mapping[str, Callable[[Sequence[StatusRecord]],
                                                Sequence[StatusRecord]] | None]
                   ) -> list[SourceOutcome]:
    """Legal dates one source of a jurisdiction gives another's records (the US: the eCFR
    does not cite the rule that placed ketamine; the Federal Register's 1999 rule does),
    through the jurisdiction's own ``law_dates(records)``. The other sources' records are
    this run's parse, else the stored current ones."""
    result = list(outcomes)
    for code, hook in hooks.items():
        if hook is None:
            continue
        mine = [i for i, o in enumerate(result)
                if o.source.jurisdiction == code and o.result is not None]
        if not mine:
            continue
        parsed = {result[i].source.id for i in mine}
        records = [r for i in mine for r in result[i].result.records]  # type: ignore[union-attr]
        records += [iv.record for sid, ivs in prior.current.items() if sid not in parsed
                    for iv in ivs if iv.record.jurisdiction == code]
        updated = {(r.source_id, r.substance): r for r in hook(records)}
        for i in mine:
            parse = result[i].result
            assert parse is not None
            result[i] = dataclasses.replace(result[i], result=dataclasses.replace(
                parse, records=tuple(updated.get((r.source_id, r.substance), r)
                                     for r in parse.records)))
    return result


def clock_problem(prior: Prior, started: datetime) -> str | None:
    """A run whose clock is before the last run's would write intervals that end before they
    start and defer alerts for years: the line that refuses it, or None."""
    last = prior.last_run_started_at
    if last is not None and parse_stamp(last) > started:
        return (f"the system clock ({stamp(started)}) is before the last run ({last}); fix "
                "the clock (NTP) and run again; nothing was written")
    return None
