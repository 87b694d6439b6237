"""What a consolidation prints that is not law yet: schedules or entries marked
``in-force="no"`` and the "AMENDMENTS NOT IN FORCE" appendix, read for what touches a watched
substance, one pending item per (substance, change). Also the instrument's own repeal, which
the records carry as ``in_force_until``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jurisdictions.ca.document import (
    KNOWN_COMMENCEMENTS,
    NCR_SCHEDULE,
    Instrument,
    text_of,
    written_date,
)
from jurisdictions.ca.matching import Matcher, fold
from jurisdictions.ca.schedules import Entry, provision_of
from jurisdictions.ca.status import CODE, Context, Repeal
from jurisdictions.substances import Substance, WatchList
from scrapers.records import PendingItem

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
class Amendment:
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
    date: str | None  # its coming-into-force date
    #: Where the date was read when the amendment itself does not print it (the NCR's repeal
    #: by SOR/2025-242: the date is that instrument's s. 239); None when printed here.
    date_source: str | None = None


def amendments_of(root: Any, instrument: Instrument) -> list[Amendment]:
    found: list[Amendment] = []
    for schedule in root.findall("Schedule"):
        if schedule.get("id") != "NifProvs":
            continue
        for piece in schedule.iter("RelatedOrNotInForce"):
            found.append(_read_amendment(piece, instrument))
    return found


def _read_amendment(piece: Any, instrument: Instrument) -> Amendment:
    heading_node = piece.find("Heading/TitleText")
    heading = text_of(heading_node).lstrip("—- ").strip() if heading_node is not None else ""
    match = _HEADING_REFERENCE.match(heading)
    reference = match.group("ref") if match else heading
    # The amending instructions ("Item 17 of Schedule I to the Act is replaced by the
    # following:") are read for references; the new text (AmendedText, which may be a table
    # without <Text>, as in SOR/2026-72) only for names, folded once as a whole.
    instructions = [
        text_of(node) for node in piece.iter("Text")
        if not any(a.tag in ("AmendedText", "Footnote") for a in node.iterancestors())
    ]
    amended_raw = " ".join(" ".join(node.itertext()) for node in piece.iter("AmendedText"))
    amended_folded = fold(amended_raw)
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
    date, source = written_date(joined), None
    known = KNOWN_COMMENCEMENTS.get(reference)
    if date is None and known is not None:
        date, source = known.date, known.source
    return Amendment(
        heading=heading, reference=reference, instructions=joined,
        folded=fold(f"{heading} {joined}") + " " + amended_folded,
        amended_folded=amended_folded,
        items=frozenset(items), schedules=frozenset(schedules), whole_schedules=frozenset(whole),
        repeals_instrument=repeals, date=date, date_source=source,
    )


def repeal_of(amendments: Sequence[Amendment]) -> Repeal | None:
    """The document's own repeal among its amendments not in force, with its date: "repealed
    by SOR/2025-242, par. 238(a), in force 2026-10-01" (the NCR of 2025-11-28)."""
    for amendment in amendments:
        if not amendment.repeals_instrument:
            continue
        basis = f"repealed by {amendment.heading}"
        if amendment.date:
            basis += f", in force {amendment.date}"
            if amendment.date_source:
                basis += f" (date from {amendment.date_source})"
        return Repeal(date=amendment.date, basis=basis)
    return None


def _hits(found: dict[str, list[Entry]], substance: Substance) -> list[Entry]:
    """The entries that list a substance, or failing that the substance covering it."""
    return found.get(substance.key) or found.get(substance.covered_by or "") or []


def _pending_instrument(ctx: Context, watch: WatchList,
                        found: dict[str, list[Entry]]) -> Iterator[PendingItem]:
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


def _pending_entries(ctx: Context, entries: Sequence[Entry], watch: WatchList,
                     matcher: Matcher) -> Iterator[PendingItem]:
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


def _pending_amendments(ctx: Context, amendments: Sequence[Amendment], watch: WatchList,
                        matcher: Matcher,
                        found: dict[str, list[Entry]]) -> Iterator[PendingItem]:
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
                reasons.append("amends " + ", ".join(provision_of(s, (), (i,)) for s, i in touched))
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


def pending_of(ctx: Context, amendments: Sequence[Amendment], entries: Sequence[Entry],
               watch: WatchList, matcher: Matcher,
               found: dict[str, list[Entry]]) -> list[PendingItem]:
    """What the document prints about a watched substance that is not law yet, one item per
    (substance, change)."""
    pending: dict[tuple[str, str], PendingItem] = {}
    for item in (*_pending_instrument(ctx, watch, found),
                 *_pending_entries(ctx, entries, watch, matcher),
                 *_pending_amendments(ctx, amendments, watch, matcher, found)):
        pending.setdefault((item.substance, item.key), item)
    return list(pending.values())

