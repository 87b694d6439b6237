"""Australia's archive for ``schedwatch backfill``: every Poisons Standard the Federal Register of
Legislation holds, in force or repealed, read from its as-made Word original.

* The titles, 50 a page (``$top``/``$skip``) until a short page:
  ``GET {url}/titles?$filter=contains(name,'Poisons Standard')&$orderby=makingDate asc``, the
  live plan's filter (``register.TITLE_FILTER``). Principal instruments only: the amending
  instruments ("… Amendment Instrument …", ``isPrincipal`` false) share the phrase.
* Each title's versions: ``GET {url}/versions?$filter=titleId eq '{id}'`` (as the live plan
  asks); the as-made version (``registerId`` = the title id) gives the commencement
  (``start``) and the registration date that addresses the Word original.
* Each Word original: ``{register_url}/{id}/asmade/{registered}/text/original/word``, the
  live plan's URL forms (``register.word_urls``).

Versions are yielded by commencement, oldest first (then by register id). A version's
``evidence_date`` is its commencement — the date the whole instrument speaks from, an
Australian calendar date — never the date it was made, registered or fetched; ``meta`` says
so (``evidence_date_kind``). A re-issue lists every entry under a new register id: the live
bulk-amendment rule (``reports.diff.split_bulk_amendments``) makes it one change.

Everything the API answers is untrusted: JSON through ``register._get_json``
(``parsing.load_json``: depth-limited), rows of a shape this module does not know are an
``ExtractionError``, every register id is checked (``register.register_id``) before it goes
into a query or a URL. The live caps apply unchanged: the fetcher's document size limit, and
the Word reader's part, element and paragraph limits when the version is parsed.

This module depends only on ``jurisdictions.base`` and ``jurisdictions.au.register`` so that
the Australian module can import it for its ``Source(archive=...)`` without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from jurisdictions.au.register import (
    API_URL,
    REGISTER_URL,
    TITLE_FILTER,
    TITLE_PAGE,
    Instrument,
    _download,
    _get_json,
    instrument_from,
    odata_values,
    register_date,
    register_id,
    word_urls,
)
from jurisdictions.base import ArchivedVersion, FetchContext, Fetcher
from scrapers.errors import ExtractionError

__all__ = ["EVIDENCE_DATE_KIND", "MAX_PAGES", "archived_standards", "as_made_version",
           "principal_standards", "read_poisons_standard_archive"]

#: A runaway listing (a server that never answers a short page) stops here: 40 pages of 50
#: titles is far more than every Standard since the register began (a few a year).
MAX_PAGES = 40
#: What a version's ``evidence_date`` is, in its ``meta``.
EVIDENCE_DATE_KIND = ("commencement of the Poisons Standard (the register's start of the "
                      "as-made version, an Australian calendar date)")
_SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, RecursionError)


def principal_standards(titles: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every principal Poisons Standard among ``titles``, in force or not, each once (by its
    checked register id), in the order listed. Amending instruments are left out."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for title in titles:
        name = title.get("name")
        if not isinstance(name, str) or "Poisons Standard" not in name \
                or "amendment" in name.lower() or title.get("isPrincipal") is False:
            continue
        chosen.setdefault(register_id(title.get("id"), "title id"), title)
    return list(chosen.values())


def as_made_version(versions: Sequence[Mapping[str, Any]], title_id: str
                    ) -> Mapping[str, Any] | None:
    """The title's as-made version: ``registerId`` equal to the title id (the register's
    compilations have their own ids), the earliest ``start`` if several; None when the
    register lists none."""
    rows = [v for v in versions if v.get("titleId", title_id) == title_id and v.get("start")
            and (v.get("registerId") or title_id) == title_id]
    if not rows:
        return None
    return min(rows, key=lambda v: register_date(v["start"], "start"))


def _titles(fetcher: Fetcher, api: str) -> list[Mapping[str, Any]]:
    """Every title named "Poisons Standard", oldest made first, page by page."""
    url = f"{api}/titles"
    found: list[Mapping[str, Any]] = []
    for page in range(MAX_PAGES):
        rows = odata_values(_get_json(fetcher, url, {
            "$filter": TITLE_FILTER, "$orderby": "makingDate asc", "$top": str(TITLE_PAGE),
            "$skip": str(page * TITLE_PAGE),
        }), url)
        found.extend(rows)
        if len(rows) < TITLE_PAGE:
            return found
    raise ExtractionError(f"{url}: the list of titles named 'Poisons Standard' did not end "
                          f"after {MAX_PAGES} pages of {TITLE_PAGE}")


def archived_standards(fetcher: Fetcher, api: str) -> list[Instrument]:
    """Every principal Poisons Standard, in force or repealed, as made, oldest commencement
    first. Raises ``ExtractionError`` when the API answers in a shape not known here."""
    try:
        titles = _titles(fetcher, api)
        if titles and not any("status" in t or "isInForce" in t for t in titles):
            raise ExtractionError(f"{api}/titles: the titles carry neither status nor "
                                  "isInForce; the register's API changed")
        instruments: list[Instrument] = []
        for title in principal_standards(titles):
            title_id = register_id(title.get("id"), "title id")
            versions_url = f"{api}/versions"
            versions = odata_values(_get_json(fetcher, versions_url, {
                "$filter": f"titleId eq '{title_id}'", "$orderby": "start asc", "$top": "50",
            }), versions_url)
            version = as_made_version(versions, title_id)
            if version is None:
                raise ExtractionError(f"{versions_url}: no as-made version of {title_id}; the "
                                      "register's API answers in a shape schedwatch does not "
                                      "know")
            instruments.append(instrument_from(title, version))
    except _SHAPE_ERRORS as error:
        raise ExtractionError(f"{api}: the register's API answered in a shape schedwatch "
                              f"does not know ({type(error).__name__})") from None
    return sorted(instruments, key=lambda i: (i.commencement, i.title_id))


def read_poisons_standard_archive(fetcher: Fetcher, context: FetchContext,
                                  since: date | None) -> Iterator[ArchivedVersion]:
    """Every Poisons Standard's as-made Word original, oldest commencement first. With
    ``since``, Standards that commenced before it are not downloaded (their evidence date is
    earlier). A Word original missing at every URL form is the archive's failure
    (``FetchError``): the register keeps every as-made text."""
    api = context.endpoints.get("url", API_URL).rstrip("/")
    register = context.endpoints.get("register_url", REGISTER_URL).rstrip("/")
    for instrument in archived_standards(fetcher, api):
        if since is not None and instrument.commencement < since:
            continue
        url, response = _download(fetcher, word_urls(register, instrument))
        yield ArchivedVersion(
            url=response.final_url or url, content=response.content,
            evidence_date=instrument.commencement.isoformat(), ident=instrument.title_id,
            content_type=response.headers.get("Content-Type"),
            meta={**instrument.meta(), "evidence_date_kind": EVIDENCE_DATE_KIND})
