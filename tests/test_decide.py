"""The pure decisions of reports/diff.py: the law on a date, legal spans, the dates a stored
record carries, early-warning sources, flip-flops and the pipeline's decide()."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from jurisdictions.base import Fetched, Source
from jurisdictions.substances import build_watch_list
from reports.diff import (
    CHANGE_KINDS,
    DEFAULT_ALERT_KINDS,
    SOURCE_KINDS,
    Closing,
    Opening,
    SourceOutcome,
    check_early_warning,
    decide,
    law_on,
    legal_span,
    pending_passed,
    with_since,
)
from scrapers.records import Document, ParseResult, PendingItem, StatusRecord
from scrapers.store import PendingRow, Prior, StatusInterval

AT = datetime(2026, 10, 2, 12, 0, tzinfo=UTC)


def record(**changes: object) -> StatusRecord:
    base = StatusRecord(
        jurisdiction="ca", substance="ketamine", status="not_in_force", schedule="1",
        control_level="C2", instrument="SOR/2025-242", provision="Sch. 1, item 14(1)",
        listed_as="Ketamine", basis="named", source_id="ca-csr", source_url="http://x/csr",
        document_sha256="a" * 64, retrieved_at="2026-09-15T12:00:00+00:00",
        evidence_date="2026-04-17", in_force_since="2026-10-01",
        in_force_since_basis="SOR/2025-242, s. 239", in_force_since_kind="instrument")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_held_coming_into_force_date_takes_effect_on_its_day() -> None:
    csr = record()
    assert law_on(csr, date(2026, 9, 30)) is csr
    now = law_on(csr, date(2026, 10, 1))
    assert now.status == "controlled" and now.in_force_since == "2026-10-01"
    assert now.legal_note == ("the consolidation served (point in time 2026-04-17) predates "
                              "this; in force per SOR/2025-242, s. 239")


def test_an_announced_repeal_ends_the_listing_on_its_day() -> None:
    ncr = record(status="controlled", instrument="C.R.C., c. 1041", in_force_since=None,
                 in_force_since_kind=None, in_force_since_basis=None,
                 in_force_until="2026-10-01",
                 in_force_until_basis="repealed by SOR/2025-242, s. 238(a)")
    assert law_on(ncr, date(2026, 9, 30)).status == "controlled"
    gone = law_on(ncr, date(2026, 10, 1))
    assert gone.status == "not_in_force" and gone.in_force_since == "2026-10-01"
    assert "no longer in force from 2026-10-01" in (gone.legal_note or "")
    assert legal_span(ncr) == ("2026-04-17", "2026-10-01")


def test_legal_spans() -> None:
    assert legal_span(record()) == ("2026-04-17", "2026-10-01")
    assert legal_span(law_on(record(), date(2026, 10, 2))) == ("2026-10-01", None)
    plain = record(status="controlled", in_force_since=None, in_force_since_kind=None)
    assert legal_span(plain) == ("2026-04-17", None)


def test_dates_carried_and_filled() -> None:
    plain = record(status="controlled", in_force_since=None, in_force_since_kind=None,
                   in_force_since_basis=None)
    first = with_since(plain, None, observed_at="2026-09-15T12:00:00+00:00")
    assert (first.in_force_since, first.in_force_since_kind) == ("2026-04-17",
                                                                 "earliest_evidence")
    assert first.first_observed_at == "2026-09-15T12:00:00+00:00"
    # A later consolidation with the same status keeps the earliest evidence and observation.
    later = with_since(dataclasses.replace(plain, evidence_date="2026-11-20", listed_as="K."),
                       first, observed_at="2026-11-21T00:00:00+00:00")
    assert later.in_force_since == "2026-04-17"
    assert later.first_observed_at == "2026-09-15T12:00:00+00:00"
    # A new status starts its own dates.
    moved = with_since(dataclasses.replace(plain, schedule="3", evidence_date="2026-11-20"),
                       first, observed_at="2026-11-21T00:00:00+00:00")
    assert moved.in_force_since == "2026-11-20"
    assert moved.first_observed_at == "2026-11-21T00:00:00+00:00"


def test_only_in_force_dates_resolve_pending_items() -> None:
    item = PendingItem(jurisdiction="us", substance="ketamine", source_id="us-fr", key="k",
                       action="proposed_rule", description="d", reference="r",
                       date_label="comment deadline", date="2026-01-01")
    assert not pending_passed(item, date(2026, 6, 1))
    final = dataclasses.replace(item, action="final_rule", date_label="effective")
    assert pending_passed(final, date(2026, 1, 1)) and not pending_passed(final,
                                                                         date(2025, 12, 31))


def test_the_change_kinds_table() -> None:
    assert SOURCE_KINDS == ("extraction_failed", "source_failed", "recovered")
    assert "in_force" in DEFAULT_ALERT_KINDS and "amended" not in DEFAULT_ALERT_KINDS
    assert all(kind.level in ("record", "source") for kind in CHANGE_KINDS.values())


SOURCE = Source(id="ca-csr", jurisdiction="ca", title="CSR", endpoints={"url": "http://x/csr"},
                parse=lambda document, watch: ParseResult(records=()))
FR = dataclasses.replace(SOURCE, id="us-fr", jurisdiction="us", early_warning=True)


def interval(rec: StatusRecord) -> StatusInterval:
    start, end = legal_span(rec)
    return StatusInterval(id=1, record=rec, valid_from="2026-09-15T12:00:00+00:00",
                          valid_to=None, last_confirmed_at="2026-09-15T12:00:00+00:00",
                          last_document_sha256=rec.document_sha256, legal_from=start,
                          legal_to=end)


def prior_with(source: Source, rec: StatusRecord, pending: tuple[PendingRow, ...] = ()
               ) -> Prior:
    from reports.diff import default_state

    state = dataclasses.replace(default_state(source), health="healthy",
                                last_healthy_at="2026-09-15T12:00:00+00:00",
                                last_document_sha256=rec.document_sha256,
                                watch_keys=("ketamine",))
    return Prior(states={source.id: state}, current={source.id: (interval(rec),)},
                 pending={source.id: pending}, recent={})


def test_a_quiet_day_on_which_a_date_passes_records_one_in_force_change() -> None:
    csr = record()
    row = PendingRow(id=7, item=PendingItem(
        jurisdiction="ca", substance="ketamine", source_id="ca-csr", key="not-in-force:CSR",
        action="not_in_force", description="d", reference="SOR/2025-242",
        date_label="in force", date="2026-10-01"), first_seen_at="x", last_seen_at="x",
        resolved_at=None)
    outcome = SourceOutcome(source=SOURCE, started_at=AT, elapsed_ms=1,
                            outcome="not_modified", url="http://x/csr")
    decision = decide(outcome, prior_with(SOURCE, csr, (row,)), build_watch_list(["ketamine"]),
                      jurisdiction_name="Canada", today=date(2026, 10, 2))
    assert [c.kind for c in decision.changes] == ["in_force"]
    assert decision.changes[0].summary == (
        "Ketamine — Canada: Schedule 1 (not yet in force; in force from 2026-10-01) → "
        "Schedule 1 on 2026-10-01 (SOR/2025-242, s. 239) (in force)")
    closing, opening = decision.steps
    assert isinstance(closing, Closing) and closing.legal_to == "2026-10-01"
    assert isinstance(opening, Opening) and (opening.legal_from, opening.legal_to) == (
        "2026-10-01", None)
    assert [(p.action, p.row_id) for p in decision.pending] == [("resolve", 7)]
    # The day before, nothing.
    quiet = decide(outcome, prior_with(SOURCE, csr, (row,)), build_watch_list(["ketamine"]),
                   jurisdiction_name="Canada", today=date(2026, 9, 30))
    assert quiet.changes == () and quiet.steps == () and quiet.pending == ()


def test_an_early_warning_source_never_deschedules_by_itself() -> None:
    controlled = record(source_id="us-fr", jurisdiction="us", status="controlled",
                        schedule="III")
    gone = dataclasses.replace(controlled, status="not_controlled", schedule=None,
                               control_level=None)
    document = Document.of(b"{}", source_id="us-fr", url="http://x/fr", retrieved_at=AT)
    outcome = SourceOutcome(source=FR, started_at=AT, elapsed_ms=1, outcome="fetched",
                            url="http://x/fr", document=document,
                            result=ParseResult(records=(gone,)),
                            fetched=Fetched(url="http://x/fr", content=b"{}"))
    checked = check_early_warning(outcome, prior_with(FR, controlled))
    assert checked.outcome == "extraction_failed" and checked.result is None
    assert "never does that by itself" in (checked.error or "")
    # The same answer from an ordinary source is a descheduling.
    plain = dataclasses.replace(outcome, source=dataclasses.replace(FR, early_warning=False))
    assert check_early_warning(plain, prior_with(FR, controlled)) is plain


def test_an_alert_words_the_legal_date_like_every_page() -> None:
    """Emails say "in force since … (per the instrument: …)", never "effective"."""
    from reports.email import change_view
    from scrapers.store import StoredChange

    before = record()
    after = law_on(before, date(2026, 10, 2))
    change = StoredChange(id=1, run_id=1, detected_at="2026-10-02T12:00:00+00:00",
                          jurisdiction="ca", substance="ketamine", source_id="ca-csr",
                          kind="in_force", summary="s", before=before.as_dict(),
                          after=after.as_dict(), effective_date="2026-10-01",
                          before_sha256=None, after_sha256=None, details={})
    view = change_view(change, site_url=None, names={"ca": "Canada"})
    rows = {row["label"]: row for row in view["rows"]}
    assert rows["In force since"]["after"] == (
        "in force since 2026-10-01 (per the instrument: SOR/2025-242, s. 239)")
    assert "Effective from" not in rows
    assert "predates this" in rows["Note"]["after"]


def test_a_new_wording_of_the_same_status_starts_on_its_own_evidence_date() -> None:
    """A consolidation renumbering the entry (or a new Poisons Standard re-issuing it) keeps
    the status and its in_force_since; the old record's span ends, and the new one's starts,
    on the day the new document speaks for — never an empty span at in_force_since."""
    held = record(status="controlled", source_id="ca-cdsa", instrument="S.C. 1996, c. 19",
                  provision="Sch. I, item 14(1)", evidence_date="2019-09-19",
                  in_force_since="2019-09-19", in_force_since_kind="earliest_evidence",
                  in_force_since_basis="earliest evidence held")
    renumbered = dataclasses.replace(held, provision="Sch. I, item 14(2)",
                                     evidence_date="2024-05-27", document_sha256="b" * 64,
                                     in_force_since=None, in_force_since_kind=None,
                                     in_force_since_basis=None)
    source = dataclasses.replace(SOURCE, id="ca-cdsa")
    document = Document.of(b"<x/>", source_id="ca-cdsa", url="http://x/cdsa", retrieved_at=AT)
    outcome = SourceOutcome(source=source, started_at=AT, elapsed_ms=1, outcome="fetched",
                            url="http://x/cdsa", document=document,
                            result=ParseResult(records=(renumbered,)),
                            fetched=Fetched(url="http://x/cdsa", content=b"<x/>"))
    decision = decide(outcome, prior_with(source, held), build_watch_list(["ketamine"]),
                      jurisdiction_name="Canada", today=date(2026, 10, 2))
    assert [c.kind for c in decision.changes] == ["amended"]
    closing, opening = decision.steps
    assert isinstance(closing, Closing) and closing.legal_to == "2024-05-27"
    assert isinstance(opening, Opening) and (opening.legal_from, opening.legal_to) == (
        "2024-05-27", None)
    assert opening.record.in_force_since == "2019-09-19"  # the status began then
