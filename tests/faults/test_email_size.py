"""Email size (issue 16, item 7): 1,000 alerts once made one 3.5 MB message per recipient,
and a 552 size rejection failed all 1,000 for good (``email retry`` failed the same way).

Above ``MAX_MESSAGE_BYTES`` the alert goes as a digest; a 552 to a message that can still be
reduced is retried as a digest. Constructed changes, a real aiosmtpd server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reports import outbox
from reports.email import DIGEST_CHANGES, MAX_MESSAGE_BYTES
from scrapers.store import Store
from tests.support.alerts import (
    NOW,
    detect,
    email_settings,
    record,
    settings_for,
)
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning")


def _many(count: int) -> list[dict[str, Any]]:
    """``count`` amendments, each with a long wording (as a consolidation's notes can be)."""
    notes = "Amended wording of the listing, as printed in the consolidation. " * 20
    return [dict(jurisdiction="ca", substance=f"substance-{n:04d}", source_id="ca-cdsa",
                 kind="amended", summary=f"Substance {n:04d} — Canada: wording changed (amended)",
                 before=record(substance=f"substance-{n:04d}", listed_as=f"{notes} old {n}"),
                 after=record(substance=f"substance-{n:04d}", listed_as=f"{notes} new {n}"))
            for n in range(count)]


def _rows(store: Store, state: str) -> list[dict[str, Any]]:
    return store.outbox_rows(state)


def _settings(tmp_path: Path, server: SmtpServer) -> Any:
    from scheduler.config import Recipient

    return settings_for(tmp_path, email_settings(
        server, Recipient("officer@example.org", kinds=("amended",))))


@contextlib.contextmanager
def _outbox(tmp_path: Path, server: SmtpServer) -> Iterator[tuple[Any, Store]]:
    """The settings of one recipient of amendments on ``server``, and the store."""
    settings = _settings(tmp_path, server)
    store = Store(settings.data_dir)
    try:
        yield settings, store
    finally:
        store.close()


def test_a_thousand_alerts_go_as_one_digest_below_the_bound(tmp_path: Path) -> None:
    with SmtpServer() as server, _outbox(tmp_path, server) as (settings, store):
        detect(store, settings, _many(1000))
        lines = outbox.deliver_outbox(settings, store, now=NOW)
        assert lines[0].startswith("email: delivered 1 message (1000 alerts)"), lines
        assert len(_rows(store, "delivered")) == 1000
    [received] = server.received
    assert len(received.data) <= MAX_MESSAGE_BYTES
    message = received.message
    assert "(digest)" in message["Subject"] and message["Subject"].startswith("1000 changes")
    text = message.get_body(("plain",)).get_content()
    assert "1000 × " in text  # counts per kind
    assert f"and {1000 - DIGEST_CHANGES} more" in text
    assert "https://sw.example.org/index.html" in text  # the rest is on the site
    assert "https://sw.example.org/feed.atom" in text  # the feed as the site publishes it
    assert "https://sw.example.org/changes/1.html" in text


def test_a_552_to_a_message_that_can_be_reduced_is_retried_as_a_digest(
        tmp_path: Path) -> None:
    # 20 changes: under the bound, but over this server's limit.
    with SmtpServer(size_limit=60_000) as server, _outbox(tmp_path, server) as (settings, store):
        detect(store, settings, _many(20))
        lines = outbox.deliver_outbox(settings, store, now=NOW)
        assert lines[0].startswith("email: delivered 1 message (20 alerts)"), lines
        assert len(_rows(store, "delivered")) == 20
        assert not _rows(store, "failed")
    assert server.handler.too_large == 1  # the full message, then the digest was accepted
    [message] = server.messages
    assert "(digest)" in message["Subject"]


def test_email_retry_after_a_552_sends_the_digest(tmp_path: Path) -> None:
    """Rows failed for good by a 552 (as the old code did) go out as a digest on retry."""
    with SmtpServer(size_limit=60_000) as server, _outbox(tmp_path, server) as (settings, store):
        detect(store, settings, _many(20))
        for row in _rows(store, "queued"):
            store.mark_attempt_failed(row["id"], permanent=True, next_attempt_at=None,
                                      error="552 5.3.4 Message size exceeds fixed maximum")
        assert store.requeue_failed(NOW) == 20
        lines = outbox.deliver_outbox(settings, store, now=NOW + timedelta(minutes=1))
        assert lines[0].startswith("email: delivered 1 message (20 alerts)"), lines
    [message] = server.messages
    assert "(digest)" in message["Subject"]


def test_a_552_to_a_message_that_cannot_be_reduced_fails_only_that_message(
        tmp_path: Path) -> None:
    with SmtpServer(size_limit=2_000) as server, _outbox(tmp_path, server) as (settings, store):  # smaller than any message
        detect(store, settings, _many(3))
        lines = outbox.deliver_outbox(settings, store, now=NOW)
        assert any("552" in line and "not retried" in line for line in lines), lines
        assert len(_rows(store, "failed")) == 3
    # The full message, the digest of the first 20, the digest of counts only.
    assert server.handler.too_large == 3


def test_a_weekly_report_too_large_for_one_message_keeps_its_first_changes(
        tmp_path: Path) -> None:
    from reports.weekly import WeeklySummary
    from scheduler.config import Recipient

    with SmtpServer() as server:
        settings = settings_for(tmp_path, email_settings(
            server, Recipient("officer@example.org", kinds=("rescheduled",), weekly=True)))
        store = Store(settings.data_dir)
        try:
            ids = detect(store, settings, _many(60))  # no alert: the recipient takes no amended
            summary = WeeklySummary(week="2026-W47", period="2026-11-16 to 2026-11-22 (UTC)",
                                    complete=True, change_ids=tuple(ids),
                                    href="weekly/2026-W47.html")
            lines = outbox.send_weekly(settings, store, summary, now=NOW)
            assert "email: delivered 1 message (1 weekly report)" in " ".join(lines), lines
        finally:
            store.close()
    [received] = server.received
    assert len(received.data) <= MAX_MESSAGE_BYTES
    text = received.message.get_body(("plain",)).get_content()
    assert f"and {60 - DIGEST_CHANGES} more changes: see the full report " \
           "(https://sw.example.org/weekly/2026-W47.html)" in text
    assert "No change was detected" not in text
