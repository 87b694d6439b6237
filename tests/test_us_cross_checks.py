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
