"""Email delivery through the outbox, over a real SMTP server on localhost (aiosmtpd).

Changes are written with ``RunWriter.add_change`` and their alerts queued by
``reports.outbox.enqueue_alerts`` in the same transaction, as the pipeline does.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reports import email as mail
from reports import outbox, smtp
from scheduler.config import Recipient, Settings, load_settings
from scrapers.errors import EmailError
from scrapers.store import Store
from tests.support.alerts import (
    AMENDED_US,
    FAILED_AU,
    NOW,
    RESCHEDULED_CA,
    SCHEDULED_ESK_CA,
    SENDER,
    detect,
    email_settings,
    record,
    settings_for,
)
from tests.support.documents import ketamine_moved_to_schedule_iii
from tests.support.smtp import SmtpServer, certificate, email_section, free_port

pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning")

def rows(store: Store, state: str | None = None) -> list[dict[str, Any]]:
    return store.outbox_rows(state)


def parts(message: Any) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "data")
    yield opened
    opened.close()


class CountingSMTP(smtplib.SMTP):
    """smtplib.SMTP that counts connection attempts (to prove: one per pass)."""

    attempts = 0

    def connect(self, host: str = "localhost", port: int = 0,
                source_address: Any = None) -> tuple[int, bytes]:
        CountingSMTP.attempts += 1
        return super().connect(host, port, source_address)


# --- delivery ------------------------------------------------------------------------------

def test_one_message_per_subscribed_recipient_and_none_to_the_others(
        server: SmtpServer, store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server,
        Recipient("all@example.org"),  # default kinds: no "amended"
        Recipient("ca@example.org", jurisdictions=("ca",)),
        Recipient("us@example.org", jurisdictions=("us",)),
        Recipient("esketamine@example.org", substances=("esketamine",)),
        Recipient("amendments@example.org", kinds=("amended",)),
    ))
    ca_id, us_id = detect(store, settings, [RESCHEDULED_CA, AMENDED_US])
    assert [r["recipient"] for r in rows(store)] == ["all@example.org", "ca@example.org",
                                                     "amendments@example.org"]

    lines = outbox.deliver_outbox(settings, store, now=NOW)

    assert lines == ["email: delivered 3 messages (3 alerts) to 3 recipients via "
                     f"127.0.0.1:{server.port}"]
    assert sorted(a for r in server.received for a in r.rcpt_tos) == [
        "all@example.org", "amendments@example.org", "ca@example.org"]
    assert server.to("us@example.org") == [] and server.to("esketamine@example.org") == []
    for address in ("all@example.org", "ca@example.org"):
        [message] = server.to(address)
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain",
                                                                         "text/html"]
        assert message["Subject"] == "Ketamine — Canada: Schedule I → III (rescheduled)"
        assert message["To"] == address
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Date"].datetime == NOW
        assert message["Message-ID"] == mail.alert_message_id([ca_id], address, SENDER)
        text, html = parts(message)
        assert "Schedule: I → III" in text
        assert f"https://sw.example.org/changes/{ca_id}.html" in html
        assert "Ketamine — Canada: Schedule I → III (rescheduled)" in html
    [amendment] = server.to("amendments@example.org")
    assert amendment["Subject"].endswith("(amended)")
    assert "1308.13(c)(7) → 1308.13(c)(8)" in parts(amendment)[0]
    delivered = rows(store, "delivered")
    assert len(delivered) == 3
    assert all(r["message_id"] and r["delivered_at"] and r["attempts"] == 1 for r in delivered)
    assert {r["change_ids"] for r in delivered} == {json.dumps([ca_id]), json.dumps([us_id])}


def test_alerts_of_one_recipient_go_out_as_one_message(server: SmtpServer, store: Store,
                                                      tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server, Recipient("officer@example.org")))
    first = detect(store, settings, [FAILED_AU])
    later = detect(store, settings, [RESCHEDULED_CA, SCHEDULED_ESK_CA],
                   at=NOW + timedelta(minutes=5))

    lines = outbox.deliver_outbox(settings, store, now=NOW + timedelta(minutes=6))

    assert lines[0].startswith("email: delivered 1 message (3 alerts) to 1 recipient")
    [message] = server.messages
    assert message["Subject"] == ("3 changes: Esketamine — Canada: not controlled → "
                                  "Schedule I (scheduled) (+2 more)")
    text, _ = parts(message)
    for summary in (RESCHEDULED_CA["summary"], SCHEDULED_ESK_CA["summary"],
                    FAILED_AU["summary"]):
        assert summary in text
    ids = first + later
    assert message["Message-ID"] == mail.alert_message_id(ids, "officer@example.org", SENDER)
    assert {r["message_id"] for r in rows(store, "delivered")} == {message["Message-ID"]}
    assert len(rows(store, "delivered")) == 3


def test_scraped_markup_is_escaped_in_the_delivered_html(server: SmtpServer, store: Store,
                                                         tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server))
    nasty = 'Ketamine <script>alert(1)</script> & "its salts"'
    detect(store, settings, [dict(RESCHEDULED_CA,
                                  summary='Ketamine — Canada: <script>alert(2)</script> & '
                                          '"I" → III (rescheduled)',
                                  before=record(listed_as=nasty),
                                  after=record(schedule="III", listed_as=nasty + " & more"))])
    outbox.deliver_outbox(settings, store, now=NOW)
    [message] = server.messages
    text, html = parts(message)
    parsed = Tags()
    parsed.feed(html)
    assert "script" not in parsed.tags
    assert nasty in "".join(parsed.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;its salts&#34;" in html
    assert nasty in text and nasty + " & more" in text
    assert '<script>alert(2)</script> & "I"' in text
    assert message["Subject"] == ('Ketamine — Canada: <script>alert(2)</script> & "I" → III '
                                  '(rescheduled)')


def test_server_down_defers_the_pass_with_one_connection_then_delivers_once(
        server: SmtpServer, store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("a@example.org"), Recipient("b@example.org"),
        Recipient("c@example.org")))
    server.stop()
    monkeypatch.setattr(smtp.smtplib, "SMTP", CountingSMTP)
    CountingSMTP.attempts = 0
    detect(store, settings, [RESCHEDULED_CA, FAILED_AU])  # the run itself is unaffected
    assert len(store.changes()) == 2

    lines = outbox.deliver_outbox(settings, store, now=NOW)

    assert CountingSMTP.attempts == 1
    assert lines == [f"email: cannot connect to the SMTP server 127.0.0.1:{server.port}: "
                     "connection refused; check email.host/port and the firewall — 6 alerts "
                     "kept in the outbox, next try after 2026-11-18 09:01 UTC"]
    queued = rows(store, "queued")
    assert len(queued) == 6
    assert all(r["attempts"] == 1 and r["next_attempt_at"] == "2026-11-18T09:01:00+00:00"
               for r in queued)
    assert "connection refused" in queued[0]["last_error"]
    # Not due yet: no connection at all, and the pass says what waits and until when.
    assert outbox.deliver_outbox(settings, store, now=NOW + timedelta(seconds=30)) == [
        "email: 6 alerts waiting, next try at 2026-11-18 09:01 UTC"]
    assert CountingSMTP.attempts == 1

    server.start()
    lines = outbox.deliver_outbox(settings, store, now=NOW + timedelta(minutes=2))
    assert lines[0].startswith("email: delivered 3 messages (6 alerts) to 3 recipients")
    assert len(server.received) == 3
    assert [r["attempts"] for r in rows(store)] == [2] * 6
    assert outbox.deliver_outbox(settings, store, now=NOW + timedelta(days=1)) == []
    assert len(server.received) == 3


def test_temporary_451_is_retried_on_a_later_pass(server: SmtpServer, store: Store,
                                                  tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server))
    detect(store, settings, [RESCHEDULED_CA])
    server.fail_next(1, "451 4.3.0 Mail server temporarily rejected message")

    [line] = outbox.deliver_outbox(settings, store, now=NOW)

    assert "451 4.3.0 Mail server temporarily rejected message" in line
    assert line.endswith("1 alert kept in the outbox, next try after 2026-11-18 09:01 UTC")
    [row] = rows(store)
    assert (row["state"], row["attempts"]) == ("queued", 1)
    assert server.received == [] and server.handler.rejected_data == 1
    assert outbox.deliver_outbox(settings, store, now=NOW + timedelta(seconds=59)) == [
        "email: 1 alert waiting, next try at 2026-11-18 09:01 UTC"]

    lines = outbox.deliver_outbox(settings, store, now=NOW + timedelta(seconds=61))

    assert lines[0].startswith("email: delivered 1 message (1 alert)")
    assert len(server.received) == 1
    [row] = rows(store)
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 2, None)
    assert outbox.deliver_outbox(settings, store, now=NOW + timedelta(days=1)) == []
    assert len(server.received) == 1


def test_temporary_failures_give_up_after_max_attempts(server: SmtpServer, store: Store,
                                                       tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server, max_attempts=3))
    detect(store, settings, [RESCHEDULED_CA])
    server.fail_next(10, "452 4.3.1 Insufficient system storage")
    moment = NOW
    for expected_delay in (timedelta(minutes=1), timedelta(minutes=5)):
        [line] = outbox.deliver_outbox(settings, store, now=moment)
        assert "next try after" in line
        [row] = rows(store)
        assert datetime.fromisoformat(row["next_attempt_at"]) == moment + expected_delay
        moment += expected_delay
    [line] = outbox.deliver_outbox(settings, store, now=moment)
    assert line.endswith("1 alert kept in the outbox, not retried (gave up after 3 attempts)")
    [row] = rows(store, "failed")
    assert row["attempts"] == 3 and "gave up after 3 attempts" in row["last_error"]
    assert outbox.deliver_outbox(settings, store, now=moment + timedelta(days=2)) == []


def test_authentication_failure_is_permanent_and_not_retried(store: Store,
                                                              tmp_path: Path) -> None:
    with SmtpServer(auth=("alerts", "right password")) as server:
        settings = settings_for(tmp_path, email_settings(
            server, Recipient("a@example.org"), Recipient("b@example.org"),
            username="alerts", password="wrong password"))
        detect(store, settings, [RESCHEDULED_CA])

        [line] = outbox.deliver_outbox(settings, store, now=NOW)

        assert line == (f"email: authentication failed for user 'alerts' at 127.0.0.1:"
                        f"{server.port} (535 5.7.8 Authentication credentials invalid); check "
                        "email.username and SCHEDWATCH_SMTP_PASSWORD — 2 alerts kept in the "
                        "outbox, not retried")
        failed = rows(store, "failed")
        assert len(failed) == 2 and all(r["attempts"] == 1 for r in failed)
        assert "authentication failed" in failed[0]["last_error"]
        for days in (1, 2, 30):
            assert outbox.deliver_outbox(settings, store, now=NOW + timedelta(days=days)) == []
        assert server.auth_connections == 1
        assert server.received == []


def test_refused_recipient_fails_alone_and_the_others_are_delivered(
        server: SmtpServer, store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("gone@example.org"), Recipient("officer@example.org")))
    server.refuse("gone@example.org", "550 5.1.1 <gone@example.org>: Recipient address rejected")
    detect(store, settings, [RESCHEDULED_CA])

    lines = outbox.deliver_outbox(settings, store, now=NOW)

    assert lines == [
        f"email: delivered 1 message (1 alert) to 1 recipient via 127.0.0.1:{server.port}",
        "email: the server refused gone@example.org: 550 5.1.1 <gone@example.org>: Recipient "
        "address rejected; check the address in email.recipients — 1 alert kept in the "
        "outbox, not retried"]
    assert [a for r in server.received for a in r.rcpt_tos] == ["officer@example.org"]
    assert [r["recipient"] for r in rows(store, "failed")] == ["gone@example.org"]


def test_a_421_mid_pass_defers_the_rest_without_reconnecting(
        server: SmtpServer, store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("first@example.org"), Recipient("second@example.org")))
    server.refuse("first@example.org", "421 4.3.2 Service shutting down")
    monkeypatch.setattr(smtp.smtplib, "SMTP", CountingSMTP)
    CountingSMTP.attempts = 0
    detect(store, settings, [RESCHEDULED_CA])

    [line] = outbox.deliver_outbox(settings, store, now=NOW)

    assert CountingSMTP.attempts == 1
    assert "421 4.3.2 Service shutting down" in line
    assert line.endswith("2 alerts kept in the outbox, next try after 2026-11-18 09:01 UTC")
    assert server.received == [] and len(rows(store, "queued")) == 2


def test_a_second_pass_after_delivery_sends_nothing(server: SmtpServer, store: Store,
                                                    tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server))
    detect(store, settings, [RESCHEDULED_CA])
    assert outbox.deliver_outbox(settings, store, now=NOW)
    for later in (NOW, NOW + timedelta(minutes=15), NOW + timedelta(days=10)):
        assert outbox.deliver_outbox(settings, store, now=later) == []
    assert len(server.received) == 1


def test_a_crash_after_acceptance_repeats_the_same_message_id(
        server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, email_settings(server))
    first = Store(settings.data_dir)
    detect(first, settings, [RESCHEDULED_CA, FAILED_AU])

    class Crash(BaseException):
        pass

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash  # the process dies between "accepted" and "marked delivered"

    monkeypatch.setattr(first, "mark_delivered_many", crash)
    with pytest.raises(Crash):
        outbox.deliver_outbox(settings, first, now=NOW)
    first.close()
    assert len(server.received) == 1

    fresh = Store(settings.data_dir)
    try:
        outbox.deliver_outbox(settings, fresh, now=NOW + timedelta(minutes=1))
        assert outbox.deliver_outbox(settings, fresh, now=NOW + timedelta(hours=1)) == []
        assert len(rows(fresh, "delivered")) == 2
    finally:
        fresh.close()
    once, again = server.messages
    assert once["Message-ID"] == again["Message-ID"]  # a duplicate clients can recognise


def test_a_concurrent_delivery_is_left_to_the_process_holding_the_lock(
        server: SmtpServer, store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server))
    detect(store, settings, [RESCHEDULED_CA])
    with store.lock("email-outbox", holder="another deliverer"):
        [line] = outbox.deliver_outbox(settings, store, now=NOW)
    assert line.startswith("email: another schedwatch process")
    assert server.received == [] and rows(store, "queued")


def test_rows_of_removed_recipients_are_failed_not_sent(server: SmtpServer, store: Store,
                                                        tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("left@example.org"), Recipient("officer@example.org")))
    detect(store, settings, [RESCHEDULED_CA])
    assert settings.email is not None
    later = replace(settings, email=replace(settings.email,
                                            recipients=(Recipient("officer@example.org"),)))
    lines = outbox.deliver_outbox(later, store, now=NOW)
    assert "left@example.org is no longer in email.recipients; not sent" in lines[1]
    assert [a for r in server.received for a in r.rcpt_tos] == ["officer@example.org"]


def test_no_email_section(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    for call in (lambda: outbox.deliver_outbox(settings, store),
                 lambda: outbox.send_test(settings, None),
                 lambda: outbox.send_weekly(settings, store, "2026-W47")):
        with pytest.raises(EmailError) as raised:
            call()
        assert str(raised.value) == ("no [email] section in the configuration; add one (see "
                                     "schedwatch.example.toml)")


# --- weekly report ---------------------------------------------------------------------------

def test_weekly_report_goes_to_weekly_recipients_once(server: SmtpServer, store: Store,
                                                      tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("weekly@example.org"),
        Recipient("alerts-only@example.org", weekly=False, kinds=("amended",))))
    detect(store, settings, [RESCHEDULED_CA])
    detect(store, settings, [AMENDED_US], at=NOW - timedelta(days=30))  # another week
    outbox.deliver_outbox(settings, store, now=NOW)
    server.handler.received.clear()

    lines = outbox.send_weekly(settings, store, "2026-W47", now=NOW + timedelta(days=1))

    assert lines[0] == "email: weekly report 2026-W47 queued for 1 recipient"
    assert lines[1].startswith("email: delivered 1 message (1 weekly report)")
    [message] = server.messages
    assert message["To"] == "weekly@example.org"
    assert message["Subject"] == "schedwatch weekly report 2026-W47: 1 change"
    assert message["Message-ID"] == mail.weekly_message_id("2026-W47", "weekly@example.org",
                                                           SENDER)
    text, html = parts(message)
    assert RESCHEDULED_CA["summary"] in text and AMENDED_US["summary"] not in text
    assert "https://sw.example.org/weekly/2026-W47.html" in html
    [row] = [r for r in rows(store) if r["kind"] == "weekly"]
    assert row["idempotency_key"] == "weekly:2026-W47:weekly@example.org"
    assert row["state"] == "delivered"

    again = outbox.send_weekly(settings, store, "2026-W47", now=NOW + timedelta(days=2))
    assert again == ["email: weekly report 2026-W47 was queued before for "
                     "weekly@example.org; not queued again"]
    assert len(server.received) == 1


def test_weekly_report_without_weekly_recipients(server: SmtpServer, store: Store,
                                                 tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("alerts-only@example.org", weekly=False)))
    assert outbox.send_weekly(settings, store, "2026-W47", now=NOW) == [
        "email: no recipient has weekly = true; the weekly report 2026-W47 was not emailed"]
    assert rows(store) == [] and server.received == []


# --- send_test ---------------------------------------------------------------------------------

def test_send_test_delivers_to_every_recipient_or_to(server: SmtpServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("a@example.org"), Recipient("b@example.org")))
    assert outbox.send_test(settings, None) == [
        f"email: test message sent to {a} via 127.0.0.1:{server.port} (none)"
        for a in ("a@example.org", "b@example.org")]
    assert outbox.send_test(settings, "c@example.org") == [
        f"email: test message sent to c@example.org via 127.0.0.1:{server.port} (none)"]
    assert [m["Subject"] for m in server.messages] == ["schedwatch test message"] * 3
    assert [m["To"] for m in server.messages] == ["a@example.org", "b@example.org",
                                                  "c@example.org"]


def test_send_test_wrong_password(tmp_path: Path) -> None:
    with SmtpServer(auth=("alerts", "right")) as server:
        settings = settings_for(tmp_path, email_settings(server, username="alerts",
                                                         password="Wr0ng-Pa55"))
        with pytest.raises(EmailError) as raised:
            outbox.send_test(settings, None)
    message = str(raised.value)
    assert message.startswith("authentication failed for user 'alerts'")
    assert "check email.username and SCHEDWATCH_SMTP_PASSWORD" in message
    assert "Wr0ng-Pa55" not in message and "\n" not in message
    assert raised.value.stage == "auth" and raised.value.permanent
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_send_test_closed_port(tmp_path: Path) -> None:
    email = email_settings(None)
    with pytest.raises(EmailError) as raised:
        outbox.send_test(settings_for(tmp_path, email), None)
    assert str(raised.value) == (f"cannot connect to the SMTP server 127.0.0.1:"
                                 f"{email.port}: connection refused; check "
                                 "email.host/port and the firewall")
    assert raised.value.stage == "connection" and not raised.value.permanent


def test_send_test_silent_server_times_out(tmp_path: Path) -> None:
    # A listening socket that never greets: what a firewall that swallows SMTP looks like.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        settings = settings_for(tmp_path, email_settings(None, port=port, timeout=0.5))
        with pytest.raises(EmailError) as raised:
            outbox.send_test(settings, None)
    assert str(raised.value) == (f"no answer from the SMTP server 127.0.0.1:{port} within "
                                 "0.5 s (waiting for the greeting); check email.host/port and "
                                 "the firewall")


def test_send_test_starttls_not_offered(server: SmtpServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server, security="starttls"))
    with pytest.raises(EmailError, match="does not offer STARTTLS; check email.security"):
        outbox.send_test(settings, None)


def test_send_test_ssl_against_a_plain_server(server: SmtpServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server, security="ssl"))
    with pytest.raises(EmailError, match=r"^TLS handshake with 127\.0\.0\.1:\d+ failed .*check "
                                         r"email\.security") as raised:
        outbox.send_test(settings, None)
    assert raised.value.stage == "tls"


def test_send_test_refused_recipient(server: SmtpServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(
        server, Recipient("ok@example.org"), Recipient("typo@example.org")))
    server.refuse("typo@example.org", "550 5.1.1 No such user here")
    with pytest.raises(EmailError) as raised:
        outbox.send_test(settings, None)
    assert str(raised.value) == ("the server refused typo@example.org: 550 5.1.1 No such user "
                                 "here; check the address in email.recipients (the test "
                                 "message did reach ok@example.org)")


def test_send_test_rejects_a_malformed_to(server: SmtpServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server))
    with pytest.raises(EmailError, match="is not an email address"):
        outbox.send_test(settings, "a@example.org\r\nBcc: b@example.org")
    assert server.received == []


# --- TLS ------------------------------------------------------------------------------------

def test_starttls_and_login_deliver(store: Store, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cert = certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.certfile))  # trust the test certificate
    with SmtpServer(tls=cert, auth=("alerts", "right")) as server:
        settings = settings_for(tmp_path, email_settings(
            server, security="starttls", username="alerts", password="right"))
        detect(store, settings, [RESCHEDULED_CA])
        lines = outbox.deliver_outbox(settings, store, now=NOW)
    assert lines[0].startswith("email: delivered 1 message (1 alert)")
    assert len(server.received) == 1 and server.auth_connections == 1


def test_implicit_tls_delivers(store: Store, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    cert = certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.certfile))
    with SmtpServer(tls=cert, implicit_tls=True) as server:
        settings = settings_for(tmp_path, email_settings(server, security="ssl"))
        assert outbox.send_test(settings, None) == [
            f"email: test message sent to officer@example.org via 127.0.0.1:{server.port} "
            "(ssl)"]
    assert len(server.received) == 1


def test_an_untrusted_certificate_is_a_tls_failure_retried_later(
        store: Store, tmp_path: Path) -> None:
    with SmtpServer(tls=certificate(tmp_path)) as server:
        settings = settings_for(tmp_path, email_settings(server, security="starttls"))
        with pytest.raises(EmailError) as raised:
            outbox.send_test(settings, None)
        assert raised.value.stage == "tls" and not raised.value.permanent
        assert str(raised.value).startswith(
            f"TLS handshake with 127.0.0.1:{server.port} failed: the server's certificate is "
            "not trusted (")
        assert "check email.host" in str(raised.value)
        detect(store, settings, [RESCHEDULED_CA])
        [line] = outbox.deliver_outbox(settings, store, now=NOW)
    assert line.endswith("1 alert kept in the outbox, next try after 2026-11-18 09:01 UTC")
    assert server.received == [] and rows(store, "queued")


# --- the password never leaks ------------------------------------------------------------------

def test_a_planted_password_appears_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    secret = "pl4nted-S3CRET-7d1c0f"
    monkeypatch.setenv("SCHEDWATCH_SMTP_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with SmtpServer(auth=("alerts", "the real one")) as server:
        config = tmp_path / "schedwatch.toml"
        data = tmp_path / "data"
        config.write_text(f'data_dir = "{data}"\n'
                          + email_section(server.port, extra='username = "alerts"'))
        settings = load_settings(config)
        assert settings.email is not None and settings.email.password == secret
        assert secret not in repr(settings)
        store = Store(settings.data_dir)
        detect(store, settings, [RESCHEDULED_CA])
        seen += outbox.deliver_outbox(settings, store, now=NOW)  # 535
        with pytest.raises(EmailError) as raised:
            outbox.send_test(settings, None)
        seen += [str(raised.value), repr(raised.value), repr(raised.value.args)]
        assert server.passwords_seen and set(server.passwords_seen) == {secret}

    # A server that echoes the secret back in its replies, and one that is down.
    with SmtpServer() as echo:
        plain = replace(settings, email=replace(settings.email, port=echo.port, username=None))
        detect(store, plain, [FAILED_AU])
        echo.fail_next(5, f"451 4.7.0 temporary failure for {secret}")
        seen += outbox.deliver_outbox(plain, store, now=NOW)
        echo.refuse("officer@example.org", f"550 5.1.1 unknown {secret}")
        with pytest.raises(EmailError) as raised:
            outbox.send_test(plain, None)
        seen += [str(raised.value), repr(raised.value)]
    down = replace(settings, email=replace(settings.email, port=free_port()))
    seen += outbox.deliver_outbox(down, store, now=NOW + timedelta(days=1))
    with pytest.raises(EmailError) as raised:
        outbox.send_test(down, None)
    seen += [str(raised.value), repr(raised.value)]
    no_password = replace(settings, email=replace(settings.email, password=None))
    with pytest.raises(EmailError) as raised:
        outbox.send_test(no_password, None)
    seen.append(str(raised.value))

    assert len(seen) > 8
    assert all(secret not in text for text in seen), seen
    assert any("authentication failed" in text for text in seen)
    assert any("temporary failure for ***" in text for text in seen)
    stored = rows(store)
    assert stored and all(secret not in (r["last_error"] or "") for r in stored)
    assert any(r["last_error"] for r in stored)
    # aiosmtpd ("mail.log") is the server side of the test, not schedwatch: it logs what it
    # received and sent, including the echoed secret.
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert ours, "deliveries and failures are logged"
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert all(secret not in formatter.format(r) for r in ours)
    store.close()


# --- the real pipeline: the SMTP server is down during the run --------------------------------

def test_a_run_with_the_server_down_stores_and_queues_and_the_next_pass_delivers(
        tmp_path: Path, httpserver: Any, run_cli: Any) -> None:
    from tests.support.config import write_config
    from tests.support.documents import CDSA_2026, shared_doc
    from tests.support.served import canada_sources, serve_canada

    served = serve_canada(httpserver)
    with SmtpServer() as server:
        config = write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data",
                              sources=canada_sources(served), extra=email_section(server.port))
        baseline = run_cli("--config", str(config), "run", "-j", "ca")
        assert baseline.exit_code == 0, baseline.stderr
        server.stop()
        served.set("/eng/XML/C-38.8.xml", ketamine_moved_to_schedule_iii(shared_doc(CDSA_2026)))

        moved = run_cli("--config", str(config), "run", "-j", "ca")

        assert moved.exit_code == 0, moved.stdout + moved.stderr  # email never fails a run
        assert "cannot connect to the SMTP server" in moved.stderr
        assert "alerts kept in the outbox, next try after" in moved.stderr
        settings = load_settings(config)
        store = Store(settings.data_dir)
        try:
            queued = rows(store, "queued")
            detected = store.changes(ids=[i for r in queued for i in json.loads(r["change_ids"])])
            # Ketamine and the isomers that follow its entry moved, each one change.
            assert len(queued) == len(detected) >= 1
            assert all(c.kind == "rescheduled" for c in detected)
            assert "ketamine" in {c.substance for c in detected}
            server.start()
            later = datetime.now(UTC) + timedelta(minutes=2)
            lines = outbox.deliver_outbox(settings, store, now=later)
            assert lines[0].startswith(f"email: delivered 1 message ({len(queued)} alert")
            assert outbox.deliver_outbox(settings, store, now=later + timedelta(hours=1)) == []
            assert len(rows(store, "delivered")) == len(queued)
        finally:
            store.close()
    [message] = server.messages  # once, all of this run's alerts in one message
    text = parts(message)[0]
    # One legal event about ketamine and its isomers is one line, ketamine first (the watch
    # order), not three lines with the least important first.
    lead = next(c for c in detected if c.substance == "ketamine")
    others = [s for s in ("esketamine", "arketamine") if s in {c.substance for c in detected}]
    assert others, [c.summary for c in detected]
    head, _, tail = lead.summary.partition(" — ")
    line = f"{head} (and {', '.join(others)}) — {tail}"
    assert message["Subject"].removesuffix("…") in line  # subjects are cut at 200 characters
    assert message["Subject"].startswith("Ketamine (and esketamine")
    assert line in text and text.count(tail) == 1
    assert "Schedule: I → III" in text


# --- a crash between detection and sending, with real processes --------------------------------

def test_a_process_killed_after_detection_sends_exactly_once_on_the_next_run(
        server: SmtpServer, tmp_path: Path) -> None:
    config = tmp_path / "schedwatch.toml"
    data = tmp_path / "data"
    config.write_text(f'data_dir = "{data}"\n' + email_section(server.port))
    # Process 1 detects a change, queues its alert in the same transaction, commits, and is
    # killed (SIGKILL: no cleanup, no finally) before any email is sent.
    detect_and_die = textwrap.dedent(f"""\
        import os, signal
        from datetime import UTC, datetime
        from reports.outbox import enqueue_alerts
        from scheduler.config import load_settings
        from scheduler.pipeline import CreatedChange
        from scrapers.store import Store
        settings = load_settings({str(config)!r})
        store = Store(settings.data_dir)
        at = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
        with store.transaction(started_at=at, jurisdictions=["ca"]) as writer:
            change_id = writer.add_change(
                detected_at=at, jurisdiction="ca", substance="ketamine", source_id="ca-cdsa",
                kind="rescheduled", summary={RESCHEDULED_CA['summary']!r},
                before={{"schedule": "I"}}, after={{"schedule": "III"}})
            enqueue_alerts(writer, settings, [CreatedChange(
                change_id, "rescheduled", "ca", "ketamine", "")], now=at)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    killed = subprocess.run([sys.executable, "-c", detect_and_die], capture_output=True,
                            text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    assert server.received == []

    cli = [sys.executable, "-c", "from scheduler.cli import main; main()", "--config",
           str(config), "email", "send"]
    first = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "delivered 1 message (1 alert)" in first.stdout
    second = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "email: nothing queued\n"
    [message] = server.messages
    assert message["Subject"] == RESCHEDULED_CA["summary"]


def test_failed_alerts_are_delivered_once_after_the_password_is_fixed(store: Store,
                                                                     tmp_path: Path) -> None:
    with SmtpServer(auth=("alerts", "right password")) as server:
        wrong = settings_for(tmp_path, email_settings(server, username="alerts",
                                                      password="wrong password"))
        detect(store, wrong, [RESCHEDULED_CA])
        outbox.deliver_outbox(wrong, store, now=NOW)
        assert len(rows(store, "failed")) == 1

        fixed = settings_for(tmp_path, email_settings(server, username="alerts",
                                                      password="right password"))
        assert store.requeue_failed(NOW) == 1
        outbox.deliver_outbox(fixed, store, now=NOW + timedelta(minutes=1))
        assert store.requeue_failed(NOW) == 0  # nothing failed any more
        assert outbox.deliver_outbox(fixed, store, now=NOW + timedelta(hours=1)) == []
        assert len(server.received) == 1
        assert len(rows(store, "delivered")) == 1
