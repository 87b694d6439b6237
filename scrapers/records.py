"""The record model: documents in, status records and pending items out, plus validation.

Everything here is pure.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scrapers.errors import ValidationError

#: Status values. ``not_in_force`` is a listing the document prints but that is not law on
#: the day in question: not yet in force (the Controlled Substances Regulations before
#: 2026-10-01, ``in_force_since`` in the future) or no longer (the Narcotic Control
#: Regulations from 2026-10-01, ``in_force_until`` passed).
STATUSES = ("controlled", "not_controlled", "not_in_force")

#: The cross-jurisdiction control levels, strictest first. Each jurisdiction module maps its
#: own schedule labels onto these (``SCHEDULE_LEVELS``); reports show the level *beside* the
#: local label, never instead of it. The mapping is a reading aid, not legal advice.
CONTROL_LEVELS: dict[str, str] = {
    "C1": "prohibited: no accepted medical use (US I, AU 9/10)",
    "C2": "strictest medical control (US II, CA CDSA I/II, CA CSR 1, AU 8)",
    "C3": "controlled, moderate (US III, CA CDSA III)",
    "C4": "controlled, lower (US IV, CA CDSA IV, AU 4 prescription-only)",
    "C5": "least control (US V, CA CDSA V and below, AU 2/3 pharmacy)",
    "C6": "poison or chemical, not a medicine schedule (AU 5/6/7, appendices)",
}

#: Fields whose change is a change of legal status or wording. Provenance fields
#: (document_sha256, retrieved_at, source_url, dates) change every fetch and are not compared;
#: nor are legal dates (effective_from, in_force_since ...): a date passing is decided by
#: ``reports.diff.law_on`` (kind ``in_force``), and a new consolidation date is not news.
STATUS_FIELDS = ("status", "schedule", "control_level")
WORDING_FIELDS = ("instrument", "provision", "listed_as", "basis", "code", "parent_entry")
MATERIAL_FIELDS = STATUS_FIELDS + WORDING_FIELDS


@dataclass(frozen=True)
class Document:
    """What a source served, as archived: the bytes plus where and when they came from.

    ``meta`` carries facts learnt while fetching that the document itself may not repeat
    (the eCFR ``up_to_date_as_of`` date, the Australian register id and commencement date).
    """

    source_id: str
    url: str
    content: bytes
    sha256: str
    retrieved_at: datetime
    content_type: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, content: bytes, *, source_id: str, url: str, retrieved_at: datetime,
           content_type: str | None = None, meta: Mapping[str, str] | None = None,
           sha256: str | None = None) -> Document:
        """A document with its sha256 (computed unless the archive already did)."""
        import hashlib

        return cls(source_id=source_id, url=url, content=content,
                   sha256=sha256 or hashlib.sha256(content).hexdigest(),
                   retrieved_at=retrieved_at, content_type=content_type,
                   meta=dict(meta or {}))


@dataclass(frozen=True)
class StatusRecord:
    """One observation: the status of one substance in one source, with its provenance."""

    jurisdiction: str
    substance: str
    status: str
    schedule: str | None
    control_level: str | None
    instrument: str
    provision: str | None
    listed_as: str | None
    basis: str
    source_id: str
    source_url: str
    document_sha256: str
    retrieved_at: str
    code: str | None = None
    parent_entry: str | None = None
    effective_from: str | None = None
    #: Labelled dates the document states: (("consolidated as of", "2026-06-05"), ...).
    dates: tuple[tuple[str, str], ...] = ()
    # --- the law over time (none of these is a material field: a new consolidation date
    # --- is not a change of status) ------------------------------------------------------
    #: The date the document speaks for: a consolidation's point in time (``lims:pit-date``),
    #: an eCFR version's date, a Poisons Standard's commencement. A document is evidence of
    #: the law from this date, not from the day it was fetched. None: the retrieval date.
    evidence_date: str | None = None
    #: The legal date from which this status holds, with what says so. ``kind`` is
    #: ``instrument`` when a dated instrument states it (a final rule's effective date, a
    #: coming-into-force section, a commencement) and ``earliest_evidence`` when the status
    #: holds in every version held back to that date and earlier is unknown. For a
    #: ``not_in_force`` record it is the future date on which the listing takes effect.
    in_force_since: str | None = None
    in_force_since_basis: str | None = None
    in_force_since_kind: str | None = None
    #: The date this listing ceases (a repeal that the document itself announces), and why.
    in_force_until: str | None = None
    in_force_until_basis: str | None = None
    #: When schedwatch first observed this status (set when it is stored, not by parsers).
    first_observed_at: str | None = None
    #: Why a person should look at this status: it rests on a generic entry (an analogue
    #: clause) after the explicit listing disappeared. None: nothing to review.
    review: str | None = None
    #: A notice about how the status was derived, e.g. "the consolidation served (point in
    #: time 2026-04-17) predates this; in force per s. 239".
    legal_note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # A shallow dict (dataclasses.asdict deep-copies: ten times slower over thousands of
        # records with watch = "all").
        data = {name: getattr(self, name) for name in RECORD_COLUMNS}
        data["dates"] = [list(pair) for pair in self.dates]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusRecord:
        if data.keys() != _RECORD_KEYS:  # written by another version: the fields it knows
            values = {name: data[name] for name in RECORD_COLUMNS if name in data}
            values["dates"] = tuple(tuple(pair) for pair in values.get("dates") or ())
            return cls(**values)
        # As ``as_dict`` wrote it, every field present: filled in directly. A frozen
        # dataclass's __init__ sets its 30 fields one object.__setattr__ at a time, most of
        # reading thousands of stored records (``status`` with watch = "all"); the record
        # has no __post_init__ to skip.
        record = object.__new__(cls)
        record.__dict__.update(data)
        record.__dict__["dates"] = tuple(map(tuple, data["dates"] or ()))
        return record

    def material(self) -> tuple[Any, ...]:
        return _material(self)  # type: ignore[no-any-return]

    @property
    def holds_date(self) -> bool:
        """Whether the record holds a dated change the law may reach with no new document:
        not in force yet, or a listing whose end the document announces (the store keeps
        the flag, so that a run whose documents did not change reads only these)."""
        return self.status == "not_in_force" or self.in_force_until is not None


#: Kinds of ``in_force_since``.
IN_FORCE_KINDS = ("instrument", "earliest_evidence")

#: The record's fields in order: the table's columns.
RECORD_COLUMNS = tuple(f.name for f in dataclasses.fields(StatusRecord))
#: ``StatusRecord.material`` in one C call (the diff compares thousands of records).
_material = operator.attrgetter(*MATERIAL_FIELDS)
#: The record's fields in the order ``sort_keys`` gives, read in one C call.
_SORTED_COLUMNS = tuple(sorted(RECORD_COLUMNS))
_sorted_values = operator.attrgetter(*_SORTED_COLUMNS)


_RECORD_KEYS = frozenset(RECORD_COLUMNS)
#: One encoder for every record (``json.dumps`` with options builds one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def record_json(record: StatusRecord) -> str:
    """``json.dumps(record.as_dict(), ensure_ascii=False, sort_keys=True)``, the same text,
    faster: the dict is built in sorted key order, so no sort is needed (a cold
    ``watch = "all"`` run and a new Poisons Standard store thousands of records)."""
    data = dict(zip(_SORTED_COLUMNS, _sorted_values(record), strict=True))
    data["dates"] = [list(pair) for pair in record.dates]
    return _ENCODER.encode(data)


@dataclass(frozen=True)
class PendingItem:
    """A published change that is not (yet) the law: a proposed rule, an amendment not in
    force, a final rule whose effective date is in the future."""

    jurisdiction: str
    substance: str
    source_id: str
    key: str  # stable identity, e.g. "NifProvs:SOR-2025-243" or "FR:99-17803"
    action: str  # "proposed_rule" | "final_rule" | "not_in_force"
    description: str
    reference: str  # citation or instrument, e.g. "64 FR 37673" or "SOR/2025-243"
    proposed_schedule: str | None = None
    date_label: str | None = None  # what the date is: "comment deadline", "effective", "in force"
    date: str | None = None
    url: str | None = None
    #: Further labelled facts (document number, publication date, links).
    details: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["details"] = [list(pair) for pair in self.details]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingItem:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["details"] = tuple(tuple(pair) for pair in values.get("details") or ())
        return cls(**values)


@dataclass(frozen=True)
class ScheduledAction:
    """A dated action by the regulator on a substance's scheduling, as its own publication
    states it: a proposed rule, the withdrawal of one, a final rule and the day it took
    effect, an amending instrument. The rows of a substance's **scheduling history**
    (oldest first), in the spirit of the DEA's "Orange Book" of scheduling actions.

    ``date`` is always labelled by ``date_kind`` ("published", "effective", "withdrawn",
    "registered", "commenced"): a reader must never have to guess which date it is."""

    jurisdiction: str
    substance: str
    source_id: str
    date: str  # ISO date
    date_kind: str
    action: str  # "proposed rule" | "withdrawal of proposed rule" | "final rule" | ...
    title: str
    citation: str  # "64 FR 37673", "SOR/2025-243", "F2026L00633"
    #: The regulator's own identity of the document ("FR Doc 99-17803"), for citing.
    document: str | None = None
    url: str | None = None
    #: What the action did to the substance, in words ("placed in Schedule III").
    effect: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduledAction:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ParseResult:
    """A parser's output for one document."""

    records: tuple[StatusRecord, ...]
    pending: tuple[PendingItem, ...] = ()
    #: Labelled dates of the whole document (point in time, last amended, ...).
    document_dates: tuple[tuple[str, str], ...] = ()
    #: Optional human title of the document (instrument title), for reports.
    title: str | None = None
    #: Optional instrument identity (for AU: the register id) so that a wholesale replacement
    #: shows in reports even when no record changed.
    instrument: str | None = None
    #: Dated scheduling actions the document states (``ScheduledAction``), oldest first.
    actions: tuple[ScheduledAction, ...] = ()


# --- text normalisation -------------------------------------------------------------------

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
_SPACES = re.compile(r"\s+")
_SPACE_AFTER_HYPHEN = re.compile(r"(?<=\w)- (?=\()")


#: C0 and C1 control characters and DEL (ESC, BEL, NUL, CSI …), as terminal escape
#: sequences (``ESC [ … m``) when they come as one. Scraped text (JSON strings can carry any
#: of them) must not colour or move a terminal, put raw bytes in a mail header or make the
#: Atom feed ill-formed XML (XML 1.0 forbids C0 controls other than tab and line ends).
#: Terminal escape sequences, removed whole (not only their ESC, which would leave "[2J" or
#: "]0;title" in the text): CSI as ESC [ (or the 8-bit \x9b with at least one parameter,
#: so that "\x9bSchedule" keeps its S), then parameters and a final byte; OSC as ESC ] or
#: \x9d, up to BEL or ST. A lone ESC is removed as a control, never with the letter after it
#: (that would eat text).
_ESCAPE_SEQUENCE = (r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]+[ -/]*[@-~]"
                    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?")
_CONTROL = "".join(chr(c) for c in (*range(0x20), *range(0x7f, 0xa0)))
#: The controls ``normalise_text`` deletes: those that are not whitespace (tab, line ends,
#: the information separators and NEL are whitespace, and become a space as any other).
_CONTROLS = re.compile(
    f"{_ESCAPE_SEQUENCE}|[{re.escape(''.join(c for c in _CONTROL if not c.isspace()))}]")
_CONTROLS_KEEPING_LINES = re.compile(
    f"{_ESCAPE_SEQUENCE}|[{re.escape(_CONTROL.replace(chr(9), '').replace(chr(10), ''))}]")


def strip_controls(text: str) -> str:
    """``text`` without C0/C1 control characters (nor terminal escape sequences), keeping
    tab and newline (a carriage return becomes a newline): for text whose lines matter and
    that ``normalise_text`` would fold into one."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS_KEEPING_LINES.sub("", text)


def normalise_text(text: str) -> str:
    """Collapse whitespace, unify dashes and drop control characters: the regulators mix en
    dashes, non-breaking hyphens and stray spaces ("2- (methylamino)" in the NCR and French
    CDSA, seen 2025-11); a JSON answer can carry ESC, BEL or NUL (see ``_CONTROLS``). The
    record boundary: every parser builds its text fields with this."""
    if text.isascii() and text.isprintable() and "  " not in text and "- (" not in text \
            and text[:1] != " " and text[-1:] != " ":
        # Nothing below changes such a text (the common case, tens of thousands of names
        # per Standard): printable ASCII holds no control character, NFC and the dash
        # folding change only non-ASCII, and its only whitespace is single inner spaces.
        return text
    text = _CONTROLS.sub("", text)
    text = unicodedata.normalize("NFC", text).translate(_DASHES).replace("\u00a0", " ")
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_AFTER_HYPHEN.sub("-", text)


def name_key(text: str) -> str:
    """A stable matching key for a substance name: normalised, accents folded, lower case,
    trailing punctuation dropped."""
    text = normalise_text(text)
    if text.isascii():  # NFKD leaves ASCII as it is and it has no combining mark
        return text.lower().rstrip(" .,;:")
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return folded.lower().rstrip(" .,;:")


# --- validation ---------------------------------------------------------------------------

def validate(result: ParseResult, *, source_id: str, watched: Iterable[str]) -> ParseResult:
    """Structural checks on a parser's output. A failure is an extraction error: the
    document is not what we know, which must never read as "the substance disappeared"."""
    if not result.records:
        raise ValidationError(f"{source_id}: the parser returned no records; the document "
                              "structure is not what schedwatch knows")
    seen: set[str] = set()
    for record in result.records:
        if record.source_id != source_id:
            raise ValidationError(f"{source_id}: a record names source {record.source_id!r}")
        if record.status not in STATUSES:
            raise ValidationError(f"{source_id}: unknown status {record.status!r} for "
                                  f"{record.substance}")
        if record.status == "controlled" and not record.schedule:
            raise ValidationError(f"{source_id}: {record.substance} is controlled but has no "
                                  "schedule")
        if record.control_level is not None and record.control_level not in CONTROL_LEVELS:
            raise ValidationError(f"{source_id}: unknown control level "
                                  f"{record.control_level!r}")
        if not record.substance:
            raise ValidationError(f"{source_id}: a record has no substance")
        if record.in_force_since_kind not in (None, *IN_FORCE_KINDS):
            raise ValidationError(f"{source_id}: unknown in_force_since_kind "
                                  f"{record.in_force_since_kind!r} for {record.substance}")
        if record.substance in seen:
            raise ValidationError(f"{source_id}: two records for {record.substance}")
        seen.add(record.substance)
    missing = [name for name in watched if name not in seen]
    if missing:
        raise ValidationError(f"{source_id}: no record for watched substance(s) "
                              f"{', '.join(missing)}; the parser must report every watched "
                              "substance, listed or not")
    return result


