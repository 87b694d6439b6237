"""The Poisons Standard's fetch plan: find the in-force Standard through the Federal Register of
Legislation's OData API (titles → versions) and download its Word original, addressed by the
URL forms real material confirms (``word_urls``). Every API answer is untrusted: anything of
a shape this module does not know is an ``ExtractionError``, never an internal error.

The register dates things in Australian time: ``start`` has no time zone and may carry seven
sub-second digits ("2023-09-01T00:00:00.0000000"); it is an Australian calendar date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jurisdictions.base import FetchContext, Fetched, Fetcher
from jurisdictions.parsing import load_json
from scrapers.errors import ExtractionError, FetchError
from scrapers.records import strip_controls

TIMEZONE = "Australia/Sydney"
API_URL = "https://api.prod.legislation.gov.au/v1"
REGISTER_URL = "https://www.legislation.gov.au"

#: Titles whose name contains this are candidates; the amending instruments ("… Amendment
#: Instrument …") and repealed Standards share the phrase and are filtered out client-side.
TITLE_FILTER = "contains(name,'Poisons Standard')"
#: The newest titles suffice: a Standard is made every few months, so the in-force one is
#: always among the most recently made. Status is checked client-side: the API has no
#: public documentation, and no verified example filters titles on ``status``.
TITLE_PAGE = 50
#: At most this many in-force candidates are looked up (one versions request each): a
#: replacement registered before it commences may already read "InForce".
MAX_CANDIDATES = 3

_REGISTER_ID = re.compile(r"[A-Z]\d{4}[A-Z]\d{5,6}")
_SYDNEY = ZoneInfo(TIMEZONE)


@dataclass(frozen=True)
class Instrument:
    """The in-force Standard as the register describes it."""

    title_id: str
    title: str
    register_id: str  # the version's id: the title id for the as-made text
    commencement: date  # the version's ``start``, an Australian calendar date
    #: The version's ``registeredAt``; None only for a compilation whose row lacks it (the
    #: as-made text is addressed by its registration date, a compilation by its start).
    registered_at: datetime | None

    @property
    def registered(self) -> date | None:
        return _local_date(self.registered_at) if self.registered_at else None

    @property
    def as_made(self) -> bool:
        """Whether this version is the instrument as made: its register id is the title's."""
        return self.register_id == self.title_id

    @property
    def marker(self) -> str:
        return f"{self.title_id}@{self.commencement.isoformat()}"

    def meta(self) -> dict[str, str]:
        meta = {
            "instrument_id": self.title_id,
            "instrument_title": self.title,
            "register_id": self.register_id,
            "commencement": self.commencement.isoformat(),
        }
        if self.registered_at is not None:
            meta["registered_at"] = self.registered_at.isoformat()
        return meta


def fetch_poisons_standard(fetcher: Fetcher, context: FetchContext) -> Fetched:
    """Find the in-force Poisons Standard through the register's API and download its Word
    original, unless its id and commencement equal the saved marker. Usually two small API
    requests and one download (one more API request while a registered replacement waits
    for its commencement, one more download per URL form that answers 404: ``word_urls``):
    the register's robots.txt asks for 10 s between requests."""
    api = context.endpoints.get("url", API_URL).rstrip("/")
    register = context.endpoints.get("register_url", REGISTER_URL).rstrip("/")
    try:
        titles = odata_values(_get_json(fetcher, f"{api}/titles", {
            "$filter": TITLE_FILTER, "$orderby": "makingDate desc", "$top": str(TITLE_PAGE),
        }), f"{api}/titles")
        candidates = in_force_standards(titles)
        if not candidates:
            raise FetchError(f"{api}/titles lists no in-force Poisons Standard (among the "
                             f"{len(titles)} titles named 'Poisons Standard'); the register "
                             "may be between instruments or its API changed — check "
                             f"{register} for the current Standard", kind="empty",
                             url=f"{api}/titles")
        instrument, later = _current_instrument(fetcher, api, candidates, context.today)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as error:
        # Everything the API answers is untrusted: a shape no check above foresaw is that
        # source's extraction failure, never an internal error that ends the whole run.
        raise ExtractionError(f"{api}: the register's API answered in a shape schedwatch "
                              f"does not know ({type(error).__name__})") from None
    urls = word_urls(register, instrument)
    meta = instrument.meta()
    if later is not None:
        meta.update({"next_instrument_id": later.title_id,
                     "next_instrument_title": later.title,
                     "next_commencement": later.commencement.isoformat()})
    if context.marker == instrument.marker:
        return Fetched(url=urls[0], content=None, etag=context.etag,
                       last_modified=context.last_modified, marker=context.marker, meta=meta)
    url, response = _download(fetcher, urls)
    return Fetched(url=response.final_url, content=response.content,
                   content_type=response.headers.get("Content-Type"),
                   etag=response.headers.get("ETag"),
                   last_modified=response.headers.get("Last-Modified"),
                   marker=instrument.marker, meta=meta,
                   redirected_from=url if response.final_url != url else None)


def _download(fetcher: Fetcher, urls: Sequence[str]) -> tuple[str, Any]:
    """The first of ``urls`` that the register serves. Only "not found" (404, 410) moves on to
    the next form; any other failure is the source's failure at once. When every form is
    missing, the error names the first (confirmed) URL and lists the others tried."""
    missing: list[FetchError] = []
    for url in urls:
        try:
            return url, fetcher.get(url)
        except FetchError as error:
            if error.status not in (404, 410):
                raise
            missing.append(error)
    first = missing[0]
    if len(missing) == 1:
        raise first
    raise FetchError(f"{first}; the other URL forms tried are missing too: "
                     f"{', '.join(urls[1:])}", kind=first.kind, status=first.status,
                     url=first.url)


def _current_instrument(fetcher: Fetcher, api: str, candidates: Sequence[Mapping[str, Any]],
                        today: date) -> tuple[Instrument, Instrument | None]:
    """The newest candidate whose current version has commenced, and the newest one that
    has not (a replacement registered ahead of its commencement may read "InForce"). When
    none has commenced, the newest: an "InForce" status is the register's word."""
    found: list[Instrument] = []
    for title in candidates[:MAX_CANDIDATES]:
        title_id = register_id(title.get("id"), "title id")
        versions_url = f"{api}/versions"
        versions = odata_values(_get_json(fetcher, versions_url, {
            "$filter": f"titleId eq '{title_id}'", "$orderby": "start desc", "$top": "10",
        }), versions_url)
        version = current_version(versions, title_id, today)
        if version is None:
            raise ExtractionError(f"{versions_url}: no version of {title_id}; the register's "
                                  "API answers in a shape schedwatch does not know")
        instrument = instrument_from(title, version)
        if instrument.commencement <= today:
            return instrument, found[0] if found else None
        found.append(instrument)
    return found[0], None


def _get_json(fetcher: Fetcher, url: str, params: Mapping[str, str]) -> Any:
    """An API answer as JSON (``parsing.load_json``: depth-limited, HTML named): anything
    else is an ``ExtractionError``."""
    response = fetcher.get(url, params=params, headers={"Accept": "application/json"})
    return load_json(response.content, f"{url} did not answer JSON")


def odata_values(payload: Any, url: str) -> list[Mapping[str, Any]]:
    """The rows of an OData collection answer ``{"@odata.context": …, "value": [...]}``."""
    rows = payload.get("value") if isinstance(payload, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise ExtractionError(f"{url}: the answer is JSON but not an OData collection "
                              "(no \"value\" list)")
    return rows


def in_force_standards(titles: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """In-force principal Poisons Standards, newest first (by making date, then register id,
    which grows with registration). Titles that carry neither ``status`` nor ``isInForce``
    mean the API changed: an extraction failure, not "no instrument in force"."""
    titles = list(titles)
    if titles and not any("status" in t or "isInForce" in t for t in titles):
        raise ExtractionError("the register's titles carry neither status nor isInForce; the "
                              "API changed")
    chosen = [t for t in titles
              if isinstance(t.get("name"), str) and "Poisons Standard" in t["name"]
              and "amendment" not in t["name"].lower()
              and t.get("isPrincipal") is not False and _in_force(t)]
    return sorted(chosen, key=lambda t: (str(t.get("makingDate") or ""), str(t.get("id"))),
                  reverse=True)


def _in_force(title: Mapping[str, Any]) -> bool:
    status = title.get("status")
    if status is not None:
        return status == "InForce"
    return title.get("isInForce") is True


def current_version(versions: Iterable[Mapping[str, Any]], title_id: str,
                    today: date) -> Mapping[str, Any] | None:
    """The latest version of the title that has started by ``today`` (else the latest).
    Starts are compared as Australian calendar dates (``register_date``)."""
    rows = [v for v in versions if v.get("titleId", title_id) == title_id and v.get("start")]
    if not rows:
        return None
    started = [v for v in rows if register_date(v["start"], "start") <= today]
    return max(started or rows, key=lambda v: (register_date(v["start"], "start"),
                                               str(v.get("registeredAt") or "")))


def instrument_from(title: Mapping[str, Any], version: Mapping[str, Any]) -> Instrument:
    title_id = register_id(title.get("id"), "title id")
    name = title.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ExtractionError(f"the register's title {title_id} has no name")
    version_id = register_id(version.get("registerId") or title_id, "registerId")
    registered = version.get("registeredAt")
    if not registered and version_id == title_id:
        raise ExtractionError(f"the register's version of {title_id} has no registeredAt, "
                              "which addresses the as-made text")
    return Instrument(
        title_id=title_id,
        # JSON strings can carry ESC, BEL, NUL: the title is shown in terminals and mail.
        title=" ".join(strip_controls(name).split()),
        register_id=version_id,
        commencement=register_date(version.get("start"), "start"),
        registered_at=_timestamp(registered, "registeredAt") if registered else None,
    )


def register_id(value: Any, what: str) -> str:
    """A register id from the API, checked before it goes into a URL or a query."""
    if not isinstance(value, str) or not _REGISTER_ID.fullmatch(value):
        raise ExtractionError(f"the register's API gave {what} {value!r}, which is not a "
                              "register id like F2026L00633")
    return value


def word_urls(register: str, instrument: Instrument) -> tuple[str, ...]:
    """The Word original's URLs on the register's site, in the order they are tried (the
    next only when the one before answers 404 or 410; tests/fixtures/README.md says which
    forms real material confirms):

    as made (register id = title id), by its registration date in Sydney:
      1. ``/{id}/asmade/{registered}/text/original/word`` — confirmed (F2026L00633/asmade/
         2026-05-28, SOURCES.md §3.1);
      2. the same with the UTC registration date, when that is another day — unconfirmed
         (which calendar the register dates its URLs in is not known for late-UTC times).
    a compilation, by the version's start date:
      1. ``/{id}/{start}/{start}/text/original/word`` — confirmed (a project downloaded 933
         compilations at this form, regulator-documents/README.md);
      2. ``/{id}/latest/{start}/text/original/word`` — unconfirmed, the form built before."""
    base = f"{register}/{instrument.title_id}"
    if instrument.as_made:
        registered = instrument.registered_at
        if registered is None:  # instrument_from refuses it; a hand-made Instrument may not
            raise ExtractionError(f"{instrument.title_id}: the as-made text is addressed by "
                                  "its registration date, which the register did not give")
        days = [_local_date(registered)]
        utc = registered.astimezone(UTC).date() if registered.tzinfo else registered.date()
        if utc not in days:
            days.append(utc)
        return tuple(f"{base}/asmade/{day.isoformat()}/text/original/word" for day in days)
    start = instrument.commencement.isoformat()
    return (f"{base}/{start}/{start}/text/original/word",
            f"{base}/latest/{start}/text/original/word")


def word_url(register: str, instrument: Instrument) -> str:
    """The confirmed (first-tried) URL of the Word original: ``word_urls``."""
    return word_urls(register, instrument)[0]


_REGISTER_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?)(\.\d+)?"
                                 r"(Z|[+-]\d{2}:?\d{2})?)?")


def _timestamp(value: Any, what: str) -> datetime:
    """A register timestamp. The API writes sub-seconds with seven digits
    ("2026-05-28T13:40:38.9539588", more than ``fromisoformat`` takes before Python 3.11):
    they are cut to six. No offset: naive, read as an Australian (register) time."""
    match = _REGISTER_TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match:
        day, clock, fraction, zone = match.groups()
        text = day + (f"T{clock}" if clock else "") + (fraction or "")[:7] \
            + ("+00:00" if zone == "Z" else zone or "")
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise ExtractionError(f"the register's API gave {what} {value!r}, which is not an ISO "
                          "date")


def register_date(value: Any, what: str) -> date:
    """A register date (``start``, ``end``) as an Australian calendar date. The API writes
    them without a time zone ("2023-09-01T00:00:00", "2023-09-01T00:00:00.0000000"): they are
    the register's own (Australian) dates, not UTC, so the date part is the date; one with an
    offset is converted to Sydney time first."""
    return _local_date(_timestamp(value, what))


def _local_date(value: datetime) -> date:
    """A register timestamp as a Sydney calendar date: the register dates things in Sydney
    time, and a 'Z' timestamp late in the UTC day is already the next day there."""
    return value.astimezone(_SYDNEY).date() if value.tzinfo else value.date()
