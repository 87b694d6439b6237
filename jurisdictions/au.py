"""Australia: the Poisons Standard (SUSMP) from the Federal Register of Legislation — a fetch
plan that finds the in-force instrument through the register's OData API, and a parser of the
instrument's Word original that reads every schedule (2–10) and appendix.

The Standard is replaced wholesale several times a year, each time under a new register id
(F2024L01228, …, F2026L00633), so the fetch plan first asks which "Poisons Standard" title is
in force, then downloads that title's Word file. The parser streams ``word/document.xml``
straight out of the zip (lxml ``iterparse``, one paragraph at a time, each freed after use):
the June 2026 original is ~1 MB zipped with 4,278 entries and its document.xml several MB, so
neither python-docx (an object per paragraph and run) nor a whole lxml tree is held.
"""

from __future__ import annotations

import io
import re
import string
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from jurisdictions.base import FetchContext, Fetched, Fetcher, Source
from jurisdictions.matching import substance_key
from jurisdictions.parsing import (
    MONTH_NUMBERS,
    MONTHS_EN,
    iterparse,
    load_json,
    release,
    xml_parser,
)
from jurisdictions.substances import Substance, WatchList
from scrapers.errors import ExtractionError, FetchError
from scrapers.records import (
    CONTROL_LEVELS,
    Document,
    ParseResult,
    StatusRecord,
    name_key,
    normalise_text,
    strip_controls,
)

if TYPE_CHECKING:  # pragma: no cover
    from lxml import etree

CODE = "au"
NAME = "Australia"
TIMEZONE = "Australia/Sydney"

#: Local schedule and appendix labels → ``scrapers.records.CONTROL_LEVELS``. A reading aid
#: only: the local label is always shown beside it.
#:
#: - 9 (Prohibited Substance) and 10 (prohibition of sale, supply and use) → C1;
#: - 8 (Controlled Drug) → C2, the strictest medical control;
#: - 4 (Prescription Only Medicine / Prescription Animal Remedy) → C4;
#: - 2 (Pharmacy Medicine) and 3 (Pharmacist Only Medicine) → C5;
#: - 5, 6, 7 (Caution, Poison, Dangerous Poison) → C6: poisons, not medicine schedules;
#: - every appendix → C6. An appendix adds conditions to (or, Appendix B, exempts from)
#:   scheduling; it is not a schedule of its own. Schedule 1 is intentionally blank.
SCHEDULE_LEVELS: dict[str, str] = {
    "2": "C5",
    "3": "C5",
    "4": "C4",
    "5": "C6",
    "6": "C6",
    "7": "C6",
    "8": "C2",
    "9": "C1",
    "10": "C1",
    **{f"Appendix {letter}": "C6" for letter in string.ascii_uppercase[:14]},  # A–N
}

#: The schedules every healthy Standard has, each with entries (landmarks).
SCHEDULES: tuple[str, ...] = tuple(str(n) for n in range(2, 11))

#: Appendices whose listing means "no control" rather than a control: Appendix B is
#: "Substances considered not to require control by scheduling".
UNCONTROLLED_APPENDICES = frozenset({"Appendix B"})

SOURCE_ID = "au-poisons-standard"
WORD_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
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


# --- fetch plan ---------------------------------------------------------------------------


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

# --- parser -------------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_P = f"{{{_W}}}p"
_T = f"{{{_W}}}t"
_P_PR = f"{{{_W}}}pPr"
_P_STYLE = f"{{{_W}}}pStyle"
_VAL = f"{{{_W}}}val"
_BLANKS = frozenset({f"{{{_W}}}tab", f"{{{_W}}}br", f"{{{_W}}}cr", f"{{{_W}}}ptab"})
_HYPHENS = frozenset({f"{{{_W}}}noBreakHyphen"})
#: The elements a paragraph's text is made of, for ``iter`` (which walks in document order).
_TEXT_TAGS = (_T, *sorted(_HYPHENS), *sorted(_BLANKS))
#: Subtrees whose text is not the paragraph's own: properties, drawings and text boxes (their
#: paragraphs are visited on their own), the duplicate Fallback copy of alternate content,
#: deleted text and field codes.
_SKIP = frozenset({f"{{{_W}}}pPr", f"{{{_W}}}rPr", f"{{{_W}}}drawing", f"{{{_W}}}pict",
                   f"{{{_W}}}txbxContent", f"{{{_W}}}delText", f"{{{_W}}}instrText",
                   f"{{{_W}}}del", f"{{{_W}}}moveFrom", f"{{{_W}}}softHyphen",
                   f"{{{_MC}}}Fallback"})
#: A text element under one of these (below the paragraph) is not the paragraph's text: the
#: skipped subtrees, a nested paragraph (visited on its own), and the text elements
#: themselves (never read inside: ``w:pPr/w:tabs/w:tab`` tab stops are under ``w:pPr``).
_NOT_OWN = _SKIP | {_P, _T} | _HYPHENS | _BLANKS

#: Style names (case and spaces ignored) → paragraph role. Word writes a paragraph's style
#: *id* (``w:pStyle/@w:val``), which need not equal the name; ids are resolved through
#: word/styles.xml first.
_ROLES: dict[str, str] = {
    "acthead1": "heading",
    "poisonsstandardscheduleentry": "entry",
    "normal-hanging": "entry",
    "poisonsstandardscheduleentryparagraph": "qualification",
    "poisonsstandardscheduleentrycaveat": "qualification",
    "paragraph": "qualification",
    "paragraphsub": "qualification",
}

_SCHEDULE_HEADING = re.compile(r"Schedule\s+(\d{1,2})\b", re.IGNORECASE)
_APPENDIX_HEADING = re.compile(r"Appendix\s+([A-Z])\b", re.IGNORECASE)
_TITLE = re.compile(r"Therapeutic Goods \(Poisons Standard[^)]*\) Instrument \d{4}"
                    r"|\bPoisons Standard (?:January|February|March|April|May|June|July|August"
                    r"|September|October|November|December) \d{4}\b")
_COMMENCES = re.compile(r"commences on (\d{1,2}) ([A-Z][a-z]+) (\d{4})")
#: Leading name markers and their meaning, as recorded in the basis.
_MARKERS = {"#": "marked # (Appendix D)", "*": "marked * (trivial name)"}
#: ``*`` mid-entry before a bracketed name marks that name as the substance's trivial name:
#: "BENZYLPIPERAZINE *(BZP).", "…PHENYLPROPANE *(STP or DOM)." (the real June 2026
#: Standard, regulator-documents/README.md).
_TRIVIAL = re.compile(r"\*\s*\(([^()]*)\)")
_TRIVIAL_SPLIT = re.compile(r"\s+or\s+|\s*;\s*|,\s+")
#: The label of the Standard's commencement in a record's ``dates``: the date the whole
#: instrument speaks from, never the date an entry took effect (KETAMINE has been in
#: Schedule 8 through many Standards).
COMMENCEMENT_LABEL = "Poisons Standard commences"

# --- resource caps for an untrusted Word file (issue 16: a 110 KiB .docx whose document.xml
# --- inflated to 50 MB took 2 min 18 s and 924 MiB) ---------------------------------------
#: word/document.xml inflating past this is refused before it is inflated. The register's
#: Word original of F2026L00633 (4,278 entries) is 966,941 bytes zipped; Word's XML deflates
#: 8–12× (the real AAO original: document.xml 489,385 bytes from 59,332), so the real
#: document.xml is ~8–12 MB and no more than ~15 MB: 32 MiB leaves twice that.
MAX_DOCUMENT_XML_BYTES = 32 * 1024 * 1024
#: Any other part read whole (word/styles.xml: 45,566 bytes in the real AAO original).
MAX_PART_BYTES = 4 * 1024 * 1024
#: Paragraphs (``w:p``, empty ones included) in document.xml. The real AAO original has one
#: per ~310 bytes (1,569 in 489 KB): ~30,000–50,000 for a real Standard; 250,000 is 5× that.
MAX_PARAGRAPHS = 250_000
#: Elements in document.xml: the real AAO original has one per ~45 bytes (10,925), so a real
#: Standard has ~200,000–350,000; 2,000,000 is 6× that.
MAX_ELEMENTS = 2_000_000
#: Elements inside one paragraph (held until the paragraph ends). A real entry has a few
#: runs of a few elements each; a Standard's longest qualification, some hundreds.
MAX_PARAGRAPH_ELEMENTS = 20_000


@dataclass(frozen=True)
class Entry:
    """One schedule or appendix entry: the substance name as printed (capitals), its markers,
    its trivial names (bracketed after a mid-entry ``*``), the entry paragraph and the
    qualification paragraphs under it."""

    section: str  # "8" or "Appendix D"
    name: str
    markers: str
    text: str
    qualifications: tuple[str, ...] = ()
    trivial_names: tuple[str, ...] = ()

    @property
    def listed_as(self) -> str:
        return " | ".join((self.text, *self.qualifications))

    @property
    def citation(self) -> str:
        return section_citation(self.section)


@dataclass(frozen=True)
class _Paragraph:
    role: str  # heading | entry | qualification | other (cover paragraphs only)
    text: str  # ``paragraph_text``


#: The one object every empty heading shares (an empty ActHead1 still ends a section).
_EMPTY_HEADING = _Paragraph("heading", "")


def parse_poisons_standard(document: Document, watch: WatchList) -> ParseResult:
    """The status of each watched substance (or, with ``watch.all_entries``, of every entry)
    in one Poisons Standard Word document. Raises ``ExtractionError`` when the document is
    not a Word file, is another instrument ("not a Poisons Standard"), or lacks the
    Standard's landmarks (schedule headings with entries)."""
    paragraphs, _ = read_docx(document.content)
    cover = _cover_text(paragraphs)
    own_title = _find_title(cover)
    try:
        entries = collect_entries(paragraphs)
        _check_landmarks(entries)
    except ExtractionError as error:
        if own_title is None:
            raise _not_a_standard(cover, error) from None
        raise
    meta = document.meta
    title = meta.get("instrument_title") or own_title
    instrument = meta.get("instrument_id") or title
    if not instrument:
        raise ExtractionError(f"{document.url}: no register id was recorded with the document "
                              "and its cover names no Poisons Standard title")
    dates = document_dates(cover, meta)
    records = build_records(entries, watch, instrument=instrument, dates=dates,
                            document=document,
                            evidence_date=commencement_of(dates))
    return ParseResult(records=records, document_dates=dates, title=title,
                       instrument=instrument)


def _not_a_standard(cover: Sequence[str], error: ExtractionError) -> ExtractionError:
    """The error for a Word file that lacks the Standard's landmarks and whose first page
    names no Poisons Standard: another instrument (the register's Administrative
    Arrangements Order, say), named by its first lines."""
    begins = " ".join(" ".join(cover[:2]).split())[:80]
    found = f" (it begins {begins!r})" if begins else ""
    reason = str(error).split(";")[0].removeprefix("the Word document ")
    return ExtractionError(f"the Word document is not a Poisons Standard{found}: its cover "
                           f"names no Poisons Standard and {reason}")


def read_docx(content: bytes) -> tuple[list[_Paragraph], dict[str, str]]:
    """The paragraphs of ``word/document.xml`` that the parser reads, in document order, each
    with its role and text, and the styleId → name map of ``word/styles.xml`` that gave the
    roles. Kept: every heading, non-empty entry and qualification paragraphs, and non-empty
    paragraphs of the cover (before the first schedule heading); nothing else is kept, so a
    paragraph that is empty or read by nothing costs no object.

    document.xml is streamed out of the zip: each paragraph is read when it ends, then
    cleared with the siblings before it, so memory stays at a few paragraphs and not the
    whole tree (a real Standard's document.xml is several MB, ~10× that as an lxml tree).
    Sizes, paragraphs and elements are capped (``MAX_*``)."""
    try:
        package = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as error:
        start = content[:40].decode("utf-8", "replace")
        raise ExtractionError("the document is not a Word (.docx) file: not a zip archive "
                              f"(it starts {start!r})") from error
    with package:
        names = set(package.namelist())
        if "word/document.xml" not in names:
            raise ExtractionError("the document is a zip archive but not a Word document "
                                  "(no word/document.xml)")
        _check_size(package, "word/document.xml", MAX_DOCUMENT_XML_BYTES)
        try:
            styles = _style_names(_xml(package, "word/styles.xml")) \
                if "word/styles.xml" in names else {}
        except ExtractionError:
            # The body is read first to the end when both parts are broken, so its error
            # is the one reported (as when the body was parsed before the styles).
            for _ in _body_paragraphs(package, {}):
                pass
            raise
        paragraphs = list(_body_paragraphs(package, styles))
    return paragraphs, styles


def _check_size(package: zipfile.ZipFile, name: str, limit: int | None = None) -> None:
    """Refuse a part that declares a size past ``limit`` (a zip bomb); zipfile never
    inflates more than the declared size, and a part that is larger fails its CRC."""
    limit = MAX_PART_BYTES if limit is None else limit
    if package.getinfo(name).file_size > limit:
        raise ExtractionError(f"{name} inflates to more than {_megabytes(limit)}; refused "
                              "(a real Poisons Standard's is ~10 MB: a zip bomb or not the "
                              "Standard)")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


class _CappedStream:
    """A zip member read through a byte counter: even if the zip's declared size lied,
    no more than ``limit`` bytes are ever handed to the XML parser."""

    def __init__(self, stream: IO[bytes], name: str, limit: int) -> None:
        self._stream, self._name, self._left, self._limit = stream, name, limit, limit

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if 0 <= size <= self._left + 1 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise ExtractionError(f"{self._name} inflates to more than "
                                  f"{_megabytes(self._limit)}; refused")
        return data


def _unreadable(name: str, error: Exception) -> ExtractionError:
    return ExtractionError(f"{name} in the Word document is not readable XML: {error}")


def _xml(package: zipfile.ZipFile, name: str) -> etree._Element:
    from lxml import etree  # imported here: a warm run that parses nothing never loads it

    _check_size(package, name)
    try:
        return etree.fromstring(package.read(name), xml_parser())
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError) as error:
        raise _unreadable(name, error) from error


def _too_many(what: str, limit: int) -> ExtractionError:
    return ExtractionError(f"word/document.xml has more than {limit:,} {what}; refused (a "
                           "real Poisons Standard has a tenth of that: not the Standard, or "
                           "a document built to exhaust memory)")


def _body_paragraphs(package: zipfile.ZipFile, styles: Mapping[str, str]
                     ) -> Iterator[_Paragraph]:
    """The kept paragraphs (``read_docx``) of word/document.xml in document order (a
    paragraph nested in a text box right after the one holding it), streamed with
    ``iterparse``. Text is read for the cover (up to the first schedule heading) and for
    paragraphs whose role the parser reads.

    Every element is counted on its end event; an element outside any paragraph (table
    rows and cells, section properties) is released when it ends, as a paragraph is, so a
    document of any shape holds only the open path and the current paragraph."""
    from lxml import etree

    name = "word/document.xml"
    roles: dict[str | None, str] = {}
    cover = True
    depth = 0  # open w:p elements
    elements = paragraphs = started = 0
    try:
        with package.open(name) as raw:
            stream = _CappedStream(raw, name, MAX_DOCUMENT_XML_BYTES)
            # iterparse needs only ``read``: the counter stands in for the file object.
            for event, element in iterparse(cast(IO[bytes], stream), events=("start", "end")):
                if event == "start":
                    if element.tag == _P:
                        if not depth:
                            started = elements
                        depth += 1
                    continue
                elements += 1
                if elements > MAX_ELEMENTS:
                    raise _too_many("elements", MAX_ELEMENTS)
                if element.tag != _P:
                    if not depth:
                        release(element)
                    elif elements - started > MAX_PARAGRAPH_ELEMENTS:
                        raise _too_many("elements in one paragraph", MAX_PARAGRAPH_ELEMENTS)
                    continue
                depth -= 1
                paragraphs += 1
                if paragraphs > MAX_PARAGRAPHS:
                    raise _too_many("paragraphs", MAX_PARAGRAPHS)
                if depth:
                    continue  # read with the paragraph that holds it, in document order
                for p in element.iter(_P):
                    style_id = paragraph_style(p)
                    role = roles.get(style_id) or roles.setdefault(style_id,
                                                                   _role(style_id, styles))
                    if role == "other" and not cover:
                        continue  # nothing reads it: no text, no object
                    text = paragraph_text(p) if len(p) else ""  # no children: no text
                    if role == "heading":
                        if cover and section_label(text) is not None:
                            cover = False
                        yield _Paragraph(role, text) if text else _EMPTY_HEADING
                    elif text:
                        yield _Paragraph(role, text)
                release(element)
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError) as error:
        raise _unreadable(name, error) from error

def _style_names(styles: etree._Element) -> dict[str, str]:
    names: dict[str, str] = {}
    for style in styles.iter(f"{{{_W}}}style"):
        style_id = style.get(f"{{{_W}}}styleId")
        name = style.find(f"{{{_W}}}name")
        if style_id and name is not None and name.get(_VAL):
            names[style_id] = name.get(_VAL, "")
    return names


def paragraph_style(p: etree._Element) -> str | None:
    """The style id of a paragraph (``w:pPr/w:pStyle/@w:val``), as ``p.find`` would find it
    but without ElementPath's per-call cost."""
    for properties in p.iterchildren(_P_PR):
        for style in properties.iterchildren(_P_STYLE):
            return style.get(_VAL)
    return None


def _role(style_id: str | None, styles: Mapping[str, str]) -> str:
    if not style_id:
        return "other"
    name = styles.get(style_id, style_id)
    return _ROLES.get(_style_key(name)) or _ROLES.get(_style_key(style_id)) or "other"


def _style_key(name: str) -> str:
    return name.replace(" ", "").lower()


def paragraph_text(p: etree._Element) -> str:
    """A paragraph's text from its runs: ``w:noBreakHyphen`` is a hyphen the text nodes do not
    hold (so ``itertext()`` would read "NETHYLPENTYLONE"), tabs and breaks are spaces. Text
    under properties, drawings, text boxes, deletions, field codes, the Fallback copy of
    alternate content and nested paragraphs (``_SKIP``) is not the paragraph's own."""
    parts: list[str] = []
    for node in p.iter(*_TEXT_TAGS):
        parent = node.getparent()
        while parent is not p:  # usually one step: w:r, whose parent is the paragraph
            if parent is None or parent.tag in _NOT_OWN:
                break
            parent = parent.getparent()
        else:
            tag = node.tag
            parts.append((node.text or "") if tag == _T else "-" if tag in _HYPHENS else " ")
    return " ".join("".join(parts).split())


def normalise_spaced(text: str) -> str:
    """``normalise_text`` of a text whose whitespace is already single spaces, none at either
    end (``" ".join(words)``, as ``paragraph_text`` gives). ASCII text without "- (" is
    returned as it is: Unicode normalisation, dash and no-break-space folding change only
    non-ASCII characters, and the hyphen rule needs "- (" — the regex passes cost ~6 µs a
    paragraph, thousands of times per Standard."""
    if text.isascii() and text.isprintable() and "- (" not in text:
        return text
    return normalise_text(text)


def section_label(heading: str) -> str | None:
    """"Schedule 8—Controlled Drug" → "8"; "Appendix D—…" → "Appendix D"; other → None."""
    match = _SCHEDULE_HEADING.match(heading)
    if match:
        return str(int(match.group(1)))
    match = _APPENDIX_HEADING.match(heading)
    return f"Appendix {match.group(1).upper()}" if match else None


def section_citation(label: str) -> str:
    return f"App. {label.split()[-1]}" if label.startswith("Appendix") else f"Sch. {label}"


def entry_name(text: str) -> tuple[str, str]:
    """The substance name an entry starts with, and its markers: "#NANDROLONE." →
    ("NANDROLONE", "#"). Names are in capitals and end at the first word that is mostly
    lower case ("CANNABIS (including …", "IBUPROFEN except"); locants, Greek letters and
    "(2C-B)" stay part of the name. A mid-entry ``*`` ends the name: "BENZYLPIPERAZINE
    *(BZP)." → ("BENZYLPIPERAZINE", ""); the bracket is the trivial name
    (``trivial_names``)."""
    rest = text.strip()
    markers = ""
    while rest[:1] in _MARKERS:
        markers += rest[0]
        rest = rest[1:].lstrip()
    star = rest.find("*")
    if star >= 0:
        rest = rest[:star]
    words: list[str] = []
    for token in rest.split():
        lower = sum(1 for ch in token if "a" <= ch <= "z")
        upper = sum(1 for ch in token if "A" <= ch <= "Z")
        if lower > upper:
            break
        words.append(token)
    while words and not any("A" <= ch <= "Z" for ch in words[-1]):
        words.pop()  # "… 25 000 units": trailing numbers belong to the qualification
    name = " ".join(words).rstrip(" .,;:(")
    return normalise_spaced(name), markers


def trivial_names(text: str) -> tuple[str, ...]:
    """The trivial names an entry gives after a mid-entry ``*``: "BENZYLPIPERAZINE *(BZP)."
    → ("BZP",); "…PHENYLPROPANE *(STP or DOM)." → ("STP", "DOM")."""
    match = _TRIVIAL.search(text.strip().lstrip("".join(_MARKERS)))
    if not match:
        return ()
    names = (normalise_spaced(" ".join(part.split()))
             for part in _TRIVIAL_SPLIT.split(match.group(1)))
    return tuple(dict.fromkeys(name for name in names if name))


def collect_entries(paragraphs: Iterable[_Paragraph]) -> list[Entry]:
    """Entries of Schedules 2–10 and the appendices, each with the qualification paragraphs
    that follow it. Other ActHead1 headings (Schedule 1, which is blank) end a section.
    Raises ``ExtractionError`` when no paragraph is an ActHead1 schedule heading."""
    entries: list[Entry] = []
    section: str | None = None
    seen_headings = False
    for paragraph in paragraphs:
        if paragraph.role == "heading":
            label = section_label(paragraph.text)
            seen_headings = seen_headings or label is not None
            section = label if label in SCHEDULE_LEVELS else None
            continue
        if section is None or paragraph.role not in ("entry", "qualification"):
            continue
        text = normalise_spaced(paragraph.text)
        if not text:
            continue
        name, markers = entry_name(text) if paragraph.role == "entry" else ("", "")
        if name:
            entries.append(Entry(section, name, markers, text,
                                 trivial_names=trivial_names(text)))
        elif entries and entries[-1].section == section:
            # A qualification (or an entry-styled continuation without a capital name)
            # belongs to the entry above it.
            last = entries[-1]
            entries[-1] = Entry(last.section, last.name, last.markers, last.text,
                                (*last.qualifications, text), last.trivial_names)
    if not seen_headings:
        raise ExtractionError("the Word document has no 'Schedule N—…' headings in paragraph "
                              "style ActHead1; it is not the Poisons Standard as schedwatch "
                              "knows it (wrong document, or the register changed its styles)")
    return entries


def _check_landmarks(entries: Sequence[Entry]) -> None:
    present = {entry.section for entry in entries}
    missing = [label for label in SCHEDULES if label not in present]
    if missing:
        raise ExtractionError("the Word document has no entries (paragraph styles "
                              "PoisonsStandardScheduleEntry / Normal-hanging) in Schedule "
                              f"{', '.join(missing)}; a Poisons Standard lists substances in "
                              "every schedule from 2 to 10, so the structure is not what "
                              "schedwatch knows")


def _cover_text(paragraphs: Sequence[_Paragraph]) -> list[str]:
    """Text of the paragraphs before the first schedule heading: title and commencement."""
    cover: list[str] = []
    for paragraph in paragraphs:
        text = paragraph.text
        if paragraph.role == "heading" and section_label(text) is not None:
            break
        if text:
            cover.append(text)
    return cover


def _find_title(cover: Iterable[str]) -> str | None:
    for text in cover:
        match = _TITLE.search(text)
        if match:
            return match.group(0)
    return None


def stated_commencement(cover: Iterable[str]) -> str | None:
    """"This instrument commences on 1 June 2026." → "2026-06-01"."""
    for text in cover:
        match = _COMMENCES.search(text)
        if match and match.group(2).lower() in MONTHS_EN:
            day, month, year = match.groups()
            try:
                return date(int(year), MONTH_NUMBERS[month.lower()], int(day)).isoformat()
            except ValueError:
                continue
    return None


def document_dates(cover: Iterable[str], meta: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The Standard's commencement as the instrument states it (else as the register's
    version ``start`` has it), labelled ``COMMENCEMENT_LABEL``, and the registration date
    (Sydney) the register recorded."""
    dates: list[tuple[str, str]] = []
    commencement = stated_commencement(cover) or meta.get("commencement")
    if commencement:
        dates.append((COMMENCEMENT_LABEL, commencement))
    registered = meta.get("registered_at")
    if registered:
        try:
            dates.append(("registered", _local_date(datetime.fromisoformat(registered))
                          .isoformat()))
        except ValueError:
            pass
    return tuple(dates)


def commencement_of(dates: Iterable[tuple[str, str]]) -> str | None:
    """The Standard's commencement among ``document_dates``: the date the document speaks
    for (``StatusRecord.evidence_date``)."""
    return next((value for label, value in dates if label == COMMENCEMENT_LABEL), None)


def _section_order(label: str) -> tuple[int, str]:
    return (0, f"{int(label):02d}") if label.isdigit() else (1, label)


def group_entries(entries: Iterable[Entry], watch: WatchList) -> dict[str, list[Entry]]:
    """Entries by record key: the watched substance an entry names (as ``watch.match`` would
    find it, through one lookup table instead of a scan per entry: the real Standard has
    4,278 entries), by its name or else by one of its trivial names (the Standard's own
    synonyms: ``watch = ["BZP"]`` finds BENZYLPIPERAZINE *(BZP)); else, with
    ``watch.all_entries``, its cross-jurisdiction key (``substance_key``), from its name or,
    when only a trivial name is a known synonym, from that."""
    by_name: dict[str, str] = {}
    for substance in reversed(watch.substances):  # the first substance naming it wins
        for name in substance.names():
            by_name[name_key(name)] = substance.key
    grouped: dict[str, list[Entry]] = {}
    for entry in entries:
        key = by_name.get(name_key(entry.name)) or next(
            (by_name[k] for k in map(name_key, entry.trivial_names) if k in by_name), "")
        if not key and watch.all_entries:
            key = _all_entries_key(entry)
        if key:
            grouped.setdefault(key, []).append(entry)
    return grouped


def _all_entries_key(entry: Entry) -> str:
    """``substance_key`` of the entry's name; when that links to no other spelling, of the
    first trivial name that does (so an entry whose INN is unknown but whose trivial name
    is a known synonym lines up with the other jurisdictions)."""
    own = name_key(entry.name)
    key = substance_key(entry.name)
    if key != own:
        return key
    for trivial in entry.trivial_names:
        linked = substance_key(trivial)
        if linked != name_key(trivial):
            return linked
    return key


def build_records(entries: Sequence[Entry], watch: WatchList, *, instrument: str,
                  dates: tuple[tuple[str, str], ...], document: Document,
                  evidence_date: str | None = None) -> tuple[StatusRecord, ...]:
    """One record per watched substance (listed or not), plus one per other entry when the
    watch list is "all". A substance in several schedules is one record.

    ``evidence_date`` is the Standard's commencement: the date the document speaks for. It
    is not the date any status took effect (KETAMINE has been in Schedule 8 through many
    Standards), so neither ``in_force_since`` nor ``effective_from`` is set: the store fills
    in the earliest evidence held."""
    grouped = group_entries(entries, watch)
    retrieved_at = document.retrieved_at.isoformat()

    def record(key: str, **fields: Any) -> StatusRecord:
        return StatusRecord(jurisdiction=CODE, substance=key, instrument=instrument,
                            source_id=document.source_id, source_url=document.url,
                            document_sha256=document.sha256, retrieved_at=retrieved_at,
                            dates=dates, evidence_date=evidence_date, **fields)

    records: list[StatusRecord] = []
    for substance in watch.substances:
        listed = grouped.get(substance.key)
        if listed:
            records.append(record(substance.key, **listed_fields(listed)))
        else:
            records.append(record(substance.key,
                                  **unlisted_fields(substance, grouped, instrument)))
    watched = set(watch.keys)
    for key in sorted(grouped):
        if key not in watched:
            records.append(record(key, **listed_fields(grouped[key])))
    return tuple(records)


def listed_fields(entries: Sequence[Entry]) -> dict[str, Any]:
    """Status fields of a substance listed in one or more entries."""
    ordered = sorted(entries, key=lambda e: _section_order(e.section))
    sections = list(dict.fromkeys(e.section for e in ordered))
    schedules = [s for s in sections if s.isdigit()]
    appendices = [s for s in sections if not s.isdigit()]
    if schedules:
        status, labels = "controlled", schedules
    elif all(a in UNCONTROLLED_APPENDICES for a in appendices):
        status, labels = "not_controlled", []
    else:
        status, labels = "controlled", [a for a in appendices
                                        if a not in UNCONTROLLED_APPENDICES]
    levels = [SCHEDULE_LEVELS[label] for label in labels if label in SCHEDULE_LEVELS]
    order = list(CONTROL_LEVELS)
    level = min(levels, key=order.index) if levels else None
    markers = dict.fromkeys(ch for e in ordered for ch in e.markers)
    trivial = list(dict.fromkeys(name for e in ordered for name in e.trivial_names))
    notes = [_MARKERS[ch] for ch in markers]
    if trivial:
        notes.append(f"trivial name {' or '.join(trivial)} (marked * in the entry: the "
                     "bracketed name after * is the substance's trivial name)")
    basis = "; ".join(["named", *notes])
    if not schedules and status == "not_controlled":
        basis = f"{basis}; listed only in {', '.join(appendices)}"
    provision = "; ".join(dict.fromkeys(f"{e.citation}, entry {e.name}" for e in ordered))
    listed_as = ordered[0].listed_as if len(ordered) == 1 else \
        " || ".join(f"[{e.citation}] {e.listed_as}" for e in ordered)
    return {"status": status, "schedule": ", ".join(labels) or None, "control_level": level,
            "provision": provision, "listed_as": listed_as, "basis": basis}


def unlisted_fields(substance: Substance, grouped: Mapping[str, Sequence[Entry]],
                    instrument: str) -> dict[str, Any]:
    """A watched substance the Standard does not name: not controlled *by this document's
    words*. When it is an isomer of a listed substance (esketamine, arketamine of ketamine)
    the basis says so and names the parent entry, so a reader sees both facts."""
    basis = f"not listed in the Poisons Standard {instrument}"
    parent_entry = None
    parent = grouped.get(substance.covered_by or "")
    if parent:
        parent_name = parent[0].name
        citations = ", ".join(dict.fromkeys(e.citation for e in parent))
        words = substance.relation or "related substance"
        mentions = any("isomer" in e.listed_as.lower() for e in parent)
        basis += (f"; {words} of {parent_name} ({citations}), whose entry "
                  + ("mentions isomers: read its text" if mentions else "does not name isomers"))
        parent_entry = f"{parent_name} ({citations})"
    return {"status": "not_controlled", "schedule": None, "control_level": None,
            "provision": None, "listed_as": None, "basis": basis,
            "parent_entry": parent_entry}


SOURCES: tuple[Source, ...] = (
    Source(
        id=SOURCE_ID,
        jurisdiction=CODE,
        title="Poisons Standard (SUSMP), Federal Register of Legislation",
        endpoints={"url": API_URL, "register_url": REGISTER_URL},
        parse=parse_poisons_standard,
        fetch_plan=fetch_poisons_standard,
        media_type=WORD_MEDIA_TYPE,
        # robots.txt of www.legislation.gov.au: Crawl-delay: 10 (third-party copy,
        # 2026-09-05); HttpFetcher honours the Crawl-delay itself as well.
    ),
)
