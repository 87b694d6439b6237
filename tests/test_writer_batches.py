"""The run writer's batched opening: past (closed) and current segments interleaved in one
``open_intervals`` call are stored as they were one call per segment — in their order, each
closed or open as flagged — in a real SQLite store; a single flag still applies to all."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from scrapers.store import Store
from tests.support.fixture_records import fixture_records as records

AT = datetime(2026, 6, 2, 6, 0, tzinfo=UTC)


def test_interleaved_past_and_current_segments_in_one_call(tmp_path):
    found = records("ca/cdsa-mini.xml")[:3]
    store = Store(tmp_path / "data")
    try:
        past = [dataclasses.replace(r, schedule="past") for r in found]
        batch = [past[0], found[0], found[1], past[2], found[2]]
        flags = [True, False, False, True, False]
        with store.transaction(started_at=AT, jurisdictions=["ca"], trigger="cli") as writer:
            writer.open_intervals(batch, at=AT, spans=[("2026-01-01", None)] * 5,
                                  closed=flags)
            writer.open_intervals([found[1]], at=AT, closed=True)
        stored = store.source_intervals(found[0].source_id)
        assert [(iv.record.substance, iv.record.schedule, iv.valid_to is not None)
                for iv in stored] == [
            (r.substance, r.schedule, over) for r, over in zip(batch, flags, strict=True)
        ] + [(found[1].substance, found[1].schedule, True)]
        assert [iv.record for iv in stored[:5]] == batch
    finally:
        store.close()
