"""United States: the DEA schedules in 21 CFR Part 1308 (eCFR) and DEA rulemaking on them in
the Federal Register.

Two sources:

* ``us-ecfr-1308``: the eCFR text of §§ 1308.11–1308.15 (Schedules I–V). The fetch plan asks
  the eCFR ``titles.json`` whether Title 21 moved since the last healthy parse, then downloads
  Part 1308 from the versioner ``full`` endpoint (or, when robots.txt disallows that, from the
  govinfo bulk XML of the whole title, reduced to Part 1308 while streaming). The parser walks
  the flat ``P`` paragraphs and tables of each section, tracking the paragraph numbers that
  the GPO schema writes into the text ("(c)", "(7)").
* ``us-federal-register``: DEA rules and proposed rules on Part 1308 (and any that mention
  ketamine) from the Federal Register API, merged into one canonical JSON document. The
  parser reports the final rule in effect for each watched substance and, as pending items,
  open proposals and final rules whose effective date has not come.

``unconfirmed_final_rules`` compares the two: a final rule past its effective date that the
eCFR does not show yet.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jurisdictions.base import FetchContext, Fetched, Fetcher, Source
from jurisdictions.matching import substance_key
from jurisdictions.substances import KNOWN, Substance, WatchList
from scrapers.errors import ExtractionError, FetchError
from scrapers.records import (
    Document,
    ParseResult,
    PendingItem,
    StatusRecord,
    name_key,
    normalise_text,
)

CODE = "us"
NAME = "United States"
TIMEZONE = "America/New_York"

#: US schedule label → the shared control level (scrapers.records.CONTROL_LEVELS).
SCHEDULE_LEVELS: dict[str, str] = {"I": "C1", "II": "C2", "III": "C3", "IV": "C4", "V": "C5"}

ECFR_SOURCE_ID = "us-ecfr-1308"
FR_SOURCE_ID = "us-federal-register"

#: The five schedule sections of Part 1308 and the schedule each holds.
SCHEDULE_SECTIONS: dict[str, str] = {
    "1308.11": "I", "1308.12": "II", "1308.13": "III", "1308.14": "IV", "1308.15": "V",
}
PART = "1308"
NOT_LISTED_BASIS = "not listed in 21 CFR 1308.11–1308.15"
NOT_LISTED_INSTRUMENT = "21 CFR 1308.11–1308.15"

#: Versions of Part 1308 are asked for from this issue date on. The eCFR point-in-time
#: record starts in January 2017, so every section has at least one version after it, and the
#: API answers 400 "An issue_date parameter must be provided." without one (Swagger, 2026).
VERSIONS_SINCE = "2017-01-01"
#: Bounds on pagination, so that a server answering "next page" forever cannot hold a run.
MAX_VERSION_PAGES = 10
MAX_FR_PAGES = 20

FR_AGENCY = "drug-enforcement-administration"
#: The Federal Register search term for documents that mention ketamine without listing
#: Part 1308 among their CFR references (fetch plans do not see the watch list).
FR_TERM = "ketamine"
FR_FIELDS = (
    "abstract", "action", "cfr_references", "citation", "comments_close_on", "dates",
    "document_number", "effective_on", "full_text_xml_url", "html_url", "pdf_url",
    "publication_date", "title", "type",
)
FR_CANONICAL_FORMAT = "schedwatch/us-federal-register/1"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: Any) -> str | None:
    """``value`` if it is an ISO date string (YYYY-MM-DD) that exists, else None."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        date.fromisoformat(value)
    except ValueError:
        return None
    return value


def _local_date(moment: datetime) -> date:
    """The date in Washington at ``moment``: FR effective dates are US Eastern dates."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(ZoneInfo(TIMEZONE)).date()
    except ZoneInfoNotFoundError:  # pragma: no cover - a system without tz data
        return moment.astimezone(UTC).date()


def _json_object(content: bytes | None, what: str) -> dict[str, Any]:
    """Parse a JSON object or raise ExtractionError saying what arrived instead."""
    if not content or not content.strip():
        raise ExtractionError(f"{what}: the response is empty")
    head = content.lstrip()[:200].lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise ExtractionError(f"{what}: an HTML page arrived where JSON was expected (an "
                              "error or maintenance page?)")
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as error:
        raise ExtractionError(f"{what}: not JSON ({error})") from error
    if not isinstance(data, dict):
        raise ExtractionError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


# =========================================================================================
# eCFR: fetch plan
# =========================================================================================

def title_21_status(content: bytes) -> dict[str, str]:
    """Title 21's entry in an eCFR ``titles.json`` answer, as strings.

    Raises ExtractionError when the answer is not JSON, has no title 21, or title 21 has no
    valid ``up_to_date_as_of`` date (it is used in a URL path, so it must be a date)."""
    data = _json_object(content, "eCFR titles.json")
    titles = data.get("titles")
    if not isinstance(titles, list):
        raise ExtractionError("eCFR titles.json has no \"titles\" list; the API changed")
    for title in titles:
        if isinstance(title, dict) and str(title.get("number")) == "21":
            as_of = _iso_date(title.get("up_to_date_as_of"))
            if as_of is None:
                raise ExtractionError("eCFR titles.json: title 21 has no valid "
                                      f"up_to_date_as_of ({title.get('up_to_date_as_of')!r})")
            status = {"up_to_date_as_of": as_of}
            for key in ("latest_amended_on", "latest_issue_date"):
                value = _iso_date(title.get(key))
                if value:
                    status[f"title_{key}"] = value
            if title.get("processing_in_progress"):
                status["title_processing_in_progress"] = "true"
            return status
    raise ExtractionError("eCFR titles.json does not list title 21")


def section_amendment_dates(pages: Iterable[bytes]) -> dict[str, str]:
    """From eCFR ``versions`` answers for Part 1308: the latest amendment date of each
    schedule section ("1308.13" → "2023-…") plus the part's ``latest_amendment_date``."""
    latest: dict[str, str] = {}
    for content in pages:
        data = _json_object(content, "eCFR versions")
        versions = data.get("content_versions")
        if not isinstance(versions, list):
            raise ExtractionError("eCFR versions answer has no \"content_versions\" list")
        for version in versions:
            if not isinstance(version, dict):
                continue
            identifier = str(version.get("identifier", ""))
            when = _iso_date(version.get("amendment_date") or version.get("date"))
            if identifier in SCHEDULE_SECTIONS and when and when > latest.get(identifier, ""):
                latest[identifier] = when
        meta = data.get("meta")
        if isinstance(meta, dict):
            part_latest = _iso_date(meta.get("latest_amendment_date"))
            if part_latest and part_latest > latest.get("part", ""):
                latest["part"] = part_latest
    return latest


def _versions_total_pages(content: bytes) -> int:
    try:
        meta = json.loads(content).get("meta") or {}
        return max(1, int(meta.get("total_pages") or 1))
    except (ValueError, TypeError, AttributeError):
        return 1


def _versions_meta(fetcher: Fetcher, base: str) -> dict[str, str]:
    """Amendment dates of §§ 1308.11–.15 from the versions endpoint, as Fetched.meta facts."""
    url = f"{base}/api/versioner/v1/versions/title-21.json"
    params: dict[str, str | list[str]] = {"part": PART, "issue_date[gte]": VERSIONS_SINCE}
    first = fetcher.get(url, params=params)
    pages = [first.content]
    for page in range(2, min(_versions_total_pages(first.content), MAX_VERSION_PAGES) + 1):
        pages.append(fetcher.get(url, params={**params, "page": str(page)}).content)
    latest = section_amendment_dates(pages)
    meta: dict[str, str] = {}
    sections = [latest[s] for s in SCHEDULE_SECTIONS if s in latest]
    if sections:
        meta["latest_amended_on"] = max(sections)
    for section in SCHEDULE_SECTIONS:
        if section in latest:
            meta[f"amended_on:{section}"] = latest[section]
    if "part" in latest:
        meta["part_latest_amended_on"] = latest["part"]
    return meta


def fetch_ecfr(fetcher: Fetcher, context: FetchContext) -> Fetched:
    """Fetch plan of ``us-ecfr-1308``.

    1. ``titles.json``: if title 21's ``up_to_date_as_of`` equals the marker saved after the
       last healthy parse, nothing moved: answer ``content=None``.
    2. Part 1308 from ``/api/versioner/v1/full/{date}/title-21.xml?part=1308`` when
       robots.txt allows it; otherwise the govinfo bulk XML of Title 21 (about 21 MB),
       reduced while streaming to the ``DIV5 N="1308"`` element, which is what is archived.
    3. ``versions/title-21.json?part=1308&issue_date[gte]=…`` for the amendment dates of
       §§ 1308.11–.15 (labelled facts in ``meta``; a failure here is noted in
       ``meta["versions_error"]`` and does not fail the fetch).

    The eCFR answers 503 with ``Retry-After`` while a title is being processed (Swagger,
    seen 2026); ``HttpFetcher.get`` waits and retries, so nothing here handles it.
    """
    base = context.endpoints["url"].rstrip("/")
    titles_url = f"{base}/api/versioner/v1/titles.json"
    titles = fetcher.get(titles_url)
    status = title_21_status(titles.content)
    as_of = status["up_to_date_as_of"]
    if context.marker is not None and as_of == context.marker:
        return Fetched(url=titles.final_url, content=None, marker=context.marker)

    meta: dict[str, str] = dict(status)
    full_url = f"{base}/api/versioner/v1/full/{as_of}/title-21.xml"
    if fetcher.allowed(f"{full_url}?part={PART}"):
        response = fetcher.get(full_url, params={"part": PART})
        content = response.content
        url = response.final_url
        content_type = response.headers.get("Content-Type")
        meta["fetched_via"] = "versioner"
    else:
        # A third-party endpoint inventory (SOURCES.md §1.1) saw www.ecfr.gov/robots.txt list
        # "Disallow: /api/versioner/v1/full/". The govinfo bulk file is the sanctioned copy.
        bulk_url = context.endpoints.get(
            "bulk_url", "https://www.govinfo.gov/bulkdata/ECFR/title-21/ECFR-title21.xml")
        response = fetcher.get(bulk_url)
        content, facts = extract_part_1308(response.content)
        meta.update(facts)
        url = response.final_url
        content_type = "application/xml"
        meta["fetched_via"] = "govinfo-bulk"
        meta["bulk_bytes"] = str(len(response.content))
    try:
        meta.update(_versions_meta(fetcher, base))
    except (FetchError, ExtractionError) as error:
        # The versions only date the sections; the status is in the XML just fetched. A
        # failing versions endpoint must not throw that observation away, so say it in meta.
        meta["versions_error"] = str(error)
    return Fetched(url=url, content=content, content_type=content_type, marker=as_of,
                   meta=meta)


# =========================================================================================
# eCFR: streaming to Part 1308
# =========================================================================================

def _release(elem: Any) -> None:
    """Free a finished element and the siblings before it (bounded-memory iterparse)."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _inside_part(elem: Any, part: str) -> bool:
    for ancestor in elem.iterancestors("DIV5"):
        return normalise_text(ancestor.get("N", "")) == part
    return False


def _sniff_html(content: bytes) -> bool:
    head = content.lstrip()[:300].lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:120]


def stream_part(content: bytes, part: str = PART) -> tuple[Any, dict[str, str]]:
    """The ``DIV5 N=part`` element of an eCFR XML document (a whole title or a part), found
    with a streaming parse that frees every other part as it goes, plus facts seen on the
    way (``amddate``). Raises ExtractionError for an empty, HTML, malformed or part-less
    document."""
    if not content or not content.strip():
        raise ExtractionError("the eCFR document is empty")
    if _sniff_html(content):
        raise ExtractionError("an HTML page arrived where eCFR XML was expected (an error or "
                              "maintenance page?)")
    from lxml import etree  # imported here: a warm run that parses nothing never loads it

    facts: dict[str, str] = {}
    parts_seen: list[str] = []
    root_tag: str | None = None
    # iterparse takes the options of XMLParser: scraped XML gets no entity expansion, no
    # network access, no DTD and no huge-tree mode.
    events = etree.iterparse(io.BytesIO(content), events=("start", "end"),
                             resolve_entities=False, no_network=True, huge_tree=False,
                             load_dtd=False)
    try:
        for event, elem in events:
            if event == "start":
                if root_tag is None:
                    root_tag = str(elem.tag)
                continue
            tag = elem.tag
            if tag == "AMDDATE":
                facts["amddate"] = normalise_text("".join(elem.itertext()))
            elif tag == "DIV5":
                number = normalise_text(elem.get("N", ""))
                if number == part:
                    return elem, facts
                if len(parts_seen) < 12:
                    parts_seen.append(number)
                _release(elem)
            elif tag == "DIV8" and not _inside_part(elem, part):
                _release(elem)
    except etree.XMLSyntaxError as error:
        raise ExtractionError(f"the eCFR document is not well-formed XML ({error})") from error
    if root_tag and root_tag.lower() == "html":
        raise ExtractionError("an HTML page arrived where eCFR XML was expected")
    found = f" (parts found: {', '.join(parts_seen)})" if parts_seen else " (no DIV5 parts)"
    raise ExtractionError(f"no DIV5 TYPE=\"PART\" N=\"{part}\" in the eCFR document{found}; "
                          "this is not 21 CFR Part 1308")


def extract_part_1308(content: bytes) -> tuple[bytes, dict[str, str]]:
    """Reduce eCFR XML (typically the govinfo bulk Title 21, ~21 MB) to the serialised
    ``DIV5 N="1308"`` element, streaming; plus the facts seen on the way (AMDDATE)."""
    part, facts = stream_part(content)
    from lxml import etree

    return etree.tostring(part, encoding="UTF-8", xml_declaration=True,
                          with_tail=False), facts


# =========================================================================================
# eCFR: walking a section
# =========================================================================================

_SALT_TAIL = re.compile(r"\s+(?:and|or)\s+(?:its|any|their)\s+salts?\b.*$", re.IGNORECASE)
_NAME_PREFIX = re.compile(r"^(?:including|also referred to as|also known as|other names "
                          r"include:?)\s*", re.IGNORECASE)
#: "Some trade or other names for tiletamine: X." / "[Some other names for ketamine: X]" /
#: "[Another name for nabilone: X]": the list runs to the closing "]" at the end, the next
#: such line, or the end (brackets inside chemical names, "[b,d]pyran", stay in).
_NAME_LIST = re.compile(r"(?:other names?|another name)(?:\s+for\s+[^:\]]{1,80})?"
                        r"(?:\s+include)?:\s*(?P<list>.+?)(?=\s*(?:\]\s*$|\bSome (?:trade "
                        r"or )?other names|$))", re.IGNORECASE)


def _parentheticals(text: str) -> list[str]:
    """The top-level " ( … )" groups of a text that open after a space (not the parentheses
    inside a chemical name, "1-(3-methoxyphenyl)"), nested parentheses kept inside."""
    groups: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == "(":
            if depth == 0 and index > 0 and not text[index - 1].isspace():
                continue
            if depth == 0:
                start = index + 1
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                groups.append(text[start:index])
    return groups


def _split_names(listed: str) -> list[str]:
    names = []
    for item in listed.split(";"):
        item = re.sub(r"^\s*and\s+", "", item).strip().rstrip(". ").strip()
        while item.endswith((")", "]")) and \
                item.count(item[-1]) > item.count("(" if item[-1] == ")" else "["):
            item = item[:-1].rstrip(". ")
        if item:
            names.append(item)
    return names


@dataclass(frozen=True)
class ScheduleEntry:
    """One coded entry of a schedule section, as printed."""

    schedule: str  # "III"
    section: str  # "1308.13"
    pinpoint: str  # "(c)(7)"
    text: str  # "Ketamine, its salts, isomers, and salts of isomers"
    code: str  # DEA Controlled Substances Code Number, "7285"
    heading: str | None = None  # italic heading of the lettered paragraph, "Depressants"
    parent: str | None = None  # "(c) Depressants" or "(c) Depressants > (1) Any compound…"
    intro: str = ""  # the lettered paragraph's own text (for "including its isomers")
    notes: tuple[str, ...] = ()  # "[Some other names for ketamine: …]"

    @property
    def instrument(self) -> str:
        return f"21 CFR {self.section}"

    @property
    def provision(self) -> str:
        return f"21 CFR {self.section}{self.pinpoint}"

    @property
    def listed_as(self) -> str:
        """The entry text as printed, then its other-names line(s) after " | "."""
        if not self.notes:
            return self.text
        return f"{self.text} | {' '.join(self.notes)}"

    @property
    def name(self) -> str:
        """The substance name: the entry text before its first comma, also cut before a
        parenthesis, bracket or colon and a trailing "and its salts" ("Phenmetrazine and
        its salts" → "Phenmetrazine"; "Nabilone: [Another name …]" → "Nabilone")."""
        # ", " and not ",": chemical names carry bare commas ("4-bromo-2,5-dimethoxy-…").
        head = re.split(r",\s|:\s|\s[(\[]", self.text, maxsplit=1)[0]
        return _SALT_TAIL.sub("", head).strip() or self.text

    def names(self) -> tuple[str, ...]:
        """Every name this entry prints: its name; the names in its parentheses
        ("(including tramadol)", "(also referred to as BRV; UCB-34714; Briviact)"); the lists
        of its other-names lines and brackets ("[Some other names for ketamine: …]")."""
        found = [self.name]
        for group in _parentheticals(self.text):
            found.extend(_split_names(_NAME_PREFIX.sub("", group)))
        for piece in (self.text, " ".join(self.notes)):
            for match in _NAME_LIST.finditer(piece):
                found.extend(_split_names(match.group("list")))
        return tuple(dict.fromkeys(n for n in found if sum(c.isalnum() for c in n) >= 2))

    @property
    def covers_isomers(self) -> bool:
        return "isomer" in self.text.lower() or "isomer" in self.intro.lower()


@dataclass(frozen=True)
class Line:
    """One printed line of a section: a paragraph, or a table row."""

    text: str
    code: str | None = None
    heading: str | None = None


#: Elements whose text is not part of an entry: footnote references, superscripts, the
#: "Link to an amendment" cross-references the eCFR adds [third-party note, 2026].
_SKIP_TEXT = frozenset({"FTREF", "SU", "XREF", "FTNT"})
#: Elements of a section that hold no entries.
_SKIP_BLOCKS = frozenset({"HEAD", "CITA", "AUTH", "SOURCE", "EDNOTE", "BOXHD", "THEAD",
                          "TTITLE", "TNOTE", "TDESC", "FTNT", "SECAUTH", "APPRO", "NOTE",
                          "CROSSREF"})
_MARKER = re.compile(r"^\((\d{1,3}|[a-z]{1,7}|[A-Z])\)(?=\s|\(|$)\s*")
_MARKERS_ONLY = re.compile(r"^(?:\(\w{1,7}\)\s*)*$")
_CODE_CELL = re.compile(r"^\d{4}$")
#: A DEA code after the entry text, behind spaces or dot leaders: "… isomers ........ 7285"
#: or "(d) Nalorphine 9400."
_TRAILING_CODE = re.compile(r"^(?P<text>.*?\S)(?:\s*(?:\.\s*){2,}|\s*…+\s*|\s+)(?P<code>\d{4})\.?$")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_ROMANS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii",
           "xiv", "xv", "xvi", "xvii", "xviii", "xix", "xx", "xxi", "xxii", "xxiii", "xxiv",
           "xxv", "xxvi", "xxvii", "xxviii", "xxix", "xxx", "xxxi", "xxxii", "xxxiii",
           "xxxiv", "xxxv", "xxxvi", "xxxvii", "xxxviii", "xxxix", "xl")
_NOTE_START = ("[some other names", "some other names", "some trade or other names",
               "other names")


def _text(elem: Any) -> str:
    """The text of an element without footnote markers and cross-references."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            if isinstance(child.tag, str) and child.tag not in _SKIP_TEXT:
                walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(elem)
    return normalise_text("".join(parts))


def _italic_heading(p: Any) -> str | None:
    """"Depressants" from ``<P>(c) <I>Depressants.</I> Unless …</P>``: the italic text right
    after the paragraph marker (I, or E T="03" in the GPO schema)."""
    if not _MARKERS_ONLY.match(normalise_text(p.text or "")):
        return None
    for child in p:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "I" or (child.tag == "E" and child.get("T") == "03"):
            heading = normalise_text("".join(child.itertext())).rstrip(".: ").strip()
            return heading or None
        return None
    return None


def split_trailing_code(text: str) -> tuple[str, str | None]:
    """("(7) Ketamine, …", "7285") from "(7) Ketamine, … ........ 7285"; (text, None) when the
    line does not end in a DEA code. A year after a date ("August 30, 2024") is not a code."""
    match = _TRAILING_CODE.match(text)
    if not match:
        return text, None
    head = match.group("text").rstrip(" .…")
    words = head.lower().split()
    if not head or head.endswith(",") or (words and words[-1].strip(",") in _MONTHS) \
            or (words and words[-1] in ("part", "section", "§", "no.", "number")):
        return text, None
    return head, match.group("code")


def _row_line(cells: Sequence[Any]) -> Line | None:
    texts = [_text(cell) for cell in cells]
    if not any(texts):
        return None
    code = None
    if len(texts) > 1 and _CODE_CELL.match(texts[-1]):
        code = texts[-1]
        texts = texts[:-1]
    text = " ".join(t for t in texts if t)
    if code is None:
        text, code = split_trailing_code(text)
    return Line(text=text, code=code)


def section_lines(elem: Any) -> Iterator[Line]:
    """The printed lines of a section in document order: P/FP paragraphs (code after dot
    leaders), GPOTABLE rows (ROW/ENT) and HTML-like table rows (TR/TD).

    Table forms: the bulk XML writes tables as ``DIV class="gpotbl_div"/TABLE/TR/TD`` (seen in
    the Title 1 sample, 2024-02), a third-party note says the versioner's processed XML does
    the same (2026), and GPO's SGML-derived form is GPOTABLE/ROW/ENT. No raw 1308.13 table
    was seen in any form, so all are read."""
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIP_BLOCKS:
            continue
        if tag in ("P", "FP", "PSPACE"):
            text = _text(child)
            if text:
                body, code = split_trailing_code(text)
                yield Line(text=body, code=code, heading=_italic_heading(child))
        elif tag == "ROW":
            line = _row_line(child.findall("ENT"))
            if line:
                yield line
        elif tag == "TR":
            cells = child.findall("TD")
            if cells:  # a row of TH only is a column heading
                line = _row_line(cells)
                if line:
                    yield line
        else:  # GPOTABLE, TABLE, TBODY, DIV wrappers, EXTRACT …
            yield from section_lines(child)


def _split_markers(text: str) -> tuple[list[str], str]:
    markers: list[str] = []
    while True:
        match = _MARKER.match(text)
        if not match:
            return markers, text
        markers.append(match.group(1))
        text = text[match.end():]


@dataclass
class _Walk:
    """The walker's position in a section (local, per call)."""

    letter: str | None = None
    number: str | None = None
    roman: str | None = None
    upper: str | None = None
    heading: str | None = None
    intro: str = ""
    number_intro: str | None = None

    def pinpoint(self) -> str:
        return "".join(f"({m})" for m in (self.letter, self.number, self.roman, self.upper)
                       if m)

    def parent(self) -> str | None:
        parts = []
        if self.letter and self.heading:
            parts.append(f"({self.letter}) {self.heading}")
        if (self.roman or self.upper) and self.number and self.number_intro:
            parts.append(f"({self.number}) {self.number_intro}")
        return " > ".join(parts) or None

    def level_of(self, marker: str, has_heading: bool) -> str:
        """Which level a marker opens. "(i)" after "(h)" is a letter, after "(1)" a roman
        numeral: the GPO schema writes numbering into the text and does not nest it."""
        if marker.isdigit():
            return "number"
        if marker.isupper():
            return "upper"
        if marker in _ROMANS and self.number is not None and not has_heading:
            following = _ROMANS.index(self.roman) + 1 if self.roman in _ROMANS else 0
            if following < len(_ROMANS) and marker == _ROMANS[following]:
                return "roman"
            if len(marker) > 1:
                return "roman"
        if len(marker) == 1:
            return "letter"
        return "roman" if marker in _ROMANS else "letter"

    def open(self, marker: str, level: str, rest: str, line: Line) -> None:
        if level == "letter":
            self.letter, self.number, self.roman, self.upper = marker, None, None, None
            self.heading = line.heading
            self.intro = rest
            self.number_intro = None
        elif level == "number":
            self.number, self.roman, self.upper = marker, None, None
            self.number_intro = None if line.code else rest or None
        elif level == "roman":
            self.roman, self.upper = marker, None
        else:
            self.upper = marker


def walk_section(div8: Any, section: str, schedule: str) -> list[ScheduleEntry]:
    """Every coded entry of one schedule section with its pinpoint paragraph, heading, code
    and other-names notes."""
    position = _Walk()
    entries: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    notes_open = False
    for line in section_lines(div8):
        markers, rest = _split_markers(line.text)
        for index, marker in enumerate(markers):
            has_heading = line.heading is not None and index == len(markers) - 1
            position.open(marker, position.level_of(marker, has_heading), rest, line)
        if line.code and rest:
            last = {"schedule": schedule, "section": section, "pinpoint": position.pinpoint(),
                    "text": rest, "code": line.code, "heading": position.heading,
                    "parent": position.parent(), "intro": position.intro, "notes": []}
            entries.append(last)
            notes_open = False
            continue
        if markers:
            last, notes_open = None, False
            continue
        lowered = rest.lower()
        if last is not None and (notes_open or lowered.startswith(_NOTE_START)):
            last["notes"].append(rest)
            notes_open = rest.endswith(":")
        else:
            last, notes_open = None, False
    return [ScheduleEntry(**{**e, "notes": tuple(e["notes"])}) for e in entries]


# =========================================================================================
# eCFR: the part, its landmarks, records
# =========================================================================================

_SECTION_NUMBER = re.compile(r"(\d+\.\d+)")
_SCHEDULE_IN_HEAD = re.compile(r"\bSchedule\s+(V|IV|III|II|I)\b")
_DRUG_CLASSES = (
    ("narcotic", "narcotic"),
    ("opiate", "narcotic (opiate)"),
    ("opium", "narcotic (opium derivative)"),
    ("substances, vegetable origin", "narcotic (vegetable origin or chemical synthesis)"),
    ("depressant", "non-narcotic depressant"),
    ("stimulant", "non-narcotic stimulant"),
    ("hallucinogen", "non-narcotic hallucinogenic substance"),
    ("anabolic steroid", "anabolic steroid"),
)


def drug_class(heading: str | None) -> str | None:
    """The class an entry's paragraph heading gives it: "Depressants" → "non-narcotic
    depressant", "Narcotic drugs" → "narcotic". None for other or missing headings."""
    if not heading:
        return None
    lowered = heading.lower()
    for prefix, label in _DRUG_CLASSES:
        if lowered.startswith(prefix):
            return label
    return None


def _entry_basis(entry: ScheduleEntry) -> str:
    kind = drug_class(entry.heading)
    if kind:
        return f"named ({kind})"
    if entry.heading:
        return f"named (under \"{entry.heading}\")"
    return "named"


def _section_head(div8: Any) -> str:
    head = div8.find("HEAD")
    return _text(head) if head is not None else ""


@dataclass(frozen=True)
class Part1308:
    """What the parser read from Part 1308: entries per schedule section."""

    title: str
    entries: tuple[ScheduleEntry, ...]
    sections: tuple[str, ...]  # the schedule sections present and intact
    missing: tuple[str, ...]  # schedule sections absent or [Reserved]
    amddate: str | None = None


def read_part_1308(content: bytes) -> Part1308:
    """Find Part 1308 and read its five schedule sections. Raises ExtractionError when the
    landmarks are not there: no Part 1308; a schedule section present but with no coded
    entry (its layout changed) or headed with another schedule; more than one of the five
    sections missing (a part that lost two schedules at once is a broken document, not law).
    One missing (or [Reserved]) section is read as that schedule now being empty."""
    part, facts = stream_part(content)
    amddate = facts.get("amddate")
    if amddate is None:
        found = part.find(".//AMDDATE")
        if found is not None:
            amddate = normalise_text("".join(found.itertext()))
    sections: dict[str, Any] = {}
    for div8 in part.iter("DIV8"):
        match = _SECTION_NUMBER.search(div8.get("N") or _section_head(div8))
        if match and match.group(1) in SCHEDULE_SECTIONS and match.group(1) not in sections:
            sections[match.group(1)] = div8
    entries: list[ScheduleEntry] = []
    present: list[str] = []
    missing: list[str] = []
    for section, schedule in SCHEDULE_SECTIONS.items():
        div8 = sections.get(section)
        head = _section_head(div8) if div8 is not None else ""
        if div8 is None or "[reserved]" in head.lower():
            missing.append(section)
            continue
        printed = _SCHEDULE_IN_HEAD.search(head)
        if printed and printed.group(1) != schedule:
            raise ExtractionError(f"§ {section} is headed \"{head}\", not Schedule {schedule}; "
                                  "the part is not laid out as schedwatch knows")
        found_entries = walk_section(div8, section, schedule)
        if not found_entries:
            raise ExtractionError(f"§ {section} (Schedule {schedule}) has no entry with a DEA "
                                  "code number; its table layout is not one schedwatch reads")
        entries.extend(found_entries)
        present.append(section)
    if len(present) < len(SCHEDULE_SECTIONS) - 1:
        raise ExtractionError(f"only {len(present)} of the five schedule sections "
                              f"(§§ 1308.11–1308.15) are in Part 1308 (missing: "
                              f"{', '.join(missing)}); the document is incomplete")
    head = part.find("HEAD")
    title = _text(head) if head is not None else "21 CFR Part 1308"
    return Part1308(title=title, entries=tuple(entries), sections=tuple(present),
                    missing=tuple(missing), amddate=amddate)


_MONTH_ABBREVIATIONS = {m[:3]: i for i, m in enumerate(_MONTHS, start=1)}


def amddate_iso(text: str) -> str | None:
    """"Dec. 29, 2022(fm)" (the bulk XML's AMDDATE) → "2022-12-29"; None if unreadable."""
    match = re.search(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),\s*(\d{4})", text)
    if not match or match.group(1).lower() not in _MONTH_ABBREVIATIONS:
        return None
    try:
        return date(int(match.group(3)), _MONTH_ABBREVIATIONS[match.group(1).lower()],
                    int(match.group(2))).isoformat()
    except ValueError:
        return None


def _ecfr_dates(meta: Mapping[str, str], amddate: str | None,
                sections: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    """Labelled dates: up-to-date-as-of, per-section (or all-schedule) last amendment,
    Title 21 AMDDATE. ``sections`` None: the whole part's dates."""
    dates: list[tuple[str, str]] = []
    as_of = _iso_date(meta.get("up_to_date_as_of"))
    if as_of:
        dates.append(("eCFR up to date as of", as_of))
    chosen = list(SCHEDULE_SECTIONS) if sections is None else list(dict.fromkeys(sections))
    for section in chosen:
        amended = _iso_date(meta.get(f"amended_on:{section}"))
        if amended:
            dates.append((f"§ {section} last amended", amended))
    latest = _iso_date(meta.get("latest_amended_on"))
    if latest and (sections is None or not chosen):
        dates.append(("§§ 1308.11–1308.15 last amended", latest))
    if sections is None:
        title_amended = _iso_date(meta.get("title_latest_amended_on"))
        if title_amended:
            dates.append(("Title 21 last amended", title_amended))
    if amddate:
        dates.append(("Title 21 amended as of (AMDDATE)", amddate_iso(amddate) or amddate))
    return tuple(dates)


def _names_of(substance: Substance) -> set[str]:
    return {name_key(n) for n in substance.names()}


def _substance_by_key(key: str, watch: WatchList) -> Substance | None:
    found = watch.get(key)
    if found is not None:
        return found
    return next((s for s in KNOWN if s.key == key), None)


def _join(values: Iterable[str | None], sep: str) -> str | None:
    unique = list(dict.fromkeys(v for v in values if v))
    return sep.join(unique) if unique else None


def _ecfr_record(key: str, entries: Sequence[ScheduleEntry], basis: Sequence[str],
                 document: Document, dates: tuple[tuple[str, str], ...]) -> StatusRecord:
    """One record for one substance from one or more entries (a name printed in two
    schedules joins them: schedules ", ", provisions "; "; the level is the first's, which
    is the strictest since entries come in schedule order)."""
    first = entries[0]
    return StatusRecord(
        jurisdiction=CODE, substance=key, status="controlled",
        schedule=_join((e.schedule for e in entries), ", "),
        control_level=SCHEDULE_LEVELS[first.schedule],
        instrument=_join((e.instrument for e in entries), "; ") or first.instrument,
        provision=_join((e.provision for e in entries), "; "),
        listed_as=_join((e.listed_as for e in entries), "; "),
        basis=_join(basis, "; ") or "named",
        source_id=ECFR_SOURCE_ID, source_url=document.url, document_sha256=document.sha256,
        retrieved_at=document.retrieved_at.isoformat(),
        code=_join((e.code for e in entries), ", "),
        parent_entry=_join((e.parent for e in entries), "; "),
        dates=dates,
    )


def entry_keys(entries: Iterable[ScheduleEntry]) -> list[frozenset[str]]:
    """The ``name_key`` of every name each entry prints, worked out once per parse: the
    entries' names are compared with every watched substance (and its parent)."""
    return [frozenset(name_key(n) for n in e.names()) for e in entries]


def _matching(keys: Sequence[frozenset[str]], substance: Substance) -> list[int]:
    """The indexes of the entries (by ``entry_keys``) that print one of the substance's
    names (after normalisation)."""
    wanted = _names_of(substance)
    return [i for i, printed in enumerate(keys) if not printed.isdisjoint(wanted)]


_Dates = Callable[[Iterable[str] | None], tuple[tuple[str, str], ...]]


def _watched_record(substance: Substance, entries: Sequence[ScheduleEntry],
                    keys: Sequence[frozenset[str]], watch: WatchList, document: Document,
                    dates: _Dates) -> tuple[StatusRecord, list[int]]:
    """The record of one watched substance and the indexes of the entries it used: named
    directly; else covered as an isomer by its parent's entry when that entry (or its
    paragraph) names isomers; else not listed. ``keys``: ``entry_keys(entries)``."""
    indexes = _matching(keys, substance)
    if indexes:
        direct = [entries[i] for i in indexes]
        record = _ecfr_record(substance.key, direct, [_entry_basis(e) for e in direct],
                              document, dates([e.section for e in direct]))
        return record, indexes
    cover = _substance_by_key(substance.covered_by, watch) if substance.covered_by else None
    if cover is not None and substance.relation == "isomer":
        covering = [entries[i] for i in _matching(keys, cover) if entries[i].covers_isomers]
        if covering:
            bases = [f"isomer of {cover.name.lower()}, covered by \"{e.text}\"" for e in covering]
            return _ecfr_record(substance.key, covering, bases, document,
                                dates([e.section for e in covering])), []
    return StatusRecord(
        jurisdiction=CODE, substance=substance.key, status="not_controlled", schedule=None,
        control_level=None, instrument=NOT_LISTED_INSTRUMENT, provision=None, listed_as=None,
        basis=NOT_LISTED_BASIS, source_id=ECFR_SOURCE_ID, source_url=document.url,
        document_sha256=document.sha256, retrieved_at=document.retrieved_at.isoformat(),
        dates=dates([])), []


def _entry_records(entries: Sequence[ScheduleEntry], skip: set[int], taken: set[str],
                   document: Document, dates: _Dates) -> list[StatusRecord]:
    """``watch = "all"``: one record per listed name (``substance_key`` of the name before the
    first ", "), entries of one name in several places joined."""
    grouped: dict[str, list[ScheduleEntry]] = {}
    for index, entry in enumerate(entries):
        key = substance_key(entry.name)
        if index not in skip and key and key not in taken:
            grouped.setdefault(key, []).append(entry)
    return [_ecfr_record(key, group, [_entry_basis(e) for e in group], document,
                         dates([e.section for e in group]))
            for key, group in grouped.items()]


def parse_ecfr(document: Document, watch: WatchList) -> ParseResult:
    """Parser of ``us-ecfr-1308``: eCFR XML holding Part 1308 (the versioner ``full`` answer
    for the part, the part reduced from the bulk title, or a whole bulk title) → a record
    per watched substance (and per entry when ``watch.all_entries``).

    ``listed_as`` is the entry text as printed; an other-names line that follows the entry
    ("[Some other names for ketamine: …]") is appended after " | ". Isomers (esketamine,
    arketamine) are reported as covered by an entry of the substance they are isomers of
    when that entry (or its paragraph) names isomers. A watched substance listed nowhere in
    the five schedules is ``not_controlled``."""
    part = read_part_1308(document.content)
    # The bulk fallback archives the part alone; the title's AMDDATE travels in meta.
    amddate = part.amddate or document.meta.get("amddate")

    def dates(sections: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
        return _ecfr_dates(document.meta, amddate, sections)

    records: list[StatusRecord] = []
    used: set[int] = set()
    keys = entry_keys(part.entries)
    for substance in watch.substances:
        record, indexes = _watched_record(substance, part.entries, keys, watch, document,
                                          dates)
        records.append(record)
        used.update(indexes)
    if watch.all_entries:
        records.extend(_entry_records(part.entries, used, {r.substance for r in records},
                                      document, dates))
    return ParseResult(records=tuple(records), pending=(), document_dates=dates(None),
                       title=f"21 CFR {part.title}", instrument="21 CFR Part 1308")


# =========================================================================================
# Federal Register: fetch plan and the canonical document
# =========================================================================================

def _fr_queries() -> tuple[tuple[str, dict[str, str | list[str]]], ...]:
    common: dict[str, str | list[str]] = {
        "conditions[agencies][]": FR_AGENCY,
        "conditions[type][]": ["RULE", "PRORULE"],
        "per_page": "1000",
        "order": "oldest",
        "fields[]": list(FR_FIELDS),
    }
    return (
        ("cfr-21-part-1308", {**common, "conditions[cfr][title]": "21",
                              "conditions[cfr][part]": PART}),
        (f"term-{FR_TERM}", {**common, "conditions[term]": FR_TERM}),
    )


def _rebase(next_url: str, base: str) -> str:
    """The API's ``next_page_url`` on the configured host: a scraped URL never chooses the
    host schedwatch talks to (and a mirror configured as ``url`` keeps being used)."""
    nxt, configured = urlsplit(next_url), urlsplit(base)
    if not nxt.path.endswith("/documents.json"):
        raise ExtractionError(f"Federal Register next_page_url {next_url!r} is not a "
                              "documents.json page; the API changed")
    return urlunsplit((configured.scheme, configured.netloc, nxt.path, nxt.query, ""))


def _fr_pages(fetcher: Fetcher, base: str, params: Mapping[str, str | list[str]],
              query_id: str) -> tuple[list[dict[str, Any]], str]:
    """All results of one documents.json query, following ``next_page_url``."""
    url: str = f"{base}/api/v1/documents.json"
    query: Mapping[str, str | list[str]] | None = params
    results: list[dict[str, Any]] = []
    first_url = ""
    for _ in range(MAX_FR_PAGES):
        response = fetcher.get(url, params=query)
        first_url = first_url or response.final_url
        data = _json_object(response.content, f"Federal Register API ({query_id})")
        page = data.get("results")
        if page is None and data.get("count") == 0:
            # The API leaves "results" out when nothing matches (from memory, not seen in
            # a recorded answer): a healthy empty page, not a changed shape.
            page = []
        if not isinstance(page, list):
            raise ExtractionError(f"Federal Register API ({query_id}): no \"results\" list; "
                                  "the API changed")
        results.extend(r for r in page if isinstance(r, dict))
        next_url = data.get("next_page_url")
        if not next_url:
            return results, first_url
        url, query = _rebase(str(next_url), base), None
    raise ExtractionError(f"Federal Register API ({query_id}): more than {MAX_FR_PAGES} "
                          "pages; refusing to follow further")


def canonical_federal_register(results_by_query: Mapping[str, Sequence[Mapping[str, Any]]],
                               today: date) -> bytes:
    """ONE canonical JSON document for a set of FR results: merged by document number,
    sorted by (publication date, document number), keys sorted, each document saying which
    queries matched it. The same documents give the same bytes, so the pipeline's sha256
    sees no spurious change.

    ``not_yet_effective`` lists final rules whose effective date is after ``today``: when
    such a date passes the list shrinks, the bytes change and the parser runs again, so a
    pending final rule does not stay pending forever on unchanged API data."""
    merged: dict[str, dict[str, Any]] = {}
    for query_id, results in results_by_query.items():
        for result in results:
            number = result.get("document_number")
            if not isinstance(number, str) or not number:
                raise ExtractionError("a Federal Register result has no document_number")
            entry = merged.setdefault(number, {k: v for k, v in result.items()
                                               if k != "matched_by"})
            entry.setdefault("matched_by", [])
            if query_id not in entry["matched_by"]:
                entry["matched_by"].append(query_id)
    for entry in merged.values():
        entry["matched_by"].sort()
    ordered = sorted(merged.values(),
                     key=lambda r: (str(r.get("publication_date") or ""), r["document_number"]))
    pending = sorted(
        r["document_number"] for r in ordered
        if _fr_type(r.get("type")) == "RULE"
        and (_iso_date(r.get("effective_on")) or "") > today.isoformat())
    queries = []
    for query_id, params in _fr_queries():
        queries.append({"id": query_id, "conditions": {
            k: v for k, v in sorted(params.items()) if k.startswith("conditions")}})
    document = {"format": FR_CANONICAL_FORMAT, "api": "Federal Register API v1 documents.json",
                "queries": queries, "count": len(ordered),
                "not_yet_effective": pending, "results": ordered}
    # Compact separators and no indent: only then does json use its C encoder (indent forces
    # the pure-Python one, ~50 ms for ~700 documents on every run, changed or not).
    return (json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            + "\n").encode()


def fetch_federal_register(fetcher: Fetcher, context: FetchContext) -> Fetched:
    """Fetch plan of ``us-federal-register``: two documents.json queries (DEA rules and
    proposed rules on 21 CFR Part 1308; DEA rules and proposed rules mentioning ketamine),
    every page of each, merged into one canonical JSON document. The marker is its sha256:
    unchanged → ``content=None``."""
    base = context.endpoints["url"].rstrip("/")
    by_query: dict[str, list[dict[str, Any]]] = {}
    first_url = ""
    for query_id, params in _fr_queries():
        results, url = _fr_pages(fetcher, base, params, query_id)
        by_query[query_id] = results
        first_url = first_url or url
    content = canonical_federal_register(by_query, context.today)
    marker = hashlib.sha256(content).hexdigest()
    if context.marker is not None and marker == context.marker:
        return Fetched(url=first_url, content=None, marker=marker)
    meta = {f"results:{q}": str(len(r)) for q, r in by_query.items()}
    return Fetched(url=first_url, content=content, content_type="application/json",
                   marker=marker, meta=meta)


# =========================================================================================
# Federal Register: parser
# =========================================================================================

_FR_CITATION = re.compile(r"\b(\d{1,3})\s*FR\s*(\d{1,6})\b")
#: "Placement of Ketamine Into Schedule III", "… From Schedule III to Schedule II".
_TARGET = re.compile(r"\b(?:into|to|in)\s+schedule\s+(V|IV|III|II|I)\b", re.IGNORECASE)
#: In an abstract only next to a scheduling verb: abstracts also say things like "controlled
#: substances in schedules III–V" that place nothing.
_ABSTRACT_TARGET = re.compile(r"\b(?:plac|transfer|mov|reschedul|control)\w*\b[^.;]{0,160}?"
                              r"\b(?:into|to|in)\s+schedule\s+(V|IV|III|II|I)\b",
                              re.IGNORECASE)
#: "Removal of X From Control"; not "removes X from schedule III and places it in II".
_REMOVAL = re.compile(r"\bremov\w*\b[^.;]{0,120}?\bfrom\s+(?:control|(?:all\s+)?the\s+"
                      r"schedules)\b", re.IGNORECASE)
REMOVAL = "removal from control"
#: The words by which a rule on a substance reaches its isomers, quoted in the isomer basis.
_ISOMER_PHRASE = re.compile(r"including (?:its|their) salts, (?:optical )?isomers,? and salts "
                            r"of (?:its |such |these )?isomers", re.IGNORECASE)


def _fr_type(value: Any) -> str | None:
    """The API's result ``type`` ("Rule", "Proposed Rule") or condition ("RULE",
    "PRORULE") as RULE / PRORULE; None for notices and the rest."""
    text = str(value or "").strip().lower().replace("_", " ")
    if text in ("rule", "final rule"):
        return "RULE"
    if text in ("proposed rule", "prorule"):
        return "PRORULE"
    return None


def _safe_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and " " not in value \
            and value.isprintable():
        return value
    return None


def _plain(value: Any) -> str:
    """``normalise_text`` of a string field ("" for anything else). ASCII text whose
    whitespace is already single spaces and that has no "- (" is returned as it is: the
    Unicode, dash and no-break-space folding change only non-ASCII characters and the
    hyphen rule needs "- (", so its regex passes are skipped (several per document, for
    hundreds of documents)."""
    if not isinstance(value, str):
        return ""
    if value.isascii() and value.isprintable() and "- (" not in value \
            and " ".join(value.split()) == value:
        return value
    return normalise_text(value)


@dataclass(frozen=True)
class FrDocument:
    """One Federal Register document, as the parser uses it."""

    number: str
    type: str | None  # RULE / PRORULE / None
    type_label: str
    title: str
    abstract: str
    action: str
    published: str
    effective: str | None
    comments_close: str | None
    citation: str | None
    html_url: str | None
    pdf_url: str | None
    xml_url: str | None
    dates_text: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any], index: int) -> FrDocument:
        number = data.get("document_number")
        if not isinstance(number, str) or not re.fullmatch(r"[\w.-]{1,40}", number):
            raise ExtractionError(f"Federal Register result #{index} has no valid "
                                  "document_number; the API changed")
        published = _iso_date(data.get("publication_date"))
        if published is None:
            raise ExtractionError(f"Federal Register document {number} has no valid "
                                  "publication_date; the API changed")
        # The query asks for rules and proposed rules only: a result without a recognisable
        # type or title means the API's fields changed, and must not read as "no final rule"
        # (which would say "descheduled").
        kind, type_label = _fr_type(data.get("type")), _plain(data.get("type"))
        if kind is None and not type_label:
            raise ExtractionError(f"Federal Register document {number} has no type; the API "
                                  "changed")
        title = _plain(data.get("title"))
        if not title:
            raise ExtractionError(f"Federal Register document {number} has no title; the API "
                                  "changed")
        citation = _plain(data.get("citation")) or None
        return cls(number=number, type=kind, type_label=type_label, title=title,
                   abstract=_plain(data.get("abstract")), action=_plain(data.get("action")),
                   published=published, effective=_iso_date(data.get("effective_on")),
                   comments_close=_iso_date(data.get("comments_close_on")),
                   citation=citation, html_url=_safe_url(data.get("html_url")),
                   pdf_url=_safe_url(data.get("pdf_url")),
                   xml_url=_safe_url(data.get("full_text_xml_url")),
                   dates_text=_plain(data.get("dates")))

    @property
    def reference(self) -> str:
        return self.citation or f"FR Doc {self.number}"

    @property
    def is_withdrawal(self) -> bool:
        return "withdraw" in self.action.lower() or "withdrawal" in self.title.lower()

    @property
    def is_correction(self) -> bool:
        return "correction" in self.action.lower() or self.title.lower().endswith("correction")

    @property
    def target(self) -> str | None:
        """The schedule the document places or would place its substance in ("II" from
        "Transfer of Ketamine From Schedule III to Schedule II"), REMOVAL, or None."""
        for text, pattern in ((self.title, _TARGET), (self.abstract, _ABSTRACT_TARGET)):
            if _REMOVAL.search(text):
                return REMOVAL
            match = pattern.search(text)
            if match:
                return match.group(1).upper()
        return None

    @property
    def cited(self) -> frozenset[str]:
        """FR citations the document's own text names (other than its own)."""
        found: set[str] = set()
        for text in (self.title, self.abstract, self.action, self.dates_text):
            found.update(f"{v} FR {p}" for v, p in _FR_CITATION.findall(text))
        found.discard(self.citation or "")
        return frozenset(found)

    def in_effect(self, today: date) -> bool:
        return (self.effective or self.published) <= today.isoformat()

    def details(self) -> tuple[tuple[str, str], ...]:
        # "dates as printed" is kept beside "effective": the API's effective_on is machine
        # extracted and can be wrong (third-party note, SOURCES.md §1.1).
        pairs = [("document number", self.number), ("type", self.type_label),
                 ("title", self.title), ("published", self.published),
                 ("effective", self.effective), ("comment deadline", self.comments_close),
                 ("citation", self.citation), ("dates as printed", self.dates_text),
                 ("target", f"Schedule {self.target}" if self.target and self.target != REMOVAL
                  else self.target),
                 ("html", self.html_url), ("pdf", self.pdf_url),
                 ("full text xml", self.xml_url)]
        return tuple((label, value) for label, value in pairs if value)


def _mention_pattern(substance: Substance) -> re.Pattern[str]:
    names = sorted((re.escape(normalise_text(n)) for n in substance.names() if n.strip()),
                   key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(names) + r")(?![\w-])", re.IGNORECASE)


def _mentions(doc: FrDocument, pattern: re.Pattern[str]) -> bool:
    return bool(pattern.search(doc.title) or pattern.search(doc.abstract))


#: The only characters that ``re.IGNORECASE`` matches with an ASCII character although
#: ``str.lower`` does not make them that character (KELVIN SIGN ~ k, LONG S ~ s, DOTLESS I
#: and I WITH DOT ABOVE ~ i; a test checks every code point): folded before the substring
#: pre-check, so that it never misses what the pattern matches.
_ASCII_CASE_FOLD = str.maketrans({"\u212a": "k", "\u017f": "s", "\u0131": "i",
                                  "\u0130": "i"})
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def _folded(text: str) -> str:
    """A document field for the pre-check: lower case, the characters above folded."""
    return text.lower() if text.isascii() else text.translate(_ASCII_CASE_FOLD).lower()


def _needles(substance: Substance) -> tuple[str, ...] | None:
    """For each name of the mention pattern, a piece a text must hold (lower case, after
    ``_folded``) for the pattern to match it: the name, or for a name with non-ASCII
    letters ("kétamine") its longest ASCII run ("tamine"), since case-insensitive matching
    of other scripts has more equivalences than ``lower`` knows. None when a name has no
    ASCII at all: the substance is then searched in every document."""
    needles = []
    for name in (normalise_text(n) for n in substance.names() if n.strip()):
        runs = _ASCII_RUN.findall(name)
        if not runs:
            return None
        needles.append(max(runs, key=len).lower())
    return tuple(dict.fromkeys(needles))


class _Mentions:
    """Which documents name which substances (in title or abstract), worked out once per
    parse: the mention regex, with its lookarounds, is the parser's main cost, and every
    document is asked about again in each final / proposal / withdrawal comparison. A cheap
    substring test on the lower-cased fields comes first; a document that lacks every name
    cannot match the pattern."""

    def __init__(self, docs: Sequence[FrDocument]) -> None:
        self._docs = docs
        self._fields: list[tuple[str, str]] | None = None
        self._named: dict[Substance, frozenset[int]] = {}

    def documents(self, substance: Substance) -> frozenset[int]:
        """``id`` of each document that names the substance."""
        found = self._named.get(substance)
        if found is None:
            found = self._named[substance] = frozenset(self._search(substance))
        return found

    def _search(self, substance: Substance) -> Iterator[int]:
        pattern, needles = _mention_pattern(substance), _needles(substance)
        if needles is None:
            yield from (id(d) for d in self._docs if _mentions(d, pattern))
            return
        if self._fields is None:
            self._fields = [(_folded(d.title), _folded(d.abstract)) for d in self._docs]
        for doc, (title, abstract) in zip(self._docs, self._fields, strict=True):
            if any(n in title or n in abstract for n in needles) and _mentions(doc, pattern):
                yield id(doc)

    def __call__(self, doc: FrDocument, substance: Substance) -> bool:
        return id(doc) in self.documents(substance)


def _withdrawn(proposal: FrDocument, withdrawals: Sequence[FrDocument],
               naming: frozenset[int]) -> bool:
    """A withdrawal withdraws earlier proposals only: the ones whose citation it names or,
    naming none, those on the same substance (``naming``: the ``_Mentions.documents`` of
    the proposal's subject). Never one of its own day: on 1999-04-09 DEA withdrew the 1981
    proposal (64 FR 17298) and published a new one (64 FR 17299) in the same issue, and a
    withdrawal may well point at the new proposal."""
    for withdrawal in withdrawals:
        if withdrawal.published <= proposal.published:
            continue
        if withdrawal.cited:
            if proposal.citation and proposal.citation in withdrawal.cited:
                return True
        elif id(withdrawal) in naming:
            return True
    return False


def _superseded(proposal: FrDocument, finals: Sequence[FrDocument],
                naming: frozenset[int]) -> bool:
    """A later final rule on the same substance (``naming``, as for ``_withdrawn``) with the
    same target (or one citing the proposal) closes the proposal."""
    return any(
        final.published >= proposal.published and id(final) in naming
        and (final.target == proposal.target
             or (proposal.citation is not None and proposal.citation in final.cited))
        for final in finals)


def _isomer_cover(substance: Substance, watch: WatchList) -> Substance | None:
    if substance.relation != "isomer" or not substance.covered_by:
        return None
    return _substance_by_key(substance.covered_by, watch)


def _fr_record(substance: Substance, rule: FrDocument | None, document: Document,
               cover: Substance | None = None) -> StatusRecord:
    common: dict[str, Any] = {
        "jurisdiction": CODE, "substance": substance.key, "source_id": FR_SOURCE_ID,
        "document_sha256": document.sha256,
        "retrieved_at": document.retrieved_at.isoformat(),
    }
    if rule is None:
        return StatusRecord(status="not_controlled", schedule=None, control_level=None,
                            instrument="Federal Register (DEA rules on 21 CFR Part 1308)",
                            provision=None, listed_as=None,
                            basis="no DEA final rule in the Federal Register results",
                            source_url=document.url, **common)
    removal = rule.target == REMOVAL
    if cover is None:
        basis = "final rule (removal from control)" if removal else "final rule"
    else:
        basis = f"isomer of {cover.name.lower()}, covered by the final rule {rule.reference}"
        phrase = _ISOMER_PHRASE.search(f"{rule.title} {rule.abstract}")
        if phrase:
            basis += f" (\"{phrase.group(0)}\")"
    dates = [("published", rule.published)]
    if rule.effective:
        dates.append(("effective", rule.effective))
    return StatusRecord(
        status="not_controlled" if removal else "controlled",
        schedule=None if removal else rule.target,
        control_level=None if removal or rule.target is None
        else SCHEDULE_LEVELS.get(rule.target),
        instrument=rule.reference, provision=f"FR Doc {rule.number}", listed_as=rule.title,
        basis=basis, source_url=rule.html_url or document.url,
        effective_from=rule.effective, dates=tuple(dates), **common)


def _pending(substance: Substance, doc: FrDocument, action: str,
             cover: Substance | None) -> PendingItem:
    target = doc.target
    if action == "proposed_rule":
        what = "Proposed rule"
        label, when = ("comment deadline", doc.comments_close) if doc.comments_close \
            else (None, None)
    else:
        what = "Final rule, not yet effective"
        label, when = "effective", doc.effective
    change = REMOVAL if target == REMOVAL else f"Schedule {target}"
    description = f"{what} ({doc.reference}, published {doc.published}): {doc.title} " \
                  f"[{change}]"
    if cover is not None:
        description = f"Covers {substance.name.lower()} as an isomer of " \
                      f"{cover.name.lower()}. {description}"
    return PendingItem(
        jurisdiction=CODE, substance=substance.key, source_id=FR_SOURCE_ID,
        key=f"FR:{doc.number}", action=action, description=description,
        reference=doc.reference, proposed_schedule=None if target == REMOVAL else target,
        date_label=label, date=when, url=doc.html_url or doc.pdf_url, details=doc.details())


def _documents(document: Document) -> list[FrDocument]:
    data = _json_object(document.content, "Federal Register document")
    results = data.get("results")
    if not isinstance(results, list):
        raise ExtractionError("the Federal Register document has no \"results\" list; it is "
                              "not what the API (or schedwatch's canonical merge) returns")
    if not results:
        raise ExtractionError("no Federal Register documents in the results: DEA's 1999 final "
                              "rule placing ketamine in Schedule III (64 FR 37673) must always "
                              "be there, so the API or the query is broken")
    return [FrDocument.from_json(r if isinstance(r, dict) else {}, i)
            for i, r in enumerate(results)]


def _names_isomers(doc: FrDocument) -> bool:
    return "isomer" in (doc.abstract + " " + doc.title).lower()


#: Whom a document must mention for a substance: the substance itself (via None) or, for an
#: isomer, the substance it is an isomer of (via that substance).
_Subject = tuple[Substance, Substance | None]


def _subjects(substance: Substance, watch: WatchList) -> list[_Subject]:
    subjects: list[_Subject] = [(substance, None)]
    cover = _isomer_cover(substance, watch)
    if cover is not None:
        subjects.append((cover, cover))
    return subjects


def _concerns(doc: FrDocument, subject: _Subject, mentions: _Mentions) -> bool:
    """The document is about the subject: names it, and (through a parent substance) names
    isomers too."""
    named, via = subject
    return mentions(doc, named) and (via is None or _names_isomers(doc))


def _rule_in_effect(substance: Substance, subjects: Sequence[_Subject],
                    finals: Sequence[FrDocument], today: date, document: Document,
                    mentions: _Mentions) -> StatusRecord:
    """The record of the latest final rule in effect on the substance (directly first, then
    through its parent), or "no DEA final rule"."""
    for subject in subjects:
        in_effect = [f for f in finals
                     if _concerns(f, subject, mentions) and f.in_effect(today)]
        if in_effect:
            latest = max(in_effect, key=lambda f: (f.effective or f.published, f.published,
                                                   f.number))
            return _fr_record(substance, latest, document, subject[1])
    return _fr_record(substance, None, document)


def _open_items(substance: Substance, subjects: Sequence[_Subject],
                finals: Sequence[FrDocument], proposals: Sequence[FrDocument],
                withdrawals: Sequence[FrDocument], today: date,
                mentions: _Mentions) -> list[PendingItem]:
    """Final rules not yet effective, and proposals neither withdrawn nor superseded."""
    items: list[PendingItem] = []
    seen: set[str] = set()
    for subject in subjects:
        naming = mentions.documents(subject[0])
        via = subject[1]
        for doc in finals:
            if doc.number not in seen and _concerns(doc, subject, mentions) \
                    and not doc.in_effect(today):
                seen.add(doc.number)
                items.append(_pending(substance, doc, "final_rule", via))
        for doc in proposals:
            if doc.number in seen or not _concerns(doc, subject, mentions) \
                    or _withdrawn(doc, withdrawals, naming) \
                    or _superseded(doc, finals, naming):
                continue
            seen.add(doc.number)
            items.append(_pending(substance, doc, "proposed_rule", via))
    return items


def parse_federal_register(document: Document, watch: WatchList) -> ParseResult:
    """Parser of ``us-federal-register``: the canonical JSON of ``fetch_federal_register``
    (or one raw documents.json page) → per watched substance, a record of the latest final
    rule in effect that placed it (or its parent, for an isomer); pending items for open
    proposals (not withdrawn, not followed by a final rule on the same change) and for final
    rules whose effective date is after the retrieval date (US Eastern).

    A document is about a substance when its title or abstract names it; its change is read
    from the title ("Placement of Ketamine Into Schedule III", "… From Schedule III to
    Schedule II", "Removal of … From Control"), else from the abstract. ``watch.all_entries``
    adds nothing here: the FR reports only on watched substances."""
    docs = _documents(document)
    today = _local_date(document.retrieved_at)
    withdrawals = [d for d in docs if d.is_withdrawal]
    finals = [d for d in docs if d.type == "RULE" and not d.is_withdrawal
              and not d.is_correction and d.target]
    proposals = [d for d in docs if d.type == "PRORULE" and not d.is_withdrawal
                 and not d.is_correction and d.target]
    mentions = _Mentions(docs)
    records: list[StatusRecord] = []
    pending: list[PendingItem] = []
    for substance in watch.substances:
        subjects = _subjects(substance, watch)
        records.append(_rule_in_effect(substance, subjects, finals, today, document, mentions))
        pending.extend(_open_items(substance, subjects, finals, proposals, withdrawals, today,
                                   mentions))
    return ParseResult(
        records=tuple(records), pending=tuple(pending),
        document_dates=(("latest Federal Register document published",
                         max(d.published for d in docs)),),
        title="Federal Register: DEA rules and proposed rules on 21 CFR Part 1308")


# =========================================================================================
# Cross-check: final rules in effect that the eCFR does not show yet
# =========================================================================================

@dataclass(frozen=True)
class UnconfirmedFinalRule:
    """A final rule past its effective date whose result the eCFR record does not show."""

    substance: str
    reference: str  # "64 FR 37673"
    document: str  # "FR Doc 99-17803"
    effective: str
    expected_status: str
    expected_schedule: str | None
    ecfr_status: str | None
    ecfr_schedule: str | None
    details: tuple[tuple[str, str], ...] = field(default=())


def _shows(record: StatusRecord | None, status: str, schedule: str | None) -> bool:
    if record is None or record.status != status:
        return False
    if schedule is None:
        return True
    return schedule in [s.strip() for s in (record.schedule or "").split(",")]


def unconfirmed_final_rules(fr_result: ParseResult, ecfr_records: Iterable[StatusRecord],
                            today: date) -> tuple[UnconfirmedFinalRule, ...]:
    """Final rules from ``parse_federal_register`` whose effective date is on or before
    ``today`` but whose schedule (or removal) the eCFR records do not show: either the eCFR
    has not caught up yet (it usually does on the effective date) or the rule was stayed.
    Reports should show these beside the eCFR status; the eCFR stays the status of record.

    Looks at the FR records (the latest final rule in effect at retrieval) and at the
    pending ``final_rule`` items whose effective date has since passed."""
    ecfr = {r.substance: r for r in ecfr_records}
    found: list[UnconfirmedFinalRule] = []
    day = today.isoformat()
    for record in fr_result.records:
        if not record.effective_from or record.effective_from > day or \
                not record.provision or not record.provision.startswith("FR Doc"):
            continue
        current = ecfr.get(record.substance)
        if not _shows(current, record.status, record.schedule):
            found.append(UnconfirmedFinalRule(
                substance=record.substance, reference=record.instrument,
                document=record.provision, effective=record.effective_from,
                expected_status=record.status, expected_schedule=record.schedule,
                ecfr_status=current.status if current else None,
                ecfr_schedule=current.schedule if current else None))
    for item in fr_result.pending:
        if item.action != "final_rule" or not item.date or item.date > day:
            continue
        details = dict(item.details)
        removal = details.get("target") == REMOVAL
        status = "not_controlled" if removal else "controlled"
        current = ecfr.get(item.substance)
        if not _shows(current, status, None if removal else item.proposed_schedule):
            found.append(UnconfirmedFinalRule(
                substance=item.substance, reference=item.reference,
                document=f"FR Doc {details.get('document number', item.key[3:])}",
                effective=item.date, expected_status=status,
                expected_schedule=None if removal else item.proposed_schedule,
                ecfr_status=current.status if current else None,
                ecfr_schedule=current.schedule if current else None,
                details=item.details))
    return tuple(found)


# =========================================================================================
# Sources
# =========================================================================================

SOURCES: tuple[Source, ...] = (
    Source(
        id=ECFR_SOURCE_ID, jurisdiction=CODE,
        title="21 CFR Part 1308 (eCFR): Schedules I–V",
        endpoints={"url": "https://www.ecfr.gov",
                   "bulk_url": "https://www.govinfo.gov/bulkdata/ECFR/title-21/ECFR-title21.xml"},
        parse=parse_ecfr, fetch_plan=fetch_ecfr, media_type="application/xml",
    ),
    Source(
        id=FR_SOURCE_ID, jurisdiction=CODE,
        title="Federal Register: DEA rulemaking on 21 CFR Part 1308",
        endpoints={"url": "https://www.federalregister.gov"},
        parse=parse_federal_register, fetch_plan=fetch_federal_register,
        media_type="application/json",
    ),
)


def cross_checks(records: Iterable[StatusRecord], pending: Iterable[PendingItem],
                 today: date) -> list[str]:
    """Warnings for the reports (the optional ``cross_checks`` hook of a jurisdiction
    module): final rules in effect that the eCFR does not show yet, with the days since."""
    current = list(records)
    fr = ParseResult(records=tuple(r for r in current if r.source_id == FR_SOURCE_ID),
                     pending=tuple(p for p in pending if p.source_id == FR_SOURCE_ID))
    ecfr = [r for r in current if r.source_id == ECFR_SOURCE_ID]
    if not fr.records and not fr.pending:
        return []
    lines = []
    for rule in unconfirmed_final_rules(fr, ecfr, today):
        expected = f"Schedule {rule.expected_schedule}" if rule.expected_schedule else \
            rule.expected_status.replace("_", " ")
        shown = f"Schedule {rule.ecfr_schedule}" if rule.ecfr_schedule else \
            (rule.ecfr_status or "nothing").replace("_", " ")
        days = (today - date.fromisoformat(rule.effective)).days
        lines.append(f"{rule.reference} ({rule.document}) took effect {rule.effective}: "
                     f"{rule.substance} {expected} expected, the eCFR shows {shown} — "
                     f"{days} day{'' if days == 1 else 's'} after the effective date")
    return lines
