"""The shapes of what the store reads back: source states, stored changes, status
intervals, pending rows, and the prior state a run decides from."""

from __future__ import annotations

import hashlib
import json
import marshal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapers.records import PendingItem, ScheduledAction, StatusRecord


@dataclass(frozen=True)
class SourceState:
    source_id: str
    jurisdiction: str
    health: str
    failing_since: str | None
    consecutive_failures: int
    last_error: str | None
    last_attempt_at: str | None
    last_healthy_at: str | None
    last_document_sha256: str | None
    last_url: str | None
    etag: str | None
    last_modified: str | None
    marker: str | None
    watch_keys: tuple[str, ...] | None
    document_dates: tuple[tuple[str, str], ...]
    document_meta: Mapping[str, str]
    title: str | None
    instrument: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> SourceState:
        return cls(
            source_id=row["source_id"], jurisdiction=row["jurisdiction"], health=row["health"],
            failing_since=row["failing_since"],
            consecutive_failures=row["consecutive_failures"] or 0,
            last_error=row["last_error"], last_attempt_at=row["last_attempt_at"],
            last_healthy_at=row["last_healthy_at"],
            last_document_sha256=row["last_document_sha256"], last_url=row["last_url"],
            etag=row["etag"], last_modified=row["last_modified"], marker=row["marker"],
            watch_keys=tuple(json.loads(row["watch_keys"])) if row["watch_keys"] else None,
            document_dates=tuple(tuple(p) for p in json.loads(row["document_dates"] or "[]")),
            document_meta=json.loads(row["document_meta"] or "{}"),
            title=row["title"], instrument=row["instrument"])


@dataclass(frozen=True)
class StoredChange:
    id: int
    run_id: int
    detected_at: str
    jurisdiction: str
    substance: str | None
    source_id: str
    kind: str
    summary: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    effective_date: str | None
    before_sha256: str | None
    after_sha256: str | None
    details: dict[str, Any]
    #: Written by ``schedwatch backfill`` from a regulator's archive: never in the feed or
    #: an email (the change pages and history show it, marked).
    backfilled: bool = False
    #: sha256 of the row as stored (every column's value, its JSON as text), made as it is
    #: read when asked (``Store.changes(digests=True)``): what the site's fingerprints
    #: digest instead of every decoded field again. Empty: not asked, or not read from the
    #: store.
    row_digest: str = ""

    @classmethod
    def from_row(cls, row: Mapping[Any, Any], *, digest: bool = False,
                 known: Mapping[int, str] | None = None) -> StoredChange:
        # Every field filled in directly, as the store does for intervals: a frozen
        # dataclass's __init__ sets them one object.__setattr__ at a time (thousands of
        # changes on every publish). The three JSON fields are decoded when first read
        # (``__getattr__``): a publish reads every change and shows a few; decoding years
        # of records it does not show was most of reading them.
        change = object.__new__(cls)
        change.__dict__.update(
            id=row["id"], run_id=row["run_id"], detected_at=row["detected_at"],
            jurisdiction=row["jurisdiction"], substance=row["substance"],
            source_id=row["source_id"], kind=row["kind"], summary=row["summary"],
            effective_date=row["effective_date"], before_sha256=row["before_sha256"],
            after_sha256=row["after_sha256"], backfilled=bool(row.get("backfilled")),
            row_digest=((known and known.get(row["id"])) or _digest_of_row(row)) if digest
            else "",
            _encoded=(row["before"], row["after"], row["details"]))
        return change

    if not TYPE_CHECKING:  # the type checker sees the fields, not a catch-all
        def __getattr__(self, name: str) -> Any:
            """``before``, ``after`` or ``details`` of a change read from the store, decoded
            from its stored JSON on first use and kept (only called when the attribute is
            not set: once per field)."""
            index = _ENCODED.get(name)
            encoded = self.__dict__.get("_encoded")
            if index is None or encoded is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                     f"{name!r}")
            text = encoded[index]
            value = json.loads(text) if text else ({} if name == "details" else None)
            self.__dict__[name] = value
            return value

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "run_id": self.run_id, "detected_at": self.detected_at,
                "jurisdiction": self.jurisdiction, "substance": self.substance,
                "source_id": self.source_id, "kind": self.kind, "summary": self.summary,
                "before": self.before, "after": self.after,
                "effective_date": self.effective_date, "before_sha256": self.before_sha256,
                "after_sha256": self.after_sha256, "details": self.details}


#: The fields of a stored change decoded when first read, by their place in ``_encoded``.
_ENCODED = {"before": 0, "after": 1, "details": 2}


def _digest_of_row(row: Mapping[Any, Any]) -> str:
    """sha256 of a stored row: its values as read, in the table's order of columns, in
    marshal's format 2. It writes each value's type and length, so it is unambiguous, and
    it has no back-references, so the same row gives the same bytes. It is five times
    cheaper than their repr, which escapes ten years of JSON text a character at a time."""
    return hashlib.sha256(marshal.dumps(tuple(row.values()), 2)).hexdigest()


@dataclass(frozen=True)
class StatusInterval:
    id: int
    record: StatusRecord
    valid_from: str
    valid_to: str | None
    last_confirmed_at: str
    last_document_sha256: str
    legal_from: str | None = None
    legal_to: str | None = None
    backfilled: bool = False
    #: sha256 of the record as stored (its JSON text), read with it when asked
    #: (``Store.history(digests=True)``): what the site's fingerprints digest instead of
    #: every field again. Empty: not asked, not read from the store (and what an interval
    #: given another record must carry).
    record_digest: str = ""


@dataclass(frozen=True)
class StoredAction:
    """A dated scheduling action as stored: the action, when schedwatch first read it, the
    archived document that stated it, and whether a backfill read it from an archive."""

    id: int
    action: ScheduledAction
    first_observed_at: str
    document_sha256: str | None
    backfilled: bool

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StoredAction:
        return cls(id=row["id"], action=ScheduledAction.from_dict(row),
                   first_observed_at=row["first_observed_at"],
                   document_sha256=row["document_sha256"], backfilled=bool(row["backfilled"]))


def action_values(action: ScheduledAction, *, at: str, document_sha256: str | None,
                  backfilled: bool) -> dict[str, Any]:
    """The ``actions`` row of one action first read at ``at`` (a stamp)."""
    return {**action.as_dict(), "first_observed_at": at, "document_sha256": document_sha256,
            "backfilled": int(backfilled)}


@dataclass(frozen=True)
class PendingRow:
    id: int
    item: PendingItem
    first_seen_at: str
    last_seen_at: str
    resolved_at: str | None


@dataclass(frozen=True)
class Prior:
    """What a run needs to know before it decides anything, read once before its
    transaction: source states, current intervals, pending rows (open and resolved) and the
    recent changes the flip-flop rule looks at, per source."""

    states: Mapping[str, SourceState]
    current: Mapping[str, tuple[StatusInterval, ...]]
    pending: Mapping[str, tuple[PendingRow, ...]]
    #: (source id, substance) -> its newest non-pending changes since the window, newest first.
    recent: Mapping[tuple[str, str], tuple[StoredChange, ...]]
    last_run_started_at: str | None = None
    #: Per source, the current intervals whose record holds a dated change (a coming into
    #: force, an announced repeal): the only ones the law can move on a day when the
    #: document did not change. None: look at every current interval.
    dated: Mapping[str, tuple[StatusInterval, ...]] | None = None

    def dated_intervals(self, source_id: str) -> tuple[StatusInterval, ...]:
        if self.dated is None:
            return tuple(self.current.get(source_id, ()))
        return tuple(self.dated.get(source_id, ()))


class LazyIntervals(Mapping[str, tuple[StatusInterval, ...]]):
    """Current intervals per source, each source's read on first use: a warm run (the
    documents not modified) reads a source's thousands of stored records (watch = "all")
    only if it needs them."""

    def __init__(self, source_ids: Sequence[str],
                 load: Callable[[str], Sequence[StatusInterval]]) -> None:
        self._source_ids = tuple(dict.fromkeys(source_ids))
        self._load = load
        self._loaded: dict[str, tuple[StatusInterval, ...]] = {}

    def __getitem__(self, source_id: str) -> tuple[StatusInterval, ...]:
        if source_id not in self._source_ids:
            raise KeyError(source_id)
        found = self._loaded.get(source_id)
        if found is None:
            found = self._loaded[source_id] = tuple(self._load(source_id))
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._source_ids)

    def __len__(self) -> int:
        return len(self._source_ids)


