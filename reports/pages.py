"""Pure context builders for the published site: a snapshot of the store in, plain data
(dicts, lists, strings) out. No I/O; ``reports.site`` loads the snapshot and writes files.

Every ``href`` a context holds is relative to the site root (``changes/12.html``,
``documents/<sha256>.xml.txt``); a page prefixes its own way back to the root, an email the
configured ``email.site_url``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from markupsafe import Markup

from reports.check_tally import CheckTally
from reports.diff import SOURCE_KINDS, display_name, schedule_label
from reports.parts import Parts
from reports.status_rows import (  # noqa: F401 - shown here, defined there
    CODE_LABELS,
    DISABLED_WORDS,
    health_view,
    listed_lines,
    pinpoint,
    since_words,
)
from reports.weeks import parse_week
from reports.worddiff import as_text, changed, word_diff
from scrapers.clock import parse_stamp, stamp
from scrapers.records import CONTROL_LEVELS, MATERIAL_FIELDS, PendingItem, StatusRecord
from scrapers.store import PendingRow, SourceState, StatusInterval, StoredAction, StoredChange

#: A scheduler that has not beaten for this long is reported as stale.
HEARTBEAT_STALE = timedelta(minutes=5)
#: "Coming into force" looks this far past the end of a week.
UPCOMING_DAYS = 90
LATEST_CHANGES = 20

KIND_LABELS = {
    "scheduled": "scheduled", "descheduled": "descheduled", "rescheduled": "rescheduled",
    "amended": "amended", "pending": "pending change", "source_failed": "source failing",
    "extraction_failed": "document not understood", "recovered": "source recovered",
}
FIELD_LABELS = {
    "status": "Status", "schedule": "Schedule", "control_level": "Control level",
    "instrument": "Instrument", "provision": "Provision", "listed_as": "Listed as",
    "basis": "Basis", "code": "Code", "parent_entry": "Parent entry",
    "effective_from": "Effective from", "source_id": "Source", "source_url": "Source URL",
    "document_sha256": "Document sha256", "retrieved_at": "Retrieved",
}
#: The fields shown side by side on a change page; the legal text among them is diffed.
COMPARED_FIELDS = (*MATERIAL_FIELDS, "source_url", "document_sha256", "retrieved_at")
#: The legal wording diffed word by word on a change page. Status, schedule, control level,
#: code, instrument id and dates are values: shown before → after, never diffed by word.
TEXT_FIELDS = ("listed_as", "parent_entry", "provision")


# --- small pure helpers ---------------------------------------------------------------------

_SLUG_DROP = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=16384)
def substance_slug(name: str) -> str:
    """A file name stem for a substance: lower-case a-z, 0-9 and "-". When that alters the
    name (or leaves nothing), a short hash of the name keeps distinct names apart, so that
    scraped text never decides a path by itself."""
    slug = _SLUG_DROP.sub("-", name.lower()).strip("-")[:60].strip("-")
    if slug and slug == name:
        return slug
    tag = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{tag}" if slug else f"substance-{tag}"


def history_path(substance: str) -> str:
    """Where a substance's history page is written (site-relative)."""
    return f"history/{substance_slug(substance)}.html"


def history_href(substance: str | None, pages: Container[str] | None = None) -> str | None:
    """The site-relative link to a substance's history page, or None when the site has no
    such page: with ``watch = "all"`` only the watched substances and those with a change or
    a pending item get one (``Snapshot.history_substances``, passed as ``pages``). Without
    ``pages`` (a context made outside a site) every named substance is assumed to have one.
    Templates show the name without a link when this is None."""
    if not substance or (pages is not None and substance not in pages):
        return None
    return history_path(substance)


def change_href(change_id: int) -> str:
    return f"changes/{int(change_id)}.html"


def weekly_href(week: str) -> str:
    parse_week(week)  # only a valid week names a file
    return f"weekly/{week}.html"


def parse_day(value: Any) -> date | None:
    """The date at the start of a stated date ("2026-10-01", "2026-10-01T00:00:00Z"), or
    None for text that is not one ("on proclamation")."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """"3 days 4 h", "45 min": how long, for a reader, not to the second."""
    minutes = int(max(seconds, 0) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min"


#: Media types that say nothing of the content: the first bytes decide, as with none.
_UNTYPED = frozenset({"application/octet-stream", "binary/octet-stream", "text/plain",
                      "application/download", "application/force-download"})


#: Every extension ``document_extension`` gives.
DOCUMENT_EXTENSIONS = frozenset({".docx", ".json", ".pdf", ".bin", ".xml.txt"})


def document_extension(media_type: str | None, head: bytes = b"") -> str:
    """The fixed extension of an archived copy, from its media type (or, when the type was
    not recorded, its first bytes). Never from scraped text. Nothing a browser would run
    from the site's origin: XML is published as ``.xml.txt`` (shown as text — XML may be
    XHTML or SVG carrying script), HTML as ``.bin`` (downloaded)."""
    kind = (media_type or "").split(";")[0].strip().lower()
    if "wordprocessingml" in kind:
        return ".docx"
    if kind.endswith("json"):
        return ".json"
    if kind == "application/pdf":
        return ".pdf"
    if "html" in kind:
        return ".bin"
    if kind.endswith("xml"):
        return ".xml.txt"
    if not kind or kind in _UNTYPED:
        # After a byte-order mark: real Justice Laws files start with the UTF-8 one.
        start = head.removeprefix(b"\xef\xbb\xbf").lstrip()[:5]
        if start.startswith(b"<?xml"):
            return ".xml.txt"
        if start[:1] in (b"{", b"["):
            return ".json"
        if head.startswith(b"%PDF"):
            return ".pdf"
    return ".bin"


def document_href(sha256: str, extension: str) -> str:
    return f"documents/{sha256}{extension}"


# --- the snapshot ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name: str
    sources: tuple[str, ...]  # in the jurisdiction's SOURCES order, then any others seen
    titles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryRows:
    """A substance's rows, in the snapshot's order: what its history page and its
    scheduling histories are made from."""

    intervals: list[StatusInterval] = field(default_factory=list)
    changes: list[StoredChange] = field(default_factory=list)
    pending: list[PendingRow] = field(default_factory=list)
    actions: list[StoredAction] = field(default_factory=list)

    def in_jurisdiction(self, code: str) -> tuple[list[StatusInterval], list[StoredChange],
                                                  list[StoredAction]]:
        """The intervals, changes and actions of one jurisdiction (its scheduling
        history's)."""
        return ([iv for iv in self.intervals if iv.record.jurisdiction == code],
                [c for c in self.changes if c.jurisdiction == code],
                [a for a in self.actions if a.action.jurisdiction == code])


@dataclass(frozen=True)
class Snapshot:
    """Everything the site shows, read from the store once per publish."""

    intervals: tuple[StatusInterval, ...]  # every interval, current ones have valid_to None
    changes: tuple[StoredChange, ...]  # oldest first
    pending: tuple[PendingRow, ...]  # open and resolved
    states: Mapping[str, SourceState]
    failed_mail: tuple[Mapping[str, Any], ...]
    heartbeat: Mapping[str, Any] | None
    jurisdictions: tuple[Jurisdiction, ...]
    #: sha256 → site-relative path of its archived copy (only documents that are copied).
    documents: Mapping[str, str]
    watched: tuple[str, ...]
    all_entries: bool  # watch = "all"
    #: Sources the configuration disables: shown as "disabled in the configuration", never
    #: as unchecked or failing.
    disabled: frozenset[str] = frozenset()
    actions: tuple[StoredAction, ...] = ()  # dated scheduling actions, oldest first
    #: The fetch log as the weekly reports count it, in the reader's zone; None: no fetch.
    checks: CheckTally | None = None

    @cached_property
    def current(self) -> list[StatusInterval]:
        return [iv for iv in self.intervals if iv.valid_to is None]

    @cached_property
    def pending_change_ids(self) -> dict[tuple[str, str, str], int]:
        """(source, key, substance) → the id of the ``pending`` change that announced it."""
        found: dict[tuple[str, str, str], int] = {}
        for change in self.changes:
            if change.kind == "pending" and change.substance is not None:
                key = str(change.details.get("pending_key") or (change.after or {}).get("key"))
                found.setdefault((change.source_id, key, change.substance), change.id)
        return found

    @cached_property
    def history_substances(self) -> frozenset[str]:
        """The substances that get a history page. With a watch list: every substance the
        data names. With ``watch = "all"``: the watched ones and those with at least one
        change or pending item — not a page each for thousands of entries that never
        changed (their status, evidence and dates are in the index and the reference)."""
        names = set(self.watched)
        names.update(c.substance for c in self.changes if c.substance)
        names.update(row.item.substance for row in self.pending)
        if not self.all_entries:
            names.update(iv.record.substance for iv in self.intervals)
        return frozenset(name for name in names if name)

    @cached_property
    def history_rows(self) -> dict[str, HistoryRows]:
        """substance → its rows, for the substances with a history page (one pass over the
        snapshot, shared by the history pages and the reference); a substance with none
        is missing."""
        names = self.history_substances
        found: dict[str, HistoryRows] = {}

        def of(substance: str) -> HistoryRows:
            if substance not in found:
                found[substance] = HistoryRows()
            return found[substance]

        for interval in self.intervals:
            if interval.record.substance in names:
                of(interval.record.substance).intervals.append(interval)
        for change in self.changes:
            if change.substance in names:
                of(change.substance).changes.append(change)
        for row in self.pending:
            if row.item.substance in names:
                of(row.item.substance).pending.append(row)
        for stored in self.actions:
            if stored.action.substance in names:
                of(stored.action.substance).actions.append(stored)
        return found

    @cached_property
    def _by_code(self) -> dict[str, Jurisdiction]:
        found: dict[str, Jurisdiction] = {}
        for item in self.jurisdictions:
            found.setdefault(item.code, item)
        return found

    @cached_property
    def _titles(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for item in self.jurisdictions:
            for source_id, title in item.titles.items():
                found.setdefault(source_id, title)
        return found

    @cached_property
    def health(self) -> dict[str, dict[str, Any]]:
        """source id → its ``health_view`` (one per source, shared by every record shown;
        a source without a state is "unknown"; a disabled one is "disabled")."""
        found = {source_id: health_view(state, disabled=source_id in self.disabled)
                 for source_id, state in self.states.items()}
        for source_id in self.disabled:
            found.setdefault(source_id, health_view(None, disabled=True))
        return found

    @cached_property
    def jurisdictions_key(self) -> str:
        """A digest of the jurisdictions, their names, sources and titles: part of the
        fingerprint of every page that shows a name or a title (a digest, not the text:
        it goes into thousands of fingerprints)."""
        return digest_of(self.jurisdictions)

    @cached_property
    def _interval_keys(self) -> dict[int, str]:
        return {}

    def interval_key(self, interval: StatusInterval) -> str:
        """A digest of the interval as a page shows it — every field of it and of its
        record, so a record rewritten in place or a new latest document changes it — made
        once per snapshot and shared by every fingerprint that reads the interval (status.csv
        and status.json, its substance's history page, its reference entries). When an
        open interval was last confirmed by its source's latest healthy check
        (``confirmed_by_source``), it leaves that time out: it is the same for every open
        interval of the source, and the pages show it once per source (the index's and
        the reference's source health), not on every row; the exports, which do show it
        per row, add it (``feed.status_inputs``)."""
        key = self._interval_keys.get(interval.id)
        if key is None:
            # Every field by name, read from the instances' dicts: a dataclass's repr and
            # ``replace`` cost several times more, for thousands of intervals a publish.
            values = dict(interval.__dict__)
            del values["record"], values["record_digest"]  # the record: by ``record_key``
            if self.confirmed_by_source(interval):
                values["last_confirmed_at"] = ""
            key = self._interval_keys[interval.id] = digest_of(
                (tuple(values.items()), record_key(interval)))
        return key

    def confirmed_by_source(self, interval: StatusInterval) -> bool:
        """Whether the interval is open and was last confirmed by its source's latest
        healthy check — what every healthy check does. Not so for a closed interval, nor
        for one its source never confirmed (read from an archive, a source not checked
        since): those show their own time."""
        if interval.valid_to is not None:
            return False
        state = self.states.get(interval.record.source_id)
        return state is not None and bool(state.last_healthy_at) \
            and state.last_healthy_at == interval.last_confirmed_at

    @cached_property
    def _change_keys(self) -> dict[int, str]:
        return {}

    def change_key(self, change: StoredChange) -> str:
        """A digest of the change as stored: its row's (``row_digest``) when it was read
        from the store, else of every field. Made once per snapshot and shared by every
        fingerprint that reads the change (its page, its substance's history page,
        changes.csv, the feed), so that ten years of changes are described once a publish,
        not in each of them (~9 MB less text a publish on the ten-year store); the row's
        digest spares the decoded fields their repr (~25 ms on twenty years)."""
        key = self._change_keys.get(change.id)
        if key is None:
            key = self._change_keys[change.id] = change.row_digest or digest_of(change)
        return key

    @cached_property
    def _views(self) -> dict[int, dict[str, Any]]:
        return {}

    def record_view(self, interval: StatusInterval) -> dict[str, Any]:
        """``record_view`` of the interval's record, made once per snapshot (the index, the
        reference and a history page show the same current record)."""
        view = self._views.get(interval.id)
        if view is None:
            view = self._views[interval.id] = _view_of(interval.record)
        return view

    @cached_property
    def cross_checkers(self) -> list[Callable[[date], list[str]]]:
        """Per jurisdiction with a cross-check hook, the check of this snapshot's current
        records and open pending items as a function of the day (``cross_checks``)."""
        return _cross_checkers(self)

    def jurisdiction(self, code: str) -> Jurisdiction:
        found = self._by_code.get(code)
        return found if found is not None else Jurisdiction(code=code, name=code.upper(),
                                                            sources=())

    def source_title(self, source_id: str) -> str:
        return self._titles.get(source_id, source_id)

    def instrument_title(self, source_id: str, instrument: str | None) -> str | None:
        """The title of the source's current instrument when the record cites it by an id
        ("F2026L00633" → "Therapeutic Goods (Poisons Standard—…) Instrument 2026")."""
        state = self.states.get(source_id)
        if (state is None or not state.title or not instrument
                or state.instrument != instrument or state.title == instrument):
            return None
        return state.title

    def source_health(self, source_id: str) -> dict[str, Any]:
        found = self.health.get(source_id)
        return found if found is not None else health_view(None)

    def history_href(self, substance: str | None) -> str | None:
        """The link to the substance's history page, None when the site has none."""
        return history_href(substance, self.history_substances)

    def documents_key(self, shas: Iterable[str | None]) -> tuple[tuple[str, str | None], ...]:
        """(sha256, archived copy or None) of the documents a page cites: whether the
        evidence is a link is part of the page."""
        return tuple((sha, self.documents.get(sha)) for sha in shas if sha)


def record_key(interval: StatusInterval) -> str:
    """A digest of the interval's record alone: for a record read from the store, its stored
    text's (``record_digest``, made as it is read: the same text decodes to the same
    record); for any other, of every field."""
    return interval.record_digest or digest_of(tuple(interval.record.__dict__.items()))


def digest_of(value: Any) -> str:
    """A digest of ``repr(value)`` (deterministic for stored rows, tuples, dicts, text): what
    a page's or a part's inputs shared by many fingerprints are reduced to."""
    return hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest()


def jurisdiction_list(registry: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
                      seen: Mapping[str, Iterable[str]]) -> tuple[Jurisdiction, ...]:
    """Registry jurisdictions (code, name, ((source id, title), ...)) in registry order,
    then any jurisdiction found only in the data; each source list in the declared order,
    then sources found only in the data (sorted)."""
    result: list[Jurisdiction] = []
    known: set[str] = set()
    for code, name, sources in registry:
        declared = tuple(sid for sid, _ in sources)
        extra = tuple(sorted(set(seen.get(code, ())) - set(declared)))
        result.append(Jurisdiction(code=code, name=name, sources=declared + extra,
                                   titles=dict(sources)))
        known.add(code)
    for code in sorted(set(seen) - known):
        result.append(Jurisdiction(code=code, name=code.upper(),
                                   sources=tuple(sorted(set(seen[code])))))
    return tuple(result)


# --- views: one dict per thing shown --------------------------------------------------------

def _record(data: Mapping[str, Any] | StatusRecord | None) -> StatusRecord | None:
    if data is None or isinstance(data, StatusRecord):
        return data
    try:
        return StatusRecord.from_dict(data)
    except TypeError:  # a record stored by an older version without every field
        return None


def record_view(data: Mapping[str, Any] | StatusRecord) -> dict[str, Any]:
    """A status record as the templates see it: every key present, labels worked out."""
    if isinstance(data, StatusRecord):
        return _view_of(data)
    values = dict(data)
    record = _record(data)
    level = values.get("control_level")
    substance = str(values.get("substance") or "")
    dates = [{"label": str(pair[0]), "date": str(pair[1])}
             for pair in values.get("dates") or () if len(pair) == 2]
    return {
        "substance": substance,
        "name": display_name(substance),
        "jurisdiction": values.get("jurisdiction") or "",
        "status": values.get("status") or "",
        "schedule": values.get("schedule"),
        "label": schedule_label(record) if record is not None else (
            values.get("schedule") or values.get("status") or ""),
        "control_level": level,
        "level_description": CONTROL_LEVELS.get(level or "", ""),
        "instrument": values.get("instrument"),
        "provision": values.get("provision"),
        "pinpoint": pinpoint(values.get("instrument"), values.get("provision")),
        "listed_as": values.get("listed_as"),
        "basis": values.get("basis"),
        "code": values.get("code"),
        "code_label": CODE_LABELS.get(str(values.get("jurisdiction") or ""), "Code"),
        "listed_lines": listed_lines(values.get("listed_as")),
        "parent_entry": values.get("parent_entry"),
        "dates": dates,
        "source_id": values.get("source_id") or "",
        "source_url": values.get("source_url"),
        "document_sha256": values.get("document_sha256"),
        "retrieved_at": values.get("retrieved_at"),
        **_legal_view(record),
    }


def _view_of(record: StatusRecord) -> dict[str, Any]:
    """``record_view`` of a record object, read attribute by attribute (thousands of records
    with ``watch = "all"``: no intermediate dict)."""
    level = record.control_level
    substance = str(record.substance or "")
    return {
        "substance": substance,
        "name": display_name(substance),
        "jurisdiction": record.jurisdiction or "",
        "status": record.status or "",
        "schedule": record.schedule,
        "label": schedule_label(record),
        "control_level": level,
        "level_description": CONTROL_LEVELS.get(level or "", ""),
        "instrument": record.instrument,
        "provision": record.provision,
        "pinpoint": pinpoint(record.instrument, record.provision),
        "listed_as": record.listed_as,
        "basis": record.basis,
        "code": record.code,
        "code_label": CODE_LABELS.get(record.jurisdiction or "", "Code"),
        "listed_lines": listed_lines(record.listed_as),
        "parent_entry": record.parent_entry,
        "dates": [{"label": str(pair[0]), "date": str(pair[1])}
                  for pair in record.dates or () if len(pair) == 2],
        "source_id": record.source_id or "",
        "source_url": record.source_url,
        "document_sha256": record.document_sha256,
        "retrieved_at": record.retrieved_at,
        **_legal_view(record),
    }


def _legal_view(record: StatusRecord | None) -> dict[str, Any]:
    """The law-over-time facts of a record, each date saying what it is (the same words as
    `schedwatch status`: reports.status_rows)."""
    if record is None:
        return {"in_force_words": None, "in_force_since": None, "in_force_since_kind": None,
                "evidence_date": None, "first_observed_at": None, "review": None,
                "legal_note": None, "in_force_until": None}
    return {
        "in_force_words": since_words(record),
        "in_force_since": record.in_force_since,
        "in_force_since_kind": record.in_force_since_kind,
        "evidence_date": record.evidence_date,
        "first_observed_at": record.first_observed_at,
        "review": record.review,
        "legal_note": record.legal_note,
        "in_force_until": record.in_force_until,
    }


def evidence(sha256: str | None, documents: Mapping[str, str], role: str = "") -> dict[str, Any]:
    return {"role": role, "sha256": sha256, "href": documents.get(sha256 or "")}


def interval_view(interval: StatusInterval, snap: Snapshot) -> dict[str, Any]:
    record = interval.record
    return {
        **timeline_view(interval, snap.documents, snap.record_view(interval),
                        by_source=snap.confirmed_by_source(interval)),
        "first_evidence": evidence(record.document_sha256, snap.documents, "first seen"),
        "health": snap.source_health(record.source_id),
        "source_title": snap.source_title(record.source_id),
        "history_href": snap.history_href(record.substance),
        "instrument_title": snap.instrument_title(record.source_id, record.instrument),
    }


def timeline_view(interval: StatusInterval, documents: Mapping[str, str],
                  record: dict[str, Any] | None = None, *, by_source: bool = False
                  ) -> dict[str, Any]:
    """One period of a history timeline: the record (its ``record_view``, when already
    made), from when to when, last confirmed (``by_source``: by its source's latest
    healthy check, ``Snapshot.confirmed_by_source``), the latest evidence."""
    return {
        "record": record if record is not None else _view_of(interval.record),
        "since": interval.valid_from,
        "until": interval.valid_to,
        "legal_from": interval.legal_from,
        "legal_to": interval.legal_to,
        "backfilled": interval.backfilled,
        "as_of": interval.last_confirmed_at,
        "by_source_check": by_source,
        "current": interval.valid_to is None,
        "evidence": evidence(interval.last_document_sha256, documents, "latest"),
    }


def change_summary(change: StoredChange, jurisdiction_name: str | None = None) -> dict[str, Any]:
    return {
        "id": change.id, "kind": change.kind, "kind_label": KIND_LABELS.get(change.kind,
                                                                            change.kind),
        "summary": change.summary, "detected_at": change.detected_at,
        "jurisdiction": change.jurisdiction,
        "jurisdiction_name": jurisdiction_name or change.jurisdiction.upper(),
        "substance": change.substance, "source_id": change.source_id,
        "effective_date": change.effective_date, "effective_label": _date_label(change),
        "href": change_href(change.id),
    }


def _date_label(change: StoredChange) -> str:
    """What a change's date is: for a pending change the item says (a comment deadline is
    not an effective date), otherwise the effective date."""
    if change.kind == "pending":
        return str((change.after or {}).get("date_label") or "date")
    return "effective"


_PENDING_FIELDS = tuple(f.name for f in fields(PendingItem))


def pending_view(item: PendingItem | Mapping[str, Any], *, first_seen_at: str | None = None,
                 resolved_at: str | None = None, change_id: int | None = None,
                 jurisdiction_name: str | None = None,
                 history: Container[str] | None = None) -> dict[str, Any]:
    """A pending item for display. ``history``: the substances with a history page (see
    ``history_href``)."""
    # A PendingItem is read field by field (``as_dict`` deep-copies: slow over ten years of
    # weekly pages).
    values = {name: getattr(item, name) for name in _PENDING_FIELDS} \
        if isinstance(item, PendingItem) else dict(item)
    substance = str(values.get("substance") or "")
    return {
        "jurisdiction": values.get("jurisdiction") or "",
        "jurisdiction_name": jurisdiction_name or str(values.get("jurisdiction") or "").upper(),
        "substance": substance, "name": display_name(substance),
        "source_id": values.get("source_id") or "", "key": values.get("key") or "",
        "action": str(values.get("action") or "").replace("_", " "),
        "description": values.get("description") or "",
        "reference": values.get("reference") or "",
        "proposed_schedule": values.get("proposed_schedule"),
        "date_label": values.get("date_label") or "date",
        "date": values.get("date"), "url": values.get("url"),
        "details": [{"label": str(p[0]), "value": str(p[1])}
                    for p in values.get("details") or () if len(p) == 2],
        "first_seen_at": first_seen_at, "resolved_at": resolved_at,
        "change_href": change_href(change_id) if change_id is not None else None,
        "history_href": history_href(substance, history),
    }


def pending_views(rows: Iterable[PendingRow], snap: Snapshot) -> list[dict[str, Any]]:
    ids = snap.pending_change_ids
    views = [pending_view(row.item, first_seen_at=row.first_seen_at,
                          resolved_at=row.resolved_at,
                          change_id=ids.get((row.item.source_id, row.item.key,
                                             row.item.substance)),
                          jurisdiction_name=snap.jurisdiction(row.item.jurisdiction).name,
                          history=snap.history_substances)
             for row in rows]
    return sorted(views, key=lambda v: (v["date"] or "9999", v["jurisdiction"], v["substance"]))


def source_lines(intervals: Mapping[str, StatusInterval], order: Sequence[str],
                 snap: Snapshot) -> list[dict[str, Any]]:
    """A cell's lines: the first source in the jurisdiction's order that has a record is
    the primary line, the others follow as secondary lines."""
    ordered = [sid for sid in order if sid in intervals]
    ordered += sorted(sid for sid in intervals if sid not in order)
    lines = []
    for position, source_id in enumerate(ordered):
        line = interval_view(intervals[source_id], snap)
        line["primary"] = position == 0
        lines.append(line)
    return lines


# --- index ----------------------------------------------------------------------------------

def index_context(snap: Snapshot, *, now: datetime, parts: Parts | None = None
                  ) -> dict[str, Any]:
    """The status matrix and, with ``watch = "all"``, the all-records table. ``parts``:
    where each chunk of that table is copied from the index as last published when what
    it shows is unchanged; without it every chunk is made."""
    current = snap.current
    by_cell: dict[tuple[str, str], dict[str, StatusInterval]] = defaultdict(dict)
    for interval in current:
        record = interval.record
        by_cell[(record.substance, record.jurisdiction)][record.source_id] = interval
    substances_now = sorted({iv.record.substance for iv in current})
    rows_for = list(snap.watched)
    if not snap.all_entries:
        # A watch list: every current substance belongs in the matrix.
        rows_for += [s for s in substances_now if s not in rows_for]
    matrix = [{
        "substance": substance, "name": display_name(substance),
        "history_href": snap.history_href(substance),
        "cells": [{"jurisdiction": j.code,
                   "lines": source_lines(by_cell.get((substance, j.code), {}), j.sources, snap)}
                  for j in snap.jurisdictions],
    } for substance in rows_for]
    in_matrix = set(rows_for)
    others = [iv for iv in current if iv.record.substance not in in_matrix]
    # Which jurisdictions list each key: one substance under several spellings shares a key
    # (jurisdictions.matching); a key listed by one jurisdiction only is shown as unmatched.
    listed_in: dict[str, set[str]] = defaultdict(set)
    for iv in current:
        if iv.record.status != "not_controlled":
            listed_in[iv.record.substance].add(iv.record.jurisdiction)
    several = len(snap.jurisdictions) > 1
    chunks = _record_chunks(snap, current, listed_in, several) if others else []
    unmatched = sorted(key for key, codes in listed_in.items() if several and len(codes) == 1)
    chosen = parts if parts is not None else Parts("")
    from reports.entries import record_rows_html  # here: entries imports Jinja (render)

    def records_part(chunk: Mapping[str, Any], root: str) -> Markup:
        """One chunk of the all-records table (``root``: the page's way back to the site's
        root), copied from the previous index or made."""
        return chosen.part(chunk["inputs"], lambda: record_rows_html(chunk["rows"](), root))

    # Backfilled changes were read from an archive, not observed: history pages only.
    latest = sorted((c for c in snap.changes if not c.backfilled), key=lambda c: c.id,
                    reverse=True)[:LATEST_CHANGES]
    return {
        "title": "Status matrix",
        "generated_at": stamp(now),
        "jurisdictions": [_jurisdiction_header(j, snap) for j in snap.jurisdictions],
        "matrix": matrix,
        "record_count": len(current) if chunks else 0,
        "record_chunks": chunks, "records_part": records_part,
        "unmatched_count": len(unmatched) if chunks else 0,
        "latest_changes": [change_summary(c, snap.jurisdiction(c.jurisdiction).name)
                           for c in latest],
        "pending": pending_views((r for r in snap.pending if r.resolved_at is None), snap),
        "notices": notices(snap, now=now),
    }


#: The all-records table is written in chunks of rows, each a part (``reports.parts``)
#: copied from the index as last published when its rows show what they showed. A chunk
#: ends after a row whose identity's hash is a multiple of this (about this many rows a
#: chunk): the boundaries follow the rows, not their positions, so a record added or gone
#: changes one chunk, not every chunk after it.
RECORD_CHUNK = 32


def _record_chunks(snap: Snapshot, current: Sequence[StatusInterval],
                   listed_in: Mapping[str, set[str]], several: bool) -> list[dict[str, Any]]:
    """The all-records table (``watch = "all"``: thousands of rows) in chunks, each with
    ``inputs`` (what its rows show: the part's digest) and ``rows`` (a function: a row's
    view is made only for a chunk that is not copied)."""
    listed: dict[str, tuple[str, bool]] = {}
    for substance, codes in listed_in.items():
        listed[substance] = (", ".join(sorted(snap.jurisdiction(code).name for code in codes)),
                             several and len(codes) == 1)
    history = snap.history_substances
    ordered = sorted(current, key=lambda iv: (iv.record.substance, iv.record.jurisdiction,
                                              iv.record.source_id))
    chunks: list[list[StatusInterval]] = [[]]
    for interval in ordered:
        chunks[-1].append(interval)
        record = interval.record
        identity = f"{record.jurisdiction}\0{record.substance}\0{record.source_id}"
        digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=8)
        if int.from_bytes(digest.digest(), "big") % RECORD_CHUNK == 0:
            chunks.append([])

    def shown(interval: StatusInterval) -> tuple[Any, ...]:
        # What the row shows: the record (not the interval's latest document, which the
        # reference shows and a new one of the source changes for every row), its
        # confirmation (left out when its source's latest check made it: the row then
        # points to the source's health), where else it is listed, its history page and
        # its source's failing or disabled flag.
        record = interval.record
        health = snap.source_health(record.source_id)
        by_source = snap.confirmed_by_source(interval)
        return (record_key(interval), by_source, "" if by_source else interval.last_confirmed_at,
                listed.get(record.substance), history_href(record.substance, history),
                health["failing"], health["disabled"])

    def rows(chunk: Sequence[StatusInterval]) -> list[dict[str, Any]]:
        made = []
        for interval in chunk:
            record = interval.record
            where, unmatched = listed.get(record.substance, ("", False))
            made.append({
                "code": record.jurisdiction,
                "jurisdiction": snap.jurisdiction(record.jurisdiction).name,
                "listed_in": where, "unmatched": unmatched,
                "record": snap.record_view(interval), "as_of": interval.last_confirmed_at,
                "by_source_check": snap.confirmed_by_source(interval),
                "health": snap.source_health(record.source_id),
                "history_href": history_href(record.substance, history),
            })
        return made

    return [{"inputs": (snap.jurisdictions_key, tuple(shown(iv) for iv in chunk)),
             "rows": functools.partial(rows, chunk)} for chunk in chunks if chunk]


def _jurisdiction_header(j: Jurisdiction, snap: Snapshot) -> dict[str, Any]:
    return {"code": j.code, "name": j.name,
            "sources": [{"id": sid, "title": j.titles.get(sid, sid),
                         "health": snap.source_health(sid)}
                        for sid in j.sources]}


def notices(snap: Snapshot, *, now: datetime) -> dict[str, Any]:
    """What needs an operator's attention: a stale scheduler heartbeat and email that will
    never be delivered."""
    stale = None
    beat = snap.heartbeat
    if beat is not None and beat.get("at"):
        try:
            if now - parse_stamp(str(beat["at"])) > HEARTBEAT_STALE:
                stale = {"since": str(beat["at"]), "detail": beat.get("detail")}
        except ValueError:
            stale = {"since": str(beat["at"]), "detail": beat.get("detail")}
    return {"heartbeat_stale": stale, "mail_failures": [mail_view(row)
                                                        for row in snap.failed_mail],
            "cross_checks": cross_checks(snap, now.date())}


def cross_checks(snap: Snapshot, today: date) -> list[str]:
    """Warnings from the jurisdictions' optional cross-check hook (the US: a final rule in
    effect that the eCFR does not show yet) on ``today``."""
    return [line for check in snap.cross_checkers for line in check(today)]


def _cross_checkers(snap: Snapshot) -> list[Callable[[date], list[str]]]:
    """A jurisdiction's optional ``cross_checker(records, pending)`` hook, given its current
    records and open pending items, returns the check of this snapshot as a function of the
    day: made once, asked by the index and by each of ten years of weekly reports."""
    from jurisdictions import jurisdiction

    hooks: dict[str, Callable[..., Callable[[date], list[str]]]] = {}
    for j in snap.jurisdictions:
        try:
            hook = getattr(jurisdiction(j.code), "cross_checker", None)
        except (KeyError, ImportError):
            continue
        if hook is not None:
            hooks[j.code] = hook
    records: dict[str, list[StatusRecord]] = {code: [] for code in hooks}
    for iv in snap.current:
        if iv.record.jurisdiction in records:
            records[iv.record.jurisdiction].append(iv.record)
    open_items: dict[str, list[PendingItem]] = {code: [] for code in hooks}
    for row in snap.pending:
        if row.resolved_at is None and row.item.jurisdiction in open_items:
            open_items[row.item.jurisdiction].append(row.item)
    return [hook(records[code], open_items[code]) for code, hook in hooks.items()]


def mail_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row.get("id"), "kind": row.get("kind") or "", "recipient":
            row.get("recipient") or "", "reference": row.get("reference"),
            "created_at": row.get("created_at"), "attempts": row.get("attempts") or 0,
            "error": row.get("last_error") or ""}



# --- change pages ---------------------------------------------------------------------------

def change_context(change: StoredChange, *, jurisdiction_name: str | None = None,
                   source_title: str | None = None,
                   documents: Mapping[str, str] | None = None,
                   history: Container[str] | None = None) -> dict[str, Any]:
    """Everything a change page (or an alert email) shows about one change: before and
    after side by side, a word-level diff of each changed field of the legal text, the
    dates, and evidence (``href`` None when the archived copy is not in the site).
    ``history``: the substances with a history page (see ``history_href``)."""
    docs = documents or {}
    before = record_view(change.before) if change.before and change.kind != "pending" else None
    after = record_view(change.after) if change.after and change.kind != "pending" else None
    rows, diffs = [], []
    if before is not None or after is not None:
        for name in COMPARED_FIELDS:
            old = before.get(name) if before else None
            new = after.get(name) if after else None
            rows.append({"field": name, "label": FIELD_LABELS.get(name, name),
                         "before": old, "after": new, "changed": old != new})
            if name in TEXT_FIELDS and old != new:
                segments = word_diff(_text(old), _text(new))
                if changed(segments):
                    diffs.append({"field": name, "label": FIELD_LABELS.get(name, name),
                                  "segments": segments, "text": as_text(segments)})
    is_source = change.kind in SOURCE_KINDS
    details = dict(change.details)
    source_event = None
    if is_source:
        document = details.get("document_sha256")
        source_event = {
            "error": details.get("error"), "error_kind": details.get("error_kind"),
            "url": details.get("url"), "failing_since": details.get("failing_since"),
            "previous_error": details.get("previous_error"),
            "previous_health": details.get("previous_health"),
            "document": evidence(document, docs, "fetched") if document else None,
        }
    pending = None
    if change.kind == "pending" and change.after:
        pending = pending_view(change.after, jurisdiction_name=jurisdiction_name,
                               history=history)
    substance = change.substance
    return {
        **change_summary(change, jurisdiction_name),
        "title": change.summary,
        "name": display_name(substance) if substance else None,
        "history_href": history_href(substance, history),
        "source_title": source_title or change.source_id,
        "level": "source" if is_source else "pending" if pending else "status",
        "before": before, "after": after, "rows": rows, "diffs": diffs,
        "fields": [FIELD_LABELS.get(f, f) for f in details.get("fields") or ()],
        "source_event": source_event, "pending": pending,
        "evidence": [evidence(change.before_sha256, docs, "before"),
                     evidence(change.after_sha256, docs, "after")],
        "dates": _change_dates(change, before, after),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _change_dates(change: StoredChange, before: Mapping[str, Any] | None,
                  after: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Every date of a change with what it is."""
    result = [{"label": "detected", "date": change.detected_at, "kind": "stamp"}]
    if change.effective_date:
        result.append({"label": _date_label(change), "date": change.effective_date,
                       "kind": "date"})
    for side, view in (("before", before), ("after", after)):
        if view is None:
            continue
        if view.get("retrieved_at"):
            result.append({"label": f"retrieved ({side})", "date": view["retrieved_at"],
                           "kind": "stamp"})
        for pair in view.get("dates") or ():
            result.append({"label": f"{pair['label']} ({side})", "date": pair["date"],
                           "kind": "date"})
    return result


# --- change pages ---------------------------------------------------------------------------

#: What a change page's fingerprint reads of a change's JSON (``change_facts``).
Facts = tuple[Any, Any]


def change_facts(change: StoredChange) -> Facts:
    """The substance a change's ``after`` names and the document its ``details`` cite: all
    a change page's fingerprint reads of its JSON beside the row's digest (kept between
    publishes by ``reports.change_carry``)."""
    return ((change.after or {}).get("substance"), change.details.get("document_sha256"))


def change_inputs(change: StoredChange, snap: Snapshot,
                  facts: Facts | None = None) -> tuple[Any, ...]:
    """What a change page's context (``change_context``) reads, for its fingerprint;
    ``facts``: its ``change_facts`` when the caller has them."""
    after_substance, document = change_facts(change) if facts is None else facts
    return (snap.change_key(change), snap.jurisdiction(change.jurisdiction).name,
            snap.source_title(change.source_id),
            snap.history_href(change.substance), snap.history_href(after_substance),
            snap.documents_key((change.before_sha256, change.after_sha256, document)))
