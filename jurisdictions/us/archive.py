"""The archive of ``us-ecfr-1308`` for ``schedwatch backfill``: Part 1308 at every date on
which one of §§ 1308.11–1308.15 changed, from the eCFR versioner (point-in-time data from
2017-01-03), or one version a year from govinfo's annual CFR editions when robots.txt of the
eCFR forbids the versioner's ``full/``.

* The dates: ``GET {url}/api/versioner/v1/versions/title-21.json?part=1308&issue_date[gte]=…``
  (the same call as the live fetch plan, ``ecfr.version_pages``) lists per section every
  ``content_versions[].date`` with ``amendment_date``, ``issue_date``, ``identifier``,
  ``substantive`` and ``removed``. The distinct dates of the five schedule sections, oldest
  first, from 2017-01-03 (or ``since``).
* Each version: ``GET {url}/api/versioner/v1/full/{date}/title-21.xml?part=1308`` (the same
  XML as the live ``full``), ``evidence_date`` = that date, granularity "eCFR point in time".
* The fallback: ``GET {annual_url}/{year}/title-21/CFR-{year}-title21-vol9.xml`` for each
  year, reduced while streaming to its Part 1308 (``jurisdictions.us.annual``), which is what
  is archived; ``evidence_date`` = ``{year}-04-01``, granularity "annual edition (revised as
  of April 1)". The current year's edition is published months after April 1: a 404 for it
  ends the list.

The granularity travels in the version's ``meta`` and the parser writes it into each
record's ``legal_note``, so that ``history`` can say how finely each interval is dated.
Everything answered is untrusted: JSON through ``jurisdictions.parsing`` (depth-limited),
and a date must be an existing ISO date before it goes into a URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date

from jurisdictions.base import ArchivedVersion, FetchContext, Fetcher
from jurisdictions.parsing import exact_iso_date, load_json_object
from jurisdictions.us.annual import ANNUAL_GRANULARITY, annual_url, part_1308
from jurisdictions.us.ecfr import PART, SCHEDULE_SECTIONS, version_pages
from scrapers.errors import ExtractionError, FetchError

__all__ = ["ANNUAL_ENDPOINT", "ECFR_GRANULARITY", "POINT_IN_TIME_SINCE", "annual_years",
           "read_ecfr_archive", "schedule_versions"]

#: The first date of the eCFR's point-in-time data.
POINT_IN_TIME_SINCE = "2017-01-03"
ECFR_GRANULARITY = "eCFR point in time"
#: govinfo's bulk CFR (annual editions), overridable as ``annual_url`` in
#: ``[sources.us-ecfr-1308]``.
ANNUAL_ENDPOINT = "https://www.govinfo.gov/bulkdata/CFR"
#: The oldest annual edition in govinfo's bulk XML.
FIRST_ANNUAL_YEAR = 1996
#: A runaway answer (more versions than the eCFR has days) is refused.
MAX_VERSIONS = 5000




def schedule_versions(pages: list[bytes], *, first: str = POINT_IN_TIME_SINCE
                      ) -> list[tuple[str, dict[str, str]]]:
    """(date, facts) for every distinct version date of §§ 1308.11–.15 on or after
    ``first``, oldest first. Facts: the sections changed that day, whether any change was
    substantive, whether a section was removed, the latest issue date, and each schedule
    section's last amendment date as of that version (``amended_on:1308.13``)."""
    changed: dict[str, dict[str, set[str]]] = {}
    amended: dict[str, list[str]] = {s: [] for s in SCHEDULE_SECTIONS}
    count = 0
    for page_number, content in enumerate(pages, start=1):
        data = load_json_object(content, f"eCFR versions (page {page_number})")
        versions = data.get("content_versions")
        if not isinstance(versions, list):
            raise ExtractionError("eCFR versions answer has no \"content_versions\" list; the "
                                  "API changed")
        for version in versions:
            if not isinstance(version, dict):
                continue
            identifier = str(version.get("identifier", ""))
            if identifier not in SCHEDULE_SECTIONS:
                continue
            day = exact_iso_date(version.get("date"))
            if day is None:
                raise ExtractionError(f"eCFR versions: § {identifier} has a version without "
                                      f"a valid date ({str(version.get('date'))[:40]!r})")
            count += 1
            if count > MAX_VERSIONS:
                raise ExtractionError(f"eCFR versions: more than {MAX_VERSIONS} versions of "
                                      "§§ 1308.11–1308.15; refused (not an answer of this API)")
            amendment = exact_iso_date(version.get("amendment_date")) or day
            amended[identifier].append(amendment)
            entry = changed.setdefault(day, {"sections": set(), "flags": set(),
                                             "issued": set()})
            entry["sections"].add(identifier)
            if version.get("substantive") is True:
                entry["flags"].add("substantive")
            if version.get("removed") is True:
                entry["flags"].add(f"removed:{identifier}")
            issued = exact_iso_date(version.get("issue_date"))
            if issued:
                entry["issued"].add(issued)
    found: list[tuple[str, dict[str, str]]] = []
    for day in sorted(changed):
        if day < first:
            continue
        entry = changed[day]
        facts = {"version_date": day,
                 "sections_changed": ", ".join(sorted(entry["sections"])),
                 "substantive": "true" if "substantive" in entry["flags"] else "false"}
        removed = sorted(f.split(":", 1)[1] for f in entry["flags"] if f.startswith("removed:"))
        if removed:
            facts["sections_removed"] = ", ".join(removed)
        if entry["issued"]:
            facts["issue_date"] = max(entry["issued"])
        latest = []
        for section, dates in amended.items():
            before = [d for d in dates if d <= day]
            if before:
                facts[f"amended_on:{section}"] = max(before)
                latest.append(max(before))
        if latest:
            facts["latest_amended_on"] = max(latest)
        found.append((day, facts))
    return found


def annual_years(today: date, since: date | None) -> list[int]:
    """The editions to read: from ``since`` (the first edition revised on or after it;
    default the eCFR's first point-in-time year, 2017) to the one of ``today``'s year when
    April 1 has passed."""
    start = date.fromisoformat(POINT_IN_TIME_SINCE) if since is None else since
    first = max(start.year if start <= date(start.year, 4, 1) else start.year + 1,
                FIRST_ANNUAL_YEAR)
    last = today.year if today >= date(today.year, 4, 1) else today.year - 1
    return list(range(first, last + 1))


def _versioner(fetcher: Fetcher, base: str, today: date, since: date | None
               ) -> Iterator[ArchivedVersion]:
    first = max(POINT_IN_TIME_SINCE, since.isoformat()) if since else POINT_IN_TIME_SINCE
    for day, facts in schedule_versions(version_pages(fetcher, base), first=first):
        if day > today.isoformat():
            break  # a version dated in the future is not the law of any day yet
        url = f"{base}/api/versioner/v1/full/{day}/title-21.xml"
        response = fetcher.get(url, params={"part": PART})
        yield ArchivedVersion(
            url=response.final_url or f"{url}?part={PART}", content=response.content,
            evidence_date=day, ident=day,
            content_type=response.headers.get("Content-Type") or "application/xml",
            meta={**facts, "granularity": ECFR_GRANULARITY, "fetched_via": "versioner",
                  "archive": "eCFR versioner"})


def _annual(fetcher: Fetcher, endpoints: Mapping[str, str], today: date,
            since: date | None) -> Iterator[ArchivedVersion]:
    base = endpoints.get("annual_url") or ANNUAL_ENDPOINT
    years = annual_years(today, since)
    for year in years:
        url = annual_url(base, year)
        try:
            response = fetcher.get(url)
        except FetchError as error:
            if error.status == 404 and year == years[-1]:
                return  # this year's edition is not published yet
            raise
        day = f"{year}-04-01"
        meta = {"granularity": ANNUAL_GRANULARITY, "revised_as_of": day,
                "fetched_via": "govinfo-annual", "archive": "govinfo annual CFR",
                "edition": str(year), "volume_bytes": str(len(response.content))}
        try:
            content, facts = part_1308(response.content)
        except ExtractionError as error:
            # Archived as served and skipped by the parser, with the reason.
            content, facts = response.content, {"annual_error": str(error)[:300]}
        yield ArchivedVersion(url=response.final_url or url, content=content,
                              evidence_date=day, ident=f"CFR-{year}-title21-vol9",
                              content_type="application/xml",
                              meta={**{k: v[:200] for k, v in facts.items()}, **meta})


def read_ecfr_archive(fetcher: Fetcher, context: FetchContext,
                      since: date | None) -> Iterator[ArchivedVersion]:
    """The archive of ``us-ecfr-1308`` (``Source.archive``): the versioner's point-in-time
    versions, or the annual editions when robots.txt forbids ``/api/versioner/v1/full/``
    (asked through the fetcher, as the live fetch plan does)."""
    base = context.endpoints["url"].rstrip("/")
    probe = f"{base}/api/versioner/v1/full/{POINT_IN_TIME_SINCE}/title-21.xml?part={PART}"
    if fetcher.allowed(probe):
        yield from _versioner(fetcher, base, context.today, since)
    else:
        yield from _annual(fetcher, context.endpoints, context.today, since)
