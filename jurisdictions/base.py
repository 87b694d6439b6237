"""The shapes a jurisdiction module fills in: sources, their fetch plans, the watch list type.

A jurisdiction module declares ``CODE``, ``NAME``, ``TIMEZONE``, ``SCHEDULE_LEVELS`` and
``SOURCES`` (a tuple of ``Source``). Parsers are pure: ``parse(document, watch)`` gets the
archived bytes and returns a ``ParseResult``; they raise ``ExtractionError`` when the
document's landmarks are missing. A source whose document must be located first (an API
lookup, a freshness check) supplies a ``fetch_plan``: it decides *which* URLs to request
through the ``Fetcher`` it is given, while ``scrapers.fetch`` alone does the network I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from jurisdictions.substances import WatchList
from scrapers.protocol import FetchContext, Fetched, Fetcher, Response
from scrapers.records import Document, ParseResult

#: The fetch protocol lives with the fetcher (scrapers/protocol.py); jurisdiction modules
#: name it from here, beside Source.
__all__ = ["ArchiveReader", "ArchivedVersion", "FetchContext", "FetchPlan", "Fetched", "Fetcher",
           "Parser", "Response", "Source"]


Parser = Callable[[Document, WatchList], ParseResult]
FetchPlan = Callable[[Fetcher, FetchContext], Fetched]


@dataclass(frozen=True)
class ArchivedVersion:
    """One past version of a source's document, read from the regulator's own archive.

    ``evidence_date`` is the date the version itself speaks for, read from its bytes (a
    consolidation's ``lims:pit-date``, an eCFR version date, a Poisons Standard's
    commencement), never the date it was archived or committed; None when the bytes do not
    say (the version is then reported and skipped). ``ident`` names the version in reports
    (a commit sha, an instrument id)."""

    url: str
    content: bytes
    evidence_date: str | None
    ident: str
    content_type: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


#: A source's archive: given the fetcher, the source's endpoints (``FetchContext``) and an
#: optional first date, yield its past versions **oldest first**. It requests URLs only
#: through the fetcher; it raises ``FetchError``/``ExtractionError`` when the archive itself
#: (its listing) cannot be read. It may skip versions it knows to speak for dates before
#: ``since`` without fetching them.
ArchiveReader = Callable[[Fetcher, FetchContext, date | None], Iterator[ArchivedVersion]]


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
    #: The regulator's archive of past versions (``schedwatch backfill``); None: none.
    #: Its extra endpoints (e.g. "history_url") belong in ``endpoints`` too, so that the
    #: configuration can override them by name.
    archive: ArchiveReader | None = None

    @property
    def url(self) -> str:
        return self.endpoints["url"]
