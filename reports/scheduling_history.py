"""A substance's **scheduling history**, per jurisdiction, oldest first (pure).

Three kinds of row, each saying where it comes from (``origin``):

* the dated actions the regulators' own documents state (``ScheduledAction``, stored by live
  runs and by ``schedwatch backfill``): a proposed rule, its withdrawal, a final rule and
  the day it took effect, with citation, document and link — "stated by the regulator's
  document";
* the status changes schedwatch recorded — "observed by schedwatch" (a live run) or
  "backfilled from the regulator's archive";
* per jurisdiction, the earliest evidence held: the date the oldest document speaks for,
  with what kind of date it is (a consolidation's point in time, an eCFR version date, a
  commencement), its sha256 and whether it was backfilled or observed.

Every date carries its kind. ``started_by`` names the action (or, without one, the
instrument or the evidence) that began one status interval, for ``schedwatch history``.
Everything here is text the regulators served: templates autoescape it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reports.pages import Snapshot, change_href, record_key
from reports.status_rows import pinpoint
from scrapers.records import StatusRecord
from scrapers.rows import StatusInterval, StoredAction, StoredChange

STATED = "stated by the regulator's document"
OBSERVED = "observed by schedwatch"
BACKFILLED = "backfilled from the regulator's archive"

#: The changes that belong in a scheduling history: a status or its wording, not a
#: source's health, and not a pending item (the actions list those, dated).
STATUS_CHANGE_KINDS = ("scheduled", "descheduled", "rescheduled", "in_force", "amended")

#: How an action's ``date_kind`` is worded.
ACTION_DATE_WORDS = {"published": "published", "effective": "effective",
                     "withdrawn": "withdrawn", "registered": "registered",
                     "commenced": "commenced"}

#: What the date a document speaks for is, per source (the first prefix that matches).
EVIDENCE_DATE_KINDS = (
    ("us-ecfr", "eCFR version date"),
    ("us-federal-register", "latest Federal Register document published by then"),
    ("ca-", "point-in-time date of the consolidation"),
    ("au-", "commencement of the Poisons Standard"),
)


def origin_of(backfilled: bool) -> str:
    return BACKFILLED if backfilled else OBSERVED


def evidence_date_kind(record: StatusRecord) -> str:
    """What kind of date ``record.evidence_date`` is: an annual CFR edition (its
    ``legal_note`` says so), an eCFR version, a consolidation's point in time ..."""
    if not record.evidence_date:
        return "retrieval date (the document states no date it speaks for)"
    if "annual edition" in (record.legal_note or ""):
        return "annual CFR edition (revised as of April 1)"
    for prefix, words in EVIDENCE_DATE_KINDS:
        if record.source_id.startswith(prefix):
            return words
    return "date the document speaks for"


def granularity(record: StatusRecord) -> str | None:
    """How finely an interval is dated, when its record says (``legal_note`` of a version
    read from an archive: "granularity: annual edition …")."""
    note = record.legal_note or ""
    return note if note.startswith("granularity:") else None


def _pinpoint(record: Mapping[str, Any] | StatusRecord | None) -> str:
    if record is None:
        return ""
    get = record.get if isinstance(record, Mapping) else (lambda k: getattr(record, k, None))
    instrument, provision = get("instrument"), get("provision")
    # The matrix's wording: a provision that already cites the instrument is shown once.
    return pinpoint(instrument, provision) if instrument else str(provision or "")


def action_row(stored: StoredAction) -> dict[str, Any]:
    a = stored.action
    return {
        "row": "action", "date": a.date, "date_kind": ACTION_DATE_WORDS.get(a.date_kind,
                                                                           a.date_kind),
        "what": a.action, "detail": a.effect or "", "title": a.title, "citation": a.citation,
        "document": a.document or "", "url": a.url, "source_id": a.source_id,
        "origin": STATED, "read_by": "schedwatch backfill" if stored.backfilled else
        "a live run", "document_sha256": stored.document_sha256,
        "first_observed_at": stored.first_observed_at, "change_id": None, "href": None,
    }


def change_row(change: StoredChange) -> dict[str, Any]:
    after = change.after or {}
    backfilled = change.backfilled or bool(change.details.get("backfilled"))
    if change.effective_date:
        day, kind = change.effective_date[:10], "in force from"
    elif after.get("evidence_date"):
        day = str(after["evidence_date"])
        kind = evidence_date_kind(StatusRecord.from_dict(after)) if "source_id" in after \
            and "jurisdiction" in after else "date the document speaks for"
    else:
        day, kind = change.detected_at[:10], "detected by schedwatch"
    return {
        "row": "change", "date": day, "date_kind": kind, "what": change.kind.replace("_", " "),
        "detail": change.summary,
        "citation": _pinpoint(after if change.kind != "descheduled" else change.before),
        "title": "", "document": "", "url": None, "source_id": change.source_id,
        "origin": origin_of(backfilled), "change_id": change.id,
        "href": change_href(change.id), "read_by": None,
        "document_sha256": change.after_sha256, "detected_at": change.detected_at,
    }


def earliest_evidence(intervals: Iterable[StatusInterval]) -> dict[str, Any] | None:
    """The oldest evidence held among these intervals: the date its document speaks for
    (with the kind of that date), the document's sha256, backfilled or observed."""
    best: tuple[str, StatusInterval] | None = None
    for interval in intervals:
        record = interval.record
        day = record.evidence_date or interval.legal_from or record.retrieved_at[:10]
        if best is None or day < best[0]:
            best = (day, interval)
    if best is None:
        return None
    day, interval = best
    record = interval.record
    return {"date": day, "date_kind": evidence_date_kind(record),
            "document_sha256": record.document_sha256, "source_id": record.source_id,
            "instrument": _pinpoint(record), "origin": origin_of(interval.backfilled),
            "backfilled": interval.backfilled}


def _order(row: Mapping[str, Any]) -> tuple[str, int]:
    # On one day: an action's publication, then its taking effect, then what schedwatch
    # recorded of it.
    rank = {"published": 0, "effective": 1}.get(str(row["date_kind"]), 2)
    return str(row["date"]), rank if row["row"] == "action" else 3


def scheduling_history(substance: str, intervals: Sequence[StatusInterval],
                       changes: Sequence[StoredChange], actions: Sequence[StoredAction],
                       names: Mapping[str, str] | None = None,
                       order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per jurisdiction (``order`` first, then the others by code): its rows oldest first
    and its earliest evidence, for one substance."""
    names = names or {}
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    held: dict[str, list[StatusInterval]] = defaultdict(list)
    for stored in actions:
        if stored.action.substance == substance:
            rows[stored.action.jurisdiction].append(action_row(stored))
    for change in changes:
        if change.substance == substance and change.kind in STATUS_CHANGE_KINDS:
            rows[change.jurisdiction].append(change_row(change))
    for interval in intervals:
        if interval.record.substance == substance:
            held[interval.record.jurisdiction].append(interval)
    codes = [c for c in order if c in rows or c in held]
    codes += sorted(c for c in {*rows, *held} if c not in codes)
    # sorted() is stable: rows of one day keep the order they were stored in (page order).
    return [{"code": code, "name": names.get(code, code.upper()), "substance": substance,
             "rows": sorted(rows[code], key=_order),
             "earliest_evidence": earliest_evidence(held[code])} for code in codes]


def by_jurisdiction(histories: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {h["code"]: h for h in histories}


def histories(substances: Iterable[str], intervals: Iterable[StatusInterval],
              changes: Iterable[StoredChange], actions: Iterable[StoredAction],
              names: Mapping[str, str] | None = None, order: Sequence[str] = (),
              documents: Mapping[str, str] | None = None
              ) -> dict[str, dict[str, dict[str, Any]]]:
    """jurisdiction code → substance → its ``scheduling_history`` entry, for these
    substances (each input is read once: the reference shows every substance), each row
    and earliest evidence with its ``evidence`` (sha256 and the site's archived copy, from
    ``documents``: sha256 → site-relative path)."""
    chosen = set(substances)
    held: dict[str, list[StatusInterval]] = defaultdict(list)
    done: dict[str, list[StoredChange]] = defaultdict(list)
    stated: dict[str, list[StoredAction]] = defaultdict(list)
    for interval in intervals:
        if interval.record.substance in chosen:
            held[interval.record.substance].append(interval)
    for change in changes:
        if change.substance in chosen:
            done[change.substance].append(change)
    for stored in actions:
        if stored.action.substance in chosen:
            stated[stored.action.substance].append(stored)
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for substance in sorted(chosen):
        for entry in scheduling_history(substance, held[substance], done[substance],
                                        stated[substance], names, order):
            for item in (*entry["rows"], entry["earliest_evidence"]):
                if item is not None:
                    item["evidence"] = _evidence(item.get("document_sha256"), documents or {})
            found[entry["code"]][substance] = entry
    return dict(found)


def _evidence(sha256: str | None, documents: Mapping[str, str]) -> dict[str, Any]:
    return {"sha256": sha256, "href": documents.get(sha256) if sha256 else None, "role": ""}


def started_by(interval: StatusInterval, actions: Sequence[StoredAction]) -> dict[str, Any]:
    """What began one status interval: the stored action whose date is its in-force date
    and whose citation its basis names (the final rule's effective date: 64 FR 37673,
    1999-08-12); without one, the instrument its record names, or the earliest evidence."""
    record = interval.record
    since = record.in_force_since or interval.legal_from
    basis = " ".join(filter(None, (record.in_force_since_basis, record.instrument,
                                   record.basis)))
    mine = [s for s in actions if s.action.jurisdiction == record.jurisdiction
            and s.action.substance == record.substance]
    cited = [s for s in mine if s.action.citation and s.action.citation in basis]
    for group in ([s for s in cited if s.action.date == since], cited,
                  [s for s in mine if s.action.date == since]):
        if group:
            chosen = max(group, key=lambda s: (s.action.date_kind == "effective",
                                               s.action.date))
            return {**{k: action_row(chosen)[k] for k in (
                "what", "citation", "document", "date", "date_kind", "url", "origin")},
                "read_by": action_row(chosen)["read_by"]}
    if record.in_force_since_kind == "instrument":
        return {"what": "in force per the instrument",
                "citation": record.in_force_since_basis or _pinpoint(record), "document": "",
                "date": since, "date_kind": "in force since (per the instrument)", "url": None,
                "origin": STATED, "read_by": origin_of(interval.backfilled)}
    return {"what": "earliest evidence held", "citation": _pinpoint(record), "document": "",
            "date": record.evidence_date or since, "date_kind": evidence_date_kind(record),
            "url": None, "origin": origin_of(interval.backfilled),
            "read_by": origin_of(interval.backfilled)}


def made_from(intervals: Iterable[StatusInterval], changes: Iterable[StoredChange],
              actions: Iterable[StoredAction], snap: Snapshot) -> tuple[Any, ...]:
    """What the scheduling history of these rows is made from (``histories`` is a pure
    function of them, of the jurisdictions' names — the caller's ``jurisdictions_key`` —
    and of which documents have an archived copy), for a fingerprint: of each interval what
    its earliest evidence reads (its record, its start, whether it was backfilled: not when
    it was last confirmed nor by which document, which change with every day's run), each
    change as stored, the actions, and those of their documents the rows cite. Cheaper
    than making the history to digest it: the history is made only where it is shown."""
    held, done, stated = list(intervals), list(changes), list(actions)
    return (tuple((record_key(interval), interval.legal_from, interval.backfilled)
                  for interval in held),
            tuple(snap.change_key(change) for change in done), tuple(stated),
            snap.documents_key([*(interval.record.document_sha256 for interval in held),
                                *(change.after_sha256 for change in done),
                                *(stored.document_sha256 for stored in stated)]))
