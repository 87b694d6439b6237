"""The US cross-check: a final rule in effect that the eCFR does not show yet is reported,
with the days since its effective date, on the index and in the weekly report."""

from __future__ import annotations

from datetime import date

from jurisdictions import us
from scrapers.records import PendingItem, StatusRecord


def record(source_id: str, schedule: str, **extra: object) -> StatusRecord:
    values: dict[str, object] = dict(
        jurisdiction="us", substance="ketamine", status="controlled", schedule=schedule,
        control_level="C3" if schedule == "III" else "C2", instrument="21 CFR 1308.13",
        provision="21 CFR 1308.13(c)(7)", listed_as="Ketamine", basis="named",
        source_id=source_id, source_url="https://example.org", document_sha256="a" * 64,
        retrieved_at="2031-03-01T00:00:00+00:00")
    values.update(extra)
    return StatusRecord(**values)  # type: ignore[arg-type]


FUTURE_RULE = PendingItem(
    jurisdiction="us", substance="ketamine", source_id=us.FR_SOURCE_ID, key="FR:2031-01234",
    action="final_rule", description="Transfer of ketamine from Schedule III to Schedule II",
    reference="96 FR 1234", proposed_schedule="II", date_label="effective", date="2031-02-01",
    details=(("document number", "2031-01234"),))


def test_final_rule_in_effect_but_not_in_the_ecfr_is_reported_with_days() -> None:
    ecfr = record(us.ECFR_SOURCE_ID, "III")
    fr = record(us.FR_SOURCE_ID, "III", instrument="64 FR 37673", provision="FR Doc 99-17803",
                effective_from="1999-08-12")
    lines = us.cross_checks([ecfr, fr], [FUTURE_RULE], date(2031, 2, 11))
    assert len(lines) == 1
    assert "96 FR 1234" in lines[0] and "Schedule II expected" in lines[0]
    assert "the eCFR shows Schedule III" in lines[0] and "10 days after" in lines[0]


def test_nothing_to_report_before_the_effective_date_or_once_confirmed() -> None:
    ecfr = record(us.ECFR_SOURCE_ID, "III")
    assert us.cross_checks([ecfr], [FUTURE_RULE], date(2031, 1, 31)) == []
    moved = record(us.ECFR_SOURCE_ID, "II")
    assert us.cross_checks([moved], [FUTURE_RULE], date(2031, 2, 11)) == []


def test_cross_checks_read_in_force_since_of_fr_records() -> None:
    """Records stored with the legal date (and no effective_from) are checked the same."""
    ecfr = record(us.ECFR_SOURCE_ID, "III")
    fr = record(us.FR_SOURCE_ID, "II", instrument="96 FR 54321", provision="FR Doc 2031-19876",
                in_force_since="2031-10-01")
    lines = us.cross_checks([ecfr, fr], [], date(2031, 10, 3))
    assert lines == ["96 FR 54321 (FR Doc 2031-19876) took effect 2031-10-01: ketamine "
                     "Schedule II expected, the eCFR shows Schedule III — 2 days after the "
                     "effective date"]


FR_1999 = dict(instrument="64 FR 37673", provision="FR Doc 99-17803",
               in_force_since="1999-08-12", in_force_since_basis="64 FR 37673, effective 1999-08-12",
               in_force_since_kind="instrument")


def test_law_dates_give_the_ecfr_entry_the_date_of_the_rule_that_placed_it() -> None:
    ecfr = record(us.ECFR_SOURCE_ID, "III", evidence_date="2026-06-10")
    fr = record(us.FR_SOURCE_ID, "III", **FR_1999)
    dated, fr_after = us.law_dates([ecfr, fr])
    assert fr_after == fr
    assert (dated.in_force_since, dated.in_force_since_basis, dated.in_force_since_kind) == \
        ("1999-08-12", "64 FR 37673, effective 1999-08-12", "instrument")
    assert dated.legal_note == ("in force since 1999-08-12 per the Federal Register (64 FR "
                                "37673, effective 1999-08-12); the eCFR text does not cite "
                                "the rule")
    assert dated.material() == ecfr.material() and dated.evidence_date == "2026-06-10"


def test_law_dates_never_give_a_date_the_records_disagree_on() -> None:
    fr = record(us.FR_SOURCE_ID, "III", **FR_1999)
    moved = record(us.ECFR_SOURCE_ID, "II")  # the eCFR prints another schedule
    other = record(us.ECFR_SOURCE_ID, "III", substance="esketamine")  # no FR record for it
    gone = record(us.ECFR_SOURCE_ID, "III", status="not_controlled")
    assert us.law_dates([moved, other, gone, fr]) == [moved, other, gone, fr]
    stated = record(us.ECFR_SOURCE_ID, "III", in_force_since="2000-01-01")
    assert us.law_dates([stated, fr])[0] is stated
