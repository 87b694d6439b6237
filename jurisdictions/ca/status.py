"""Status records from a consolidation's entries: named, covered through another substance
(an isomer of ketamine), or covered by a generic entry (an analogue of phencyclidine) when the
explicit listing is gone; with dates that say what they are.

Dates. ``evidence_date`` is the consolidation's point in time (``lims:pit-date``): the date
the document speaks for. The element dates of a consolidation (``lims:inforce-start-date``,
2018-04-04 on CDSA Schedule I item 14, a re-base, not the day ketamine was listed) are shown
only as "text of this provision in force since, per the consolidation", never as an effective
date. ``in_force_since`` is set only from a coming-into-force provision the document prints
(SOR/2025-242, s. 239); ``in_force_until`` from a repeal it announces (the NCR, repealed by
SOR/2025-242, par. 238(a)). Otherwise they stay None and the lead's decide step fills the
earliest evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC

from jurisdictions.ca.document import Instrument
from jurisdictions.ca.matching import Matcher, fold, listed_name, name_part
from jurisdictions.ca.schedules import SCHEDULE_LEVELS, Entry
from jurisdictions.matching import substance_key
from jurisdictions.substances import GenericCoverage, Substance, WatchList, generic_coverage
from scrapers.records import Document, StatusRecord, name_key

CODE = "ca"

#: How a consolidation's element dates are labelled: the date the consolidated text of that
#: provision took its present form, which is not when the substance was first listed.
ELEMENT_DATE_LABEL = "text of this provision in force since, per the consolidation"


@dataclass(frozen=True)
class Repeal:
    """The document's own repeal, announced among its amendments not in force."""

    date: str | None
    basis: str  # "repealed by SOR/2025-242, par. 238(a), in force 2026-10-01"


@dataclass(frozen=True)
class Context:
    document: Document
    instrument: Instrument
    dates: tuple[tuple[str, str], ...]
    evidence_date: str | None  # lims:pit-date
    coming_into_force: str | None  # the whole instrument's date, if the document states it
    cif_section: str | None
    repeal: Repeal | None = None

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

    @property
    def cif_basis(self) -> str:
        """"SOR/2025-242, s. 239": the provision that states the coming-into-force date."""
        citation = self.instrument.citation
        return f"{citation}, {self.cif_section}" if self.cif_section else citation


def _status_of(entries: Sequence[Entry]) -> str:
    if any(e.in_force for e in entries):
        return "controlled"
    return "not_in_force"


def _strictest(labels: Iterable[str]) -> str | None:
    levels = sorted(SCHEDULE_LEVELS[label] for label in labels if label in SCHEDULE_LEVELS)
    return levels[0] if levels else None


def _listed_record(ctx: Context, key: str, entries: Sequence[Entry], basis: str,
                   review: str | None = None) -> StatusRecord:
    """A record for an entry (or, when a name appears more than once, several entries)."""
    status = _status_of(entries)
    used = [e for e in entries if e.in_force] if status == "controlled" else list(entries)
    first = used[0]
    schedules = list(dict.fromkeys(e.schedule for e in used))
    provisions = list(dict.fromkeys(e.provision for e in used))
    dates = list(ctx.dates)
    if first.schedule_last_amended:
        dates.append(("schedule last amended", first.schedule_last_amended))
    if first.inforce_start:
        dates.append((ELEMENT_DATE_LABEL, first.inforce_start))
    since = since_basis = since_kind = None
    # The instrument's coming-into-force date, when the document states one (the CSR's rows
    # carry no dates; its s. 239 does).
    if ctx.coming_into_force:
        dates.append(("in force since" if status == "controlled" else "comes into force",
                      ctx.coming_into_force))
        since, since_basis, since_kind = ctx.coming_into_force, ctx.cif_basis, "instrument"
    until = until_basis = None
    if ctx.repeal is not None:
        until, until_basis = ctx.repeal.date, ctx.repeal.basis
        if until:
            dates.append(("ceases to be in force (repealed)", until))
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
        effective_from=None,
        dates=tuple(dates),
        evidence_date=ctx.evidence_date,
        in_force_since=since,
        in_force_since_basis=since_basis,
        in_force_since_kind=since_kind,
        in_force_until=until,
        in_force_until_basis=until_basis,
        review=review,
        **ctx.provenance(),
    )


def _unlisted_record(ctx: Context, key: str, basis: str) -> StatusRecord:
    return StatusRecord(
        jurisdiction=CODE, substance=key, status="not_controlled", schedule=None,
        control_level=None, instrument=ctx.instrument.citation, provision=None, listed_as=None,
        basis=basis, dates=ctx.dates, evidence_date=ctx.evidence_date, **ctx.provenance(),
    )


#: How a parent entry extends to unnamed forms, English and French (accents folded).
_COVER_WORDS = (("salt", re.compile(r"\b(?:salts?|sels?)\b")),
                ("derivative", re.compile(r"\b(?:derivatives?|derives?)\b")),
                ("analogue", re.compile(r"\banalogues?\b")))


def _covered_basis(substance: Substance, cover: Substance, entry: Entry) -> str:
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


# --- generic entries ------------------------------------------------------------------------

@dataclass(frozen=True)
class Generic:
    """A generic entry of this document that still covers a substance."""

    fact: GenericCoverage
    entry: Entry


def _generic(ctx: Context, current: Sequence[Entry], key: str) -> Generic | None:
    """The generic entry of this document known to cover ``key`` (``GENERIC_COVERAGE``), if
    it still stands with its words: the item is there, lists the same substance and keeps
    its clause ("... and analogues ..."). A rewritten item no longer covers by this rule."""
    for fact in generic_coverage(key, ctx.instrument.citation):
        for entry in current:
            if (entry.schedule == fact.schedule and entry.labels == (fact.item,)
                    and name_key(name_part(entry.text)) == fact.entry_name
                    and fact.clause in fold(entry.text)):
                return Generic(fact, entry)
    return None


def _generic_words(generic: Generic) -> str:
    """"Sch. I, item 14 (phencyclidine, its salts, derivatives and analogues)"."""
    name = listed_name(generic.entry.text).lower()
    return f"{generic.entry.provision} ({name}, its salts, derivatives and analogues)"


def _generic_record(ctx: Context, substance: Substance, generic: Generic,
                    through: Substance | None) -> StatusRecord:
    """Controlled (or not yet in force) under the generic entry, flagged for review."""
    fact, entry = generic.fact, generic.entry
    listed = listed_name(entry.text).lower()
    if through is None:
        basis = (f"{fact.relation} of {listed}, {entry.provision}; {substance.name.lower()} "
                 f"is not named in this document; {fact.citation}")
        missing = substance.name
    else:
        relation = substance.relation or "form"
        basis = (f"{relation} of {through.name.lower()}, which is an {fact.relation} of "
                 f"{listed}, {entry.provision}; {through.name.lower()} is not named in this "
                 f"document; {fact.citation}")
        missing = through.name
    review = (f"The explicit listing of {missing.lower()} is absent from this document; the "
              f"status rests on the generic entry {_generic_words(generic)}. Check the "
              "instrument before relying on it.")
    return _listed_record(ctx, substance.key, [entry], basis, review)


def _moved_review(substance: Substance, hits: Sequence[Entry],
                  generic: Generic | None) -> str | None:
    """A note when the substance is named elsewhere while the generic entry that covers it
    still stands (ketamine moved to Schedule III, item 14 of Schedule I unchanged)."""
    if generic is None:
        return None
    fact = generic.fact
    if any(e.schedule == fact.schedule and e.item == fact.item for e in hits):
        return None
    where = "; ".join(dict.fromkeys(e.provision for e in hits))
    return (f"{substance.name} is listed in {where}, but the generic entry "
            f"{_generic_words(generic)}, which also covers it, still stands. Check which "
            "applies.")


def records_of(ctx: Context, entries: Sequence[Entry], watch: WatchList,
               matcher: Matcher) -> tuple[list[StatusRecord], dict[str, list[Entry]]]:
    """One record per watched substance (listed, covered or not listed) and, with
    ``all_entries``, one per other listed name. Also returns the entries each watched or
    covering substance was found in (a generic entry where that is what covers it), for the
    pending-amendment checks."""
    current = [e for e in entries if e.in_force or not e.schedule_in_force]
    by_substance: dict[str, list[Entry]] = {}
    by_name: dict[str, list[Entry]] = {}
    for entry in current:
        substance = matcher.match(entry.text)
        if substance is not None:
            by_substance.setdefault(substance.key, []).append(entry)
        elif watch.all_entries:
            key = substance_key(name_part(entry.text))
            if key:
                by_name.setdefault(key, []).append(entry)

    records: list[StatusRecord] = []
    found = dict(by_substance)
    unlisted = f"not listed in the schedules of {ctx.instrument.citation}"
    for substance in watch.substances:
        hits = by_substance.get(substance.key)
        cover_hits = by_substance.get(substance.covered_by or "")
        if hits:
            review = _moved_review(substance, hits, _generic(ctx, current, substance.key))
            records.append(_listed_record(ctx, substance.key, hits, "named", review))
            continue
        if substance.covered_by and cover_hits:
            cover = matcher.get(substance.covered_by)
            assert cover is not None
            first = next((e for e in cover_hits if e.in_force), cover_hits[0])
            records.append(_listed_record(ctx, substance.key, cover_hits,
                                          _covered_basis(substance, cover, first)))
            continue
        # Not named, nor is what covers it: a generic entry that still stands keeps it
        # controlled (issue 13: never "not controlled" while such an entry stands).
        generic = _generic(ctx, current, substance.key)
        through = None
        if generic is None and substance.covered_by:
            generic = _generic(ctx, current, substance.covered_by)
            through = matcher.get(substance.covered_by)
        if generic is not None:
            records.append(_generic_record(ctx, substance, generic, through))
            found.setdefault(through.key if through else substance.key, [generic.entry])
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
    return records, found
