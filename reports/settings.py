"""The settings' shapes (frozen dataclasses): what reports, email and the pipeline are given.
``scheduler.config`` reads and validates them from TOML and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reports.diff import ALERT_KINDS, DEFAULT_ALERT_KINDS

__all__ = ["ALERT_KINDS", "DEFAULT_ALERT_KINDS", "DEFAULT_CONTACT", "SECURITY_MODES",
           "EmailSettings", "FetchSettings", "Recipient", "SchedulerSettings", "Settings",
           "SourceSettings"]

DEFAULT_CONTACT = "https://github.com/schedwatch/schedwatch"
SECURITY_MODES = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class SourceSettings:
    enabled: bool = True
    endpoints: Mapping[str, str] = field(default_factory=dict)  # overrides by endpoint name


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 2.0
    max_wait: float = 120.0
    request_interval: float = 1.0
    max_document_mb: int = 64
    insecure_skip_tls_verify: bool = False
    respect_robots: bool = True
    #: Hosts fetched at the same time (one worker per host; one host's requests stay serial).
    parallel_hosts: int = 8


@dataclass(frozen=True)
class Recipient:
    address: str
    jurisdictions: tuple[str, ...] | None = None  # None: all
    substances: tuple[str, ...] | None = None  # None: all watched
    kinds: tuple[str, ...] = DEFAULT_ALERT_KINDS
    weekly: bool = True


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    sender: str = "schedwatch@localhost"
    site_url: str | None = None
    recipients: tuple[Recipient, ...] = ()
    timeout: float = 30.0
    max_attempts: int = 8  # temporary failures retried on later runs, up to this many tries
    password: str | None = field(default=None, repr=False)  # never printed


@dataclass(frozen=True)
class SchedulerSettings:
    timezone: str = "UTC"
    cron: Mapping[str, str] = field(default_factory=dict)
    misfire_grace_time: int = 3600
    heartbeat_seconds: int = 60


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    site_dir: Path | None = None  # default <data_dir>/site
    contact: str = DEFAULT_CONTACT
    watch: tuple[str, ...] | str = ("ketamine", "esketamine", "arketamine")
    sources: Mapping[str, SourceSettings] = field(default_factory=dict)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    #: Consecutive failed fetches before a source is reported ``source_failed``.
    failures_before_alert: int = 1
    database_url: str | None = None  # default sqlite:///<data_dir>/schedwatch.db
    email: EmailSettings | None = None
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    config_path: Path | None = None

    @property
    def site_path(self) -> Path:
        return self.site_dir if self.site_dir is not None else self.data_dir / "site"

    def source(self, source_id: str) -> SourceSettings:
        return self.sources.get(source_id, SourceSettings())
