"""Canada: the Controlled Drugs and Substances Act and its scheduling regulations, parsed from
Justice Laws "lims" XML (laws-lois.justice.gc.ca and its GitHub mirror justicecanada/laws-lois-xml).

Two sources:

* ``ca-cdsa``: the Controlled Drugs and Substances Act (S.C. 1996, c. 19), Schedules I to IX.
  Ketamine is Schedule I, item 14(1), under item 14 (phencyclidine and its analogues).
* ``ca-csr``: the Controlled Substances Regulations (SOR/2025-242, in force 2026-10-01), whose
  Schedule 1 is a table. The same parser reads the Narcotic Control Regulations (C.R.C., c. 1041),
  the predecessor the CSR repeals, whose single unnumbered Schedule also lists ketamine at item
  14(1), so that ``schedwatch parse ca-csr ncr.xml`` works across the 2026 switch.

Both parsers are pure functions of the archived bytes (they never read today's date). They
read every schedule (a move from Schedule I to III must show as a schedule change), ignore what
is not law yet (the "AMENDMENTS NOT IN FORCE" and "RELATED PROVISIONS" appendices,
``in-force="no"`` elements) and report it as pending items instead, and raise
``ExtractionError`` when the document is not the instrument they know: an empty record list
would read as "descheduled". A substance whose explicit listing is gone while a generic entry
still covers it (ketamine under item 14, "phencyclidine ... and analogues") stays controlled
under that entry, flagged for review.

The package: ``document`` (bounded streaming, identification, dates, coming into force),
``schedules`` (schedules and entries), ``matching``, ``status`` (records and their dates),
``pending`` (what is not law yet).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jurisdictions.base import Source
from jurisdictions.ca.archive import ARCHIVE_ENDPOINTS, read_cdsa_archive, read_csr_archive
from scrapers.errors import ExtractionError

if TYPE_CHECKING:  # pragma: no cover
    from jurisdictions.ca.document import Instrument
    from jurisdictions.substances import WatchList
    from scrapers.records import Document, ParseResult

__all__ = [
    "CODE", "ELEMENT_DATE_LABEL", "MAX_DOCUMENT_BYTES", "MAX_ELEMENTS", "NAME", "NCR_SCHEDULE",
    "SCHEDULE_LEVELS", "SOURCES", "TIMEZONE", "listed_name", "parse_cdsa", "parse_regulations",
    "written_date",
]

CODE = "ca"
NAME = "Canada"
TIMEZONE = "America/Toronto"

#: The parser's modules load when a document is parsed, not with the sources: a warm run
#: (two 304s) does not need them (~15 ms of its start). Their names shown here, from there.
_FROM = {"ELEMENT_DATE_LABEL": "status", "MAX_DOCUMENT_BYTES": "document",
         "MAX_ELEMENTS": "document", "NCR_SCHEDULE": "document", "SCHEDULE_LEVELS": "schedules",
         "listed_name": "matching", "written_date": "document"}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def _parse(document: Document, watch: WatchList, root: object,
           instrument: Instrument) -> ParseResult:
    from jurisdictions.ca.document import coming_into_force, document_dates, pit_date, title_of
    from jurisdictions.ca.matching import Matcher
    from jurisdictions.ca.pending import amendments_of, pending_of, repeal_of
    from jurisdictions.ca.schedules import entries_of, schedules_of
    from jurisdictions.ca.status import Context, records_of
    from scrapers.records import ParseResult

    source_id = document.source_id
    schedules = schedules_of(root, instrument, source_id)
    entries = [entry for schedule in schedules for entry in entries_of(schedule)]
    primary = [e for e in entries if e.schedule == instrument.primary]
    if not any(s.label == instrument.primary for s in schedules):
        labels = ", ".join(s.label for s in schedules)
        raise ExtractionError(f"{source_id}: expected Schedule {instrument.primary} of the "
                              f"{instrument.title}; found schedules {labels}")
    if not primary:
        raise ExtractionError(f"{source_id}: expected items in Schedule {instrument.primary} "
                              f"of the {instrument.title}; found none")
    when, section = coming_into_force(root)
    amendments = amendments_of(root, instrument)
    ctx = Context(document=document, instrument=instrument, dates=document_dates(root),
                  evidence_date=pit_date(root), coming_into_force=when, cif_section=section,
                  repeal=repeal_of(amendments))
    matcher = Matcher.of(watch)
    records, found = records_of(ctx, entries, watch, matcher)
    if not records:  # only an empty watch list gets here; never report "nothing"
        raise ExtractionError(f"{source_id}: the watch list is empty; nothing to report")
    pending = pending_of(ctx, amendments, entries, watch, matcher, found)
    return ParseResult(records=tuple(records), pending=tuple(pending),
                       document_dates=ctx.dates, title=title_of(root),
                       instrument=instrument.citation)


def parse_cdsa(document: Document, watch: WatchList) -> ParseResult:
    """The Controlled Drugs and Substances Act (English or French Justice Laws XML)."""
    from jurisdictions.ca.document import CDSA, check_cdsa, load

    root = load(document, "Justice Laws XML of the Controlled Drugs and Substances Act")
    check_cdsa(root, document.source_id)
    return _parse(document, watch, root, CDSA)


def parse_regulations(document: Document, watch: WatchList) -> ParseResult:
    """The Controlled Substances Regulations (SOR/2025-242) or, before they replaced it on
    2026-10-01, the Narcotic Control Regulations (C.R.C., c. 1041)."""
    from jurisdictions.ca.document import identify_regulation, load

    root = load(document, "Justice Laws XML of the Controlled Substances Regulations or the "
                          "Narcotic Control Regulations")
    instrument = identify_regulation(root, document.source_id)
    return _parse(document, watch, root, instrument)


SOURCES: tuple[Source, ...] = (
    Source(
        id="ca-cdsa",
        jurisdiction=CODE,
        title="Controlled Drugs and Substances Act (S.C. 1996, c. 19)",
        endpoints={"url": "https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml",
                   **ARCHIVE_ENDPOINTS},
        parse=parse_cdsa,
        archive=read_cdsa_archive,
    ),
    Source(
        id="ca-csr",
        jurisdiction=CODE,
        title="Controlled Substances Regulations (SOR/2025-242)",
        endpoints={"url": "https://laws-lois.justice.gc.ca/eng/XML/SOR-2025-242.xml",
                   **ARCHIVE_ENDPOINTS},
        parse=parse_regulations,
        archive=read_csr_archive,
    ),
)
