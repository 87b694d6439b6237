"""The Federal Register's archive for ``schedwatch backfill`` (issue 14): the FR API covers
every document published since 1994, so the live queries themselves are the archive.

The reader runs the two ``documents.json`` queries of ``us-federal-register`` once (no date
bound, every page, as a live fetch does) and then yields, oldest first, one
``ArchivedVersion`` per distinct publication date and per effective date of a final rule:
the canonical JSON (``canonical_federal_register``) of the documents published up to that
day, built with ``today`` = that day (so ``not_yet_effective`` is what it was then) and
``as_of`` = that day (so the parser reads the law of that day, not of the day of the
backfill, and asks only for establishing documents published by then). The version's
``evidence_date`` is that day.

For ketamine that is the 1999-04-09 issue (the 1981 proposal withdrawn, 64 FR 17298, and a
new proposal, 64 FR 17299: a pending item), the 1999-07-13 final rule (64 FR 37673: pending
until its effective date) and 1999-08-12 (the rule in effect: ``in_force_since``
1999-08-12). A listing that cannot be read (an answer that is not JSON, a result without a
readable ``publication_date``) stops this source: no version can be built from part of a
list without reading a missing document as "no rule".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from jurisdictions.base import ArchivedVersion, FetchContext, Fetcher
from jurisdictions.parsing import exact_iso_date
from jurisdictions.us.federal_register import (
    _fr_type,
    canonical_federal_register,
    dates_text_effective,
    fr_results,
)
from scrapers.errors import ExtractionError

__all__ = ["archive_days", "read_federal_register_archive", "versions_of"]


def _published(result: Mapping[str, Any], query_id: str) -> str:
    day = exact_iso_date(result.get("publication_date"))
    if day is None:
        number = str(result.get("document_number") or "?")[:40]
        raise ExtractionError(f"Federal Register API ({query_id}): document {number!r} has no "
                              "readable publication_date, so no dated version can hold it; "
                              "the API changed")
    return day


def _effective(result: Mapping[str, Any]) -> str | None:
    """A final rule's stated effective date (``effective_on``, else its DATES text)."""
    if _fr_type(result.get("type")) != "RULE":
        return None
    stated = exact_iso_date(result.get("effective_on"))
    if stated is None and isinstance(result.get("dates"), str):
        stated = dates_text_effective(str(result["dates"]))
    return stated


def archive_days(results_by_query: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Every day a version speaks for, oldest first: each publication date and each final
    rule's effective date."""
    days: set[str] = set()
    for query_id, results in results_by_query.items():
        for result in results:
            days.add(_published(result, query_id))
            effective = _effective(result)
            if effective is not None:
                days.add(effective)
    return sorted(days)


def versions_of(results_by_query: Mapping[str, Sequence[Mapping[str, Any]]], *, url: str,
                today: date, since: date | None = None) -> Iterator[ArchivedVersion]:
    """The versions of an FR listing (see the module docstring), oldest first; with
    ``since``, none for earlier days.

    Every version is the same bytes: the canonical list as the API answered it on ``today``
    (the backfill's day; the very document a live run of that day archives), with the day
    it speaks for in its ``meta["as_of"]``; the parser reads only the documents published by
    then, and the law of that day. One archived file for the whole history (a copy of the
    list up to each day would grow with the square of the documents: 467 MB for ~650)."""
    content = canonical_federal_register(results_by_query, today)
    first_published: dict[str, str] = {}  # document number → publication date
    for query_id, results in results_by_query.items():
        for r in results:
            first_published.setdefault(str(r.get("document_number")), _published(r, query_id))
    published = sorted(first_published.values())
    for day in archive_days(results_by_query):
        if since is not None and day < since.isoformat():
            continue
        count = sum(1 for when in published if when <= day)
        yield ArchivedVersion(url=url, content=content, evidence_date=day,
                              ident=f"FR documents published up to {day}",
                              content_type="application/json",
                              meta={"as_of": day, "documents": str(count)})


def read_federal_register_archive(fetcher: Fetcher, context: FetchContext,
                                  since: date | None) -> Iterator[ArchivedVersion]:
    """Archive reader of ``us-federal-register``: the whole document list, read once through
    the live queries, then one version per day (``versions_of``)."""
    by_query, first_url = fr_results(fetcher, context)
    yield from versions_of(by_query, url=first_url, today=context.today, since=since)
