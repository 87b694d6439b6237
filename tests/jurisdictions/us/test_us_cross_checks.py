"""The US cross-check: a final rule in effect that the eCFR does not show yet is reported,
with the days since its effective date, on the index and in the weekly report."""

from __future__ import annotations

from datetime import date

from jurisdictions import us
from scrapers.records import ParseResult, PendingItem, StatusRecord


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


def test_the_checker_of_one_snapshot_answers_each_day_as_cross_checks_does() -> None:
    """Ten years of weekly reports ask one snapshot for each of their days: the checker made
    once (which works out the unconfirmed rules once, then keeps each day those in effect)
    gives, day by day, the lines of ``cross_checks``, and for the rules that
    ``unconfirmed_final_rules`` finds when asked about that day alone, in its order (before,
    on and after the effective dates of a final rule and of a pending one)."""
    ecfr = record(us.ECFR_SOURCE_ID, "III")
    fr = record(us.FR_SOURCE_ID, "II", instrument="96 FR 54321", provision="FR Doc 2031-19876",
                in_force_since="2031-10-01")
    check = us.cross_checker([ecfr, fr], [FUTURE_RULE])
    days = [date(2031, 1, 31), date(2031, 2, 1), date(2031, 2, 11), date(2031, 9, 30),
            date(2031, 10, 1), date(2031, 10, 3)]
    answers = [check(day) for day in days]
    assert answers == [us.cross_checks([ecfr, fr], [FUTURE_RULE], day) for day in days]
    fr_result = ParseResult(records=(fr,), pending=(FUTURE_RULE,))
    for day, lines in zip(days, answers, strict=True):
        rules = us.unconfirmed_final_rules(fr_result, [ecfr], day)
        assert [line.split(" (", 1)[0] for line in lines] == [r.reference for r in rules]
        assert all(f"took effect {r.effective}:" in line
                   for line, r in zip(lines, rules, strict=True))
    assert [len(lines) for lines in answers] == [0, 1, 1, 1, 2, 2]
    assert us.cross_checker([ecfr], [])(date(2031, 2, 11)) == []


def test_the_site_makes_a_checker_once_per_snapshot_with_its_own_records(
        monkeypatch) -> None:
    """``reports.pages.cross_checks``: a module's ``cross_checker`` is made once per
    snapshot, from that jurisdiction's current records alone, whatever the number of days
    asked; a module without the hook is not asked."""
    import jurisdictions
    from reports.pages import Jurisdiction, Snapshot, cross_checks
    from scrapers.store import StatusInterval

    made: list[list[str]] = []

    def checker(records, pending):  # noqa: ANN001, ANN202 - a module's hook
        made.append([r.substance for r in records])
        return lambda today: [f"us {today}"]

    modules = {"us": type("M", (), {"cross_checker": staticmethod(checker)}),
               "xx": type("M", (), {})}
    monkeypatch.setattr(jurisdictions, "jurisdiction", modules.__getitem__)

    def current(code: str, substance: str) -> StatusInterval:
        return StatusInterval(id=len(substance), record=record(
            us.ECFR_SOURCE_ID, "III", jurisdiction=code, substance=substance),
            valid_from="2031-01-01T00:00:00Z", valid_to=None,
            last_confirmed_at="2031-01-01T00:00:00Z", last_document_sha256="a" * 64)

    snap = Snapshot(intervals=(current("us", "ketamine"), current("xx", "esketamine")),
                    changes=(), pending=(), states={}, failed_mail=(),
                    heartbeat=None, documents={}, watched=(), all_entries=True,
                    jurisdictions=tuple(Jurisdiction(code=c, name=c, sources=())
                                        for c in ("us", "xx")))
    days = [date(2031, 1, d) for d in range(1, 11)]
    assert [cross_checks(snap, day) for day in days] == [[f"us {d}"] for d in days]
    assert made == [["ketamine"]]
