"""One status-row shape: what `status --format json`, the site's status.json and status.csv
say about one (jurisdiction, substance, source), with every date saying what it is.

* ``in_force_since`` — the legal date from which the status holds, with its basis and kind
  (``instrument``: a dated instrument states it; ``earliest_evidence``: the status holds in
  every version held back to that date, earlier is unknown).
* ``evidence_date`` — the date the document speaks for (a consolidation's point in time).
* ``first_observed_at`` — when schedwatch first saw this status (not a legal date).
* ``legal_from`` / ``legal_to`` — the stored legal span; ``observed_from`` / ``observed_to``
  — when schedwatch observed it; ``retrieved_at`` / ``document_sha256`` — the latest
  healthy fetch that confirmed it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

from reports.diff import law_on, schedule_label
from scrapers.records import CONTROL_LEVELS, StatusRecord
from scrapers.store import SourceState, StatusInterval

STATUS_COLUMNS = (
    "jurisdiction", "substance", "source_id", "status", "status_label", "schedule",
    "control_level", "control_level_description", "instrument", "provision", "listed_as",
    "basis", "code", "parent_entry", "in_force_since", "in_force_since_basis",
    "in_force_since_kind", "in_force_until", "in_force_until_basis", "evidence_date",
    "first_observed_at", "legal_from", "legal_to", "observed_from", "observed_to",
    "backfilled", "review", "legal_note", "dates", "retrieved_at", "document_sha256",
    "first_document_sha256", "source_url", "source_health",
)
#: The columns of a CSV export (``dates`` is a list: JSON only).
CSV_COLUMNS = tuple(c for c in STATUS_COLUMNS if c != "dates")

#: How each kind of in-force date is worded wherever it is shown.
SINCE_KIND_WORDS = {
    "instrument": "in force since (per the instrument)",
    "earliest_evidence": "in force since at least (earliest evidence held)",
}


def since_words(record: StatusRecord) -> str | None:
    """"in force since 1999-08-12 (per the instrument: 64 FR 37673, effective 1999-08-12)"."""
    if not record.in_force_since or record.status != "controlled":
        return None
    words = SINCE_KIND_WORDS.get(record.in_force_since_kind or "", "in force since")
    basis = f": {record.in_force_since_basis}" if record.in_force_since_basis else ""
    head, _, tail = words.partition(" (")
    return f"{head} {record.in_force_since} ({tail.rstrip(')')}{basis})" if tail else \
        f"{head} {record.in_force_since}{basis}"


def status_row(interval: StatusInterval, *, on: date | None = None,
               state: SourceState | None = None, disabled: bool = False) -> dict[str, Any]:
    """The row of one interval; ``on``: state the law on that day (a date the stored record
    holds may have passed since it was stored); ``disabled``: the configuration disables
    its source (``source_health`` is then "disabled", not the last health seen)."""
    stored = interval.record
    record = law_on(stored, on) if on is not None else stored
    return {
        "jurisdiction": record.jurisdiction, "substance": record.substance,
        "source_id": record.source_id, "status": record.status,
        "status_label": schedule_label(record), "schedule": record.schedule,
        "control_level": record.control_level,
        "control_level_description": CONTROL_LEVELS.get(record.control_level or ""),
        "instrument": record.instrument, "provision": record.provision,
        "listed_as": record.listed_as, "basis": record.basis, "code": record.code,
        "parent_entry": record.parent_entry, "in_force_since": record.in_force_since,
        "in_force_since_basis": record.in_force_since_basis,
        "in_force_since_kind": record.in_force_since_kind,
        "in_force_until": record.in_force_until,
        "in_force_until_basis": record.in_force_until_basis,
        "evidence_date": record.evidence_date or record.retrieved_at[:10],
        "first_observed_at": record.first_observed_at or interval.valid_from,
        "legal_from": interval.legal_from, "legal_to": interval.legal_to,
        "observed_from": interval.valid_from, "observed_to": interval.valid_to,
        "backfilled": interval.backfilled, "review": record.review,
        "legal_note": record.legal_note, "dates": [list(pair) for pair in record.dates],
        # The latest document that confirmed this status, and when: not only the first.
        "retrieved_at": interval.last_confirmed_at,
        "document_sha256": interval.last_document_sha256,
        "first_document_sha256": stored.document_sha256, "source_url": record.source_url,
        "source_health": "disabled" if disabled else state.health if state else "unknown",
    }


def status_rows(intervals: list[StatusInterval], *, on: date | None = None,
                states: Mapping[str, SourceState] | None = None,
                disabled: Collection[str] = ()) -> list[dict[str, Any]]:
    states = states or {}
    return [status_row(i, on=on, state=states.get(i.record.source_id),
                       disabled=i.record.source_id in disabled) for i in intervals]


# --- how a record and a source's health read (the site and the command line) ------

#: What a record's ``code`` is, by jurisdiction (shown with it).
CODE_LABELS = {"us": "DEA code"}


def pinpoint(instrument: str | None, provision: str | None) -> str:
    """"S.C. 1996, c. 19, Sch. I, item 14": the instrument and, when there is one, the
    provision; a provision that already cites the instrument ("21 CFR 1308.13(c)(7)") is
    shown once."""
    if not provision:
        return f"{instrument}"
    if instrument and provision.startswith(instrument):
        return provision
    return f"{instrument}, {provision}"


def listed_lines(listed_as: str | None) -> list[str]:
    """The text as listed, one line per printed part: the entry, then each note printed
    under it ("[Some other names for ketamine: …]"), which the parsers join with " | "."""
    if not listed_as:
        return []
    return [part.strip() for part in listed_as.split(" | ") if part.strip()]


#: How a source the configuration disables is shown, wherever a source's state is shown.
DISABLED_WORDS = "disabled in the configuration"


def health_view(state: SourceState | None, *, disabled: bool = False) -> dict[str, Any]:
    """A source's health for display: ``failing`` says since when and why; a ``disabled``
    source is neither failing nor waiting for a check (it is not checked at all)."""
    if state is None or disabled:
        return {"health": "disabled" if disabled else "unknown", "disabled": disabled,
                "failing": False, "failing_since": None, "error": None,
                "last_healthy_at": state.last_healthy_at if state else None,
                "last_attempt_at": state.last_attempt_at if state else None, "failures": 0}
    failing = state.health not in ("healthy", "unknown") or state.consecutive_failures > 0
    return {"health": state.health, "disabled": False, "failing": failing,
            "failing_since": state.failing_since,
            "error": state.last_error, "last_healthy_at": state.last_healthy_at,
            "last_attempt_at": state.last_attempt_at,
            "failures": state.consecutive_failures}
