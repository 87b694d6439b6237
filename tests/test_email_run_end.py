"""The end of a run and of the weekly report: the summary line when only the site failed to
publish, each email failure line printed once, the weekly report computed once for the page
and the email. Real SMTP (aiosmtpd), real HTTP (pytest-httpserver), SQLite on a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports import site as site_module
from tests.support.cli import CliResult
from tests.support.config import write_config
from tests.support.documents import (
    CDSA_2026,
    ketamine_moved_to_schedule_iii,
    shared_doc,
)
from tests.support.served import Served, canada_sources, serve_canada
from tests.support.smtp import SmtpServer, email_section

pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning")


def _config(tmp_path: Path, server: SmtpServer, served: Served | None = None) -> Path:
    return write_config(tmp_path / "schedwatch.toml", data_dir=tmp_path / "data",
                        sources={} if served is None else canada_sources(served),
                        extra=email_section(server.port, recipient_extra="weekly = true"))


def test_a_run_whose_only_failure_is_the_site_says_so(
        tmp_path: Path, httpserver: Any, run_cli: Callable[..., CliResult]) -> None:
    with SmtpServer() as server:
        config = _config(tmp_path, server, serve_canada(httpserver))
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "site").write_text("not a folder")  # the site cannot be written
        result = run_cli("--config", str(config), "run", "-j", "ca")
    assert result.exit_code == 2, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "some sources FAILED" not in result.stdout
    assert "all sources healthy; the site was NOT updated: " in last
    assert "ca-cdsa: ok" in result.stdout


def test_each_email_failure_line_is_printed_once(
        tmp_path: Path, httpserver: Any, run_cli: Callable[..., CliResult]) -> None:
    served = serve_canada(httpserver)
    with SmtpServer() as server:
        config = _config(tmp_path, server, served)
        assert run_cli("--config", str(config), "run", "-j", "ca").exit_code == 0
        server.stop()
        served.set("/eng/XML/C-38.8.xml",
                   ketamine_moved_to_schedule_iii(shared_doc(CDSA_2026)))
        moved = run_cli("--config", str(config), "run", "-j", "ca")
        by_hand = run_cli("--config", str(config), "email", "send")
    for result in (moved, by_hand):
        output = result.stdout + result.stderr
        failures = [line for line in output.splitlines()
                    if "cannot connect to the SMTP server" in line]
        assert len(failures) == 1, output


def test_report_weekly_email_reads_the_store_once(
        tmp_path: Path, run_cli: Callable[..., CliResult],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from scrapers import clock

    # The week in progress (a Friday of 2026-W47): its figures so far.
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    with SmtpServer() as server:
        config = _config(tmp_path, server)
        # A site exists already (as after any run): writing the weekly page needs no publish.
        first = run_cli("--config", str(config), "report", "weekly", "--week", "2026-W47")
        assert first.exit_code == 0, first.stderr
        reads: list[int] = []
        real = site_module.read_snapshot

        def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(site_module, "read_snapshot", counted)
        result = run_cli("--config", str(config), "report", "weekly", "--week", "2026-W47",
                         "--email")
    assert result.exit_code == 0, result.stderr
    assert "email: delivered 1 message (1 weekly report)" in result.stdout
    assert len(reads) == 1  # one read of the store for the page and the email
    [message] = server.messages
    assert message["Subject"] == "schedwatch weekly report 2026-W47: no changes"
    page = (tmp_path / "data" / "site" / "weekly" / "2026-W47.html").read_text("utf-8")
    assert "Weekly report 2026-W47" in page
