"""The fetch protocol between fetch plans and the fetcher: the response a plan sees, the
fetcher it is given, what it knows of the source, and what it answers.

It lives on the ground floor with ``scrapers.fetch`` (the only network code), so that the
fetcher never imports a jurisdiction module's layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class Response:
    """One HTTP response as a fetch plan sees it."""

    url: str  # the URL requested
    final_url: str  # after redirects
    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher(Protocol):
    """What ``scrapers.fetch.HttpFetcher`` offers a fetch plan."""

    def get(self, url: str, *, params: Mapping[str, str | list[str]] | None = None,
            headers: Mapping[str, str] | None = None, etag: str | None = None,
            last_modified: str | None = None) -> Response:
        """GET with retries; raises ``FetchError`` for failures (including 4xx/5xx)."""
        ...

    def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's host lets schedwatch fetch it."""
        ...


@dataclass(frozen=True)
class FetchContext:
    """What a fetch plan knows of the source: its configured endpoints and the validators
    and marker saved after the last *healthy* parse."""

    source_id: str
    endpoints: Mapping[str, str]
    etag: str | None = None
    last_modified: str | None = None
    marker: str | None = None
    today: date = field(default_factory=date.today)


@dataclass(frozen=True)
class Fetched:
    """A fetch plan's answer. ``content is None`` means "unchanged since the last healthy
    fetch" (a 304, or a freshness marker that has not moved): no parse, no diff."""

    url: str
    content: bytes | None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    marker: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    redirected_from: str | None = None
