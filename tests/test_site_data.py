"""The site tests' constructed store (``tests.support.site_data``) holds what it claims."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scrapers.store import Store, stamp
from tests.support.site_data import NOW, PAYLOAD, build_store


@pytest.fixture
def fixture_store(tmp_path: Path) -> Iterator[Store]:
    store = build_store(tmp_path)
    yield store
    store.close()


def test_fixture_covers_every_kind_of_change(fixture_store: Store) -> None:
    kinds = {c.kind for c in fixture_store.changes()}
    assert kinds == {"rescheduled", "scheduled", "amended", "pending", "source_failed",
                     "extraction_failed", "recovered"}


def test_fixture_has_a_failing_source_a_stale_heartbeat_and_failed_mail(
        fixture_store: Store) -> None:
    states = fixture_store.source_states()
    assert states["ca-csr"].health == "source_failed"
    beat = fixture_store.heartbeat("scheduler")
    assert beat is not None and beat["at"] < stamp(NOW - timedelta(minutes=5))
    assert len(fixture_store.outbox_rows("failed")) == 1


def test_fixture_current_status_has_hostile_text(fixture_store: Store) -> None:
    current = fixture_store.current_intervals()
    assert len(current) == 12  # 4 sources with records × 3 substances
    assert any(PAYLOAD in (iv.record.listed_as or "") for iv in current)
    us = {iv.record.substance: iv.record for iv in current if iv.record.jurisdiction == "us"}
    assert us["ketamine"].schedule == "II"
