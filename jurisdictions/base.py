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
from dataclasses import dataclass

from jurisdictions.substances import WatchList
from scrapers.protocol import FetchContext, Fetched, Fetcher, Response
from scrapers.records import Document, ParseResult

#: The fetch protocol lives with the fetcher (scrapers/protocol.py); jurisdiction modules
#: name it from here, beside Source.
__all__ = ["FetchContext", "FetchPlan", "Fetched", "Fetcher", "Parser", "Response", "Source"]


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
