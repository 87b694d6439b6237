"""Australia: the Poisons Standard (SUSMP) from the Federal Register of Legislation — a fetch
plan that finds the in-force instrument through the register's OData API
(``jurisdictions.au.register``), and a parser of the instrument's Word original
(``jurisdictions.au.word`` reads the paragraphs) that reads every schedule (2–10) and appendix.

The Standard is replaced wholesale several times a year, each time under a new register id
(F2024L01228, …, F2026L00633), so the fetch plan first asks which "Poisons Standard" title is
in force, then downloads that title's Word file. A record's ``evidence_date`` is the
Standard's commencement: the date the document speaks for, not the date any entry took effect.
Its archive for ``schedwatch backfill`` (every Standard, in force or repealed, as made) is
``jurisdictions.au.archive``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jurisdictions.au.archive import read_poisons_standard_archive
from jurisdictions.au.register import (
    API_URL,
    MAX_CANDIDATES,
    REGISTER_URL,
    TIMEZONE,
    TITLE_FILTER,
    TITLE_PAGE,
    Instrument,
    _local_date,
    current_version,
    fetch_poisons_standard,
    in_force_standards,
    instrument_from,
    odata_values,
    register_date,
    register_id,
    word_url,
    word_urls,
)
from jurisdictions.au.word import (
    MAX_DOCUMENT_XML_BYTES,
    MAX_ELEMENTS,
    MAX_PARAGRAPH_ELEMENTS,
    MAX_PARAGRAPHS,
    MAX_PART_BYTES,
    _Paragraph,
    normalise_spaced,
    paragraph_style,
    paragraph_text,
    read_docx,
    section_label,
)
from jurisdictions.base import Source
from jurisdictions.matching import substance_key
from jurisdictions.parsing import MONTH_NUMBERS, MONTHS_EN
from jurisdictions.substances import Substance, WatchList
from scrapers.errors import ExtractionError
from scrapers.records import (
    CONTROL_LEVELS,
    Document,
    ParseResult,
    StatusRecord,
    name_key,
)

__all__ = [
    "API_URL", "CODE", "COMMENCEMENT_LABEL", "MAX_CANDIDATES", "MAX_DOCUMENT_XML_BYTES",
    "MAX_ELEMENTS", "MAX_PARAGRAPHS", "MAX_PARAGRAPH_ELEMENTS", "MAX_PART_BYTES", "NAME",
    "REGISTER_URL", "SCHEDULES", "SCHEDULE_LEVELS", "SOURCES", "SOURCE_ID", "TIMEZONE",
    "TITLE_FILTER", "TITLE_PAGE", "UNCONTROLLED_APPENDICES", "WORD_MEDIA_TYPE", "Entry",
    "Instrument", "build_records", "collect_entries", "commencement_of", "current_version",
    "document_dates", "entry_name", "fetch_poisons_standard", "group_entries",
    "in_force_standards", "instrument_from", "listed_fields", "normalise_spaced",
    "odata_values", "paragraph_style", "paragraph_text", "parse_poisons_standard",
    "read_docx", "register_date", "register_id", "section_citation", "section_label",
    "stated_commencement", "trivial_names", "unlisted_fields", "word_url", "word_urls",
]

CODE = "au"
NAME = "Australia"

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
        # Every Poisons Standard, in force or repealed, as made (``jurisdictions.au.archive``).
        archive=read_poisons_standard_archive,
        # robots.txt of www.legislation.gov.au: Crawl-delay: 10 (third-party copy,
        # 2026-09-05); HttpFetcher honours the Crawl-delay itself as well.
    ),
)
