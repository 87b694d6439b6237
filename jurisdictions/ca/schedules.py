"""The schedules of a Justice Laws consolidation and their entries, whatever the layout: a
List of Items (CDSA, NCR), Groups (Parts) holding Lists or tables (CDSA Schedules V and VI),
TableGroups of rows (CSR Schedule 1)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jurisdictions.ca.document import (
    APPENDIX_IDS,
    LIMS,
    NCR_SCHEDULE,
    Instrument,
    text_of,
)
from scrapers.errors import ExtractionError
from scrapers.records import normalise_text

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

#: Elements under a schedule that never hold entries.
_NOT_ENTRIES = frozenset({"ScheduleFormHeading", "HistoricalNote", "Footnote", "Repealed",
                          "GroupHeading", "Caption", "OriginatingRef", "colspec", "thead"})

_SCHEDULE_LABEL = re.compile(r"^(?:SCHEDULE|ANNEXE)(?:\s+(?P<n>[IVXL]+|\d+))?$")
_ROMAN = re.compile(r"^[IVXL]+$")
_NUMBERING = {"roman": "schedules numbered I, II, ...", "arabic": "schedules numbered 1, 2, ...",
              "none": "one unnumbered SCHEDULE"}


@dataclass(frozen=True)
class Schedule:
    label: str  # "I", "1", NCR_SCHEDULE
    element: Any
    in_force: bool
    last_amended: str | None


@dataclass(frozen=True)
class Entry:
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
        return provision_of(self.schedule, self.location, self.labels)

    @property
    def item(self) -> str:
        return self.labels[0]


def provision_of(schedule: str, location: Sequence[str], labels: Sequence[str]) -> str:
    """Pinpoint in English whatever the document's language: "Sch. I, item 14(1)",
    "Sch. 2, Part 1, item 1(3)", "Sch., item 14(1)" for the NCR's unnumbered Schedule."""
    head = "Sch." if schedule == NCR_SCHEDULE else f"Sch. {schedule}"
    return ", ".join([head, *location, "item " + "".join(labels)])


def schedules_of(root: Any, instrument: Instrument, source_id: str) -> list[Schedule]:
    """The instrument's schedules (not the not-in-force/related appendices), checked."""
    found: list[Schedule] = []
    for element in root.findall("Schedule"):
        if element.get("id") in APPENDIX_IDS:
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
        found.append(Schedule(label=label, element=element,
                               in_force=element.get("in-force") != "no",
                               last_amended=element.get(LIMS + "lastAmendedDate")))
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

    schedule: Schedule

    def entry(self, *, location: tuple[str, ...], labels: tuple[str, ...], text: str,
              parent: Entry | None, in_force: bool, start: str | None) -> Entry:
        return Entry(schedule=self.schedule.label, location=location, labels=labels,
                      text=text, parent_text=parent.text if parent else None,
                      parent_provision=parent.provision if parent else None,
                      in_force=in_force and self.schedule.in_force,
                      schedule_in_force=self.schedule.in_force, inforce_start=start,
                      schedule_last_amended=self.schedule.last_amended)


def entries_of(schedule: Schedule) -> list[Entry]:
    walk = _Walk(schedule)
    return list(_walk(walk, schedule.element, (), True))


def _not_in_force(element: Any) -> bool:
    return element.get("in-force") == "no"


def _walk(walk: _Walk, element: Any, location: tuple[str, ...],
          in_force: bool) -> Iterator[Entry]:
    """Entries under a schedule, whatever the layout: a List of Items (CDSA, NCR), Groups
    (Parts) holding Lists or tables (CDSA Schedules V and VI), TableGroups of rows (CSR)."""
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _NOT_ENTRIES:
            continue
        child_in_force = in_force and not _not_in_force(child)
        if tag == "Group":
            heading = child.find("GroupHeading/Label")
            part = _location_label(text_of(heading)) if heading is not None else None
            yield from _walk(walk, child, location + ((part,) if part else ()), child_in_force)
        elif tag == "TableGroup":
            caption = child.find("Caption")
            name = _location_label(text_of(caption)) if caption is not None else None
            yield from _rows(walk, child, location + ((name,) if name else ()),
                             child_in_force)
        elif tag == "List":
            yield from _items(walk, child, location, (), None, child_in_force)
        else:  # DocumentInternal, Provision, ...: containers
            yield from _walk(walk, child, location, child_in_force)


def _items(walk: _Walk, list_element: Any, location: tuple[str, ...],
           prefix: tuple[str, ...], parent: Entry | None, in_force: bool) -> Iterator[Entry]:
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
        entry: Entry | None = None
        text = text_of(text_element) if text_element is not None else ""
        if text and not _is_repealed(text_element, text):
            entry = walk.entry(location=location, labels=prefix + (label,), text=text,
                               parent=parent, in_force=item_in_force,
                               start=item.get(LIMS + "inforce-start-date"))
            yield entry
        if sublist is not None:
            yield from _items(walk, sublist, location, prefix + (label,), entry, item_in_force)


def _rows(walk: _Walk, table_group: Any, location: tuple[str, ...],
          in_force: bool) -> Iterator[Entry]:
    """A schedule table: column 1 the item number, column 2 the substance with its subitems
    as a nested List (CSR Schedule 1, seen in the 2026-04-17 consolidation). Later columns
    (a temporary designation's period) are not part of the entry."""
    for row in table_group.iterfind("table/tgroup/tbody/row"):
        row_in_force = in_force and not _not_in_force(row)
        cells = [cell for cell in row if cell.tag == "entry"]
        if len(cells) < 2:
            continue
        label = text_of(cells[0])
        if not label:
            continue
        cell = cells[1]
        row_in_force = row_in_force and not _not_in_force(cell)
        entry: Entry | None = None
        text = text_of(cell)
        if text and not _is_repealed(cell, text):
            entry = walk.entry(location=location, labels=(label,), text=text, parent=None,
                               in_force=row_in_force, start=row.get(LIMS + "inforce-start-date"))
            yield entry
        for sublist in cell.iterchildren("List"):
            yield from _items(walk, sublist, location, (label,), entry, row_in_force)

