"""The Atom feed and the site's CSV/JSON exports: which changes the feed carries, in what
order, with stable entry ids, and the rows of status.csv/json and changes.csv. Pure functions
of a ``pages.Snapshot``; ``reports/site.py`` writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reports import status_rows as shared_rows
from reports.pages import Snapshot, change_context, change_inputs
from scrapers.clock import stamp
from scrapers.store import StoredChange

#: The newest changes the feed carries.
FEED_ENTRIES = 100


def feed_context(snap: Snapshot, *, feed_id: str, site_url: str | None,
                 now: datetime) -> dict[str, Any]:
    latest = feed_changes(snap)
    entries = []
    for change in latest:
        j = snap.jurisdiction(change.jurisdiction)
        context = change_context(change, jurisdiction_name=j.name,
                                 source_title=snap.source_title(change.source_id),
                                 documents=snap.documents, history=snap.history_substances)
        context["entry_id"] = entry_id(feed_id, change)
        entries.append(context)
    updated = latest[0].detected_at if latest else stamp(now)
    return {"feed_id": feed_id, "site_url": site_url, "updated": updated, "entries": entries}


def feed_changes(snap: Snapshot) -> list[StoredChange]:
    """The feed's changes: the latest ``FEED_ENTRIES`` not backfilled, newest first; those of
    one event at one moment in the watch list's order (ketamine before its isomers)."""
    latest = sorted((c for c in snap.changes if not c.backfilled), key=lambda c: c.id,
                    reverse=True)[:FEED_ENTRIES]
    rank = {key: index for index, key in enumerate(snap.watched)}

    def order(change: StoredChange) -> tuple[str, int, int]:
        substance = -1 if change.substance is None else rank.get(change.substance, len(rank))
        return change.detected_at, -substance, change.id
    return sorted(latest, key=order, reverse=True)


def feed_inputs(snap: Snapshot, *, feed_id: str, site_url: str | None,
                now: datetime) -> tuple[Any, ...]:
    """What ``feed_context`` reads, for the feed's fingerprint (the time of publishing
    only when there is no change to date the feed by)."""
    latest = feed_changes(snap)
    return (feed_id, site_url, None if latest else stamp(now),
            tuple(change_inputs(change, snap) for change in latest))


def entry_id(feed_id: str, change: StoredChange) -> str:
    """Stable per change: the change id and its detection time, under the feed's id (a new
    database that reuses change #1 gives a new entry id)."""
    import uuid

    return uuid.uuid5(uuid.UUID(feed_id[len("urn:uuid:"):]),
                      f"change:{change.id}:{change.detected_at}").urn


def feed_id_for(site: str) -> str:
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"schedwatch:{site}").urn


#: status.csv and status.json: the one status-row shape (reports/status_rows.py), also
#: that of `schedwatch status --format json`.
STATUS_COLUMNS = shared_rows.STATUS_COLUMNS
CHANGE_COLUMNS = ("id", "detected_at", "jurisdiction", "substance", "source_id", "kind",
                  "summary", "effective_date", "before_schedule", "after_schedule",
                  "before_sha256", "after_sha256", "error")


def status_inputs(snap: Snapshot) -> tuple[Any, ...]:
    """What ``status_rows`` reads, for the fingerprint of status.csv and status.json."""
    return (tuple(snap.interval_key(interval) for interval in snap.current),
            # retrieved_at, on every row: what ``interval_key`` leaves out of an open one
            tuple(interval.last_confirmed_at for interval in snap.current),
            tuple((source_id, state.health) for source_id, state in sorted(snap.states.items())),
            tuple(sorted(snap.disabled)))


def status_rows(snap: Snapshot) -> list[dict[str, Any]]:
    return shared_rows.status_rows(snap.current, states=snap.states, disabled=snap.disabled)


def change_row(c: StoredChange) -> dict[str, Any]:
    """A change's row of changes.csv: its own columns alone (``reports.change_carry``
    keeps each row's line between publishes)."""
    return {
        "id": c.id, "detected_at": c.detected_at, "jurisdiction": c.jurisdiction,
        "substance": c.substance, "source_id": c.source_id, "kind": c.kind,
        "summary": c.summary, "effective_date": c.effective_date,
        "before_schedule": (c.before or {}).get("schedule") if c.kind != "pending" else None,
        "after_schedule": (c.after or {}).get("schedule") if c.kind != "pending" else
        (c.after or {}).get("proposed_schedule"),
        "before_sha256": c.before_sha256, "after_sha256": c.after_sha256,
        "error": c.details.get("error"),
    }
