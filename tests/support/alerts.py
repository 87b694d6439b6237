"""Alerts written as the pipeline writes them (changes and their outbox rows in one
transaction), for the email tests: constructed changes, not recorded from a regulator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.outbox import enqueue_alerts
from scheduler.config import EmailSettings, Recipient, Settings
from scheduler.pipeline import CreatedChange
from scrapers.store import Store
from tests.support.smtp import SmtpServer, free_port

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
SENDER = "schedwatch@example.org"


def record(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        jurisdiction="ca", substance="ketamine", status="controlled", schedule="I",
        control_level="1", instrument="S.C. 1996, c. 19", provision="Sch. I, item 14(1)",
        listed_as="Ketamine, its salts, isomers and salts of isomers", basis="named",
        source_id="ca-cdsa", source_url="https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml",
        document_sha256="a" * 64, retrieved_at="2026-11-18T08:00:00+00:00")
    base.update(overrides)
    return base


RESCHEDULED_CA: dict[str, Any] = dict(jurisdiction="ca", substance="ketamine", source_id="ca-cdsa",
                      kind="rescheduled",
                      summary="Ketamine — Canada: Schedule I → III (rescheduled)",
                      before=record(), after=record(schedule="III"))
AMENDED_US: dict[str, Any] = dict(jurisdiction="us", substance="ketamine", source_id="us-ecfr-1308",
                  kind="amended",
                  summary="Ketamine — United States: provision changed, Schedule III "
                          "unchanged (amended)",
                  before=record(jurisdiction="us", schedule="III", provision="1308.13(c)(7)",
                                source_id="us-ecfr-1308"),
                  after=record(jurisdiction="us", schedule="III", provision="1308.13(c)(8)",
                               source_id="us-ecfr-1308"))
SCHEDULED_ESK_CA: dict[str, Any] = dict(jurisdiction="ca", substance="esketamine", source_id="ca-cdsa",
                        kind="scheduled",
                        summary="Esketamine — Canada: not controlled → Schedule I (scheduled)",
                        before=None, after=record(substance="esketamine"))
FAILED_AU: dict[str, Any] = dict(jurisdiction="au", substance=None, source_id="au-poisons-standard",
                 kind="source_failed",
                 summary="Australia — au-poisons-standard: source failing: HTTP 503",
                 before=None, after=None)


def email_settings(server: SmtpServer | None, *recipients: Recipient,
                   **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = dict(
        host="127.0.0.1", port=server.port if server else free_port(), security="none",
        sender=SENDER, site_url="https://sw.example.org/", timeout=5.0,
        recipients=recipients or (Recipient("officer@example.org"),))
    values.update(overrides)
    return EmailSettings(**values)


def settings_for(tmp_path: Path, email: EmailSettings) -> Settings:
    return Settings(data_dir=tmp_path / "data", email=email)


def detect(store: Store, settings: Settings, specs: Sequence[dict[str, Any]], *,
           at: datetime = NOW) -> list[int]:
    """Store changes and queue their alerts in one transaction, as the pipeline does."""
    created = []
    with store.transaction(started_at=at, jurisdictions=["ca", "us", "au"]) as writer:
        for spec in specs:
            change_id = writer.add_change(detected_at=at, after_sha256="b" * 64,
                                          before_sha256="a" * 64, **spec)
            created.append(CreatedChange(change_id, spec["kind"], spec["jurisdiction"],
                                         spec["substance"], spec["summary"]))
        enqueue_alerts(writer, settings, created, now=at)  # type: ignore[arg-type]
        writer.finish(finished_at=at, exit_code=0, summary={})
    return [c.id for c in created]
