"""A constructed store with a history (not recorded from a regulator): four months of daily
checks of two sources under ``watch = "all"``, records whose dated facts fall in many weeks,
a failing day every 17 days, and ``one_change_run``: the next morning's run with one change.
The incremental-publish and page-worker tests publish it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.config import Settings
from scrapers.clock import stamp
from scrapers.records import StatusRecord
from scrapers.store import Store
from tests.support.site_data import archive, fetch, make_settings, record, state

START = datetime(2026, 7, 6, 6, 0, tzinfo=UTC)  # a Monday (2026-W28)
DAYS = 120
LAST = START + timedelta(days=DAYS - 1)
PUBLISHED = LAST + timedelta(hours=2)
RUN = LAST + timedelta(days=1)  # the one-change run, the next morning
AFTER = RUN + timedelta(hours=1)
SOURCES = ("ca-cdsa", "us-ecfr-1308")


def _records(sha: dict[str, str], at: datetime) -> list[StatusRecord]:
    """Substances whose records hold dates spread over the history (so most weeks list some
    in their "coming up")."""
    found = []
    for i in range(12):
        day = (START + timedelta(days=10 * i + 20)).date().isoformat()
        source = SOURCES[i % 2]
        found.append(record(source, f"drug-{i}", sha[source], at,
                            schedule="I" if source == "ca-cdsa" else "II",
                            dates=(("comes into force", day),)))
    found.append(record("us-ecfr-1308", "ketamine", sha["us-ecfr-1308"], at,
                        schedule="III"))
    return found


def build(tmp_path: Path) -> tuple[Store, dict[str, StatusRecord]]:
    store = Store(tmp_path / "data")
    with store.transaction(started_at=START, jurisdictions=["ca", "us"]) as w:
        sha = {sid: archive(store, w, sid, "v1", START) for sid in SOURCES}
        records = _records(sha, START)
        w.open_intervals(records, at=START)
        for sid in SOURCES:
            fetch(w, sid, START, sha=sha[sid])
            w.save_source_state(state(sid, health="healthy", at=START, sha=sha[sid]))
    for day in range(1, DAYS):
        at = START + timedelta(days=day)
        with store.transaction(started_at=at, jurisdictions=["ca", "us"]) as w:
            for sid in SOURCES:
                if day % 17 == 0 and sid == "ca-cdsa":
                    fetch(w, sid, at, outcome="failed", error="HTTP 503")
                    w.save_source_state(dataclasses.replace(
                        state(sid, health="source_failed", at=at, sha=sha[sid],
                              failing_since=stamp(at), error="HTTP 503", failures=1),
                        last_healthy_at=stamp(at - timedelta(days=1))))
                else:
                    fetch(w, sid, at, outcome="not_modified")
                    w.save_source_state(state(sid, health="healthy", at=at, sha=sha[sid]))
    return store, {r.substance: r for r in records}


def history_settings(tmp_path: Path) -> Settings:
    """The settings its publishes use: ``watch = "all"``, weeks in UTC, the site in
    ``tmp_path / "site"``."""
    return dataclasses.replace(make_settings(tmp_path, watch="all", timezone="UTC"),
                               site_dir=tmp_path / "site")


def one_change_run(store: Store, before: StatusRecord, *, at: datetime = RUN,
                   schedule: str = "V", control_level: str = "C5", document: str = "v2"
                   ) -> StatusRecord:
    """The next day's run (or one at ``at``): both sources checked, one record moved to
    another schedule by a new document (``document``, its text); the record after."""
    latest = store.source_states()
    with store.transaction(started_at=at, jurisdictions=["ca", "us"]) as w:
        sha = archive(store, w, before.source_id, document, at)
        after = dataclasses.replace(before, schedule=schedule, control_level=control_level,
                                    document_sha256=sha)
        w.close_intervals(before.source_id, [before.substance], at=at, confirmed_at=None,
                          confirmed_sha256=None)
        w.open_interval(after, at=at)
        w.add_change(detected_at=at, jurisdiction=after.jurisdiction,
                     substance=after.substance, source_id=after.source_id, kind="moved",
                     summary=f"{after.substance} moved to Schedule {schedule}",
                     before=before.as_dict(),
                     after=after.as_dict(), effective_date=None,
                     before_sha256=before.document_sha256, after_sha256=sha,
                     details={"fields": ["schedule", "control_level"]})
        for sid in SOURCES:
            if sid != before.source_id:
                fetch(w, sid, at, outcome="not_modified")
                w.save_source_state(state(sid, health="healthy", at=at,
                                          sha=latest[sid].last_document_sha256))
            else:
                fetch(w, sid, at, sha=sha)
                w.save_source_state(state(sid, health="healthy", at=at, sha=sha))
    return after
