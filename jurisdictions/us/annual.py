"""The official annual edition of 21 CFR (govinfo bulk XML), read as eCFR Part 1308.

``https://www.govinfo.gov/bulkdata/CFR/{year}/title-21/CFR-{year}-title21-vol9.xml`` is
volume 9 of Title 21 (Parts 1300 to end), revised as of April 1 of each year. It is the
sanctioned bulk copy that ``schedwatch backfill`` reads when robots.txt of www.ecfr.gov
forbids the versioner's ``full/`` (``jurisdictions.us.archive``): one dated version a year.

Its markup is the GPO SGML-derived form of the printed CFR, not the eCFR's ``DIV`` form
(third-party parsers of the annual volumes, measured over 262 of them, 2026): root
``CFRDOC`` (``FDSYS`` header with ``CFRTITLE``, ``VOL``, ``DATE``; ``FMTR/TITLEPG`` with
``REVISED``); ``PART`` elements carry **no attributes**, their number is in the heading text
(``HD`` "PART 1308—SCHEDULES OF CONTROLLED SUBSTANCES"); ``SECTION`` holds ``SECTNO``
("§ 1308.13"), ``SUBJECT`` ("Schedule III."), flat ``P`` paragraphs and ``CITA``; tables are
``GPOTABLE/BOXHD/CHED`` and ``ROW/ENT``. ``EFFDNOT``/``REVTXT`` hold text not yet in force.

``part_1308`` reduces a volume to its Part 1308 while streaming (what is archived, like the
live bulk fallback); ``as_ecfr`` rewrites that part into the eCFR form
(``DIV5 N="1308"``/``DIV8 N="§ 1308.13"``/``HEAD``) so that ``jurisdictions.us.ecfr``'s own
walker reads it and the same records come out. Pure, no I/O; everything is untrusted (the
parser settings of ``jurisdictions.parsing``). This module imports no other US module, so
that ``ecfr`` can import it.
"""

from __future__ import annotations

import re
from typing import Any

from jurisdictions.parsing import iterparse, parse_xml, refuse_html, release
from scrapers.errors import ExtractionError
from scrapers.records import normalise_text

__all__ = ["ANNUAL_GRANULARITY", "annual_url", "as_ecfr", "is_annual", "part_1308"]

#: How finely an annual edition dates the law: said on every record read from one.
ANNUAL_GRANULARITY = "annual edition (revised as of April 1)"
#: Title 21 volume 9 holds Parts 1300 to end (Chapter II, the DEA) in every edition.
VOLUME = "9"

_PART_HEADING = re.compile(r"^\s*PART\s+(\d+[A-Za-z]?)(?=[—–\s-]|$)", re.IGNORECASE)
_SECTION_NUMBER = re.compile(r"(\d+\.\d+)")
_HEAD_BYTES = 4096
#: Text that is not yet (or no longer) in force: never read as today's schedules.
_NOT_IN_FORCE = frozenset({"EFFDNOT", "EFFDNOTP", "REVTXT"})


def annual_url(base: str, year: int) -> str:
    """The bulk URL of Title 21 volume 9 of ``year``'s edition under ``base``
    (``https://www.govinfo.gov/bulkdata/CFR``)."""
    return f"{base.rstrip('/')}/{year}/title-21/CFR-{year}-title21-vol{VOLUME}.xml"


def is_annual(content: bytes) -> bool:
    """Whether the bytes are an annual-edition volume (``CFRDOC``) or the ``PART`` reduced
    from one, rather than eCFR XML (``DIV5``, ``DLPSTEXTCLASS``)."""
    head = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", content[:_HEAD_BYTES], flags=re.DOTALL)
    match = re.search(rb"<([A-Za-z][\w.-]*)", head)
    return match is not None and match.group(1) in (b"CFRDOC", b"PART")


def _heading_part(part: Any) -> str | None:
    for child in part:
        if isinstance(child.tag, str) and child.tag == "HD":
            match = _PART_HEADING.match(normalise_text("".join(child.itertext())))
            return match.group(1) if match else None
    return None


def _facts(tag: str, path: tuple[str, ...], text: str, facts: dict[str, str]) -> None:
    if path[-2:] == ("FDSYS", "DATE"):
        facts.setdefault("volume_date", text)
    elif path[-2:] == ("FDSYS", "VOL"):
        facts.setdefault("volume", text)
    elif path[-2:] == ("TITLEPG", "REVISED"):
        facts.setdefault("revised", text)
    elif tag == "AMDDATE":
        facts.setdefault("amddate", text)


def part_1308(content: bytes) -> tuple[bytes, dict[str, str]]:
    """The serialised ``PART`` of an annual volume whose heading is "PART 1308", found by a
    streaming parse that frees every other part, and facts from the volume's header
    (``volume``, ``volume_date``, ``revised``). ExtractionError for an empty, HTML or
    malformed document, another root than ``CFRDOC``, or no Part 1308."""
    from lxml import etree

    if not content or not content.strip():
        raise ExtractionError("the annual CFR volume is empty")
    refuse_html(content, "the annual CFR volume", "annual CFR XML (CFRDOC)")
    facts: dict[str, str] = {}
    stack: list[str] = []
    seen: list[str] = []
    try:
        for event, elem in iterparse(content, events=("start", "end")):
            if event == "start":
                if not stack and elem.tag != "CFRDOC":
                    raise ExtractionError(f"the annual CFR volume has root <{elem.tag}>, not "
                                          "CFRDOC; this is not an annual-edition volume")
                stack.append(str(elem.tag))
                continue
            tag = str(elem.tag)
            path = tuple(stack)
            stack.pop()
            if tag in ("DATE", "VOL", "REVISED", "AMDDATE"):
                _facts(tag, path, normalise_text("".join(elem.itertext())), facts)
            elif tag == "PART":
                number = _heading_part(elem)
                if number == "1308":
                    if "amddate" in facts and "volume" in facts:
                        facts["amddate_volume"] = facts["volume"]
                    return etree.tostring(elem, encoding="UTF-8", xml_declaration=True,
                                          with_tail=False), facts
                if number and len(seen) < 12:
                    seen.append(number)
                release(elem)
    except (etree.LxmlError, ValueError) as error:
        message = " ".join(str(error).split())[:200]
        raise ExtractionError(f"the annual CFR volume is not well-formed XML ({message})") \
            from None
    found = f" (parts found: {', '.join(seen)})" if seen else " (no PART headings)"
    raise ExtractionError(f"no PART 1308 in the annual CFR volume{found}; this is not "
                          "Title 21 volume 9")


def _section_head(section: Any) -> tuple[str, str]:
    number = section.find("SECTNO")
    subject = section.find("SUBJECT")
    sectno = normalise_text("".join(number.itertext())) if number is not None else ""
    title = normalise_text("".join(subject.itertext())) if subject is not None else ""
    if section.find("RESERVED") is not None and "[reserved]" not in title.lower():
        title = f"{title} [Reserved]".strip()
    return sectno, title


def as_ecfr(content: bytes) -> tuple[bytes, dict[str, str]]:
    """An annual volume (or its Part 1308) rewritten as the eCFR's ``DIV5 N="1308"`` part:
    each ``SECTION`` becomes ``DIV8 N="§ …" TYPE="SECTION"`` headed "§ 1308.13   Schedule
    III." and keeps its paragraphs and ``GPOTABLE`` tables (read by the same walker); text in
    an effective-date note or revised text (not in force on the edition's date) is left
    out. Returns the bytes and the volume's facts."""
    from lxml import etree

    facts: dict[str, str] = {}
    root = parse_xml(content, "the annual CFR edition", "annual CFR XML (CFRDOC or PART)")
    if root.tag == "CFRDOC":
        content, facts = part_1308(content)
        root = parse_xml(content, "the annual CFR edition", "annual CFR XML")
    if root.tag != "PART" or _heading_part(root) != "1308":
        raise ExtractionError("the annual CFR edition holds no PART 1308; this is not Title "
                              "21 volume 9")
    part = etree.Element("DIV5", N="1308", TYPE="PART")
    head = root.find("HD")
    etree.SubElement(part, "HEAD").text = normalise_text("".join(head.itertext())) \
        if head is not None else "PART 1308"
    for section in root.iter("SECTION"):
        if any(a.tag in _NOT_IN_FORCE for a in section.iterancestors()):
            continue
        sectno, title = _section_head(section)
        match = _SECTION_NUMBER.search(sectno)
        if not match:
            continue
        div8 = etree.SubElement(part, "DIV8", N=f"§ {match.group(1)}", TYPE="SECTION")
        etree.SubElement(div8, "HEAD").text = f"§ {match.group(1)}   {title}".rstrip()
        for child in section:
            if not isinstance(child.tag, str) or child.tag in ("SECTNO", "SUBJECT") \
                    or child.tag in _NOT_IN_FORCE:
                continue
            div8.append(_copy(child))
    return etree.tostring(part, encoding="UTF-8", xml_declaration=True), facts


def _copy(elem: Any) -> Any:
    from copy import deepcopy

    copied = deepcopy(elem)
    copied.tail = None
    return copied
