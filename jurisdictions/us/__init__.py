"""United States: the DEA schedules in 21 CFR Part 1308 (eCFR) and DEA rulemaking on them in
the Federal Register.

This package holds the jurisdiction's declarations (``CODE``, ``NAME``, ``TIMEZONE``,
``SCHEDULE_LEVELS``, ``SOURCES``) and the checks that compare its two sources. Each source is
one module, the unit of change:

* ``jurisdictions.us.ecfr`` — ``us-ecfr-1308``: the eCFR text of §§ 1308.11–1308.15
  (Schedules I–V): fetch plan (titles.json freshness marker, versioner ``full`` or the govinfo
  bulk title streamed down to Part 1308), section walker and parser.
* ``jurisdictions.us.federal_register`` — ``us-federal-register``: DEA rules and proposed
  rules on Part 1308 (and any that mention ketamine) from the Federal Register API, merged
  into one canonical JSON document; the parser reports the final rule in effect and, as
  pending items, open proposals and final rules not yet effective. It is an *early-warning*
  source: it never by itself turns a status into ``not_controlled``.

Cross-source checks (here, since they need both): ``unconfirmed_final_rules`` (a final rule
past its effective date that the eCFR does not show yet) and ``law_dates`` (the eCFR record
takes the legal date of the rule that placed its entry from the Federal Register record).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from jurisdictions.base import Source
from scrapers.records import ParseResult, PendingItem, StatusRecord

# The declarations come before the source modules are imported: those modules import them
# from here (``from jurisdictions.us import CODE``), so they must exist by then.
CODE = "us"
NAME = "United States"
TIMEZONE = "America/New_York"

#: US schedule label → the shared control level (scrapers.records.CONTROL_LEVELS).
SCHEDULE_LEVELS: dict[str, str] = {"I": "C1", "II": "C2", "III": "C3", "IV": "C4", "V": "C5"}

ECFR_SOURCE_ID = "us-ecfr-1308"
FR_SOURCE_ID = "us-federal-register"

from jurisdictions.us import ecfr, federal_register  # noqa: E402  (see above)
from jurisdictions.us.archive import ANNUAL_ENDPOINT, read_ecfr_archive  # noqa: E402
from jurisdictions.us.ecfr import (  # noqa: E402
    NOT_LISTED_BASIS,
    NOT_LISTED_INSTRUMENT,
    PART,
    SCHEDULE_SECTIONS,
    VERSIONS_SINCE,
    Line,
    Part1308,
    ScheduleEntry,
    amddate_iso,
    drug_class,
    extract_part_1308,
    fetch_ecfr,
    parse_ecfr,
    read_part_1308,
    section_amendment_dates,
    section_lines,
    split_trailing_code,
    stream_part,
    title_21_status,
    walk_section,
)
from jurisdictions.us.federal_register import (  # noqa: E402
    ESTABLISHED_BY,
    FR_AGENCY,
    FR_CANONICAL_FORMAT,
    FR_FIELDS,
    FR_TERM,
    MAX_FR_PAGES,
    REMOVAL,
    FrDocument,
    _folded,
    _mention_pattern,
    _Mentions,
    _mentions,
    _plain,
    canonical_federal_register,
    fetch_federal_register,
    next_page,
    parse_federal_register,
    read_federal_register,
)
from jurisdictions.us.fr_archive import read_federal_register_archive  # noqa: E402

__all__ = [
    "CODE", "ECFR_SOURCE_ID", "ESTABLISHED_BY", "FR_AGENCY", "FR_CANONICAL_FORMAT",
    "FR_FIELDS", "FR_SOURCE_ID", "FR_TERM", "MAX_FR_PAGES", "NAME", "NOT_LISTED_BASIS",
    "NOT_LISTED_INSTRUMENT", "PART", "REMOVAL", "SCHEDULE_LEVELS", "SCHEDULE_SECTIONS",
    "SOURCES", "TIMEZONE", "VERSIONS_SINCE", "FrDocument", "Line", "Part1308",
    "ScheduleEntry", "UnconfirmedFinalRule", "_Mentions", "_folded", "_mention_pattern",
    "_mentions", "_plain", "amddate_iso", "canonical_federal_register", "cross_checker",
    "cross_checks", "drug_class", "ecfr", "extract_part_1308", "federal_register", "fetch_ecfr",
    "fetch_federal_register", "law_dates", "next_page", "parse_ecfr",
    "parse_federal_register", "read_federal_register", "read_part_1308",
    "section_amendment_dates", "section_lines", "split_trailing_code", "stream_part",
    "title_21_status", "unconfirmed_final_rules", "walk_section",
]


# =========================================================================================
# Sources
# =========================================================================================

SOURCES: tuple[Source, ...] = (
    Source(
        id=ECFR_SOURCE_ID, jurisdiction=CODE,
        title="21 CFR Part 1308 (eCFR): Schedules I–V",
        endpoints={"url": "https://www.ecfr.gov",
                   "bulk_url": "https://www.govinfo.gov/bulkdata/ECFR/title-21/ECFR-title21.xml",
                   # backfill's fallback when robots.txt forbids the versioner's full/
                   "annual_url": ANNUAL_ENDPOINT},
        parse=parse_ecfr, fetch_plan=fetch_ecfr, media_type="application/xml",
        archive=read_ecfr_archive,  # jurisdictions.us.archive (schedwatch backfill)
    ),
    Source(
        id=FR_SOURCE_ID, jurisdiction=CODE,
        title="Federal Register: DEA rulemaking on 21 CFR Part 1308",
        endpoints={"url": "https://www.federalregister.gov"},
        parse=parse_federal_register, fetch_plan=fetch_federal_register,
        media_type="application/json",
        # The FR API (from 1994) is its own archive: the same queries, one version per day.
        archive=read_federal_register_archive,
        # Proposals and rules appear here before the code shows them; an answer that lacks
        # the rule establishing a status is incomplete, not a descheduling (issue 13).
        early_warning=True,
    ),
)


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


def _schedules(record: StatusRecord) -> list[str]:
    return [s.strip() for s in (record.schedule or "").split(",") if s.strip()]


def _shows(record: StatusRecord | None, status: str, schedule: str | None) -> bool:
    if record is None or record.status != status:
        return False
    if schedule is None:
        return True
    return schedule in _schedules(record)


def _rule_date(record: StatusRecord) -> str | None:
    """The date a Federal Register record's final rule took effect: ``in_force_since`` (the
    legal date), else the retiring ``effective_from`` of records stored before it."""
    return record.in_force_since or record.effective_from


def unconfirmed_final_rules(fr_result: ParseResult, ecfr_records: Iterable[StatusRecord],
                            today: date) -> tuple[UnconfirmedFinalRule, ...]:
    """Final rules from ``parse_federal_register`` whose effective date is on or before
    ``today`` but whose schedule (or removal) the eCFR records do not show: either the eCFR
    has not caught up yet (it usually does on the effective date) or the rule was stayed.
    Reports should show these beside the eCFR status; the eCFR stays the status of record.

    Looks at the FR records (the latest final rule in effect at retrieval) and at the
    pending ``final_rule`` items whose effective date has since passed."""
    return _unconfirmed(fr_result, {r.substance: r for r in ecfr_records}, today)


def _unconfirmed(fr_result: ParseResult, ecfr_by: Mapping[str, StatusRecord],
                 today: date) -> tuple[UnconfirmedFinalRule, ...]:
    found: list[UnconfirmedFinalRule] = []
    day = today.isoformat()
    for record in fr_result.records:
        effective = _rule_date(record)
        if not effective or effective > day or \
                not record.provision or not record.provision.startswith("FR Doc"):
            continue
        current = ecfr_by.get(record.substance)
        if not _shows(current, record.status, record.schedule):
            found.append(UnconfirmedFinalRule(
                substance=record.substance, reference=record.instrument,
                document=record.provision, effective=effective,
                expected_status=record.status, expected_schedule=record.schedule,
                ecfr_status=current.status if current else None,
                ecfr_schedule=current.schedule if current else None))
    for item in fr_result.pending:
        if item.action != "final_rule" or not item.date or item.date > day:
            continue
        details = dict(item.details)
        removal = details.get("target") == REMOVAL
        status = "not_controlled" if removal else "controlled"
        current = ecfr_by.get(item.substance)
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


def cross_checks(records: Iterable[StatusRecord], pending: Iterable[PendingItem],
                 today: date) -> list[str]:
    """Warnings for the reports (the optional ``cross_checks`` hook of a jurisdiction
    module): final rules in effect that the eCFR does not show yet, with the days since."""
    return cross_checker(records, pending)(today)


def cross_checker(records: Iterable[StatusRecord], pending: Iterable[PendingItem]
                  ) -> Callable[[date], list[str]]:
    """``cross_checks`` for one set of records and pending items, asked for many days (the
    optional ``cross_checker`` hook: ten years of weekly reports ask the same snapshot).
    The records are split by source once; each day then reads only the Federal Register's
    few records and items."""
    current = list(records)
    fr = ParseResult(records=tuple(r for r in current if r.source_id == FR_SOURCE_ID),
                     pending=tuple(p for p in pending if p.source_id == FR_SOURCE_ID))
    if not fr.records and not fr.pending:
        return lambda today: []
    ecfr_by = {r.substance: r for r in current if r.source_id == ECFR_SOURCE_ID}
    # Whether a rule is unconfirmed does not depend on the day, only whether it has taken
    # effect by then: the rules unconfirmed on the last day there is, once, and each day
    # those that have taken effect (in the same order). Most snapshots have none, and the
    # weekly reports ask one snapshot for every week of years of history.
    rules = _unconfirmed(fr, ecfr_by, date.max)
    if not rules:
        return lambda today: []

    def on(today: date) -> list[str]:
        lines = []
        day = today.isoformat()
        for rule in rules:
            if rule.effective > day:
                continue  # not in effect yet on that day
            expected = f"Schedule {rule.expected_schedule}" if rule.expected_schedule else \
                rule.expected_status.replace("_", " ")
            shown = f"Schedule {rule.ecfr_schedule}" if rule.ecfr_schedule else \
                (rule.ecfr_status or "nothing").replace("_", " ")
            days = (today - date.fromisoformat(rule.effective)).days
            lines.append(f"{rule.reference} ({rule.document}) took effect {rule.effective}: "
                         f"{rule.substance} {expected} expected, the eCFR shows {shown} — "
                         f"{days} day{'' if days == 1 else 's'} after the effective date")
        return lines

    return on


# =========================================================================================
# Cross-source legal dates: the eCFR entry takes the date of the rule that placed it
# =========================================================================================

def law_dates(records: Sequence[StatusRecord]) -> list[StatusRecord]:
    """``records`` with each eCFR record that has no ``in_force_since`` given the one of the
    Federal Register record of the same substance, when that record agrees with it.

    The eCFR states what the schedules say, not since when: Part 1308's source note is
    "[39 FR 22142, June 20, 1974]" and does not cite the rule that added ketamine. The
    Federal Register record names that rule (64 FR 37673, effective 1999-08-12). The date is
    carried over only when both records are ``controlled`` and the eCFR prints the rule's
    schedule (for ketamine: Schedule III from 21 CFR 1308.13(c)(7) and the 1999 rule placing
    it in Schedule III); a disagreement is ``unconfirmed_final_rules``' business, and then
    the eCFR record keeps no legal date rather than a wrong one. Pure: the caller (the
    pipeline, before it stores a run's records) decides whether to apply it.
    """
    fr_by = {r.substance: r for r in records if r.source_id == FR_SOURCE_ID
             and r.status == "controlled" and r.in_force_since and r.schedule}
    out: list[StatusRecord] = []
    for record in records:
        rule = fr_by.get(record.substance) if record.source_id == ECFR_SOURCE_ID else None
        if rule is None or record.in_force_since or record.status != "controlled" \
                or rule.schedule not in _schedules(record):
            out.append(record)
            continue
        out.append(dataclasses.replace(
            record, in_force_since=rule.in_force_since,
            in_force_since_basis=rule.in_force_since_basis,
            in_force_since_kind=rule.in_force_since_kind,
            legal_note=record.legal_note or (
                f"in force since {rule.in_force_since} per the Federal Register "
                f"({rule.in_force_since_basis}); the eCFR text does not cite the rule")))
    return out
