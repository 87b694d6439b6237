"""Canada: the Controlled Drugs and Substances Act and its scheduling regulations, parsed from
Justice Laws "lims" XML (laws-lois.justice.gc.ca and its GitHub mirror justicecanada/laws-lois-xml).

Two sources:

* ``ca-cdsa``: the Controlled Drugs and Substances Act (S.C. 1996, c. 19), Schedules I to IX.
  Ketamine is Schedule I, item 14(1), under item 14 (phencyclidine and its analogues).
* ``ca-csr``: the Controlled Substances Regulations (SOR/2025-242, in force 2026-10-01), whose
  Schedule 1 is a table. The same parser reads the Narcotic Control Regulations (C.R.C., c. 1041),
  the predecessor the CSR repeals, whose single unnumbered Schedule also lists ketamine at item
  14(1), so that ``schedwatch parse ca-csr ncr.xml`` works across the 2026 switch.

Both parsers are pure functions of the archived bytes. They read every schedule (a move from
Schedule I to III must show as a schedule change), ignore what is not law yet (the
"AMENDMENTS NOT IN FORCE" and "RELATED PROVISIONS" appendices, ``in-force="no"`` elements) and
report it as pending items instead, and raise ``ExtractionError`` when the document is not the
instrument they know: an empty record list would read as "descheduled".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from jurisdictions.base import Source
from jurisdictions.matching import substance_key
from jurisdictions.substances import KNOWN, Substance, WatchList
from scrapers.errors import ExtractionError
from scrapers.records import (
    Document,
    ParseResult,
    PendingItem,
    StatusRecord,
    name_key,
    normalise_text,
)

CODE = "ca"
NAME = "Canada"
TIMEZONE = "America/Toronto"

#: The label schedwatch gives the single, unnumbered Schedule of the Narcotic Control
#: Regulations. The document prints just "SCHEDULE"; "NCR Schedule" keeps it distinct from the
#: CSR's "1" and from the CDSA's "I" wherever the label is shown without its instrument.
NCR_SCHEDULE = "NCR Schedule"

#: Local schedule label -> cross-jurisdiction control level (scrapers.records.CONTROL_LEVELS).
#: A reading aid, not legal advice; reports show it beside the local label.
#:
#: CDSA (S.C. 1996, c. 19); the offences each schedule attracts are in ss. 4 to 7.1:
#:   I, II   -> C2  the heaviest penalties (opioids, cocaine, amphetamines, PCP and ketamine;
#:                  synthetic cannabinoids).
#:   III     -> C3  (methylphenidate, LSD, psilocybin, mescaline...).
#:   IV      -> C4  (benzodiazepines, barbiturates, anabolic steroids): no possession offence.
#:   V       -> C5  temporary designations (s. 60.1), with a period: no possession offence.
#:   VI      -> C6  precursors: chemicals, not a medicine schedule.
#:   VII, VIII -> C5  the former cannabis schedules, repealed in 2018 (2018, c. 16, s. 205); kept
#:                  so that older consolidations still map.
#:   IX      -> C6  designated devices (tablet presses, encapsulators): not a medicine schedule.
#: Controlled Substances Regulations (SOR/2025-242), by the regime each schedule carries on:
#:   1 -> C2  "Narcotics" (the NCR's Schedule).
#:   2 -> C3  "Controlled Drugs" (the Food and Drug Regulations' controlled drugs).
#:   3 -> C4  "Targeted Substances" (the Benzodiazepines and Other Targeted Substances Regs).
#:   4 -> C1  "Restricted Drugs" (LSD, psilocybin...: no accepted medical use).
#: Narcotic Control Regulations (C.R.C., c. 1041):
#:   NCR Schedule -> C2  the narcotics regime (the CSR's Schedule 1 from 2026-10-01).
SCHEDULE_LEVELS: dict[str, str] = {
    "I": "C2",
    "II": "C2",
    "III": "C3",
    "IV": "C4",
    "V": "C5",
    "VI": "C6",
    "VII": "C5",
    "VIII": "C5",
    "IX": "C6",
    "1": "C2",
    "2": "C3",
    "3": "C4",
    "4": "C1",
    NCR_SCHEDULE: "C2",
}

_LIMS = "{http://justice.gc.ca/lims}"
#: Appendices of a consolidation that are not the instrument's current text.
_APPENDIX_IDS = frozenset({"NifProvs", "RelatedProvs"})
#: Elements under a schedule that never hold entries.
_NOT_ENTRIES = frozenset({"ScheduleFormHeading", "HistoricalNote", "Footnote", "Repealed",
                          "GroupHeading", "Caption", "OriginatingRef", "colspec", "thead"})
#: Inline elements whose text is not part of an entry's wording (footnote markers).
_TEXT_SKIP = frozenset({"List", "Footnote", "FootnoteRef", "HistoricalNote"})


@dataclass(frozen=True)
class _Instrument:
    """What a document must be, and how schedwatch cites it."""

    citation: str  # "S.C. 1996, c. 19"
    title: str
    link: str  # the Justice Laws file name, also used by XRefExternal/@link
    numbering: str  # "roman" | "arabic" | "none": how its schedules are numbered
    primary: str  # the schedule that must hold entries in a healthy document


_CDSA = _Instrument("S.C. 1996, c. 19", "Controlled Drugs and Substances Act", "C-38.8",
                    "roman", "I")
_CSR = _Instrument("SOR/2025-242", "Controlled Substances Regulations", "SOR-2025-242",
                   "arabic", "1")
_NCR = _Instrument("C.R.C., c. 1041", "Narcotic Control Regulations", "C.R.C.,_c._1041",
                   "none", NCR_SCHEDULE)

#: Identification/InstrumentNumber as printed, English and French, -> instrument.
_REGULATIONS = {
    "SOR/2025-242": _CSR,
    "DORS/2025-242": _CSR,
    "C.R.C., c. 1041": _NCR,
    "C.R.C., ch. 1041": _NCR,
}
_CDSA_SHORT_TITLES = ("Controlled Drugs and Substances Act",
                      "Loi réglementant certaines drogues et autres substances")


# --- the document ---------------------------------------------------------------------------

def _parse_xml(document: Document, expected: str) -> Any:
    """The document's root element, or ExtractionError saying what came instead."""
    from lxml import etree

    content = document.content
    where = document.source_id
    if not content or not content.strip():
        raise ExtractionError(f"{where}: expected {expected}; found an empty document")
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:200].lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise ExtractionError(f"{where}: expected {expected}; found an HTML page")
    # Untrusted input: no entity expansion, no DTD or network access.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        message = " ".join(str(exc).split())
        raise ExtractionError(f"{where}: expected {expected}; found malformed XML "
                              f"({message})") from None
    if root is None or not isinstance(root.tag, str):
        raise ExtractionError(f"{where}: expected {expected}; found no root element")
    if root.tag.lower() == "html" or root.tag.endswith("}html"):
        raise ExtractionError(f"{where}: expected {expected}; found an HTML page")
    return root


def _text(element: Any, skip: frozenset[str] = _TEXT_SKIP) -> str:
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


def _document_dates(root: Any) -> tuple[tuple[str, str], ...]:
    """The labelled dates the document states about itself."""
    get = root.get
    dates: list[tuple[str, str]] = []
    for label, attribute in (("point in time", "pit-date"), ("current to", "current-date"),
                             ("last amended", "lastAmendedDate")):
        value = get(_LIMS + attribute)
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


def _title(root: Any) -> str | None:
    for path in ("Identification/ShortTitle", "Identification/LongTitle"):
        node = root.find(path)
        if node is not None:
            return _text(node)
    return None


def _check_cdsa(root: Any, source_id: str) -> None:
    expected = "Justice Laws XML of the Controlled Drugs and Substances Act (<Statute>, C-38.8)"
    tag = root.tag
    if tag != "Statute":
        raise ExtractionError(f"{source_id}: expected {expected}; found a <{tag}> document")
    number = normalise_text(root.findtext("Identification/Chapter/ConsolidatedNumber") or "")
    title = _title(root) or ""
    # The chapter number is the same in both languages; the short title is the fallback for a
    # copy without it.
    known = number == "C-38.8" if number else title in _CDSA_SHORT_TITLES
    if not known:
        found = " ".join(filter(None, (number, title))) or "no ConsolidatedNumber or ShortTitle"
        raise ExtractionError(f"{source_id}: expected {expected}; found {found}")


def _identify_regulation(root: Any, source_id: str) -> _Instrument:
    expected = ("Justice Laws XML of the Controlled Substances Regulations (SOR/2025-242) or "
                "the Narcotic Control Regulations (C.R.C., c. 1041)")
    tag = root.tag
    if tag != "Regulation":
        number = normalise_text(root.findtext("Identification/Chapter/ConsolidatedNumber") or "")
        what = f"a <{tag}> document" + (f" ({number})" if number else "")
        raise ExtractionError(f"{source_id}: expected {expected}; found {what}")
    number = normalise_text(root.findtext("Identification/InstrumentNumber") or "")
    instrument = _REGULATIONS.get(number)
    if instrument is None:
        found = number or "no InstrumentNumber"
        raise ExtractionError(f"{source_id}: expected {expected}; found {found}")
    return instrument


# --- schedules and their entries ------------------------------------------------------------

_SCHEDULE_LABEL = re.compile(r"^(?:SCHEDULE|ANNEXE)(?:\s+(?P<n>[IVXL]+|\d+))?$")
_ROMAN = re.compile(r"^[IVXL]+$")
_NUMBERING = {"roman": "schedules numbered I, II, ...", "arabic": "schedules numbered 1, 2, ...",
              "none": "one unnumbered SCHEDULE"}


@dataclass(frozen=True)
class _Schedule:
    label: str  # "I", "1", NCR_SCHEDULE
    element: Any
    in_force: bool
    last_amended: str | None


@dataclass(frozen=True)
class _Entry:
    """One labelled item or subitem of a schedule."""

    schedule: str
    location: tuple[str, ...]  # ("Part 1",), ("Part 2", "Table 1")
    labels: tuple[str, ...]  # ("14", "(1)")
    text: str
    parent_text: str | None
    parent_provision: str | None
    #: False when the schedule, or the entry inside an in-force schedule, is marked
    #: in-force="no".
    in_force: bool
    schedule_in_force: bool
    inforce_start: str | None
    schedule_last_amended: str | None

    @property
    def provision(self) -> str:
        return _provision(self.schedule, self.location, self.labels)

    @property
    def item(self) -> str:
        return self.labels[0]


def _provision(schedule: str, location: Sequence[str], labels: Sequence[str]) -> str:
    """Pinpoint in English whatever the document's language: "Sch. I, item 14(1)",
    "Sch. 2, Part 1, item 1(3)", "Sch., item 14(1)" for the NCR's unnumbered Schedule."""
    head = "Sch." if schedule == NCR_SCHEDULE else f"Sch. {schedule}"
    return ", ".join([head, *location, "item " + "".join(labels)])


def _schedules(root: Any, instrument: _Instrument, source_id: str) -> list[_Schedule]:
    """The instrument's schedules (not the not-in-force/related appendices), checked."""
    found: list[_Schedule] = []
    for element in root.findall("Schedule"):
        if element.get("id") in _APPENDIX_IDS:
            continue
        raw = element.findtext("ScheduleFormHeading/Label")
        printed = normalise_text(raw or "")
        match = _SCHEDULE_LABEL.match(printed.upper())
        if not match:
            shown = f"label {printed!r}" if printed else "no label"
            raise ExtractionError(f"{source_id}: expected schedules labelled SCHEDULE/ANNEXE in "
                                  f"the {instrument.title}; found a schedule with {shown}")
        number = match.group("n")
        if instrument.numbering == "none":
            ok = number is None
            label = NCR_SCHEDULE
        elif instrument.numbering == "roman":
            ok = number is not None and bool(_ROMAN.match(number))
            label = number or ""
        else:
            ok = number is not None and number.isdigit()
            label = number or ""
        if not ok:
            raise ExtractionError(f"{source_id}: expected {_NUMBERING[instrument.numbering]} in "
                                  f"the {instrument.title}; found {printed!r}")
        found.append(_Schedule(label=label, element=element,
                               in_force=element.get("in-force") != "no",
                               last_amended=element.get(_LIMS + "lastAmendedDate")))
    if not found:
        raise ExtractionError(f"{source_id}: expected the schedules of the {instrument.title}; "
                              "found no schedules")
    return found


def _location_label(text: str) -> str | None:
    """"PART 1" -> "Part 1"; "TABLE 1 — Class A Precursors" -> "Table 1" (French PARTIE,
    TABLEAU too)."""
    match = re.match(r"^(PART|PARTIE|TABLE|TABLEAU)\s+(\w+)", text.upper())
    if not match:
        return text or None
    kind = "Part" if match.group(1).startswith("PART") else "Table"
    return f"{kind} {match.group(2)}"


def _is_repealed(element: Any, text: str) -> bool:
    """"[Repealed, 2018, c. 16, s. 204]" / "[Abrogé, ...]", marked up or not. Only the entry's
    own wording counts: a repealed subitem in a nested list does not repeal its item."""
    return text.startswith(("[Repealed", "[Abrogé")) or element.find("Repealed") is not None


@dataclass(frozen=True)
class _Walk:
    """What stays the same while walking one schedule."""

    schedule: _Schedule

    def entry(self, *, location: tuple[str, ...], labels: tuple[str, ...], text: str,
              parent: _Entry | None, in_force: bool, start: str | None) -> _Entry:
        return _Entry(schedule=self.schedule.label, location=location, labels=labels,
                      text=text, parent_text=parent.text if parent else None,
                      parent_provision=parent.provision if parent else None,
                      in_force=in_force and self.schedule.in_force,
                      schedule_in_force=self.schedule.in_force, inforce_start=start,
                      schedule_last_amended=self.schedule.last_amended)


def _entries(schedule: _Schedule) -> list[_Entry]:
    walk = _Walk(schedule)
    return list(_walk(walk, schedule.element, (), True))


def _not_in_force(element: Any) -> bool:
    return element.get("in-force") == "no"


def _walk(walk: _Walk, element: Any, location: tuple[str, ...],
          in_force: bool) -> Iterator[_Entry]:
    """Entries under a schedule, whatever the layout: a List of Items (CDSA, NCR), Groups
    (Parts) holding Lists or tables (CDSA Schedules V and VI), TableGroups of rows (CSR)."""
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _NOT_ENTRIES:
            continue
        child_in_force = in_force and not _not_in_force(child)
        if tag == "Group":
            heading = child.find("GroupHeading/Label")
            part = _location_label(_text(heading)) if heading is not None else None
            yield from _walk(walk, child, location + ((part,) if part else ()), child_in_force)
        elif tag == "TableGroup":
            caption = child.find("Caption")
            name = _location_label(_text(caption)) if caption is not None else None
            yield from _rows(walk, child, location + ((name,) if name else ()),
                             child_in_force)
        elif tag == "List":
            yield from _items(walk, child, location, (), None, child_in_force)
        else:  # DocumentInternal, Provision, ...: containers
            yield from _walk(walk, child, location, child_in_force)


def _items(walk: _Walk, list_element: Any, location: tuple[str, ...],
           prefix: tuple[str, ...], parent: _Entry | None, in_force: bool) -> Iterator[_Entry]:
    for item in list_element.iterchildren("Item"):
        item_in_force = in_force and not _not_in_force(item)
        label = normalise_text(item.findtext("Label") or "")
        sublist = item.find("List")
        if not label:
            # Connective text ("and the salts, derivatives ... including:", "but not
            # including"): not an entry; any list under it continues the parent's numbering.
            if sublist is not None:
                yield from _items(walk, sublist, location, prefix, parent, item_in_force)
            continue
        text_element = item.find("Text")
        entry: _Entry | None = None
        text = _text(text_element) if text_element is not None else ""
        if text and not _is_repealed(text_element, text):
            entry = walk.entry(location=location, labels=prefix + (label,), text=text,
                               parent=parent, in_force=item_in_force,
                               start=item.get(_LIMS + "inforce-start-date"))
            yield entry
        if sublist is not None:
            yield from _items(walk, sublist, location, prefix + (label,), entry, item_in_force)


def _rows(walk: _Walk, table_group: Any, location: tuple[str, ...],
          in_force: bool) -> Iterator[_Entry]:
    """A schedule table: column 1 the item number, column 2 the substance with its subitems
    as a nested List (CSR Schedule 1, seen in the 2026-04-17 consolidation). Later columns
    (a temporary designation's period) are not part of the entry."""
    for row in table_group.iterfind("table/tgroup/tbody/row"):
        row_in_force = in_force and not _not_in_force(row)
        cells = [cell for cell in row if cell.tag == "entry"]
        if len(cells) < 2:
            continue
        label = _text(cells[0])
        if not label:
            continue
        cell = cells[1]
        row_in_force = row_in_force and not _not_in_force(cell)
        entry: _Entry | None = None
        text = _text(cell)
        if text and not _is_repealed(cell, text):
            entry = walk.entry(location=location, labels=(label,), text=text, parent=None,
                               in_force=row_in_force, start=row.get(_LIMS + "inforce-start-date"))
            yield entry
        for sublist in cell.iterchildren("List"):
            yield from _items(walk, sublist, location, (label,), entry, row_in_force)


# --- matching -------------------------------------------------------------------------------

_NAME_END = re.compile(r"\s\(|,\s")
_COMBINING = re.compile("[\u0300-\u036f]")


def _fold(text: str) -> str:
    """``name_key`` for long texts: the same folding (normalised, accents dropped, lower case)
    with one regex over the Latin combining marks instead of a per-character loop; an
    amendment replacing a whole Part of the CDSA runs to ~20,000 characters."""
    decomposed = unicodedata.normalize("NFKD", normalise_text(text))
    return _COMBINING.sub("", decomposed).lower()


def listed_name(text: str) -> str:
    """The substance name of an entry: the text before the first " (" or ", ". A comma
    followed by a space ends the name; one inside a chemical name ("3,4-methylenedioxy",
    "N,N-dimethyl") does not."""
    return _name_part(normalise_text(text))


def _name_part(text: str) -> str:
    """``listed_name`` of text already normalised (entry texts are)."""
    match = _NAME_END.search(text)
    return (text[: match.start()] if match else text).strip()


def _parenthetical(text: str) -> str | None:
    """The first balanced parenthesis group: the chemical name in "Ketamine (2-(2-...)...)"."""
    start = text.find("(")
    if start < 0:
        return None
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1: index]
    return None


@dataclass(frozen=True)
class _Matcher:
    """The watched substances plus those they are covered by (esketamine -> ketamine), so that
    watching esketamine alone still finds the ketamine entry that covers it.

    Matching is ``WatchList.match``'s rule (equal ``name_key``), with the keys computed once
    per parse: calling ``match`` for each of the ~500 entries of the CDSA cost ~200 ms."""

    substances: tuple[Substance, ...]
    index: dict[str, Substance]
    mentions: dict[str, re.Pattern[str]]  # substance key -> its names as whole words

    @classmethod
    def of(cls, watch: WatchList) -> _Matcher:
        chosen = list(watch.substances)
        keys = {s.key for s in chosen}
        for substance in watch.substances:
            if substance.covered_by and substance.covered_by not in keys:
                cover = next((k for k in KNOWN if k.key == substance.covered_by), None)
                if cover is not None:
                    chosen.append(cover)
                    keys.add(cover.key)
        index: dict[str, Substance] = {}
        mentions: dict[str, re.Pattern[str]] = {}
        for substance in chosen:
            names = [key for key in dict.fromkeys(name_key(n) for n in substance.names()) if key]
            for key in names:
                index.setdefault(key, substance)
            alternatives = "|".join(re.escape(key) for key in names)
            mentions[substance.key] = re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")
        return cls(substances=tuple(chosen), index=index, mentions=mentions)

    def get(self, key: str) -> Substance | None:
        return next((s for s in self.substances if s.key == key), None)

    def match(self, text: str) -> Substance | None:
        """The substance an entry names: by its name ("Ketamine", "kétamine") or, failing
        that, by the chemical name in parentheses."""
        found = self.index.get(name_key(_name_part(text)))
        if found is None:
            chemical = _parenthetical(text)
            if chemical:
                found = self.index.get(name_key(chemical))
        return found

    def mentioned(self, substance: Substance, folded: str) -> bool:
        """Whether name_key-folded text names the substance as a whole word ("ketamine" but
        not inside "esketamine")."""
        pattern = self.mentions.get(substance.key)
        return bool(pattern and pattern.search(folded))


# --- records --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    document: Document
    instrument: _Instrument
    dates: tuple[tuple[str, str], ...]
    coming_into_force: str | None  # the whole instrument's date, if the document states it
    cif_section: str | None

    def provenance(self) -> dict[str, str]:
        document = self.document
        retrieved = document.retrieved_at
        # Stored in UTC; a naive time is taken to be UTC already.
        retrieved = (retrieved.replace(tzinfo=UTC) if retrieved.tzinfo is None
                     else retrieved.astimezone(UTC))
        return {
            "source_id": document.source_id,
            "source_url": document.url,
            "document_sha256": document.sha256,
            "retrieved_at": retrieved.isoformat(),
        }


def _status_of(entries: Sequence[_Entry]) -> str:
    if any(e.in_force for e in entries):
        return "controlled"
    return "not_in_force"


def _strictest(labels: Iterable[str]) -> str | None:
    levels = sorted(SCHEDULE_LEVELS[label] for label in labels if label in SCHEDULE_LEVELS)
    return levels[0] if levels else None


def _listed_record(ctx: _Context, key: str, entries: Sequence[_Entry],
                   basis: str) -> StatusRecord:
    """A record for an entry (or, when a name appears more than once, several entries)."""
    status = _status_of(entries)
    used = [e for e in entries if e.in_force] if status == "controlled" else list(entries)
    first = used[0]
    schedules = list(dict.fromkeys(e.schedule for e in used))
    provisions = list(dict.fromkeys(e.provision for e in used))
    dates = list(ctx.dates)
    if first.schedule_last_amended:
        dates.append(("schedule last amended", first.schedule_last_amended))
    # The entry's own start date, else the instrument's coming-into-force date when the
    # document states one (the CSR's rows carry no dates; its s. 239 does).
    effective = first.inforce_start or ctx.coming_into_force
    if effective:
        dates.append(("in force from" if status == "controlled" else "comes into force",
                      effective))
    return StatusRecord(
        jurisdiction=CODE,
        substance=key,
        status=status,
        schedule=", ".join(schedules),
        control_level=_strictest(schedules),
        instrument=ctx.instrument.citation,
        provision="; ".join(provisions),
        listed_as=first.text,
        basis=basis,
        parent_entry=first.parent_text,
        effective_from=effective,
        dates=tuple(dates),
        **ctx.provenance(),
    )


def _unlisted_record(ctx: _Context, key: str, basis: str) -> StatusRecord:
    return StatusRecord(
        jurisdiction=CODE, substance=key, status="not_controlled", schedule=None,
        control_level=None, instrument=ctx.instrument.citation, provision=None, listed_as=None,
        basis=basis, dates=ctx.dates, **ctx.provenance(),
    )


#: How a parent entry extends to unnamed forms, English and French (accents folded).
_COVER_WORDS = (("salt", re.compile(r"\b(?:salts?|sels?)\b")),
                ("derivative", re.compile(r"\b(?:derivatives?|derives?)\b")),
                ("analogue", re.compile(r"\banalogues?\b")))


def _covered_basis(substance: Substance, cover: Substance, entry: _Entry) -> str:
    """How an unnamed substance is covered, stated plainly (a legal reading, not advice):
    esketamine is an isomer of ketamine, listed in item 14(1), and falls under item 14 itself
    as a salt, derivative or analogue of phencyclidine."""
    relation = substance.relation or "form"
    basis = f"{relation} of {cover.name.lower()}, listed in {entry.provision}"
    if entry.parent_text and entry.parent_provision:
        folded = name_key(entry.parent_text)
        kinds = [word for word, pattern in _COVER_WORDS if pattern.search(folded)]
        if kinds:
            kind = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
            parent = listed_name(entry.parent_text).lower()
            basis += f"; also a {kind} of {parent} ({entry.parent_provision})"
    return basis


def _records(ctx: _Context, entries: Sequence[_Entry], watch: WatchList,
             matcher: _Matcher) -> tuple[list[StatusRecord], dict[str, list[_Entry]]]:
    """One record per watched substance (listed, covered or not listed) and, with
    ``all_entries``, one per other listed name. Also returns the entries each watched or
    covering substance was found in, for the pending-amendment checks."""
    current = [e for e in entries if e.in_force or not e.schedule_in_force]
    by_substance: dict[str, list[_Entry]] = {}
    by_name: dict[str, list[_Entry]] = {}
    for entry in current:
        substance = matcher.match(entry.text)
        if substance is not None:
            by_substance.setdefault(substance.key, []).append(entry)
        elif watch.all_entries:
            key = substance_key(_name_part(entry.text))
            if key:
                by_name.setdefault(key, []).append(entry)

    records: list[StatusRecord] = []
    unlisted = f"not listed in the schedules of {ctx.instrument.citation}"
    for substance in watch.substances:
        hits = by_substance.get(substance.key)
        cover_hits = by_substance.get(substance.covered_by or "")
        if hits:
            records.append(_listed_record(ctx, substance.key, hits, "named"))
        elif substance.covered_by and cover_hits:
            cover = matcher.get(substance.covered_by)
            assert cover is not None
            first = next((e for e in cover_hits if e.in_force), cover_hits[0])
            records.append(_listed_record(ctx, substance.key, cover_hits,
                                          _covered_basis(substance, cover, first)))
        elif substance.covered_by:
            relation = substance.relation or "form"
            article = "an" if relation[0] in "aeiou" else "a"
            records.append(_unlisted_record(
                ctx, substance.key,
                f"{unlisted}; nor is {substance.covered_by}, of which it is {article} "
                f"{relation}"))
        else:
            records.append(_unlisted_record(ctx, substance.key, unlisted))
    if watch.all_entries:
        watched = set(watch.keys)
        for key, hits in by_substance.items():  # covering substances not watched themselves
            if key not in watched:
                records.append(_listed_record(ctx, key, hits, "named"))
        for key, hits in by_name.items():
            if key not in watched and key not in by_substance:
                records.append(_listed_record(ctx, key, hits, "named"))
    return records, by_substance


# --- not in force ---------------------------------------------------------------------------

_MONTHS = {name: index for index, name in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"), start=1)}
_MOIS = {name: index for index, name in enumerate(
    ("janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre",
     "octobre", "novembre", "decembre"), start=1)}
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
    if english and english.group(1).lower() in _MONTHS:
        month, day, year = _MONTHS[english.group(1).lower()], english.group(2), english.group(3)
    else:
        french = _FR_DATE.search(rest)
        if not french:
            return None
        month_name = name_key(french.group(2))
        if month_name not in _MOIS:
            return None
        month, day, year = _MOIS[month_name], french.group(1), french.group(3)
    return f"{int(year):04d}-{month:02d}-{int(day):02d}"


def _coming_into_force(root: Any) -> tuple[str | None, str | None]:
    """The whole instrument's coming-into-force date, when a CIF section states one: "These
    Regulations come into force on October 1, 2026." (SOR/2025-242, s. 239, seen in the
    2026-04-17 consolidation). Returns (date, "s. 239")."""
    for section in root.iter("Section"):
        if section.get("type") != "CIF":
            continue
        text = _text(section.find("Text")) if section.find("Text") is not None else ""
        if not re.match(r"^(?:These Regulations|This Act|Le présent règlement|La présente loi)",
                        text):
            continue  # a CIF section for some provisions only
        found = written_date(text)
        if found:
            label = normalise_text(section.findtext("Label") or "")
            return found, (f"s. {label}" if label else None)
    return None, None


_SCHEDULE_REF = re.compile(
    r"\bSchedule\s+(?P<sch>[IVXL]+|\d+)\b|l['’]annexe\s+(?P<fr>[IVXL]+|\d+)\b")
_ITEM_REF_EN = re.compile(
    r"\b(?:sub)?items?\s+(?P<refs>\d[\w().,\s]*?)\s+of\s+(?:Part\s+\w+\s+of\s+)?"
    r"(?:Schedule\s+(?P<sch>[IVXL]+|\d+)\b|the\s+Schedule\b)", re.IGNORECASE)
_ITEM_REF_FR = re.compile(
    r"\b(?:paragraphes?|articles?|alinéas?)\s+(?P<refs>\d[\w().,\s]*?)\s+de\s+"
    r"(?:la\s+partie\s+\w+\s+de\s+)?l['’]annexe(?:\s+(?P<sch>[IVXL]+|\d+)\b)?", re.IGNORECASE)
_WHOLE_SCHEDULE = re.compile(
    r"^(?:Schedule\s+(?P<sch>[IVXL]+|\d+)\s+to\s+the\b.*?\bis\s+(?:replaced|repealed)\b"
    r"|L['’]annexe\s+(?P<fr>[IVXL]+|\d+)\s+de\s+.*?\best\s+(?:remplacée|abrogée)\b)",
    re.IGNORECASE)
_HEADING_REFERENCE = re.compile(r"^(?P<ref>.*?),\s*(?:ss?|paras?|par|arts?|al)\.\s")


def _top_items(refs: str) -> set[str]:
    """The item numbers of a reference list, subitems dropped: "1(14) and (33) to (34.4)" ->
    {"1"}; "13 to 15" -> {"13", "14", "15"}."""
    bare = re.sub(r"\([^)]*\)", " ", refs)
    items = set(re.findall(r"\d+(?:\.\d+)?", bare))
    for low, high in re.findall(r"(\d+)\s+(?:to|à)\s+(\d+)", bare):
        if int(high) - int(low) < 500:
            items.update(str(n) for n in range(int(low), int(high) + 1))
    return items


@dataclass(frozen=True)
class _Amendment:
    """One entry of the "AMENDMENTS NOT IN FORCE" appendix, read for what it touches."""

    heading: str  # "SOR/2025-243, s. 7"
    reference: str  # "SOR/2025-243"
    instructions: str  # the amending instructions (not the new text), normalised
    folded: str  # all its text, name_key-folded, for name mentions
    amended_folded: str  # the new text only, folded
    items: frozenset[tuple[str, str]]  # (schedule label, item)
    schedules: frozenset[str]  # schedules it names
    whole_schedules: frozenset[str]  # schedules it replaces or repeals outright
    repeals_instrument: bool
    date: str | None


def _amendments(root: Any, instrument: _Instrument) -> list[_Amendment]:
    found: list[_Amendment] = []
    for schedule in root.findall("Schedule"):
        if schedule.get("id") != "NifProvs":
            continue
        for piece in schedule.iter("RelatedOrNotInForce"):
            found.append(_read_amendment(piece, instrument))
    return found


def _read_amendment(piece: Any, instrument: _Instrument) -> _Amendment:
    heading_node = piece.find("Heading/TitleText")
    heading = _text(heading_node).lstrip("—- ").strip() if heading_node is not None else ""
    match = _HEADING_REFERENCE.match(heading)
    reference = match.group("ref") if match else heading
    # The amending instructions ("Item 17 of Schedule I to the Act is replaced by the
    # following:") are read for references; the new text (AmendedText, which may be a table
    # without <Text>, as in SOR/2026-72) only for names, folded once as a whole.
    instructions = [
        _text(node) for node in piece.iter("Text")
        if not any(a.tag in ("AmendedText", "Footnote") for a in node.iterancestors())
    ]
    amended_raw = " ".join(" ".join(node.itertext()) for node in piece.iter("AmendedText"))
    amended_folded = _fold(amended_raw)
    items: set[tuple[str, str]] = set()
    schedules: set[str] = set()
    whole: set[str] = set()
    unnumbered = NCR_SCHEDULE if instrument.numbering == "none" else None
    for text in instructions:
        for pattern in (_ITEM_REF_EN, _ITEM_REF_FR):
            for ref in pattern.finditer(text):
                label = ref.group("sch") or unnumbered
                if label:
                    items.update((label, item) for item in _top_items(ref.group("refs")))
        for ref in _SCHEDULE_REF.finditer(text):
            schedules.add(ref.group("sch") or ref.group("fr"))
        replaced = _WHOLE_SCHEDULE.match(text)
        if replaced:
            whole.add(replaced.group("sch") or replaced.group("fr"))
    repeals = any(
        xref.get("link") == instrument.link
        for node in piece.iter()
        if isinstance(node.tag, str) and node.get("type") == "repeal"
        for xref in node.iterfind("Text/XRefExternal")
    )
    joined = " ".join(instructions)
    return _Amendment(
        heading=heading, reference=reference, instructions=joined,
        folded=_fold(f"{heading} {joined}") + " " + amended_folded,
        amended_folded=amended_folded,
        items=frozenset(items), schedules=frozenset(schedules), whole_schedules=frozenset(whole),
        repeals_instrument=repeals, date=written_date(joined),
    )


def _hits(found: dict[str, list[_Entry]], substance: Substance) -> list[_Entry]:
    """The entries that list a substance, or failing that the substance covering it."""
    return found.get(substance.key) or found.get(substance.covered_by or "") or []


def _pending_instrument(ctx: _Context, watch: WatchList,
                        found: dict[str, list[_Entry]]) -> Iterator[PendingItem]:
    """Listed only in schedules not yet in force: the CSR before 2026-10-01 (every schedule
    carries in-force="no" in the 2026-04-17 consolidation)."""
    instrument = ctx.instrument
    for substance in watch.substances:
        hits = _hits(found, substance)
        if not hits or any(e.in_force for e in hits):
            continue
        entry = hits[0]
        when = ctx.coming_into_force
        description = (f"The {instrument.title} ({instrument.citation}) list {substance.name} "
                       f"in {entry.provision}, not yet in force")
        if when:
            description += f"; in force on {when}"
            if ctx.cif_section:
                description += f" ({ctx.cif_section})"
        yield PendingItem(
            jurisdiction=CODE, substance=substance.key, source_id=ctx.document.source_id,
            key=f"not-in-force:{instrument.citation}", action="not_in_force",
            description=description, reference=instrument.citation,
            proposed_schedule=entry.schedule, date_label="in force" if when else None,
            date=when, url=ctx.document.url,
            details=(("provision", entry.provision), ("listed as", entry.text)),
        )


def _pending_entries(ctx: _Context, entries: Sequence[_Entry], watch: WatchList,
                     matcher: _Matcher) -> Iterator[PendingItem]:
    """An entry marked in-force="no" inside a schedule that is in force: printed, not law."""
    for entry in entries:
        if entry.in_force or not entry.schedule_in_force:
            continue
        printed = matcher.match(entry.text)
        if printed is None:
            continue
        for watched in watch.substances:
            if printed.key in (watched.key, watched.covered_by):
                yield PendingItem(
                    jurisdiction=CODE, substance=watched.key, source_id=ctx.document.source_id,
                    key=f"not-in-force:{entry.provision}", action="not_in_force",
                    description=(f"{entry.provision} ({entry.text}) is printed but marked not "
                                 "in force"),
                    reference=ctx.instrument.citation, proposed_schedule=entry.schedule,
                    url=ctx.document.url, details=(("listed as", entry.text),),
                )


def _pending_amendments(ctx: _Context, amendments: Sequence[_Amendment], watch: WatchList,
                        matcher: _Matcher,
                        found: dict[str, list[_Entry]]) -> Iterator[PendingItem]:
    """Amendments not in force that touch a watched substance: they name it (or the substance
    covering it), amend its item, replace its whole schedule, or repeal the instrument (the
    NCR's own repeal by SOR/2025-242, par. 238(a), seen in the 2025-11-28 consolidation).
    SOR/2025-243 in the 2026-06-05 CDSA touches Schedule I items 1, 3, 6, 7, 10, 12, 16, 17
    and 19, not 14: no pending item for ketamine."""
    instrument = ctx.instrument
    for substance in watch.substances:
        cover = matcher.get(substance.covered_by) if substance.covered_by else None
        # Where it is listed now, in force or (CSR before 2026-10-01) enacted but not yet in
        # force: an amendment to either is news.
        listed = _hits(found, substance)
        places = {(e.schedule, e.item) for e in listed}
        for amendment in amendments:
            reasons: list[str] = []
            touched = sorted(places & amendment.items)
            if touched:
                reasons.append("amends " + ", ".join(_provision(s, (), (i,)) for s, i in touched))
            whole = sorted({s for s, _ in places} & amendment.whole_schedules)
            if whole:
                reasons.append("replaces or repeals " + ", ".join(f"Schedule {s}" for s in whole))
            by_name = next((s for s in (substance, cover)
                            if s is not None and matcher.mentioned(s, amendment.folded)), None)
            if by_name is not None:
                reasons.append(f"names {by_name.name}")
            if amendment.repeals_instrument and listed:
                reasons.append(f"repeals the {instrument.title}")
            if not reasons:
                continue
            # Where the new text names the substance and the amendment names one schedule,
            # that is where it is going.
            proposed = None
            if by_name is not None and matcher.mentioned(by_name, amendment.amended_folded) \
                    and len(amendment.schedules) == 1:
                proposed = next(iter(amendment.schedules))
            where = (f"{substance.name} is listed in "
                     + "; ".join(dict.fromkeys(e.provision for e in listed))
                     if listed else f"{substance.name} is not listed now")
            yield PendingItem(
                jurisdiction=CODE, substance=substance.key, source_id=ctx.document.source_id,
                key=f"NifProvs:{amendment.heading}", action="not_in_force",
                description=(f"Not yet in force: {amendment.heading} {'; '.join(reasons)}. "
                             f"{where}."),
                reference=amendment.reference, proposed_schedule=proposed,
                date_label="in force" if amendment.date else None, date=amendment.date,
                url=ctx.document.url,
                details=(("amendment", amendment.heading),
                         ("text", amendment.instructions[:500])),
            )


def _pending(ctx: _Context, root: Any, entries: Sequence[_Entry], watch: WatchList,
             matcher: _Matcher, found: dict[str, list[_Entry]]) -> list[PendingItem]:
    """What the document prints about a watched substance that is not law yet, one item per
    (substance, change)."""
    pending: dict[tuple[str, str], PendingItem] = {}
    for item in (*_pending_instrument(ctx, watch, found),
                 *_pending_entries(ctx, entries, watch, matcher),
                 *_pending_amendments(ctx, _amendments(root, ctx.instrument), watch, matcher,
                                      found)):
        pending.setdefault((item.substance, item.key), item)
    return list(pending.values())


# --- the parsers ----------------------------------------------------------------------------

def _parse(document: Document, watch: WatchList, root: Any,
           instrument: _Instrument) -> ParseResult:
    source_id = document.source_id
    schedules = _schedules(root, instrument, source_id)
    entries = [entry for schedule in schedules for entry in _entries(schedule)]
    primary = [e for e in entries if e.schedule == instrument.primary]
    if not any(s.label == instrument.primary for s in schedules):
        labels = ", ".join(s.label for s in schedules)
        raise ExtractionError(f"{source_id}: expected Schedule {instrument.primary} of the "
                              f"{instrument.title}; found schedules {labels}")
    if not primary:
        raise ExtractionError(f"{source_id}: expected items in Schedule {instrument.primary} "
                              f"of the {instrument.title}; found none")
    when, section = _coming_into_force(root)
    ctx = _Context(document=document, instrument=instrument, dates=_document_dates(root),
                   coming_into_force=when, cif_section=section)
    matcher = _Matcher.of(watch)
    records, found = _records(ctx, entries, watch, matcher)
    if not records:  # only an empty watch list gets here; never report "nothing"
        raise ExtractionError(f"{source_id}: the watch list is empty; nothing to report")
    pending = _pending(ctx, root, entries, watch, matcher, found)
    return ParseResult(records=tuple(records), pending=tuple(pending),
                       document_dates=ctx.dates, title=_title(root),
                       instrument=instrument.citation)


def parse_cdsa(document: Document, watch: WatchList) -> ParseResult:
    """The Controlled Drugs and Substances Act (English or French Justice Laws XML)."""
    root = _parse_xml(document, "Justice Laws XML of the Controlled Drugs and Substances Act")
    _check_cdsa(root, document.source_id)
    return _parse(document, watch, root, _CDSA)


def parse_regulations(document: Document, watch: WatchList) -> ParseResult:
    """The Controlled Substances Regulations (SOR/2025-242) or, before they replaced it on
    2026-10-01, the Narcotic Control Regulations (C.R.C., c. 1041)."""
    root = _parse_xml(document, "Justice Laws XML of the Controlled Substances Regulations or "
                             "the Narcotic Control Regulations")
    instrument = _identify_regulation(root, document.source_id)
    return _parse(document, watch, root, instrument)


SOURCES: tuple[Source, ...] = (
    Source(
        id="ca-cdsa",
        jurisdiction=CODE,
        title="Controlled Drugs and Substances Act (S.C. 1996, c. 19)",
        endpoints={"url": "https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml"},
        parse=parse_cdsa,
    ),
    Source(
        id="ca-csr",
        jurisdiction=CODE,
        title="Controlled Substances Regulations (SOR/2025-242)",
        endpoints={"url": "https://laws-lois.justice.gc.ca/eng/XML/SOR-2025-242.xml"},
        parse=parse_regulations,
    ),
)
