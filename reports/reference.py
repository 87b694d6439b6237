"""The compliance reference: per jurisdiction its sources' health and documents, then per
substance its entries (one per source's current record, ``reports.entries``) and its
scheduling history. Remade on every publish (it shows when it was generated); each
substance's block is copied from the reference as last published when what it shows is
unchanged (``reports.parts``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup

from reports.diff import display_name
from reports.entries import entries_html, escape
from reports.pages import Jurisdiction, Snapshot, evidence, source_lines
from reports.parts import Parts
from reports.scheduling_history import made_from
from scrapers.clock import stamp
from scrapers.records import CONTROL_LEVELS
from scrapers.store import StatusInterval


class Histories(Mapping[str, Mapping[str, Any]]):
    """jurisdiction → substance → its scheduling history, each substance's made by
    ``make`` (substance → jurisdiction → its history) from its own rows the first time a
    page looks at it: a publish that reuses a substance's history in the reference never
    makes it, and one that makes a few does not make the others. Every jurisdiction of
    ``codes`` is a key (one with no history maps to an empty mapping)."""

    def __init__(self, codes: Sequence[str], substances: Iterable[str],
                 make: Callable[[str], Mapping[str, Mapping[str, Any]]]) -> None:
        self._codes = tuple(dict.fromkeys(codes))
        self._substances = sorted(substances)
        self._listed = frozenset(self._substances)
        self._make = make
        self._made: dict[str, Mapping[str, Mapping[str, Any]]] = {}

    def of(self, substance: str, code: str) -> Mapping[str, Any] | None:
        """The scheduling history of ``substance`` in ``code``, None when it has none."""
        if substance not in self._made:
            self._made[substance] = (self._make(substance)
                                     if substance in self._listed else {})
        return self._made[substance].get(code, {}).get(substance)

    def __getitem__(self, code: str) -> Mapping[str, Any]:
        if code not in self._codes:
            raise KeyError(code)
        return _InJurisdiction(self, code, self._substances)

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)


class _InJurisdiction(Mapping[str, Any]):
    """substance → its scheduling history in one jurisdiction (``Histories``)."""

    def __init__(self, histories: Histories, code: str, substances: Sequence[str]) -> None:
        self._histories, self._code, self._substances = histories, code, substances

    def __getitem__(self, substance: str) -> Any:
        found = self._histories.of(substance, self._code)
        if found is None:
            raise KeyError(substance)
        return found

    def __iter__(self) -> Iterator[str]:
        return (s for s in self._substances if self._histories.of(s, self._code))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def reference_context(snap: Snapshot, *, now: datetime, parts: Parts | None = None,
                      scheduling: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> dict[str, Any]:
    """The compliance reference. ``parts``: where each substance's block (its heading,
    entries and scheduling history) is copied from the reference as last published when
    what it is made from is unchanged (``reference_part_inputs``); without it every block
    is made. ``scheduling``: jurisdiction → substance → its scheduling history
    (``reports.scheduling_history.histories``)."""
    chosen = parts if parts is not None else Parts("")
    current = snap.current
    grouped: dict[str, dict[str, list[StatusInterval]]] = defaultdict(lambda: defaultdict(list))
    for interval in current:
        grouped[interval.record.jurisdiction][interval.record.substance].append(interval)
    watched = list(snap.watched)
    sections = []
    for j in snap.jurisdictions:
        substances = grouped.get(j.code, {})
        order = [s for s in watched if s in substances] + sorted(
            s for s in substances if s not in watched)
        sections.append({
            "code": j.code, "name": j.name,
            "sources": [_source_reference(sid, j, snap) for sid in j.sources],
            "substances": [{
                "substance": s, "name": display_name(s), "history_href": snap.history_href(s),
                "intervals": {iv.record.source_id: iv for iv in substances[s]},
                "order": j.sources,
            } for s in order],
        })

    histories = scheduling or {}

    def block(section: Mapping[str, Any], sub: Mapping[str, Any], index: int,
              history_html: Callable[[Mapping[str, Any], Mapping[str, Any]], str],
              reader_zone: str, root: str) -> Markup:
        """One substance's block in one jurisdiction: its heading and entries, then, when
        it has a history page, its scheduling history (``history_html``: the template's
        macro) — two parts, each reused or made on its own. A new latest document changes
        the entries of every substance it lists, seldom their scheduling histories, which
        grow with the history's length; each history is made only when its part is."""
        code, substance = section["code"], sub["substance"]
        entries = chosen.part((
            code, index, substance, sub["history_href"], snap.jurisdictions_key,
            reference_part_inputs(sub["intervals"], sub["order"], snap)),
            lambda: substance_block_html(section, sub, index, snap, reader_zone, root))
        if not sub["history_href"]:
            return entries
        rows = snap.history_rows.get(substance)
        history = chosen.part((
            "scheduling history", code, substance, snap.jurisdictions_key,
            made_from(*rows.in_jurisdiction(code), snap) if rows else ()),
            lambda: str(history_html(section, sub))
            if histories.get(code, {}).get(substance) else "")
        return entries + history

    confirmed = [iv.last_confirmed_at for iv in current]
    return {"title": "Compliance reference", "as_of": max(confirmed) if confirmed else None,
            "generated_at": stamp(now), "sections": sections, "block": block,
            "scheduling_history": histories,
            "control_levels": [{"key": k, "description": v} for k, v in CONTROL_LEVELS.items()]}


def substance_block_html(section: Mapping[str, Any], sub: Mapping[str, Any], index: int,
                         snap: Snapshot, reader_zone: str, root: str) -> str:
    """A substance's heading in its jurisdiction (a link to its history page when it has
    one) and its entries, one per source, as the reference's former block macro wrote
    them (tests/test_entries.py renders both)."""
    name = escape(sub["name"])
    href = sub["history_href"]
    heading = f'<a href="{escape(root)}{escape(href)}">{name}</a>' if href else name
    return (f'<h3 id="j-{escape(section["code"])}-{escape(index)}">{heading} — '
            f'{escape(section["name"])}</h3>\n'
            + str(entries_html(source_lines(sub["intervals"], sub["order"], snap), reader_zone,
                               root)))


def reference_part_inputs(intervals: Mapping[str, StatusInterval], order: Sequence[str],
                          snap: Snapshot) -> tuple[Any, ...]:
    """What ``entry_html`` shows of a substance's entries in one jurisdiction (part of the
    digest of its block, ``reports.parts``; the reader's zone is in the site's version):
    each interval as shown (``interval_key``), its source's title and health where the
    entry shows it (failing or disabled), the instrument's title, whether its evidence
    has an archived copy and the sources' order (which entry is primary)."""
    shown = []
    for source_id, interval in intervals.items():
        health = snap.source_health(source_id)
        record = interval.record
        shown.append((
            source_id, snap.interval_key(interval), snap.source_title(source_id),
            tuple(sorted(health.items())) if health["failing"] or health["disabled"] else (),
            snap.instrument_title(source_id, record.instrument),
            snap.documents_key((interval.last_document_sha256, record.document_sha256))))
    return (tuple(order), tuple(shown))


def _source_reference(source_id: str, j: Jurisdiction, snap: Snapshot) -> dict[str, Any]:
    state = snap.states.get(source_id)
    return {
        "id": source_id, "title": j.titles.get(source_id, source_id),
        "health": snap.source_health(source_id),
        "document_title": state.title if state else None,
        "instrument": state.instrument if state else None,
        "url": state.last_url if state else None,
        "document_dates": [{"label": str(p[0]), "date": str(p[1])}
                           for p in (state.document_dates if state else ()) if len(p) == 2],
        "evidence": evidence(state.last_document_sha256 if state else None, snap.documents,
                             "latest"),
    }
