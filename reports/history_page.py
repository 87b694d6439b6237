"""A substance's history page: its context, in parts, and what its fingerprint is made from.

The page lists every period of every source, every change and, per jurisdiction, the
scheduling history: it grows with the substance's history. It is written only when its
fingerprint (``history_inputs``) changes, and then from its previous version's parts
(``reports.parts``) whose inputs did not: a day's run touches the newest rows of its lists,
so the chunks before them are copied, however long the history. Pure functions of a
``pages.Snapshot``; ``reports.site`` writes the page.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup

from reports.diff import display_name
from reports.pages import (
    HistoryRows,
    Snapshot,
    change_summary,
    pending_views,
    timeline_view,
)
from reports.parts import Parts
from reports.scheduling_history import made_from
from scrapers.store import StatusInterval, StoredChange

#: Rows of a history page's lists made or copied together (``reports.parts``), counted from
#: the oldest: a day's run changes the newest rows of a list (a new period, the open one's
#: latest evidence, a new change), so every chunk before the last is copied from the page
#: as last published and its rows are not made, however long the history.
HISTORY_CHUNK = 16


def history_context(substance: str, rows: HistoryRows, snap: Snapshot, *,
                    parts: Parts | None = None) -> dict[str, Any]:
    """A timeline per jurisdiction and source for one substance (its ``rows``), oldest
    first, and its changes, newest first, each list in chunks of ``HISTORY_CHUNK`` rows;
    and a part per jurisdiction for its scheduling history (the page's
    ``scheduling_history``, made where it is not copied). A chunk is a part (``part``):
    copied from the previous page (``parts``) when what its rows show is unchanged, its
    rows made (``rows``) only otherwise."""
    chosen = parts if parts is not None else Parts("")
    intervals, changes, pending = rows.intervals, rows.changes, rows.pending
    by_source: dict[str, dict[str, list[StatusInterval]]] = defaultdict(lambda: defaultdict(list))
    for interval in intervals:
        by_source[interval.record.jurisdiction][interval.record.source_id].append(interval)
    sections = []
    for j in snap.jurisdictions:
        if j.code not in by_source:
            continue
        sources = by_source[j.code]
        order = [s for s in j.sources if s in sources] + sorted(
            s for s in sources if s not in j.sources)
        sections.append({
            "code": j.code, "name": j.name,
            "scheduling_inputs": ("scheduling history", j.code, snap.jurisdictions_key,
                                  made_from(*rows.in_jurisdiction(j.code), snap)),
            "sources": [{
                "id": sid, "title": j.titles.get(sid, sid),
                "chunks": [_timeline_chunk(j.code, sid, chunk, snap) for chunk in _chunks(
                    sorted(sources[sid], key=lambda iv: iv.valid_from))],
            } for sid in order]})
    oldest_first = sorted(changes, key=lambda c: c.id)

    def part(inputs: Any, caller: Callable[[], Markup]) -> Markup:
        """A ``{% call part(inputs) %}`` block of the template (``caller``: its body, made
        by Jinja), copied or made."""
        return chosen.part(inputs, caller)

    return {
        "title": f"History: {display_name(substance)}",
        "substance": substance, "name": display_name(substance), "sections": sections,
        "change_chunks": [{
            "inputs": ("changes", snap.jurisdictions_key,
                       tuple(snap.change_key(c) for c in chunk)),
            "rows": functools.partial(_change_summaries, chunk[::-1], snap),
        } for chunk in reversed(_chunks(oldest_first))],
        "pending": pending_views(pending, snap),
        "part": part,
    }


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    """``items`` in runs of ``HISTORY_CHUNK``, from the first."""
    return [items[at:at + HISTORY_CHUNK] for at in range(0, len(items), HISTORY_CHUNK)]


def _timeline_chunk(code: str, source_id: str, chunk: Sequence[StatusInterval],
                    snap: Snapshot) -> dict[str, Any]:
    """Rows of a source's timeline: keyed by what they show (each period as its
    ``interval_key`` digests it, and whether its evidence has an archived copy), made by
    ``rows``."""
    return {"inputs": ("timeline", code, source_id,
                       tuple(snap.interval_key(iv) for iv in chunk),
                       snap.documents_key(iv.last_document_sha256 for iv in chunk)),
            "rows": lambda: [timeline_view(iv, snap.documents, snap.record_view(iv),
                                           by_source=snap.confirmed_by_source(iv))
                             for iv in chunk]}


def _change_summaries(changes: Sequence[StoredChange], snap: Snapshot) -> list[dict[str, Any]]:
    return [change_summary(c, snap.jurisdiction(c.jurisdiction).name) for c in changes]


def history_inputs(substance: str, rows: HistoryRows, snap: Snapshot) -> tuple[Any, ...]:
    """What the page is made from, for its fingerprint: what ``history_context`` reads —
    the substance's intervals, changes and pending rows as stored (every field: a record
    rewritten in place, a later confirmation of a closed interval, a pending item seen again
    all count; an open interval's latest confirmation is its source's, shown on the
    reference), the pending rows' change pages, the jurisdictions' names and titles, and
    which evidence has an archived copy — and what its scheduling histories are made from
    (``made_from``: they are made only when the page is written)."""
    intervals, changes, pending = rows.intervals, rows.changes, rows.pending
    ids = snap.pending_change_ids
    return (substance, snap.jurisdictions_key,
            tuple(snap.interval_key(iv) for iv in intervals),
            tuple(snap.change_key(change) for change in changes), tuple(pending),
            tuple(sorted(snap.disabled)),
            tuple(ids.get((row.item.source_id, row.item.key, row.item.substance))
                  for row in pending),
            tuple(snap.history_href(row.item.substance) for row in pending),
            snap.documents_key(iv.last_document_sha256 for iv in intervals),
            made_from(intervals, changes, rows.actions, snap))
