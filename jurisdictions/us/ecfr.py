"""us-ecfr-1308: the eCFR text of 21 CFR §§ 1308.11–1308.15 (Schedules I–V).

The fetch plan asks the eCFR ``titles.json`` whether Title 21 moved since the last healthy
parse, then downloads Part 1308 from the versioner ``full`` endpoint (or, when robots.txt
disallows that, from the govinfo bulk XML of the whole title, reduced to Part 1308 while
streaming). The parser walks the flat ``P`` paragraphs and tables of each section, tracking
the paragraph numbers that the GPO schema writes into the text ("(c)", "(7)").

Dates: a record's ``evidence_date`` is the eCFR version it was read from (title 21's
``up_to_date_as_of``). The eCFR does not say since when an entry stands, so ``in_force_since``
stays empty here (``jurisdictions.us.law_dates`` takes it from the Federal Register), and no
consolidation date goes into ``effective_from``. ``AMDDATE`` is one volume's "amended as of"
date and is shown, labelled weak, never used as a legal date.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from jurisdictions.base import FetchContext, Fetched, Fetcher
from jurisdictions.matching import substance_key
from jurisdictions.parsing import (
    MONTH_NUMBERS,
    MONTHS_EN,
    exact_iso_date,
    iso_date,
    iterparse,
    load_json_object,
    refuse_html,
    release,
)
from jurisdictions.substances import KNOWN, Substance, WatchList
from jurisdictions.us import CODE, ECFR_SOURCE_ID, SCHEDULE_LEVELS, annual
from scrapers.errors import ExtractionError, FetchError
from scrapers.records import Document, ParseResult, StatusRecord, name_key, normalise_text

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
#: Bound on pagination, so that a server answering "next page" forever cannot hold a run.
MAX_VERSION_PAGES = 10




# =========================================================================================
# eCFR: fetch plan
# =========================================================================================

def title_21_status(content: bytes) -> dict[str, str]:
    """Title 21's entry in an eCFR ``titles.json`` answer, as strings.

    Raises ExtractionError when the answer is not JSON, has no title 21, or title 21 has no
    valid ``up_to_date_as_of`` date (it is used in a URL path, so it must be a date)."""
    data = load_json_object(content, "eCFR titles.json")
    titles = data.get("titles")
    if not isinstance(titles, list):
        raise ExtractionError("eCFR titles.json has no \"titles\" list; the API changed")
    for title in titles:
        if isinstance(title, dict) and str(title.get("number")) == "21":
            as_of = exact_iso_date(title.get("up_to_date_as_of"))
            if as_of is None:
                raise ExtractionError("eCFR titles.json: title 21 has no valid "
                                      f"up_to_date_as_of ({title.get('up_to_date_as_of')!r})")
            status = {"up_to_date_as_of": as_of}
            for key in ("latest_amended_on", "latest_issue_date"):
                value = exact_iso_date(title.get(key))
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
        data = load_json_object(content, "eCFR versions")
        versions = data.get("content_versions")
        if not isinstance(versions, list):
            raise ExtractionError("eCFR versions answer has no \"content_versions\" list")
        for version in versions:
            if not isinstance(version, dict):
                continue
            identifier = str(version.get("identifier", ""))
            when = exact_iso_date(version.get("amendment_date") or version.get("date"))
            if identifier in SCHEDULE_SECTIONS and when and when > latest.get(identifier, ""):
                latest[identifier] = when
        meta = data.get("meta")
        if isinstance(meta, dict):
            part_latest = exact_iso_date(meta.get("latest_amendment_date"))
            if part_latest and part_latest > latest.get("part", ""):
                latest["part"] = part_latest
    return latest


def _versions_total_pages(content: bytes) -> int:
    """The ``meta.total_pages`` of a versions answer (1 when absent or not a number; a
    non-JSON or too deeply nested answer is an ExtractionError, caught by the caller)."""
    meta = load_json_object(content, "eCFR versions").get("meta")
    try:
        return max(1, int((meta or {}).get("total_pages") or 1))
    except (ValueError, TypeError, AttributeError):
        return 1


def version_pages(fetcher: Fetcher, base: str) -> list[bytes]:
    """Every page of ``versions/title-21.json?part=1308&issue_date[gte]=…`` (the API answers
    400 without an issue_date parameter), at most ``MAX_VERSION_PAGES``. Also read by the
    archive (``jurisdictions.us.archive``)."""
    url = f"{base}/api/versioner/v1/versions/title-21.json"
    params: dict[str, str | list[str]] = {"part": PART, "issue_date[gte]": VERSIONS_SINCE}
    first = fetcher.get(url, params=params)
    pages = [first.content]
    for page in range(2, min(_versions_total_pages(first.content), MAX_VERSION_PAGES) + 1):
        pages.append(fetcher.get(url, params={**params, "page": str(page)}).content)
    return pages


def _versions_meta(fetcher: Fetcher, base: str) -> dict[str, str]:
    """Amendment dates of §§ 1308.11–.15 from the versions endpoint, as Fetched.meta facts."""
    latest = section_amendment_dates(version_pages(fetcher, base))
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

def _inside_part(elem: Any, part: str) -> bool:
    for ancestor in elem.iterancestors("DIV5"):
        return normalise_text(ancestor.get("N", "")) == part
    return False


def stream_part(content: bytes, part: str = PART) -> tuple[Any, dict[str, str]]:
    """The ``DIV5 N=part`` element of an eCFR XML document (a whole title or a part), found
    with a streaming parse that frees every other part as it goes, plus facts seen on the
    way: ``amddate`` (the last ``AMDDATE`` before the part) and ``amddate_volume`` (the
    ``DIV1 N`` that follows it). Raises ExtractionError for an empty, HTML, malformed or
    part-less document.

    A whole-title file has one ``ECFRBRWS/AMDDATE`` per volume, each before its ``DIV1 N="…"
    TYPE="TITLE"`` (the eCFR's own source-XML patches, 2017–2023): the one kept is that of
    the volume holding the part (volume 9 for Part 1308), and it is labelled as that
    volume's, not the title's."""
    from lxml import etree  # imported here: a warm run that parses nothing never loads it

    if not content or not content.strip():
        raise ExtractionError("the eCFR document is empty")
    refuse_html(content, "the eCFR document", "eCFR XML")
    facts: dict[str, str] = {}
    parts_seen: list[str] = []
    root_tag: str | None = None
    volume_open = False  # an AMDDATE was read and its volume's DIV1 has not started yet
    try:
        for event, elem in iterparse(content, events=("start", "end")):
            tag = elem.tag
            if event == "start":
                if root_tag is None:
                    root_tag = str(tag)
                elif tag == "DIV1" and volume_open:
                    volume = normalise_text(elem.get("N", ""))
                    if volume:
                        facts["amddate_volume"] = volume
                    volume_open = False
                continue
            if tag == "AMDDATE":
                facts["amddate"] = normalise_text("".join(elem.itertext()))
                facts.pop("amddate_volume", None)
                volume_open = True
            elif tag == "DIV5":
                number = normalise_text(elem.get("N", ""))
                if number == part:
                    return elem, facts
                if len(parts_seen) < 12:
                    parts_seen.append(number)
                release(elem)
            elif tag == "DIV8" and not _inside_part(elem, part):
                release(elem)
    except (etree.LxmlError, ValueError) as error:
        # Every lxml failure on untrusted bytes (syntax, encoding, limits) is the document's
        # fault, never a crash of the run.
        message = " ".join(str(error).split())[:200]
        raise ExtractionError(f"the eCFR document is not well-formed XML ({message})") \
            from None
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
#: A DEA code after the entry text, behind spaces, dot leaders or a dash: "… isomers
#: ........ 7285", "(d) Nalorphine 9400.", and the paragraph entries of § 1308.13(f) and (g),
#: which print "chapter)—4000" and "product - 7369." (the Markdown conversion of the eCFR,
#: regulator-documents/us/ecfr-markdown-1308.13-d-to-g-excerpt.md). ``normalise_text`` has
#: already made em and en dashes "-". A hyphen with no space on either side counts only after
#: ")" or three lower-case letters, so that a code name such as "AM-2201" or "UR-1441" at the
#: end of an uncoded line is not read as a DEA code.
_TRAILING_CODE = re.compile(
    r"^(?P<text>.*?\S)(?:\s*(?:\.\s*){2,}|\s*…+\s*|\s+-\s*|\s*-\s+|(?:(?<=\))|(?<=[a-z]{3}))-"
    r"|\s+)(?P<code>\d{4})\.?$")
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
    head = match.group("text").rstrip(" .…-")
    words = head.lower().split()
    if not head or head.endswith(",") or (words and words[-1].strip(",") in MONTHS_EN) \
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


def _after_heading(rest: str, heading: str | None) -> str | None:
    """What follows a paragraph's italic heading when a paragraph marker starts it
    ("(1) Dronabinol …" after "Hallucinogenic substances."), else None."""
    if not heading or not rest.lower().startswith(heading.lower()):
        return None
    body = rest[len(heading):].lstrip(".:").lstrip()
    return body if _MARKER.match(body) else None


def walk_section(div8: Any, section: str, schedule: str) -> list[ScheduleEntry]:
    """Every coded entry of one schedule section with its pinpoint paragraph, heading, code
    and other-names notes."""
    position = _Walk()
    entries: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    notes_open = False
    for line in section_lines(div8):
        markers, rest = _split_markers(line.text)
        # "(g) <I>Hallucinogenic substances.</I> (1) Dronabinol … - 7369.": the heading and
        # the first numbered entry share one paragraph (§ 1308.13(g)); the entry is (g)(1).
        body = _after_heading(rest, line.heading) if markers else None
        inner, inner_rest = _split_markers(body) if body else ([], "")
        letter_rest = rest[:len(rest) - len(body)].strip() if body else rest
        for index, marker in enumerate(markers):
            has_heading = line.heading is not None and index == len(markers) - 1
            position.open(marker, position.level_of(marker, has_heading), letter_rest, line)
        if inner:
            rest = inner_rest
            for marker in inner:
                position.open(marker, position.level_of(marker, False), rest,
                              Line(text=rest, code=line.code))
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
    amddate_volume: str | None = None  # the DIV1 N of the volume the AMDDATE heads


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
                    missing=tuple(missing), amddate=amddate,
                    amddate_volume=facts.get("amddate_volume"))


_MONTH_ABBREVIATIONS = {m[:3]: MONTH_NUMBERS[m] for m in MONTHS_EN}


def amddate_iso(text: str) -> str | None:
    """"Dec. 29, 2022(fm)" (the bulk XML's AMDDATE) → "2022-12-29"; also "March 21, 2017"
    and "2017-03-21", both seen in the eCFR's own corrections of Title 21 volume 9's
    AMDDATE (regulator-documents/us/ecfr-source-xml-patches/); None if unreadable."""
    if iso_date(text.strip()[:10]) and re.match(r"\d{4}-\d{2}-\d{2}\b", text.strip()):
        return iso_date(text.strip())
    match = re.search(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),\s*(\d{4})", text)
    if not match or match.group(1).lower() not in _MONTH_ABBREVIATIONS:
        return None
    try:
        return date(int(match.group(3)), _MONTH_ABBREVIATIONS[match.group(1).lower()],
                    int(match.group(2))).isoformat()
    except ValueError:
        return None


def amddate_label(volume: str | None) -> str:
    """The label of an AMDDATE: one volume's "amended as of" date, a weak date. The eCFR
    team has corrected wrong but well-formed values (volume 9: "Aug. 20, 2022" → "July 18,
    2022", "January 9, 2023" → "February 9, 2023"), so it is shown, never used as the
    document's date or a legal one."""
    where = f"Title 21 volume {volume}" if volume else "this volume of Title 21"
    return f"{where} amended as of (AMDDATE, weak)"


def _ecfr_dates(meta: Mapping[str, str], amddate: str | None, volume: str | None,
                sections: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    """Labelled dates: up-to-date-as-of, per-section (or all-schedule) last amendment, the
    volume's AMDDATE. ``sections`` None: the whole part's dates."""
    dates: list[tuple[str, str]] = []
    as_of = exact_iso_date(meta.get("up_to_date_as_of"))
    if as_of:
        dates.append(("eCFR up to date as of", as_of))
    revised = exact_iso_date(meta.get("revised_as_of"))
    if revised:
        dates.append(("CFR annual edition revised as of", revised))
    chosen = list(SCHEDULE_SECTIONS) if sections is None else list(dict.fromkeys(sections))
    for section in chosen:
        amended = exact_iso_date(meta.get(f"amended_on:{section}"))
        if amended:
            dates.append((f"§ {section} last amended", amended))
    latest = exact_iso_date(meta.get("latest_amended_on"))
    if latest and (sections is None or not chosen):
        dates.append(("§§ 1308.11–1308.15 last amended", latest))
    if sections is None:
        title_amended = exact_iso_date(meta.get("title_latest_amended_on"))
        if title_amended:
            dates.append(("Title 21 last amended", title_amended))
    if amddate:
        dates.append((amddate_label(volume), amddate_iso(amddate) or amddate))
    return tuple(dates)


_VERSION_IN_URL = re.compile(r"/api/versioner/v1/full/(\d{4}-\d{2}-\d{2})/")


def evidence_date(document: Document) -> str | None:
    """The date the document speaks for: the eCFR version it is (title 21's
    ``up_to_date_as_of``, saved in ``meta`` by the fetch plan, else the date in a versioner
    ``full/{date}/`` URL). Not AMDDATE (weak) nor a section's amendment date."""
    as_of = exact_iso_date(document.meta.get("up_to_date_as_of")) \
        or exact_iso_date(document.meta.get("revised_as_of"))  # an annual edition (backfill)
    if as_of:
        return as_of
    match = _VERSION_IN_URL.search(document.url)
    return exact_iso_date(match.group(1)) if match else None


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
        dates=dates, evidence_date=evidence_date(document),
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
        dates=dates([]), evidence_date=evidence_date(document)), []


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
    if annual.is_annual(document.content):  # an annual edition (backfill): the same walker
        content, facts = annual.as_ecfr(document.content)
        document = dataclasses.replace(document, content=content,
                                       meta={**facts, **document.meta})
    part = read_part_1308(document.content)
    # The bulk fallback archives the part alone; the title's AMDDATE travels in meta.
    amddate, volume = part.amddate, part.amddate_volume
    if amddate is None:
        amddate, volume = document.meta.get("amddate"), document.meta.get("amddate_volume")

    def dates(sections: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
        return _ecfr_dates(document.meta, amddate, volume, sections)

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
    granularity = normalise_text(document.meta.get("granularity", ""))[:200]
    if granularity:  # an archived version (backfill): say how finely it dates the law
        note = f"granularity: {granularity} — {_GRANULARITY_NOTES.get(granularity, '')}"
        records = [dataclasses.replace(r, legal_note=r.legal_note or note.rstrip(" —"))
                   for r in records]
    return ParseResult(records=tuple(records), pending=(), document_dates=dates(None),
                       title=f"21 CFR {part.title}", instrument="21 CFR Part 1308")


#: What each archive granularity means for the dates of a backfilled interval.
_GRANULARITY_NOTES = {
    annual.ANNUAL_GRANULARITY: "one edition a year; a change between two editions is dated "
                               "by the first edition that shows it, not by its effective date",
    "eCFR point in time": "the eCFR text as of this version date (versioner, from 2017-01-03)",
}

