"""The shapes a jurisdiction module fills in: sources, their fetch plans, the watch list type.

A jurisdiction module declares ``CODE``, ``NAME``, ``TIMEZONE``, ``SCHEDULE_LEVELS`` and
``SOURCES`` (a tuple of ``Source``). Parsers are pure: ``parse(document, watch)`` gets the
archived bytes and returns a ``ParseResult``; they raise ``ExtractionError`` when the
document's landmarks are missing. A source whose document must be located first (an API
lookup, a freshness check) supplies a ``fetch_plan``: it decides *which* URLs to request
through the ``Fetcher`` it is given, while ``scrapers.fetch`` alone does the network I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from jurisdictions.substances import WatchList
from scrapers.records import Document, ParseResult


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


Parser = Callable[[Document, WatchList], ParseResult]
FetchPlan = Callable[[Fetcher, FetchContext], Fetched]


@dataclass(frozen=True)
class Source:
    """One regulator publication that schedwatch fetches and parses."""

    id: str
    jurisdiction: str
    title: str
    #: Configurable endpoints: "url" (the main one) plus any extra a fetch plan needs.
    #: ``[sources.<id>]`` in the configuration may override each by name.
    endpoints: Mapping[str, str]
    parse: Parser
    fetch_plan: FetchPlan | None = None  # None: one conditional GET of endpoints["url"]
    media_type: str = "application/xml"
    #: An early-warning source (the Federal Register: proposals and rules before the code
    #: shows them) never by itself turns a status into ``not_controlled``.
    early_warning: bool = False

    @property
    def url(self) -> str:
        return self.endpoints["url"]
