"""Reading a Justice Laws "lims" XML document: bounded streaming, which instrument it is, the
dates it states about itself, and its coming-into-force provision.

The document is untrusted and read once, streamed (``jurisdictions.parsing.iterparse``): only
what the parser needs stays in memory (Identification, the schedules with the
"AMENDMENTS NOT IN FORCE" appendix, and the coming-into-force sections of the body). The
body's other sections (most of the Act) are freed as they are read. Documents above
``MAX_DOCUMENT_BYTES`` or with more than ``MAX_ELEMENTS`` elements are refused: a 63 MB body
(126 KiB gzipped on the wire) once took the old whole-tree parse to 2 GB (issue 16, item 6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jurisdictions.parsing import MONTH_NUMBERS, iterparse, refuse_html
from scrapers.errors import ExtractionError
from scrapers.records import Document, name_key, normalise_text

LIMS = "{http://justice.gc.ca/lims}"

#: The largest document accepted, in bytes. The real consolidations held in
#: ../shared/regulator-documents/ca are 0.37-0.42 MB (CDSA, 2019-2026), 0.41 MB (NCR) and
#: 0.63 MB (CSR); the CDSA grew 15 % in seven years. 8 MiB is thirteen times the largest, room
#: for decades of amendments, and keeps the kept tree to tens of MB at worst.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
#: The most elements accepted. The real CSR, the richest of the three, has 8,243 elements, the
#: CDSA 5,085, the NCR 4,283. A document within the byte cap but made of tiny elements (the
#: costly kind: each kept element costs a few hundred bytes of libxml2 and Python memory,
#: against ~80 bytes of text) is refused here.
MAX_ELEMENTS = 50_000

#: Appendices of a consolidation that are not the instrument's current text. NifProvs is
#: kept (pending amendments are read from it); RelatedProvs is never read.
APPENDIX_IDS = frozenset({"NifProvs", "RelatedProvs"})
#: The root's children the parser reads; everything else (Introduction, Order,
#: RecentAmendments, ...) is freed as soon as it has been read.
_KEPT_TOP = frozenset({"Identification", "Schedule", "Body"})

#: Inline elements whose text is not part of an entry's wording (footnote markers).
TEXT_SKIP = frozenset({"List", "Footnote", "FootnoteRef", "HistoricalNote"})


@dataclass(frozen=True)
class Instrument:
    """What a document must be, and how schedwatch cites it."""

    citation: str  # "S.C. 1996, c. 19"
    title: str
    link: str  # the Justice Laws file name, also used by XRefExternal/@link
    numbering: str  # "roman" | "arabic" | "none": how its schedules are numbered
    primary: str  # the schedule that must hold entries in a healthy document


#: The label schedwatch gives the single, unnumbered Schedule of the Narcotic Control
#: Regulations. The document prints just "SCHEDULE"; "NCR Schedule" keeps it distinct from the
#: CSR's "1" and from the CDSA's "I" wherever the label is shown without its instrument.
NCR_SCHEDULE = "NCR Schedule"

CDSA = Instrument("S.C. 1996, c. 19", "Controlled Drugs and Substances Act", "C-38.8",
                  "roman", "I")
CSR = Instrument("SOR/2025-242", "Controlled Substances Regulations", "SOR-2025-242",
                 "arabic", "1")
NCR = Instrument("C.R.C., c. 1041", "Narcotic Control Regulations", "C.R.C.,_c._1041",
                 "none", NCR_SCHEDULE)

#: Identification/InstrumentNumber as printed, English and French, -> instrument.
REGULATIONS = {
    "SOR/2025-242": CSR,
    "DORS/2025-242": CSR,
    "C.R.C., c. 1041": NCR,
    "C.R.C., ch. 1041": NCR,
}
_CDSA_SHORT_TITLES = ("Controlled Drugs and Substances Act",
                      "Loi réglementant certaines drogues et autres substances")


@dataclass(frozen=True)
class Commencement:
    """A coming-into-force date stated in an instrument that a consolidation of *another*
    instrument refers to without printing it."""

    date: str
    provision: str  # "s. 239"
    source: str  # where the date was read


#: The NCR consolidation of 2025-11-28 prints its repeal (SOR/2025-242, par. 238(a)) in its
#: "AMENDMENTS NOT IN FORCE" without a date; the date is SOR/2025-242's own s. 239 ("These
#: Regulations come into force on October 1, 2026."), read in the CSR consolidations of
#: 2025-11-28 and 2026-04-17 (../shared/regulator-documents/ca, SOURCES.md §2.4). Used only
#: when the document itself states no date.
KNOWN_COMMENCEMENTS: dict[str, Commencement] = {
    "SOR/2025-242": Commencement("2026-10-01", "s. 239",
                                 "SOR/2025-242, s. 239, as printed in its consolidation of "
                                 "2026-04-17"),
}


# --- the document ---------------------------------------------------------------------------

def _discard(element: Any) -> None:
    """Free an element that has been read in full and that the parser does not need."""
    parent = element.getparent()
    element.clear(keep_tail=False)
    if parent is not None:
        parent.remove(element)


def load(document: Document, expected: str) -> Any:
    """The document's root with only what the parser reads, or ExtractionError saying what
    came instead (nothing, an HTML page, malformed XML, too large)."""
    from lxml import etree

    content = document.content
    where = document.source_id
    # The size first: nothing below (not even a strip) copies an oversized body.
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ExtractionError(
            f"{where}: expected {expected}; found a document of {len(content) / 1e6:.1f} MB, "
            f"above the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB accepted (the real "
            "consolidations are under 1 MB); refused")
    if not content or not content.strip():
        raise ExtractionError(f"{where}: expected {expected}; found an empty document")
    refuse_html(content, where, expected)
    root: Any = None
    body: Any = None
    depth = 0
    elements = 0
    try:
        for event, element in iterparse(content, events=("start", "end")):
            if event == "start":
                depth += 1
                elements += 1
                if elements > MAX_ELEMENTS:
                    raise ExtractionError(
                        f"{where}: expected {expected}; found more than {MAX_ELEMENTS:,} "
                        "elements (the real consolidations have under 10,000); refused")
                if depth == 1:
                    root = element
                    tag = element.tag if isinstance(element.tag, str) else ""
                    if tag.lower() == "html" or tag.endswith("}html"):
                        raise ExtractionError(f"{where}: expected {expected}; the server "
                                              "answered an HTML page")
                elif depth == 2 and element.tag == "Body":
                    body = element
                continue
            depth -= 1
            if depth == 1:  # a child of the root, read in full
                if element.tag not in _KEPT_TOP or element.get("id") == "RelatedProvs":
                    _discard(element)
                body = None
            elif depth == 2 and body is not None and not (
                    element.tag == "Section" and element.get("type") == "CIF"):
                _discard(element)  # a section or heading of the body, not a CIF section
    except etree.XMLSyntaxError as exc:
        message = " ".join(str(exc).split())
        raise ExtractionError(f"{where}: expected {expected}; found malformed XML "
                              f"({message})") from None
    if root is None or not isinstance(root.tag, str):
        raise ExtractionError(f"{where}: expected {expected}; found no root element")
    return root


def text_of(element: Any, skip: frozenset[str] = TEXT_SKIP) -> str:
    """An element's own wording: its text and inline children's, but not nested lists (those
    are subitems) or footnote markers. Soft hyphens go: they sit inside chemical names
    ("benzene\\xadethanamine", seen in the 2019-09-19 and 2026-06-05 CDSA consolidations)."""
    parts: list[str] = []

    def collect(node: Any) -> None:
        parts.append(node.text or "")
        for child in node:
            if isinstance(child.tag, str) and child.tag not in skip:
                collect(child)
            parts.append(child.tail or "")

    collect(element)
    return normalise_text("".join(parts).replace("\u00ad", "").replace("\u200b", ""))


def _date_of(element: Any | None) -> str | None:
    """A lims <Date><YYYY/><MM/><DD/></Date> as ISO 8601."""
    if element is None:
        return None
    year = element.findtext("YYYY")
    month = element.findtext("MM")
    day = element.findtext("DD")
    if not (year and month and day):
        return None
    try:
        return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
    except ValueError:
        return None


def pit_date(root: Any) -> str | None:
    """The point in time the consolidation speaks for (``lims:pit-date``)."""
    value = root.get(LIMS + "pit-date")
    return value[:10] if value and re.match(r"^\d{4}-\d{2}-\d{2}", value) else None


def document_dates(root: Any) -> tuple[tuple[str, str], ...]:
    """The labelled dates the document states about itself."""
    get = root.get
    dates: list[tuple[str, str]] = []
    for label, attribute in (("point in time", "pit-date"), ("current to", "current-date"),
                             ("last amended", "lastAmendedDate")):
        value = get(LIMS + attribute)
        if value:
            dates.append((label, value))
    ident = root.find("Identification")
    if ident is not None:
        # Statutes carry the consolidation date in the bill history, regulations in
        # Identification (both seen in the 2025-11 and 2026 consolidations).
        consolidated = (_date_of(ident.find("BillHistory/Stages[@stage='consolidation']/Date"))
                        or _date_of(ident.find("ConsolidationDate/Date")))
        if consolidated:
            dates.append(("consolidated", consolidated))
        registered = _date_of(ident.find("RegistrationDate/Date"))
        if registered:
            dates.append(("registered", registered))
    return tuple(dates)


def title_of(root: Any) -> str | None:
    for path in ("Identification/ShortTitle", "Identification/LongTitle"):
        node = root.find(path)
        if node is not None:
            return text_of(node)
    return None


def check_cdsa(root: Any, source_id: str) -> None:
    expected = "Justice Laws XML of the Controlled Drugs and Substances Act (<Statute>, C-38.8)"
    tag = root.tag
    if tag != "Statute":
        raise ExtractionError(f"{source_id}: expected {expected}; found a <{tag}> document")
    number = normalise_text(root.findtext("Identification/Chapter/ConsolidatedNumber") or "")
    title = title_of(root) or ""
    # The chapter number is the same in both languages; the short title is the fallback for a
    # copy without it.
    known = number == "C-38.8" if number else title in _CDSA_SHORT_TITLES
    if not known:
        found = " ".join(filter(None, (number, title))) or "no ConsolidatedNumber or ShortTitle"
        raise ExtractionError(f"{source_id}: expected {expected}; found {found}")


def identify_regulation(root: Any, source_id: str) -> Instrument:
    expected = ("Justice Laws XML of the Controlled Substances Regulations (SOR/2025-242) or "
                "the Narcotic Control Regulations (C.R.C., c. 1041)")
    tag = root.tag
    if tag != "Regulation":
        number = normalise_text(root.findtext("Identification/Chapter/ConsolidatedNumber") or "")
        what = f"a <{tag}> document" + (f" ({number})" if number else "")
        raise ExtractionError(f"{source_id}: expected {expected}; found {what}")
    number = normalise_text(root.findtext("Identification/InstrumentNumber") or "")
    instrument = REGULATIONS.get(number)
    if instrument is None:
        found = number or "no InstrumentNumber"
        raise ExtractionError(f"{source_id}: expected {expected}; found {found}")
    return instrument


# --- coming into force ----------------------------------------------------------------------

_EN_DATE = re.compile(r"\b([A-Z][a-z]+) (\d{1,2}), (\d{4})\b")
_FR_DATE = re.compile(r"\b(\d{1,2})(?:er)? ([a-zéû]+) (\d{4})\b")
_IN_FORCE_ON = re.compile(r"(?:come|comes|came) into force on|entre(?:nt)? en vigueur le",
                          re.IGNORECASE)


def written_date(text: str) -> str | None:
    """The first written date after "come into force on" / "entre en vigueur le":
    "October 1, 2026" or "1er octobre 2026" -> "2026-10-01"."""
    marker = _IN_FORCE_ON.search(text)
    if not marker:
        return None
    rest = text[marker.end():]
    english = _EN_DATE.search(rest)
    month: int | None = None
    if english and english.group(1).lower() in MONTH_NUMBERS:
        month, day, year = MONTH_NUMBERS[english.group(1).lower()], english.group(2), \
            english.group(3)
    else:
        french = _FR_DATE.search(rest)
        if not french:
            return None
        month = MONTH_NUMBERS.get(name_key(french.group(2)))
        if month is None:
            return None
        day, year = french.group(1), french.group(3)
    return f"{int(year):04d}-{month:02d}-{int(day):02d}"


def coming_into_force(root: Any) -> tuple[str | None, str | None]:
    """The whole instrument's coming-into-force date, when a CIF section states one: "These
    Regulations come into force on October 1, 2026." (SOR/2025-242, s. 239, seen in the
    2026-04-17 consolidation). Returns (date, "s. 239")."""
    for section in root.iter("Section"):
        if section.get("type") != "CIF":
            continue
        text = text_of(section.find("Text")) if section.find("Text") is not None else ""
        if not re.match(r"^(?:These Regulations|This Act|Le présent règlement|La présente loi)",
                        text):
            continue  # a CIF section for some provisions only
        found = written_date(text)
        if found:
            label = normalise_text(section.findtext("Label") or "")
            return found, (f"s. {label}" if label else None)
    return None, None
