"""Alerts and the feed in the watch list's order, the isomers of one entry on one line
(issue 17, item 12): one legal event about ketamine and its isomers is three changes, and
the message once led with "Arketamine — …". Constructed changes on a real Store."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from reports import email as mail
from reports import feed
from reports.site import read_snapshot
from scheduler.config import Settings
from scrapers.store import Store, StoredChange
from tests.support.alerts import detect, email_settings, record, settings_for

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def _moved(substance: str, **more: Any) -> dict[str, Any]:
    name = substance.capitalize()
    return dict(jurisdiction="ca", substance=substance, source_id="ca-cdsa", kind="rescheduled",
                summary=f"{name} — Canada: Schedule I → III (rescheduled)",
                before=record(substance=substance), after=record(substance=substance,
                                                                 schedule="III"), **more)


#: The order the Canadian parser met them in (the isomers' lines before ketamine's).
EVENT = [_moved("arketamine"), _moved("esketamine"), _moved("ketamine")]


def _changes(tmp_path: Path, specs: list[dict[str, Any]], *,
             watch: tuple[str, ...] = ("ketamine", "esketamine", "arketamine")
             ) -> tuple[list[StoredChange], Settings, Store]:
    settings = settings_for(tmp_path, email_settings(None))
    settings = Settings(data_dir=settings.data_dir, email=settings.email, watch=watch)
    store = Store(settings.data_dir)
    ids = detect(store, settings, specs, at=NOW)
    return store.changes(ids=ids), settings, store


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_one_event_about_ketamine_and_its_isomers_is_one_line_ketamine_first(
        tmp_path: Path) -> None:
    changes, settings, store = _changes(tmp_path, EVENT)
    store.close()
    assert settings.email is not None
    message = mail.build_alert(settings.email, "officer@example.org", changes, now=NOW)
    line = "Ketamine (and esketamine, arketamine) — Canada: Schedule I → III (rescheduled)"
    assert message["Subject"] == line
    text = _text(message)
    assert line in text
    assert "Arketamine —" not in text and "Esketamine —" not in text
    assert text.count("Canada: Schedule I → III") == 1
    # The message still carries (and is identified by) all three changes.
    assert message["Message-ID"] == mail.alert_message_id(
        [c.id for c in changes], "officer@example.org", settings.email.sender)


def test_the_configured_watch_order_leads(tmp_path: Path) -> None:
    watch = ("esketamine", "ketamine", "arketamine")
    changes, settings, store = _changes(tmp_path, EVENT, watch=watch)
    store.close()
    assert settings.email is not None
    message = mail.build_alert(settings.email, "officer@example.org", changes, now=NOW,
                               watch=watch)
    assert message["Subject"] == ("Esketamine (and ketamine, arketamine) — Canada: "
                                  "Schedule I → III (rescheduled)")


def test_isomers_moved_by_different_evidence_are_not_folded(tmp_path: Path) -> None:
    other = _moved("esketamine")
    other["after"] = record(substance="esketamine", schedule="II")
    other["summary"] = "Esketamine — Canada: Schedule I → II (rescheduled)"
    changes, settings, store = _changes(tmp_path, [_moved("arketamine"), other,
                                                   _moved("ketamine")])
    store.close()
    groups = mail.grouped(changes)
    assert [g.summary for g in groups] == [
        "Ketamine (and arketamine) — Canada: Schedule I → III (rescheduled)",
        "Esketamine — Canada: Schedule I → II (rescheduled)"]
    # Another jurisdiction's move of the same substances is its own line.
    us = [dict(spec, jurisdiction="us", source_id="us-ecfr-1308",
               summary=spec["summary"].replace("Canada", "United States")) for spec in EVENT]
    changes, _, store = _changes(tmp_path / "two", EVENT + us)
    store.close()
    assert [g.summary.split(" — ")[0] for g in mail.grouped(changes)] == [
        "Ketamine (and esketamine, arketamine)"] * 2


def test_the_feed_lists_one_event_in_the_watch_order(tmp_path: Path) -> None:
    changes, settings, store = _changes(tmp_path, EVENT)
    try:
        snap = read_snapshot(settings, store)
    finally:
        store.close()
    assert [c.substance for c in feed.feed_changes(snap)] == [
        "ketamine", "esketamine", "arketamine"]
    feed_id = feed.feed_id_for("https://sw.example.org/")
    context = feed.feed_context(snap, feed_id=feed_id, site_url="https://sw.example.org/",
                                 now=NOW)
    by_substance = {c.substance: feed.entry_id(feed_id, c) for c in changes}
    assert [e["entry_id"] for e in context["entries"]] == [
        by_substance[s] for s in ("ketamine", "esketamine", "arketamine")]
