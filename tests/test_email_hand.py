"""What a person sees when mail is stuck: ``schedwatch email send`` by hand tries everything
queued now, the automatic pass says what waits for its backoff, an SMTP server that cannot
be reached never turns an alert permanently failed, and ``report weekly --email`` fails
loudly when the site stays locked (issue 16 item 16, issue 17 item 10)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reports import outbox
from reports import site as site_module
from scheduler.config import Recipient
from scrapers.store import Store
from tests.support.alerts import RESCHEDULED_CA, detect, email_settings, settings_for
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.smtp import SmtpServer, email_section

pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning")

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def config_for(tmp_path: Path, server: SmtpServer) -> Path:
    return write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data", sources={},
                        extra=email_section(server.port, recipient_extra="weekly = true"))


def test_an_unreachable_server_never_makes_an_alert_permanently_failed(
        server: SmtpServer, tmp_path: Path) -> None:
    # max_attempts = 3, then a 17-hour outage: 12 passes, each one a refused connection.
    settings = settings_for(tmp_path, email_settings(server, Recipient("officer@example.org"),
                                                     max_attempts=3))
    store = Store(tmp_path / "data")
    try:
        detect(store, settings, [RESCHEDULED_CA], at=NOW)
        server.stop()
        moment = NOW
        for attempt in range(1, 13):
            [line] = outbox.deliver_outbox(settings, store, now=moment)
            assert "connection refused" in line and "next try after" in line, (attempt, line)
            assert "gave up" not in line and "not retried" not in line
            [row] = store.outbox_rows()
            assert (row["state"], row["attempts"]) == ("queued", attempt)
            next_at = datetime.fromisoformat(row["next_attempt_at"])
            assert next_at - moment == outbox.retry_delay(attempt)  # stays at the longest delay
            moment = next_at
        assert moment - NOW > timedelta(hours=17)
        assert store.outbox_rows("failed") == []

        server.start()
        lines = outbox.deliver_outbox(settings, store, now=moment)
        assert lines[0].startswith("email: delivered 1 message (1 alert) to 1 recipient")
        assert len(server.received) == 1
        [row] = store.outbox_rows()
        assert (row["state"], row["attempts"]) == ("delivered", 13)
    finally:
        store.close()


def test_the_automatic_pass_says_what_waits_and_until_when(server: SmtpServer,
                                                          tmp_path: Path) -> None:
    settings = settings_for(tmp_path, email_settings(server, Recipient("officer@example.org")))
    store = Store(tmp_path / "data")
    try:
        assert outbox.deliver_outbox(settings, store, now=NOW) == []  # an empty outbox: silent
        detect(store, settings, [RESCHEDULED_CA], at=NOW)
        server.stop()
        outbox.deliver_outbox(settings, store, now=NOW)
        outbox.deliver_outbox(settings, store, now=NOW + timedelta(minutes=1))  # 2nd: +5 min
        assert outbox.deliver_outbox(settings, store, now=NOW + timedelta(minutes=3)) == [
            "email: 1 alert waiting, next try at 2026-11-18 09:06 UTC"]
    finally:
        store.close()


def test_email_send_by_hand_tries_what_waits_for_its_backoff(
        server: SmtpServer, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    config = config_for(tmp_path, server)
    settings = settings_for(tmp_path, email_settings(server, Recipient("officer@example.org")))
    store = Store(tmp_path / "data")
    try:
        assert run_cli("--config", str(config), "email", "send").stdout == \
            "email: nothing queued\n"
        detect(store, settings, [RESCHEDULED_CA], at=NOW)
        server.stop()
        # The outage: the automatic pass puts the alert off for a minute, then five; a clock
        # far ahead makes sure the backoff is still running when the command below runs.
        later = datetime(2100, 1, 1, tzinfo=UTC)
        outbox.deliver_outbox(settings, store, now=later)
        outbox.deliver_outbox(settings, store, now=later + timedelta(minutes=1))
        [row] = store.outbox_rows("queued")
        assert row["next_attempt_at"] == "2100-01-01T00:06:00+00:00"
        server.start()
        # ...but the person who just fixed the server need not wait for it.
        sent = run_cli("--config", str(config), "email", "send")
        assert sent.exit_code == 0, sent.stderr
        assert "delivered 1 message (1 alert)" in sent.stdout
        assert len(server.received) == 1
        again = run_cli("--config", str(config), "email", "send")
        assert again.stdout == "email: nothing queued\n"
        assert len(server.received) == 1
    finally:
        store.close()


def test_report_weekly_email_fails_loudly_when_the_site_stays_locked(
        server: SmtpServer, tmp_path: Path, run_cli: Callable[..., CliResult],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from scrapers import clock

    config = config_for(tmp_path, server)
    # 2026-W47 is the week in progress (a report of a past week needs tracking data).
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    # Do not wait the real minute for the lock to come free.
    monkeypatch.setattr(site_module._site_lock.__wrapped__, "__defaults__", (0.0,))
    store = Store(tmp_path / "data")
    try:
        with store.lock("site", holder="publish"):
            result = run_cli("--config", str(config), "report", "weekly", "--week", "2026-W47",
                             "--email")
    finally:
        store.close()
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "site stayed busy" in line and "not written nor emailed" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "site" / "weekly" / "2026-W47.html").exists()
    assert server.received == []
