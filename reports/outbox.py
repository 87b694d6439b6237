"""Routing alerts into the outbox: which recipient gets which change.

Runs inside the run's transaction, so a change and its queued alerts are stored together:
a crash after detection and before sending loses nothing, and the idempotency key
``alert:<change id>:<address>`` means an alert is queued once however often this runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from reports.settings import Recipient, Settings
    from scrapers.store import RunWriter


class ChangeLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def substance(self) -> str | None: ...


def subscribed(recipient: Recipient, change: ChangeLike) -> bool:
    """Whether a recipient's filters (jurisdictions, substances, kinds) take this change.
    Source-level changes (failures, recovery) have no substance and pass the substance filter."""
    # A status that now rests on a generic entry (the explicit listing disappeared) must be
    # reviewed: it reaches everyone who takes status changes, whatever its kind.
    review = bool(getattr(change, "review", False)) and any(
        kind in recipient.kinds for kind in ("scheduled", "descheduled", "rescheduled"))
    if change.kind not in recipient.kinds and not review:
        return False
    if recipient.jurisdictions is not None and change.jurisdiction not in recipient.jurisdictions:
        return False
    return not (recipient.substances is not None and change.substance is not None
                and change.substance not in recipient.substances)


def alert_key(change_id: int, address: str) -> str:
    return f"alert:{change_id}:{address.lower()}"


def enqueue_alerts(writer: RunWriter, settings: Settings, changes: Iterable[ChangeLike], *,
                   now: datetime) -> int:
    """One outbox row per (change, subscribed recipient); returns how many were queued."""
    if settings.email is None:
        return 0
    queued = 0
    for change in changes:
        for recipient in settings.email.recipients:
            if subscribed(recipient, change):
                queued += writer.enqueue(idempotency_key=alert_key(change.id, recipient.address),
                                         kind="alert", recipient=recipient.address,
                                         change_ids=[change.id], now=now)
    return queued
