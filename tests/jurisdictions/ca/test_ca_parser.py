"""Tests of the Canadian parsers (jurisdictions/ca/) on the real Justice Laws XML in
../shared/regulator-documents/ca and on the small hand-written fixtures in tests/fixtures/ca."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jurisdictions import ca
from jurisdictions.substances import DEFAULT_WATCH, build_watch_list
from scrapers.errors import ExtractionError
from scrapers.records import CONTROL_LEVELS, Document, ParseResult, StatusRecord, validate

TESTS = Path(__file__).resolve().parents[2]
FIXTURES = TESTS / "fixtures" / "ca"
SHARED = TESTS.parents[1] / "shared" / "regulator-documents" / "ca"

CDSA_2019 = "cdsa-C-38.8-en-pit2019-09-19.xml"
CDSA_2024 = "cdsa-C-38.8-en-pit2024-05-27.xml"
CDSA_2026 = "cdsa-C-38.8-en-pit2026-06-05.xml"
CDSA_2026_FR = "cdsa-C-38.8-fr-pit2026-06-05.xml"
NCR_2025 = "ncr-CRC-c1041-en-pit2025-11-28.xml"
CSR_2026 = "csr-SOR-2025-242-en-pit2026-04-17.xml"
CDSA_FILES = (CDSA_2019, CDSA_2024, CDSA_2026, CDSA_2026_FR)
REGULATION_FILES = (NCR_2025, CSR_2026)

KETAMINE_EN = "Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone)"
DEFAULT = build_watch_list(list(DEFAULT_WATCH))
ALL = build_watch_list("all")
RETRIEVED = datetime(2026, 6, 20, 12, 0, tzinfo=UTC)


# --- helpers --------------------------------------------------------------------------------

def make_document(content: bytes, source_id: str = "ca-cdsa",
                  url: str = "https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml") -> Document:
    return Document(source_id=source_id, url=url, content=content,
                    sha256=hashlib.sha256(content).hexdigest(), retrieved_at=RETRIEVED)


def parse(content: bytes | str, source_id: str = "ca-cdsa", watch=DEFAULT) -> ParseResult:
    """Parse with the source's parser and check the output as the pipeline does."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    parser = ca.parse_cdsa if source_id == "ca-cdsa" else ca.parse_regulations
    result = parser(make_document(content, source_id), watch)
    validate(result, source_id=source_id, watched=watch.keys)
    return result


def records(result: ParseResult) -> dict[str, StatusRecord]:
    return {record.substance: record for record in result.records}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def replace_once(text: str, old: str, new: str) -> str:
    """A variant of a document: fails loudly if the text to change is not there."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the fixture"
    return text.replace(old, new)


def add_amendment(text: str, heading: str, body: str) -> str:
    """Append an entry to the CDSA fixture's "AMENDMENTS NOT IN FORCE" appendix."""
    piece = (f'<RelatedOrNotInForce><Heading level="5" style="nifrp"><TitleText>\n'
             f'          — {heading}</TitleText></Heading>{body}</RelatedOrNotInForce>')
    head, tail = text.rsplit("</BillPiece>", 1)
    return head + piece + "</BillPiece>" + tail


def assert_extraction_error(content: bytes | str, source_id: str = "ca-cdsa",
                            match: str | None = None) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        parse(content, source_id)
    message = str(caught.value)
    assert "\n" not in message, "the error must be one line"
    assert message.startswith(f"{source_id}: expected "), message
    if match:
        assert re.search(match, message), message
    return caught.value


@pytest.fixture(scope="module")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/regulator-documents is absent")
    return SHARED


def real(shared: Path, name: str) -> bytes:
    return (shared / name).read_bytes()


def real_source(name: str) -> str:
    return "ca-cdsa" if name.startswith("cdsa") else "ca-csr"


# --- the module's declarations --------------------------------------------------------------

def test_module_declares_the_contract():
    assert (ca.CODE, ca.NAME, ca.TIMEZONE) == ("ca", "Canada", "America/Toronto")
    assert set(ca.SCHEDULE_LEVELS.values()) <= set(CONTROL_LEVELS)
    assert ca.SCHEDULE_LEVELS["I"] == "C2" and ca.SCHEDULE_LEVELS["III"] == "C3"
    assert ca.SCHEDULE_LEVELS["1"] == "C2" and ca.SCHEDULE_LEVELS[ca.NCR_SCHEDULE] == "C2"
    by_id = {source.id: source for source in ca.SOURCES}
    assert set(by_id) == {"ca-cdsa", "ca-csr"}
    cdsa, csr = by_id["ca-cdsa"], by_id["ca-csr"]
    assert cdsa.title == "Controlled Drugs and Substances Act (S.C. 1996, c. 19)"
    assert cdsa.url == "https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml"
    assert cdsa.parse is ca.parse_cdsa and cdsa.fetch_plan is None
    assert csr.title == "Controlled Substances Regulations (SOR/2025-242)"
    assert csr.url == "https://laws-lois.justice.gc.ca/eng/XML/SOR-2025-242.xml"
    assert csr.parse is ca.parse_regulations and csr.fetch_plan is None
    assert all(source.jurisdiction == "ca" for source in ca.SOURCES)


@pytest.mark.parametrize(("text", "expected"), [
    ("These Regulations come into force on October 1, 2026.", "2026-10-01"),
    ("Le présent règlement entre en vigueur le 1er octobre 2026.", "2026-10-01"),
    ("This section comes into force on January 31, 2031.", "2031-01-31"),
    ("These Regulations come into force on the day on which they are registered.", None),
    ("Registered October 1, 2026.", None),
])
def test_written_date(text, expected):
    assert ca.written_date(text) == expected


def test_listed_name_stops_at_list_commas_not_chemical_commas():
    assert ca.listed_name(KETAMINE_EN) == "Ketamine"
    assert ca.listed_name("Opium Poppy (Papaver somniferum), its preparations") == "Opium Poppy"
    assert ca.listed_name("N,N-dimethyltryptamine (DMT)") == "N,N-dimethyltryptamine"
    assert ca.listed_name("Tramadol, its salts and derivatives") == "Tramadol"


# --- the real documents ---------------------------------------------------------------------

@pytest.mark.parametrize("name", CDSA_FILES + REGULATION_FILES)
@pytest.mark.parametrize("watch", [DEFAULT, ALL], ids=["default", "all"])
def test_real_documents_parse_and_validate(shared, name, watch):
    result = parse(real(shared, name), real_source(name), watch)
    assert set(watch.keys) <= set(records(result))
    assert result.document_dates and result.document_dates[0][0] == "point in time"
    assert result.title


@pytest.mark.parametrize("name", CDSA_FILES)
def test_real_cdsa_ketamine_is_schedule_i_item_14_1(shared, name):
    result = parse(real(shared, name))
    ketamine = records(result)["ketamine"]
    assert ketamine.status == "controlled"
    assert ketamine.schedule == "I"
    assert ketamine.control_level == "C2"
    assert ketamine.provision == "Sch. I, item 14(1)"
    assert ketamine.instrument == "S.C. 1996, c. 19"
    assert ketamine.basis == "named"
    assert ketamine.code is None
    assert ketamine.parent_entry.startswith("Phencyclidine (")
    # Issue 13: the consolidation's element date is labelled for what it is, never as an
    # effective date; the record speaks for the consolidation's point in time.
    assert ketamine.effective_from is None
    assert ketamine.in_force_since is None and ketamine.in_force_until is None
    assert ketamine.evidence_date == result.document_dates[0][1]
    labels = [label for label, _ in ketamine.dates]
    assert labels[:4] == ["point in time", "current to", "last amended", "consolidated"]
    assert "schedule last amended" in labels and ca.ELEMENT_DATE_LABEL in labels
    assert dict(ketamine.dates)[ca.ELEMENT_DATE_LABEL] == "2018-04-04"
    assert not any("effective" in label or "in force from" in label
                   for label, _ in ketamine.dates)
    assert ketamine.review is None
    assert result.instrument == "S.C. 1996, c. 19"


def test_real_cdsa_document_dates_are_labelled(shared):
    result = parse(real(shared, CDSA_2026))
    assert result.document_dates == (("point in time", "2026-06-05"), ("current to", "2026-06-14"),
                                     ("last amended", "2026-06-05"), ("consolidated", "2026-06-15"))
    assert ("schedule last amended", "2024-06-05") in records(result)["ketamine"].dates


def test_real_french_cdsa_gives_the_same_status(shared):
    english = records(parse(real(shared, CDSA_2026)))["ketamine"]
    french = records(parse(real(shared, CDSA_2026_FR)))["ketamine"]
    for field in ("status", "schedule", "control_level", "provision", "instrument", "basis",
                  "effective_from", "evidence_date", "dates"):
        assert getattr(french, field) == getattr(english, field), field
    # The stray space of "2- (méthylamino)" is gone.
    assert french.listed_as == "kétamine (2-(2-chlorophényl)-2-(méthylamino)cyclohexanone)"
    assert french.parent_entry.startswith("Phencyclidine ((phényl-1 cyclohexyl)-1 pipéridine)")


def test_real_cdsa_history_does_not_change_ketamine(shared):
    """2019 -> 2024 -> 2026: Schedule I gained items 27 and 28; ketamine did not move."""
    versions = [records(parse(real(shared, name))) for name in (CDSA_2019, CDSA_2024, CDSA_2026)]
    for key in DEFAULT.keys:
        materials = {version[key].material() for version in versions}
        assert len(materials) == 1, key
    assert len({version["ketamine"].document_sha256 for version in versions}) == 3


@pytest.mark.parametrize("name", [CDSA_2024, CDSA_2026, CDSA_2026_FR])
def test_real_cdsa_amendments_not_in_force_do_not_touch_ketamine(shared, name):
    # 2026: SOR/2025-243 amends Schedule I items 1, 3, 6, 7, 10, 12, 16, 17, 19, not 14.
    # 2024: SOR/2024-98 adds item 28 (AP-237).
    assert parse(real(shared, name)).pending == ()


def test_real_cdsa_amendments_not_in_force_are_read(shared):
    """The same appendix does give pending items for what it does touch: SOR/2025-243, s. 7
    replaces item 17 (tilidine) of Schedule I."""
    result = parse(real(shared, CDSA_2026), watch=build_watch_list(["tilidine"]))
    tilidine = records(result)["tilidine"]
    assert (tilidine.status, tilidine.provision) == ("controlled", "Sch. I, item 17")
    pending = [p for p in result.pending if p.key == "NifProvs:SOR/2025-243, s. 7"]
    assert len(pending) == 1
    assert pending[0].reference == "SOR/2025-243"
    assert pending[0].action == "not_in_force"
    assert "Sch. I, item 17" in pending[0].description


def test_real_ncr_lists_ketamine_at_item_14_1(shared):
    result = parse(real(shared, NCR_2025), "ca-csr")
    ketamine = records(result)["ketamine"]
    assert ketamine.status == "controlled"
    assert ketamine.schedule == ca.NCR_SCHEDULE
    assert ketamine.control_level == "C2"
    assert ketamine.provision == "Sch., item 14(1)"
    assert ketamine.instrument == "C.R.C., c. 1041"
    assert ketamine.listed_as == KETAMINE_EN  # "2- (methylamino)" normalised
    assert ketamine.effective_from is None
    assert (ca.ELEMENT_DATE_LABEL, "2018-10-17") in ketamine.dates
    assert ketamine.evidence_date == "2025-11-28"
    assert ketamine.in_force_since is None  # no coming-into-force statement: the lead fills it
    # The repeal it announces: the date is SOR/2025-242's s. 239 (not printed in the NCR).
    assert ketamine.in_force_until == "2026-10-01"
    assert ketamine.in_force_until_basis.startswith(
        "repealed by SOR/2025-242, par. 238(a), in force 2026-10-01")
    assert "s. 239" in ketamine.in_force_until_basis
    # Its own repeal by SOR/2025-242, par. 238(a) is printed as not in force.
    repeal = [p for p in result.pending if p.substance == "ketamine"]
    assert len(repeal) == 1
    assert repeal[0].reference == "SOR/2025-242"
    assert repeal[0].key == "NifProvs:SOR/2025-242, par. 238(a)"
    assert "repeals the Narcotic Control Regulations" in repeal[0].description
    assert (repeal[0].date_label, repeal[0].date) == ("in force", "2026-10-01")


def test_real_csr_is_not_in_force_until_2026_10_01(shared):
    result = parse(real(shared, CSR_2026), "ca-csr")
    by_key = records(result)
    for key in DEFAULT.keys:
        record = by_key[key]
        assert record.status == "not_in_force"
        assert record.schedule == "1"
        assert record.provision == "Sch. 1, item 14(1)"
        assert record.instrument == "SOR/2025-242"
        assert record.effective_from is None
        assert record.evidence_date == "2026-04-17"
        assert (record.in_force_since, record.in_force_since_kind) == ("2026-10-01",
                                                                       "instrument")
        assert record.in_force_since_basis == "SOR/2025-242, s. 239"
        assert record.in_force_until is None
        assert ("comes into force", "2026-10-01") in record.dates
    assert by_key["ketamine"].listed_as == KETAMINE_EN
    assert by_key["ketamine"].parent_entry.endswith("analogues, including")
    pending = {p.substance: p for p in result.pending}
    assert set(pending) == set(DEFAULT.keys)
    ketamine = pending["ketamine"]
    assert (ketamine.action, ketamine.date_label, ketamine.date) == ("not_in_force", "in force",
                                                                     "2026-10-01")
    assert ketamine.reference == "SOR/2025-242" and ketamine.proposed_schedule == "1"
    assert "s. 239" in ketamine.description
    assert ("registered", "2025-11-28") in result.document_dates


@pytest.mark.parametrize(("name", "provision"), [(CDSA_2026, "Sch. I, item 14(1)"),
                                                 (CDSA_2026_FR, "Sch. I, item 14(1)"),
                                                 (NCR_2025, "Sch., item 14(1)"),
                                                 (CSR_2026, "Sch. 1, item 14(1)")])
def test_real_isomers_are_covered_through_item_14(shared, name, provision):
    by_key = records(parse(real(shared, name), real_source(name)))
    for key in ("esketamine", "arketamine"):
        record = by_key[key]
        assert record.status == by_key["ketamine"].status
        assert record.schedule == by_key["ketamine"].schedule
        assert record.provision == provision
        assert record.basis.startswith(f"isomer of ketamine, listed in {provision}; ")
        assert "derivative or analogue of phencyclidine" in record.basis


def test_real_all_entries_follow_schedule_i_history(shared):
    versions = {name: records(parse(real(shared, name), watch=ALL))
                for name in (CDSA_2019, CDSA_2024, CDSA_2026)}
    for by_key in versions.values():
        assert len(by_key) > 400
    assert "tramadol" not in versions[CDSA_2019]
    for name in (CDSA_2024, CDSA_2026):
        assert versions[name]["tramadol"].provision == "Sch. I, item 27"
    assert "ap-237" not in versions[CDSA_2019] and "ap-237" not in versions[CDSA_2024]
    assert versions[CDSA_2026]["ap-237"].provision == "Sch. I, item 28"
    assert not any("item 28" in (r.provision or "") and r.schedule == "I"
                   for r in versions[CDSA_2024].values())
    # Other schedules are read too.
    assert versions[CDSA_2026]["methylphenidate"].schedule == "III"
    assert versions[CDSA_2026]["acetic anhydride"].provision == "Sch. VI, Part 1, item 1"


def test_real_csr_all_entries_read_every_table(shared):
    by_key = records(parse(real(shared, CSR_2026), "ca-csr", ALL))
    assert by_key["methylphenidate"].provision == "Sch. 2, Part 1, item 2"
    assert all(record.status == "not_in_force" for record in by_key.values())


def test_real_documents_are_rejected_by_the_other_parser(shared):
    assert_extraction_error(real(shared, CSR_2026), "ca-cdsa", match="found a <Regulation>")
    assert_extraction_error(real(shared, CDSA_2026), "ca-csr", match=r"found a <Statute> .*C-38\.8")


def test_real_cdsa_parses_fast(shared):
    content = real(shared, CDSA_2026)
    parse(content)
    started = time.perf_counter()
    parse(content)
    assert time.perf_counter() - started < 1.0


# --- fixtures: the CDSA ---------------------------------------------------------------------

def test_fixture_cdsa_baseline():
    content = fixture("cdsa-mini.xml").encode("utf-8")
    result = parse(content)
    ketamine = records(result)["ketamine"]
    assert ketamine == StatusRecord(
        jurisdiction="ca", substance="ketamine", status="controlled", schedule="I",
        control_level="C2", instrument="S.C. 1996, c. 19", provision="Sch. I, item 14(1)",
        listed_as=KETAMINE_EN, basis="named",
        source_id="ca-cdsa", source_url="https://laws-lois.justice.gc.ca/eng/XML/C-38.8.xml",
        document_sha256=hashlib.sha256(content).hexdigest(),
        retrieved_at="2026-06-20T12:00:00+00:00", code=None,
        parent_entry=("Phencyclidine (1-(1-phenylcyclohexyl)piperidine), its salts, derivatives "
                      "and analogues and salts of derivatives and analogues, including:"),
        effective_from=None, evidence_date="2026-06-05",
        dates=(("point in time", "2026-06-05"), ("current to", "2026-06-14"),
               ("last amended", "2026-06-05"), ("consolidated", "2026-06-15"),
               ("schedule last amended", "2024-06-05"),
               ("text of this provision in force since, per the consolidation", "2018-04-04")),
    )
    esketamine = records(result)["esketamine"]
    assert esketamine.basis == ("isomer of ketamine, listed in Sch. I, item 14(1); also a salt, "
                                "derivative or analogue of phencyclidine (Sch. I, item 14)")
    assert esketamine.material()[:3] == ("controlled", "I", "C2")
    # The appendix amends Schedule III item 2 and Schedule I items 13 and 15, not item 14.
    assert result.pending == ()
    assert result.title == "Controlled Drugs and Substances Act"


def test_fixture_cdsa_appendix_is_read_for_what_it_touches():
    result = parse(fixture("cdsa-mini.xml"), watch=build_watch_list(["ethylphenidate",
                                                                       "clonitazene"]))
    keys = {(p.substance, p.key) for p in result.pending}
    assert keys == {("ethylphenidate", "NifProvs:SOR/2099-243, s. 1"),
                    ("clonitazene", "NifProvs:SOR/2099-243, s. 2")}


def test_fixture_ketamine_moved_to_schedule_iii():
    text = fixture("cdsa-mini.xml")
    text = replace_once(text, f"<Label>(1)</Label><Text>{KETAMINE_EN}</Text>",
                        "<Label>(1)</Label><Text>Rolicyclidine (1-(1-phenylcyclohexyl)"
                        "pyrrolidine)</Text>")
    text = replace_once(text, "and any salt thereof</Text></Item>",
                        "and any salt thereof</Text></Item>"
                        f"<Item><Label>4</Label><Text>{KETAMINE_EN}</Text></Item>")
    by_key = records(parse(text))
    ketamine = by_key["ketamine"]
    assert (ketamine.status, ketamine.schedule, ketamine.control_level) == ("controlled", "III",
                                                                           "C3")
    assert ketamine.provision == "Sch. III, item 4"
    assert ketamine.parent_entry is None
    assert ketamine.effective_from is None  # the new item states no date
    # Item 14 of Schedule I (phencyclidine and its analogues) still stands: worth a look.
    assert "Sch. I, item 14" in ketamine.review and "Sch. III, item 4" in ketamine.review
    assert by_key["esketamine"].schedule == "III"
    assert by_key["esketamine"].basis == "isomer of ketamine, listed in Sch. III, item 4"


KETAMINE_SUBITEM = (f'<Item lims:inforce-start-date="2018-04-04" lims:fid="142" '
                    f'lims:id="142"><Label>(1)</Label><Text>{KETAMINE_EN}</Text></Item>')
ITEM_14_TEXT = ("Phencyclidine (1-(1-phenylcyclohexyl)piperidine), its salts, derivatives and "
                "analogues and salts of derivatives and analogues, including:")


def test_fixture_ketamine_subitem_deleted_stays_controlled_under_item_14():
    """Issue 13: the "(1) Ketamine" sub-item removed while item 14 (phencyclidine, its salts,
    derivatives and analogues) stands: still controlled, under item 14, flagged for review.
    Before issue 13 this read as not_controlled ("descheduled")."""
    by_key = records(parse(fixture("cdsa-mini-item14-without-ketamine.xml")))
    ketamine = by_key["ketamine"]
    assert (ketamine.status, ketamine.schedule, ketamine.control_level) == ("controlled", "I",
                                                                           "C2")
    assert ketamine.provision == "Sch. I, item 14"
    assert ketamine.listed_as == ITEM_14_TEXT
    assert ketamine.basis.startswith("analogue of phencyclidine, Sch. I, item 14; ")
    assert "Health Canada, Office of Controlled Substances, 2005-05-02" in ketamine.basis
    assert "SOR/2005-270" in ketamine.basis
    assert ketamine.review.startswith("The explicit listing of ketamine is absent")
    assert "Sch. I, item 14" in ketamine.review
    assert ketamine.evidence_date == "2026-06-05" and ketamine.effective_from is None
    for key in ("esketamine", "arketamine"):
        record = by_key[key]
        assert (record.status, record.provision) == ("controlled", "Sch. I, item 14")
        assert record.basis.startswith("isomer of ketamine, which is an analogue of "
                                       "phencyclidine, Sch. I, item 14; ")
        assert record.review
    # The fixture is the baseline fixture less that one sub-item.
    assert fixture("cdsa-mini-item14-without-ketamine.xml") == \
        replace_once(fixture("cdsa-mini.xml"), KETAMINE_SUBITEM, "")


def test_fixture_amendment_to_item_14_is_pending_when_ketamine_rests_on_it():
    text = add_amendment(
        fixture("cdsa-mini-item14-without-ketamine.xml"), "SOR/2099-310, s. 1",
        '<Section type="amending"><Label>1</Label><Text>Item 14 of Schedule I to the Act is '
        "repealed.</Text></Section>")
    pending = {p.substance: p for p in parse(text).pending}
    assert set(pending) == {"ketamine", "esketamine", "arketamine"}
    assert "amends Sch. I, item 14" in pending["ketamine"].description


def test_fixture_ketamine_deleted_is_not_controlled():
    """Item 14 rewritten so that it no longer extends to analogues, and the sub-item gone:
    nothing covers ketamine any more, so it is not controlled."""
    text = replace_once(fixture("cdsa-mini.xml"), KETAMINE_SUBITEM, "")
    text = replace_once(text, ITEM_14_TEXT,
                        "Phencyclidine (1-(1-phenylcyclohexyl)piperidine) and its salts")
    by_key = records(parse(text))
    ketamine = by_key["ketamine"]
    assert ketamine.status == "not_controlled"
    assert (ketamine.schedule, ketamine.control_level, ketamine.provision) == (None, None, None)
    assert ketamine.basis == "not listed in the schedules of S.C. 1996, c. 19"
    assert ketamine.dates[0] == ("point in time", "2026-06-05")
    assert ketamine.review is None
    assert by_key["esketamine"].status == "not_controlled"
    assert by_key["esketamine"].basis == ("not listed in the schedules of S.C. 1996, c. 19; nor "
                                          "is ketamine, of which it is an isomer")


def test_fixture_ketamine_and_item_14_deleted_is_not_controlled():
    start = fixture("cdsa-mini.xml").index('<Item lims:inforce-start-date="2018-04-04" '
                                           'lims:fid="140"')
    text = fixture("cdsa-mini.xml")
    end = text.index("</Item>", text.index("</List>", start)) + len("</Item>")
    text = text[:start] + text[end:]
    assert "Phencyclidine" not in text.split("SCHEDULE III")[0]
    assert records(parse(text))["ketamine"].status == "not_controlled"


def test_generic_coverage_facts_are_cited():
    from jurisdictions.substances import GENERIC_COVERAGE, generic_coverage

    assert {(c.instrument, c.schedule, c.item) for c in GENERIC_COVERAGE} == {
        ("S.C. 1996, c. 19", "I", "14"), ("C.R.C., c. 1041", ca.NCR_SCHEDULE, "14"),
        ("SOR/2025-242", "1", "14")}
    for fact in GENERIC_COVERAGE:
        assert "captured as item 14 in Schedule I of the CDSA and item 14 in the NCR" in \
            fact.citation
    assert generic_coverage("ketamine", "S.C. 1996, c. 19")[0].entry_name == "phencyclidine"
    assert generic_coverage("esketamine", "S.C. 1996, c. 19") == ()


@pytest.mark.parametrize(("old", "new", "match"), [
    ("<Label>SCHEDULE I</Label>", "<Label>SCHED. I</Label>", "label 'SCHED. I'"),
    ("<Label>SCHEDULE I</Label>", "<Label>LIST I</Label>", "label 'LIST I'"),
    ("<Label>SCHEDULE I</Label>", "", "with no label"),
    ("<Label>SCHEDULE I</Label>", "<Label>SCHEDULE 1</Label>", "numbered I, II, .* found 'SCHEDULE 1'"),
    ("<Label>SCHEDULE I</Label>", "<Label>SCHEDULE II</Label>", "expected Schedule I of"),
])
def test_fixture_schedule_labels_renamed_or_removed(old, new, match):
    assert_extraction_error(replace_once(fixture("cdsa-mini.xml"), old, new), match=match)


def test_fixture_no_schedules_at_all():
    text = re.sub(r"<Schedule\b.*?</Schedule>", "", fixture("cdsa-mini.xml"), flags=re.DOTALL)
    assert "<Schedule" not in text
    assert_extraction_error(text, match="found no schedules")


def test_fixture_schedule_i_without_items():
    text = fixture("cdsa-mini.xml")
    start = text.index('<List lims:inforce-start-date="2018-04-04" lims:fid="102"')
    end = text.index("<HistoricalNote>")
    assert_extraction_error(text[:start] + text[end:], match="expected items in Schedule I")


@pytest.mark.parametrize(("content", "match"), [
    (b"", "found an empty document"),
    (b"  \n ", "found an empty document"),
    (b"<!DOCTYPE html><html><head><title>Error 503</title></head><body>Service unavailable"
     b"</body></html>", "the server answered an HTML page titled 'Error 503'"),
    (b"<html><body><p>Maintenance</p></body></html>", "the server answered an HTML page$"),
    (b"<?xml version='1.0'?><Statute><Identification>", "found malformed XML"),
    (b'{"error": "not found"}', "found malformed XML"),
])
def test_fixture_broken_documents(content, match):
    assert_extraction_error(content, match=match)


def test_fixture_truncated_document():
    content = fixture("cdsa-mini.xml").encode("utf-8")
    assert_extraction_error(content[: len(content) // 2], match="found malformed XML")


def test_fixture_a_different_act():
    text = replace_once(fixture("cdsa-mini.xml"), "<ConsolidatedNumber official=\"no\">C-38.8",
                        "<ConsolidatedNumber official=\"no\">C-46")
    text = replace_once(text, ">Controlled Drugs and Substances Act</ShortTitle>",
                        ">Criminal Code</ShortTitle>")
    assert_extraction_error(text, match="found C-46 Criminal Code")


def test_fixture_wrong_instrument_for_each_parser():
    assert_extraction_error(fixture("csr-mini.xml"), "ca-cdsa", match="found a <Regulation>")
    assert_extraction_error(fixture("cdsa-mini.xml"), "ca-csr", match="found a <Statute>")
    other = replace_once(fixture("csr-mini.xml"), "<InstrumentNumber>SOR/2025-242",
                         "<InstrumentNumber>SOR/2000-217")
    assert_extraction_error(other, "ca-csr", match="found SOR/2000-217")


def test_fixture_entities_are_not_expanded():
    text = fixture("cdsa-mini.xml")
    text = replace_once(text, "<Statute ",
                        '<!DOCTYPE Statute [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
                        "<Statute ")
    text = replace_once(text, "Alfentanil (", "Alfentanil &secret; (")
    try:
        result = parse(text)
    except ExtractionError:
        return
    assert not any("root:" in (record.listed_as or "") for record in result.records)


def test_fixture_byte_order_mark_is_accepted():
    content = b"\xef\xbb\xbf" + fixture("cdsa-mini.xml").encode("utf-8")
    assert records(parse(content))["ketamine"].status == "controlled"


def test_fixture_amendment_touching_item_14_is_pending():
    text = add_amendment(
        fixture("cdsa-mini.xml"), "SOR/2099-300, s. 1",
        '<Section type="amending"><Label>1</Label><Text>Subitem 14(1) of Schedule I to the '
        "Act is repealed.</Text></Section>")
    result = parse(text)
    # Not in force: the status is unchanged.
    assert records(result)["ketamine"].material() == \
        records(parse(fixture("cdsa-mini.xml")))["ketamine"].material()
    pending = {p.substance: p for p in result.pending}
    assert set(pending) == {"ketamine", "esketamine", "arketamine"}
    ketamine = pending["ketamine"]
    assert ketamine.action == "not_in_force"
    assert ketamine.key == "NifProvs:SOR/2099-300, s. 1"
    assert ketamine.reference == "SOR/2099-300"
    assert ketamine.proposed_schedule is None
    assert (ketamine.date_label, ketamine.date) == (None, None)
    assert "amends Sch. I, item 14" in ketamine.description
    assert "Ketamine is listed in Sch. I, item 14(1)" in ketamine.description


@pytest.mark.parametrize("instruction", [
    "Items 13 to 15 of Schedule I to the Act are replaced by the following:",
    "Schedule I to the Act is replaced by the Schedule I set out in the schedule to these "
    "Regulations.",
    "The Act is amended by replacing “α” with “alpha” in the following provisions: subitems "
    "13(1), 14(1) and 15(1) of Schedule I.",
])
def test_fixture_other_ways_of_touching_item_14(instruction):
    text = add_amendment(fixture("cdsa-mini.xml"), "SOR/2099-301, s. 1",
                         f'<Section type="amending"><Label>1</Label><Text>{instruction}'
                         "</Text></Section>")
    assert {p.substance for p in parse(text).pending} == {"ketamine", "esketamine",
                                                          "arketamine"}


def test_fixture_amendment_naming_ketamine_gives_its_schedule_and_date():
    text = add_amendment(
        fixture("cdsa-mini.xml"), "SOR/2099-302, s. 1",
        '<Section type="amending"><Label>1</Label><Text>Schedule III to the Act is amended by '
        "adding the following after item 3:</Text><AmendedText><Item><Label>4</Label><Text>"
        f"{KETAMINE_EN}</Text></Item></AmendedText></Section>"
        '<Section type="CIF"><Label>2</Label><Text>This section comes into force on January 1, '
        "2031.</Text></Section>")
    result = parse(text)
    assert records(result)["ketamine"].schedule == "I"  # still, until then
    ketamine = next(p for p in result.pending if p.substance == "ketamine")
    assert ketamine.proposed_schedule == "III"
    assert (ketamine.date_label, ketamine.date) == ("in force", "2031-01-01")
    assert "names Ketamine" in ketamine.description


def test_fixture_related_provisions_are_not_amendments():
    text = replace_once(fixture("cdsa-mini.xml"), "is to be dealt with under the Act",
                        "about ketamine, item 14 of Schedule I, is to be dealt with under the Act")
    result = parse(text)
    assert result.pending == ()
    assert len(result.records) == 3


def test_fixture_entry_marked_not_in_force_is_pending_not_current():
    text = replace_once(fixture("cdsa-mini.xml"), 'lims:fid="142" lims:id="142"',
                        'lims:fid="142" lims:id="142" in-force="no"')
    result = parse(text)
    # Issue 13: the printed-but-not-in-force sub-item does not count, but item 14 (with its
    # analogues clause) still stands: controlled under it, for review (was not_controlled).
    ketamine = records(result)["ketamine"]
    assert (ketamine.status, ketamine.provision) == ("controlled", "Sch. I, item 14")
    assert ketamine.review
    pending = {p.substance: p for p in result.pending}
    assert set(pending) == {"ketamine", "esketamine", "arketamine"}
    assert pending["ketamine"].key == "not-in-force:Sch. I, item 14(1)"
    assert pending["ketamine"].proposed_schedule == "I"


@pytest.mark.parametrize("printed", [
    "Ketamine\u00a0(2\u2013(2\u2013chlorophenyl)\u20132\u2013 (methylamino)cyclohexanone)",
    "Ketamine  (2-(2-chlorophenyl)-2- (methylamino)cyclohexanone)",
    "Keta\u00admine (2\u2011(2\u2011chlorophenyl)\u20112\u2011(methylamino)cyclohexanone)",
    "\n            Ketamine (2-(2-chlorophenyl)-2-(methylamino)\ncyclohexanone)\n",
])
def test_fixture_dash_and_space_variants_still_match(printed):
    baseline = records(parse(fixture("cdsa-mini.xml")))["ketamine"]
    text = replace_once(fixture("cdsa-mini.xml"), f"<Text>{KETAMINE_EN}</Text>",
                        f"<Text>{printed}</Text>")
    ketamine = records(parse(text))["ketamine"]
    assert ketamine.status == "controlled"
    assert ketamine.material()[:4] == baseline.material()[:4]
    assert ketamine.provision == "Sch. I, item 14(1)"
    assert ketamine.listed_as.startswith("Ketamine (2-(2-chlorophenyl)-2-")


def test_fixture_french_labels_and_names():
    text = fixture("cdsa-mini.xml")
    text = replace_once(text, "<Label>SCHEDULE I</Label>", "<Label>ANNEXE I</Label>")
    text = replace_once(text, "<Label>SCHEDULE III</Label>", "<Label>ANNEXE III</Label>")
    text = replace_once(text, "<Label>SCHEDULE VII</Label>", "<Label>ANNEXE VII</Label>")
    text = replace_once(text, f"<Text>{KETAMINE_EN}</Text>",
                        "<Text>kétamine (2-(2-chlorophényl)-2- (méthylamino)cyclohexanone)</Text>")
    text = replace_once(text, 'xml:lang="en"', 'xml:lang="fr"')
    ketamine = records(parse(text))["ketamine"]
    assert (ketamine.schedule, ketamine.provision) == ("I", "Sch. I, item 14(1)")
    assert ketamine.listed_as == "kétamine (2-(2-chlorophényl)-2-(méthylamino)cyclohexanone)"


def test_fixture_match_by_chemical_name_alone():
    text = replace_once(fixture("cdsa-mini.xml"), f"<Text>{KETAMINE_EN}</Text>",
                        "<Text>Ketalar (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone)</Text>")
    assert records(parse(text))["ketamine"].provision == "Sch. I, item 14(1)"
    text = replace_once(fixture("cdsa-mini.xml"), f"<Text>{KETAMINE_EN}</Text>",
                        "<Text>Some trade name (2-(2-chlorophenyl)-2-(methylamino)"
                        "cyclohexanone)</Text>")
    assert records(parse(text))["ketamine"].provision == "Sch. I, item 14(1)"


def test_fixture_all_entries():
    result = parse(fixture("cdsa-mini.xml"), watch=ALL)
    by_key = records(result)
    assert set(by_key) == {
        "ketamine", "esketamine", "arketamine", "benzimidazoles", "clonitazene", "etonitazene",
        "phencyclidine", "fentanyls", "acetyl-α-methylfentanyl", "alfentanil",
        "methylphenidate", "ethylphenidate", "lysergic acid diethylamide",
    }
    assert by_key["clonitazene"].provision == "Sch. I, item 13(1)"
    assert by_key["clonitazene"].listed_as == \
        "Clonitazene (2-(p-chlorobenzyl)-1-diethylaminoethyl-5-nitrobenzimidazole)"
    assert by_key["phencyclidine"].parent_entry is None
    assert by_key["ethylphenidate"].parent_entry.startswith("Methylphenidate (")
    assert by_key["ketamine"].basis == "named"


def test_fixture_all_entries_joins_a_name_listed_twice():
    text = replace_once(fixture("cdsa-mini.xml"),
                        '<Item lims:inforce-start-date="2018-04-04" lims:fid="160"',
                        "<Item><Label>17</Label><Text>Methylphenidate (methyl 2-phenyl-2-"
                        "(piperidin-2-yl)acetate)</Text></Item>"
                        '<Item lims:inforce-start-date="2018-04-04" lims:fid="160"')
    record = records(parse(text, watch=ALL))["methylphenidate"]
    assert record.schedule == "I, III"
    assert record.provision == "Sch. I, item 17; Sch. III, item 2"
    assert record.control_level == "C2"  # the strictest of the two


def test_fixture_watch_one_isomer_alone():
    watch = build_watch_list(["Spravato"])
    result = parse(fixture("cdsa-mini.xml"), watch=watch)
    assert watch.keys == ("esketamine",)
    assert [r.substance for r in result.records] == ["esketamine"]
    assert result.records[0].provision == "Sch. I, item 14(1)"


def test_fixture_watch_a_name_schedwatch_does_not_know():
    result = parse(fixture("cdsa-mini.xml"), watch=build_watch_list(["alfentanil", "fentanyl"]))
    by_key = records(result)
    assert (by_key["alfentanil"].status, by_key["alfentanil"].provision) == \
        ("controlled", "Sch. I, item 15(2)")
    assert by_key["fentanyl"].status == "not_controlled"  # "Fentanyls" is a class, not a name


def test_fixture_empty_watch_list_is_an_error():
    from jurisdictions.substances import WatchList

    with pytest.raises(ExtractionError):
        ca.parse_cdsa(make_document(fixture("cdsa-mini.xml").encode()), WatchList(substances=()))


# --- fixtures: the regulations --------------------------------------------------------------

def test_fixture_csr_in_force():
    result = parse(fixture("csr-mini.xml"), "ca-csr")
    ketamine = records(result)["ketamine"]
    assert (ketamine.status, ketamine.schedule, ketamine.control_level) == ("controlled", "1",
                                                                           "C2")
    assert ketamine.provision == "Sch. 1, item 14(1)"
    assert ketamine.instrument == "SOR/2025-242"
    assert ketamine.listed_as == KETAMINE_EN
    assert ketamine.parent_entry.startswith("Phencyclidine (")
    assert ketamine.effective_from is None
    # s. 239; the rows carry no dates
    assert (ketamine.in_force_since, ketamine.in_force_since_kind,
            ketamine.in_force_since_basis) == ("2026-10-01", "instrument", "SOR/2025-242, s. 239")
    assert ("registered", "2025-11-28") in ketamine.dates
    assert ("in force since", "2026-10-01") in ketamine.dates
    assert result.pending == ()
    assert result.instrument == "SOR/2025-242"
    assert result.title == "Controlled Substances Regulations"


def test_fixture_csr_not_in_force():
    text = fixture("csr-mini.xml").replace("<Schedule lims:", '<Schedule in-force="no" lims:')
    result = parse(text, "ca-csr")
    assert {r.status for r in result.records} == {"not_in_force"}
    pending = {p.substance: p for p in result.pending}
    assert set(pending) == {"ketamine", "esketamine", "arketamine"}
    assert (pending["ketamine"].date_label, pending["ketamine"].date) == ("in force",
                                                                          "2026-10-01")
    assert pending["ketamine"].key == "not-in-force:SOR/2025-242"


def test_fixture_csr_not_in_force_without_a_stated_date():
    text = fixture("csr-mini.xml").replace("<Schedule lims:", '<Schedule in-force="no" lims:')
    text = replace_once(text, "These Regulations come into force on October 1, 2026.",
                        "These Regulations come into force on the day on which section 2 of "
                        "the Act comes into force.")
    result = parse(text, "ca-csr")
    ketamine = records(result)["ketamine"]
    assert ketamine.status == "not_in_force" and ketamine.effective_from is None
    assert ketamine.in_force_since is None and ketamine.in_force_since_kind is None
    pending = next(p for p in result.pending if p.substance == "ketamine")
    assert (pending.date_label, pending.date) == (None, None)


def test_fixture_csr_ketamine_deleted():
    """Issue 13: the CSR's Schedule 1 item 14 covers ketamine as the NCR's item 14 did."""
    text = replace_once(fixture("csr-mini.xml"),
                        f"<Item><Label>(1)</Label><Text>{KETAMINE_EN}</Text></Item>", "")
    ketamine = records(parse(text, "ca-csr"))["ketamine"]
    assert (ketamine.status, ketamine.provision) == ("controlled", "Sch. 1, item 14")
    assert ketamine.basis.startswith("analogue of phencyclidine, Sch. 1, item 14; ")
    assert ketamine.in_force_since == "2026-10-01" and ketamine.review
    # Not yet in force (as in the real 2026-04-17 copy): not_in_force under item 14.
    pending_copy = text.replace("<Schedule lims:", '<Schedule in-force="no" lims:')
    assert records(parse(pending_copy, "ca-csr"))["ketamine"].status == "not_in_force"
    # Item 14 gone too: nothing covers it.
    row = text[text.index("<row><entry colsep=\"0\" rowsep=\"0\">14</entry>"):]
    text = text.replace(row[: row.index("</row>") + len("</row>")], "")
    ketamine = records(parse(text, "ca-csr"))["ketamine"]
    assert ketamine.status == "not_controlled"
    assert ketamine.basis == "not listed in the schedules of SOR/2025-242"


def test_fixture_csr_all_entries_names_parts():
    by_key = records(parse(fixture("csr-mini.xml"), "ca-csr", ALL))
    assert by_key["methylphenidate"].provision == "Sch. 2, Part 1, item 2"
    assert by_key["methylphenidate"].control_level == "C3"
    assert by_key["amphetamine"].provision == "Sch. 2, Part 1, item 1(1)"


def test_fixture_csr_schedule_1_table_missing():
    text = fixture("csr-mini.xml")
    start = text.index('<TableGroup lims:enacted-date="2025-11-28" lims:fid="102"')
    end = text.index("</TableGroup>", start) + len("</TableGroup>")
    assert_extraction_error(text[:start] + text[end:], "ca-csr",
                            match="expected items in Schedule 1")


def test_fixture_ncr():
    result = parse(fixture("ncr-mini.xml"), "ca-csr")
    ketamine = records(result)["ketamine"]
    assert (ketamine.schedule, ketamine.provision) == (ca.NCR_SCHEDULE, "Sch., item 14(1)")
    assert ketamine.instrument == "C.R.C., c. 1041"
    assert ketamine.listed_as == KETAMINE_EN
    pending = {p.substance: p for p in result.pending}
    assert set(pending) == {"ketamine", "esketamine", "arketamine"}
    assert pending["ketamine"].reference == "SOR/2025-242"
    # The footnote of the repeal is not part of its text.
    assert "SOR/2019-169" not in dict(pending["ketamine"].details)["text"]


def test_fixture_ncr_with_a_numbered_schedule_is_not_the_ncr():
    text = replace_once(fixture("ncr-mini.xml"), "<Label>SCHEDULE</Label>",
                        "<Label>SCHEDULE I</Label>")
    assert_extraction_error(text, "ca-csr", match="one unnumbered SCHEDULE .*; found 'SCHEDULE I'")


def test_fixture_csr_amendment_to_a_schedule_not_yet_in_force_is_pending():
    text = fixture("csr-mini.xml").replace("<Schedule lims:", '<Schedule in-force="no" lims:')
    text = replace_once(text, "</Regulation>", (
        '<Schedule id="NifProvs"><ScheduleFormHeading type="amending"><TitleText>AMENDMENTS NOT '
        "IN FORCE</TitleText></ScheduleFormHeading><RegulationPiece><RelatedOrNotInForce>"
        '<Heading level="5" style="nifrp"><TitleText>— SOR/2099-72, s. 1</TitleText></Heading>'
        '<Section type="amending"><Label>1</Label><Text>Item 14 of Schedule 1 to the Controlled '
        "Substances Regulations is replaced by the following:</Text></Section>"
        "</RelatedOrNotInForce></RegulationPiece></Schedule></Regulation>"))
    keys = {p.key for p in parse(text, "ca-csr").pending if p.substance == "ketamine"}
    assert keys == {"not-in-force:SOR/2025-242", "NifProvs:SOR/2099-72, s. 1"}


def test_fixture_retrieved_at_is_stored_in_utc():
    from datetime import timedelta, timezone

    content = fixture("cdsa-mini.xml").encode("utf-8")
    toronto = timezone(timedelta(hours=-4))
    document = Document(source_id="ca-cdsa", url="u", content=content,
                        sha256=hashlib.sha256(content).hexdigest(),
                        retrieved_at=datetime(2026, 6, 20, 8, 0, tzinfo=toronto))
    result = ca.parse_cdsa(document, DEFAULT)
    assert {r.retrieved_at for r in result.records} == {"2026-06-20T12:00:00+00:00"}


# --- issue 13 on the real documents ---------------------------------------------------------

def without_subitem(content: bytes, text_start: str) -> bytes:
    """The document less the first sub-item whose text starts with ``text_start``."""
    source = content.decode("utf-8-sig")
    pattern = re.compile(r"<Item\b[^>]*>\s*<Label>\(\d+\)</Label>\s*<Text>"
                         + re.escape(text_start) + r"[^<]*</Text>\s*</Item>")
    result, count = pattern.subn("", source, count=1)
    assert count == 1, f"no sub-item starting {text_start!r}"
    return result.encode("utf-8")


def test_real_cdsa_without_the_ketamine_subitem_stays_controlled_under_item_14(shared,
                                                                                tmp_path):
    copy = tmp_path / CDSA_2026
    copy.write_bytes(without_subitem(real(shared, CDSA_2026), "Ketamine"))
    result = parse(copy.read_bytes())
    by_key = records(result)
    ketamine = by_key["ketamine"]
    assert (ketamine.status, ketamine.schedule, ketamine.provision) == ("controlled", "I",
                                                                       "Sch. I, item 14")
    assert ketamine.listed_as.startswith("Phencyclidine (1-(1-phenylcyclohexyl)piperidine), "
                                         "its salts, derivatives and analogues")
    assert ketamine.basis.startswith("analogue of phencyclidine, Sch. I, item 14; ")
    assert "captured as item 14 in Schedule I of the CDSA" in ketamine.basis
    assert ketamine.review and "generic entry Sch. I, item 14" in ketamine.review
    assert ketamine.evidence_date == "2026-06-05"
    for key in ("esketamine", "arketamine"):
        assert (by_key[key].status, by_key[key].provision) == ("controlled", "Sch. I, item 14")
    # Against the healthy document this is an amendment of the wording, never "descheduled".
    healthy = records(parse(real(shared, CDSA_2026)))["ketamine"]
    assert healthy.material()[:3] == ketamine.material()[:3]


def test_real_ncr_without_the_ketamine_subitem_stays_controlled_under_item_14(shared):
    text = without_subitem(real(shared, NCR_2025), "Ketamine")
    ketamine = records(parse(text, "ca-csr"))["ketamine"]
    assert (ketamine.status, ketamine.provision) == ("controlled", "Sch., item 14")
    assert ketamine.basis.startswith("analogue of phencyclidine, Sch., item 14; ")
    assert ketamine.in_force_until == "2026-10-01"  # the repeal still applies to it
    assert ketamine.review


def test_real_csr_without_the_ketamine_subitem_is_not_in_force_under_item_14(shared):
    text = without_subitem(real(shared, CSR_2026), "Ketamine")
    ketamine = records(parse(text, "ca-csr"))["ketamine"]
    assert (ketamine.status, ketamine.provision) == ("not_in_force", "Sch. 1, item 14")
    assert (ketamine.in_force_since, ketamine.in_force_since_basis) == ("2026-10-01",
                                                                        "SOR/2025-242, s. 239")


HISTORY = SHARED / "history"


def history_files(kind: str) -> list[Path]:
    folder = HISTORY / kind
    return sorted(folder.glob(f"{kind}-pit*.xml")) if folder.is_dir() else []


@pytest.mark.parametrize("path", history_files("cdsa") or [None],
                         ids=lambda path: path.name if path else "absent")
def test_real_cdsa_history_every_version(path):
    """All 28 CDSA versions of the official mirror: ketamine is Schedule I item 14(1) in each,
    and each record speaks for its own point in time (the date in the file name)."""
    if path is None:
        pytest.skip("../shared/regulator-documents/ca/history is absent")
    pit = re.match(r"cdsa-pit(\d{4}-\d{2}-\d{2})-", path.name).group(1)
    result = parse(path.read_bytes())
    ketamine = records(result)["ketamine"]
    assert (ketamine.status, ketamine.schedule, ketamine.provision, ketamine.basis) == \
        ("controlled", "I", "Sch. I, item 14(1)", "named")
    assert ketamine.listed_as == KETAMINE_EN
    assert ketamine.evidence_date == pit
    assert result.document_dates[0] == ("point in time", pit)
    assert ketamine.effective_from is None and ketamine.in_force_since is None
    assert ketamine.review is None
    assert not [p for p in result.pending if p.substance == "ketamine"]


def test_real_cdsa_history_is_complete(shared):
    assert len(history_files("cdsa")) == 28


def test_real_csr_history_both_versions_not_yet_in_force(shared):
    paths = history_files("csr")
    assert len(paths) == 2
    for path in paths:
        ketamine = records(parse(path.read_bytes(), "ca-csr"))["ketamine"]
        assert ketamine.status == "not_in_force"
        assert ketamine.evidence_date == path.name[len("csr-pit"):len("csr-pit") + 10]
        assert (ketamine.in_force_since, ketamine.in_force_since_kind) == ("2026-10-01",
                                                                           "instrument")


# --- issue 16, item 6: bounded memory -------------------------------------------------------

def padded_body(content: bytes, megabytes: float) -> bytes:
    """The document with its <Body> padded by long sections (text-heavy, few elements, as the
    real Act's sections are), to about ``megabytes`` MB. No byte order mark."""
    source = content.removeprefix(b"\xef\xbb\xbf")
    start = source.index(b">", source.index(b"<Body")) + 1
    section = (b"<Section><Label>1</Label><Text>" + b"Text of a section of the Act. " * 700
               + b"</Text></Section>")
    return source[:start] + section * int(megabytes * 1e6 / len(section)) + source[start:]


def test_oversized_document_is_refused_before_parsing(shared):
    """63 MB (126 KiB gzipped on the wire) once took the parser to 2 GB."""
    import tracemalloc

    content = padded_body(real(shared, CDSA_2026), 63)
    tracemalloc.start()
    try:
        error = assert_extraction_error(content, match=r"63\.\d MB, above the 8 MiB accepted")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "refused" in str(error)
    assert peak < 1_000_000  # nothing copied, nothing parsed


def test_document_of_tiny_elements_is_refused():
    """Within the byte cap, but 60,000 elements in Schedule I: each costs hundreds of bytes
    in the tree against tens in the file, the costly shape of an attack."""
    import tracemalloc

    item = "<Item><Label>99</Label><Text>x</Text></Item>"
    text = replace_once(fixture("cdsa-mini.xml"), '<List lims:inforce-start-date="2018-04-04" '
                        'lims:fid="102"', "<List>" + item * 20_000 + "</List><List "
                        'lims:inforce-start-date="2018-04-04" lims:fid="102"')
    content = text.encode("utf-8")
    assert len(content) < ca.MAX_DOCUMENT_BYTES
    tracemalloc.start()
    try:
        assert_extraction_error(content, match="more than 50,000 elements")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(content)


_MEASURE = """
import resource, sys, tracemalloc
from datetime import UTC, datetime
from jurisdictions import ca
from jurisdictions.substances import build_watch_list
from scrapers.records import Document
content = open(sys.argv[1], "rb").read()
watch = build_watch_list(["ketamine"])
when = datetime(2026, 6, 20, tzinfo=UTC)
# A warm-up parse of the real document: imports and caches are not the document's cost.
ca.parse_cdsa(Document.of(open(sys.argv[2], "rb").read(), source_id="ca-cdsa", url="u",
                          retrieved_at=when), watch)
document = Document.of(content, source_id="ca-cdsa", url="u", retrieved_at=when)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
record = ca.parse_cdsa(document, watch).records[0]
peak = tracemalloc.get_traced_memory()[1]
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024, peak, record.provision, record.evidence_date)
"""


def test_large_document_under_the_cap_is_streamed(shared, tmp_path):
    """A 7.5 MB consolidation (a body eighteen times the real one) parses to the same record
    while the process grows by a fraction of the document: the body is freed as it is read.
    Measured in a fresh process (ru_maxrss sees libxml2's memory, which tracemalloc does not);
    the whole-tree parse grew by more than the document (~10 MB here)."""
    import subprocess
    import sys

    real_path = shared / CDSA_2026
    content = padded_body(real(shared, CDSA_2026), 7.5)
    assert 7e6 < len(content) < ca.MAX_DOCUMENT_BYTES
    path = tmp_path / "large.xml"
    path.write_bytes(content)
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(real_path)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[3], check=False)
    assert done.returncode == 0, done.stderr
    grown, peak, *rest = done.stdout.split()
    assert " ".join(rest) == "Sch. I, item 14(1) 2026-06-05"
    assert int(grown) < len(content) // 3, f"grew by {int(grown):,} bytes"
    assert int(peak) < len(content) // 3, f"Python peak {int(peak):,} bytes"
