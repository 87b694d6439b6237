"""Parser tests for the US sources (21 CFR Part 1308 in the eCFR; DEA rulemaking in the
Federal Register) on the constructed fixtures in tests/fixtures/us/ and, where available, the
real format samples in ../shared/regulator-documents/us/."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from jurisdictions import us
from jurisdictions.substances import build_watch_list
from scrapers.errors import ExtractionError
from scrapers.records import Document, StatusRecord, normalise_text, validate
from tests.support.documents import SHARED_DOCS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "us"
SHARED = SHARED_DOCS / "us"
WHEN = datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
ECFR_META = {
    "up_to_date_as_of": "2026-06-10",
    "latest_amended_on": "2024-01-02",
    "amended_on:1308.11": "2024-01-02",
    "amended_on:1308.13": "2019-03-15",
    "title_latest_amended_on": "2026-05-20",
    "fetched_via": "versioner",
}
DEFAULT_WATCH = build_watch_list(["ketamine", "esketamine", "arketamine"])
KETAMINE_TEXT = "Ketamine, its salts, isomers, and salts of isomers"
KETAMINE_NOTE = "[Some other names for ketamine: (±)-2-(2-chlorophenyl)-2-(methylamino)-cyclohexanone]"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def make_document(content: bytes, *, source_id: str = us.ECFR_SOURCE_ID,
                  url: str = "https://www.ecfr.gov/api/versioner/v1/full/2026-06-10/title-21.xml?part=1308",
                  meta: dict[str, str] | None = None,
                  retrieved_at: datetime = WHEN) -> Document:
    return Document(source_id=source_id, url=url, content=content,
                    sha256=hashlib.sha256(content).hexdigest(), retrieved_at=retrieved_at,
                    meta=ECFR_META if meta is None and source_id == us.ECFR_SOURCE_ID
                    else (meta or {}))


def parse_ecfr_bytes(content: bytes, watch=DEFAULT_WATCH, meta=None):
    result = us.parse_ecfr(make_document(content, meta=meta), watch)
    return validate(result, source_id=us.ECFR_SOURCE_ID, watched=watch.keys)


def by_substance(result) -> dict[str, StatusRecord]:
    return {r.substance: r for r in result.records}


def section_xml(text: str, number: str) -> tuple[int, int]:
    """Start and end offsets of one DIV8 (end after its closing tag)."""
    start = text.index(f'<DIV8 N="§ {number}"')
    end = text.index("</DIV8>", start) + len("</DIV8>")
    return start, end


def without_sections(text: str, *numbers: str) -> str:
    for number in numbers:
        start, end = section_xml(text, number)
        text = text[:start] + text[end:]
    return text


def to_html_tables(content: bytes) -> bytes:
    """The same part with every GPOTABLE written as the HTML-like TABLE/TR/TD markup that
    eCFR XML uses (the Title 1 sample; the eCFR's own source-XML patches)."""
    root = etree.fromstring(content)
    for table in root.iter("GPOTABLE"):
        table.tag = "TABLE"
        for attribute in list(table.attrib):
            del table.attrib[attribute]
        table.set("class", "gpotbl_table")
        for boxhd in table.findall("BOXHD"):
            boxhd.tag = "TR"
            for ched in boxhd:
                ched.tag = "TH"
                ched.attrib.clear()
        for row in table.findall("ROW"):
            row.tag = "TR"
            for ent in row:
                ent.tag = "TD"
                ent.attrib.clear()
                ent.set("class", "gpotbl_cell")
        wrapper = etree.Element("DIV", {"class": "gpotbl_div"})
        table.addprevious(wrapper)
        wrapper.append(table)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def entry_view(part: us.Part1308, section: str | None = None):
    return [(e.provision, e.text, e.code, e.notes, e.parent) for e in part.entries
            if section is None or e.section == section]


# --- eCFR: the ketamine entry ------------------------------------------------------------

def test_ketamine_from_the_ecfr_table_fixture():
    """The primary fixture writes the lists as eCFR XML does: DIV class="gpotbl_div"/TABLE
    class="gpotbl_table"/TR/TH/TD, empty cells self-closing."""
    content = fixture_bytes("ecfr-part1308.xml")
    assert b'<DIV class="gpotbl_div"><TABLE' in content and b"GPOTABLE" not in content
    assert b'<TD align="right" class="gpotbl_cell"/>' in content
    result = parse_ecfr_bytes(content)
    ketamine = by_substance(result)["ketamine"]
    assert ketamine.status == "controlled"
    assert ketamine.schedule == "III"
    assert ketamine.control_level == "C3"
    assert ketamine.instrument == "21 CFR 1308.13"
    assert ketamine.provision == "21 CFR 1308.13(c)(7)"
    assert ketamine.listed_as == f"{KETAMINE_TEXT} | {KETAMINE_NOTE}"
    assert ketamine.code == "7285"
    assert ketamine.basis == "named (non-narcotic depressant)"
    assert ketamine.parent_entry == "(c) Depressants"
    assert ketamine.effective_from is None
    # the document speaks for the eCFR version it is; it does not say since when the entry
    # stands (the Federal Register does: jurisdictions.us.law_dates)
    assert ketamine.evidence_date == "2026-06-10"
    assert ketamine.in_force_since is None
    assert ketamine.source_id == us.ECFR_SOURCE_ID
    assert ketamine.retrieved_at == WHEN.isoformat()
    assert ("eCFR up to date as of", "2026-06-10") in ketamine.dates
    assert ("§ 1308.13 last amended", "2019-03-15") in ketamine.dates
    assert result.instrument == "21 CFR Part 1308"
    assert "SCHEDULES OF CONTROLLED SUBSTANCES" in (result.title or "")
    assert ("§§ 1308.11–1308.15 last amended", "2024-01-02") in result.document_dates
    assert ("Title 21 last amended", "2026-05-20") in result.document_dates
    assert result.pending == ()


@pytest.mark.parametrize("isomer", ["esketamine", "arketamine"])
def test_isomers_covered_by_the_ketamine_entry(isomer):
    records = by_substance(parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml")))
    record = records[isomer]
    assert record.status == "controlled"
    assert record.schedule == "III"
    assert record.control_level == "C3"
    assert record.provision == "21 CFR 1308.13(c)(7)"
    assert record.code == "7285"
    assert record.basis == f'isomer of ketamine, covered by "{KETAMINE_TEXT}"'
    assert record.listed_as == records["ketamine"].listed_as


def test_isomer_not_covered_when_the_entry_drops_isomers():
    text = fixture_bytes("ecfr-part1308.xml").decode()
    text = text.replace(f"(7) {KETAMINE_TEXT}", "(7) Ketamine and its salts")
    records = by_substance(parse_ecfr_bytes(text.encode()))
    assert records["ketamine"].status == "controlled"
    assert records["esketamine"].status == "not_controlled"
    assert records["esketamine"].basis == us.NOT_LISTED_BASIS


def test_isomer_watched_alone_still_finds_its_parent_entry():
    watch = build_watch_list(["esketamine"])
    record = by_substance(parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml"), watch))
    assert record["esketamine"].schedule == "III"
    assert "ketamine" not in record


# --- eCFR: the table forms give the same entries -------------------------------------------

def test_ptext_variant_reads_the_same_as_the_table():
    table = us.read_part_1308(fixture_bytes("ecfr-part1308.xml"))
    ptext = us.read_part_1308(fixture_bytes("ecfr-part1308-ptext.xml"))
    assert entry_view(ptext) == entry_view(table)
    unhashed = lambda result: [dataclasses.replace(r, document_sha256="")  # noqa: E731
                               for r in result.records]
    assert unhashed(parse_ecfr_bytes(fixture_bytes("ecfr-part1308-ptext.xml"))) == \
        unhashed(parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml")))


def test_gpotable_variant_reads_the_same_as_the_table():
    """GPOTABLE/ROW/ENT (the annual CFR's form) is kept as a variant: same entries."""
    table = us.read_part_1308(fixture_bytes("ecfr-part1308.xml"))
    gpotable = us.read_part_1308(fixture_bytes("ecfr-part1308-gpotable.xml"))
    html = us.read_part_1308(to_html_tables(fixture_bytes("ecfr-part1308-gpotable.xml")))
    assert entry_view(gpotable) == entry_view(table)
    assert entry_view(html) == entry_view(table)


def test_pinpoints_headings_and_lead_ins():
    part = us.read_part_1308(fixture_bytes("ecfr-part1308.xml"))
    entries = {e.provision: e for e in part.entries}
    amobarbital = entries["21 CFR 1308.13(c)(1)(i)"]
    assert amobarbital.text == "Amobarbital" and amobarbital.code == "2126"
    assert amobarbital.parent == "(c) Depressants > (1) Any compound, mixture or preparation containing:"
    # roman numerals after a number, letters after a letter
    assert entries["21 CFR 1308.12(b)(1)(v)"].text == "Granulated opium"
    assert entries["21 CFR 1308.12(b)(1)(ix)"].text == "Oxycodone"
    assert entries["21 CFR 1308.12(b)(2)"].code == "9040"
    # a lettered paragraph that is itself an entry, code written inline
    nalorphine = entries["21 CFR 1308.13(d)"]
    assert (nalorphine.text, nalorphine.code, nalorphine.parent) == ("Nalorphine", "9400", None)
    # narcotic vs non-narcotic from the paragraph heading
    assert us.drug_class(entries["21 CFR 1308.13(e)(2)(i)"].heading) == "narcotic"
    assert us.drug_class(entries["21 CFR 1308.13(b)(2)"].heading) == "non-narcotic stimulant"
    assert us.drug_class(entries["21 CFR 1308.11(b)(1)"].heading) == "narcotic (opiate)"
    # the tiletamine other-names lines stay with (c)(15); "or any salt thereof…" does not
    tiletamine = entries["21 CFR 1308.13(c)(15)"]
    assert tiletamine.notes[0].startswith("Some trade or other names for a tiletamine")
    assert "Telazol" in tiletamine.names()
    assert entries["21 CFR 1308.13(c)(1)(iii)"].notes == ()
    # a date inside an entry ("August 25, 1971,") is not taken for a code
    assert entries["21 CFR 1308.13(b)(1)"].code == "1405"
    # § 1308.15(b)'s uncoded preparations are not entries
    assert not [e for e in part.entries if e.provision.startswith("21 CFR 1308.15(b)")]


@pytest.mark.parametrize("line, expected", [
    ("(7) Ketamine, its salts, isomers, and salts of isomers ........ 7285",
     ("(7) Ketamine, its salts, isomers, and salts of isomers", "7285")),
    ("(d) Nalorphine 9400.", ("(d) Nalorphine", "9400")),
    ("(ii) Secobarbital\t2316".replace("\t", " "), ("(ii) Secobarbital", "2316")),
    ("(3) Lysergic acid diethylamide …… 7315", ("(3) Lysergic acid diethylamide", "7315")),
    ("effective until August 30, 2024", ("effective until August 30, 2024", None)),
    ("as set out in part 1300", ("as set out in part 1300", None)),
    ("(1) Not more than 200 milligrams of codeine per 100 milliliters or per 100 grams.",
     ("(1) Not more than 200 milligrams of codeine per 100 milliliters or per 100 grams.", None)),
])
def test_split_trailing_code(line, expected):
    assert us.split_trailing_code(line) == expected


# --- eCFR: changes in the document ---------------------------------------------------------

def row(text: str, code: str | None) -> str:
    """One row of the TABLE fixture."""
    cell = f'<TD align="right" class="gpotbl_cell">{code}</TD>' if code else \
        '<TD align="right" class="gpotbl_cell"/>'
    return f'<TR><TD align="left" class="gpotbl_cell" scope="row">{text}</TD>{cell}</TR>\n'


def test_ketamine_moved_to_schedule_ii():
    text = fixture_bytes("ecfr-part1308.xml").decode()
    rows = row(f"(7) {KETAMINE_TEXT}", "7285") + row(KETAMINE_NOTE, None)
    assert rows in text
    text = text.replace(rows, "")
    anchor = row("(5) Secobarbital", "2315")
    text = text.replace(anchor, anchor + rows.replace("(7) Ketamine", "(6) Ketamine"))
    records = by_substance(parse_ecfr_bytes(text.encode()))
    assert records["ketamine"].schedule == "II"
    assert records["ketamine"].control_level == "C2"
    assert records["ketamine"].provision == "21 CFR 1308.12(e)(6)"
    assert records["ketamine"].instrument == "21 CFR 1308.12"
    assert records["esketamine"].schedule == "II"


def test_section_1308_13_removed_means_not_controlled():
    text = without_sections(fixture_bytes("ecfr-part1308.xml").decode(), "1308.13")
    result = parse_ecfr_bytes(text.encode())
    for key in ("ketamine", "esketamine", "arketamine"):
        record = by_substance(result)[key]
        assert record.status == "not_controlled"
        assert record.schedule is None and record.control_level is None
        assert record.basis == "not listed in 21 CFR 1308.11–1308.15"
        assert record.instrument == "21 CFR 1308.11–1308.15"
        assert ("§§ 1308.11–1308.15 last amended", "2024-01-02") in record.dates


def test_section_1308_13_reserved_means_not_controlled():
    text = fixture_bytes("ecfr-part1308.xml").decode()
    start, end = section_xml(text, "1308.13")
    text = text[:start] + ('<DIV8 N="§ 1308.13" TYPE="SECTION"><HEAD>§ 1308.13   '
                           '[Reserved]</HEAD></DIV8>') + text[end:]
    assert by_substance(parse_ecfr_bytes(text.encode()))["ketamine"].status == "not_controlled"


def test_two_schedule_sections_removed_is_an_extraction_error():
    text = without_sections(fixture_bytes("ecfr-part1308.xml").decode(), "1308.13", "1308.12")
    with pytest.raises(ExtractionError, match="only 3 of the five schedule sections"):
        us.parse_ecfr(make_document(text.encode()), DEFAULT_WATCH)


def test_schedule_section_without_codes_is_an_extraction_error():
    text = fixture_bytes("ecfr-part1308.xml").decode()
    start, end = section_xml(text, "1308.14")
    section = re.sub(r'<TD align="right" class="gpotbl_cell">\d{4}</TD>',
                     '<TD align="right" class="gpotbl_cell"/>', text[start:end])
    section = re.sub(r"\W\d{4}\.?</P>", "</P>", section)  # the paragraph entries' codes
    with pytest.raises(ExtractionError, match="1308.14.*no entry with a DEA code"):
        us.parse_ecfr(make_document((text[:start] + section + text[end:]).encode()),
                      DEFAULT_WATCH)


def test_section_headed_with_another_schedule_is_an_extraction_error():
    text = fixture_bytes("ecfr-part1308.xml").decode().replace(
        "§ 1308.13   Schedule III.", "§ 1308.13   Schedule IV.")
    with pytest.raises(ExtractionError, match="not Schedule III"):
        us.parse_ecfr(make_document(text.encode()), DEFAULT_WATCH)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"<!DOCTYPE html><html><head><title>503</title></head><body>Service Unavailable</body></html>",
     "HTML page"),
    (b"<html><body><p>The eCFR is being updated</p></body></html>", "HTML page"),
    (b'<?xml version="1.0"?><DIV5 N="1308" TYPE="PART"><HEAD>PART 1308</HEAD><DIV8>',
     "not well-formed"),
    (b'{"error": "An issue_date parameter must be provided."}', "not well-formed"),
    (b'<?xml version="1.0"?><DIV5 N="1310" TYPE="PART"><HEAD>PART 1310</HEAD></DIV5>',
     'no DIV5 TYPE="PART" N="1308"'),
    (b'<?xml version="1.0"?><DIV5 N="1308" TYPE="PART"><HEAD>PART 1308</HEAD></DIV5>',
     "only 0 of the five"),
])
def test_broken_documents_are_extraction_errors(content, message):
    with pytest.raises(ExtractionError, match=message):
        us.parse_ecfr(make_document(content), DEFAULT_WATCH)


def test_entity_declarations_are_not_expanded():
    content = (b'<?xml version="1.0"?><!DOCTYPE DIV5 [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<DIV5 N="1308"><HEAD>a&x;b</HEAD></DIV5>')
    part, _ = us.stream_part(content)
    assert etree.tostring(part.find("HEAD"), method="text", encoding="unicode") == "ab"
    with pytest.raises(ExtractionError, match="only 0 of the five"):
        us.parse_ecfr(make_document(content), DEFAULT_WATCH)


# --- eCFR: watch lists ---------------------------------------------------------------------

def test_watch_all_entries():
    watch = build_watch_list("all")
    result = parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml"), watch)
    records = by_substance(result)
    keys = [r.substance for r in result.records]
    assert len(keys) == len(set(keys))
    assert records["ketamine"].provision == "21 CFR 1308.13(c)(7)"
    assert records["esketamine"].basis.startswith("isomer of ketamine")
    # one record per name; a name printed in two schedules joins them
    amobarbital = records["amobarbital"]
    assert amobarbital.schedule == "II, III"
    assert amobarbital.control_level == "C2"
    assert amobarbital.provision == ("21 CFR 1308.12(e)(1); 21 CFR 1308.13(c)(1)(i); "
                                     "21 CFR 1308.13(c)(2)(i)")
    assert amobarbital.code == "2125, 2126"
    assert amobarbital.instrument == "21 CFR 1308.12; 21 CFR 1308.13"
    assert records["diamorphine"].schedule == "I"
    assert records["diamorphine"].basis == "named (narcotic (opium derivative))"
    assert records["phenmetrazine"].listed_as == "Phenmetrazine and its salts"
    assert records["nalorphine"].basis == "named"
    assert records["4-bromo-2,5-dimethoxy-amphetamine"].code == "7391"
    assert records["pregabalin"].schedule == "V"
    assert records["tiletamine and zolazepam"].code == "7295"
    assert all(r.status == "controlled" for r in result.records)
    assert len(result.records) > 60


def test_watch_names_matched_through_synonyms_and_parentheses():
    watch = build_watch_list(["ketamine", "tramadol", "GHB", "fentanyl", "Telazol", "caffeine"])
    records = by_substance(parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml"), watch))
    assert records["tramadol"].schedule == "IV"
    assert records["tramadol"].provision == "21 CFR 1308.14(b)(3)"
    assert records["tramadol"].basis == "named (narcotic)"
    assert records["ghb"].schedule == "I"
    assert records["fentanyl"].provision == "21 CFR 1308.12(c)(2)"
    assert records["telazol"].provision == "21 CFR 1308.13(c)(15)"
    assert records["caffeine"].status == "not_controlled"


# --- eCFR: the bulk layout -----------------------------------------------------------------

def test_bulk_title_parses_directly_and_reduces_to_the_part():
    bulk = fixture_bytes("ecfr-bulk-title21-excerpt.xml")
    reduced, facts = us.extract_part_1308(bulk)
    assert facts == {"amddate": "May 20, 2026", "amddate_volume": "9"}
    c14n = lambda b: etree.tostring(etree.fromstring(b), method="c14n")  # noqa: E731
    assert c14n(reduced) == c14n(fixture_bytes("ecfr-part1308.xml"))
    result = parse_ecfr_bytes(bulk)
    assert by_substance(result)["ketamine"].provision == "21 CFR 1308.13(c)(7)"
    assert ("Title 21 volume 9 amended as of (AMDDATE, weak)", "2026-05-20") in \
        result.document_dates


def test_bulk_streaming_releases_the_parts_before_1308():
    """Bounded memory on the ~21 MB bulk title: every part before 1308 is freed as the
    stream passes it, so the tree never holds more than the current part."""
    filler = "".join(
        f'<DIV5 N="{n}" TYPE="PART"><HEAD>PART {n}</HEAD>'
        + "".join(f'<DIV8 N="§ {n}.{i}" TYPE="SECTION"><HEAD>§ {n}.{i}</HEAD>'
                  f"<P>{'text ' * 200}</P></DIV8>" for i in range(20))
        + "</DIV5>" for n in range(1000, 1300))
    part = fixture_bytes("ecfr-part1308.xml").decode()
    part = part[part.index("<DIV5 "):]
    bulk = (f'<?xml version="1.0" encoding="UTF-8"?><DLPSTEXTCLASS><TEXT><BODY><ECFRBRWS>'
            f"<AMDDATE>May 20, 2026</AMDDATE><DIV1 N=\"9\" TYPE=\"TITLE\">{filler}{part}"
            f"{filler}</DIV1></ECFRBRWS></BODY></TEXT></DLPSTEXTCLASS>").encode()
    assert len(bulk) > 12_000_000
    found, facts = us.stream_part(bulk)
    assert found.get("N") == "1308" and facts["amddate"] == "May 20, 2026"
    # the 300 parts (6,000 sections) before 1308 were freed: at most the last one's emptied
    # shell is left (what follows 1308 is only the parser's read-ahead of one chunk)
    before = list(found.itersiblings(preceding=True))
    assert len(before) <= 1 and all(len(shell) == 0 for shell in before)
    assert by_substance(parse_ecfr_bytes(bulk))["ketamine"].code == "7285"


def test_amddate_iso():
    assert us.amddate_iso("Dec. 29, 2022(fm)") == "2022-12-29"
    assert us.amddate_iso("May 20, 2026") == "2026-05-20"
    assert us.amddate_iso("sometime") is None


# --- eCFR: real format samples and the transcribed text ------------------------------------

def shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared regulator-documents folder is absent)")
    return path


def test_real_title1_bulk_sample_has_no_part_1308():
    content = shared("ecfr-bulk-title1-format-sample-2024-02.xml").read_bytes()
    with pytest.raises(ExtractionError, match=r'no DIV5 TYPE="PART" N="1308".*parts found: 1, 2, 3'):
        us.parse_ecfr(make_document(content), DEFAULT_WATCH)


def test_real_title1_bulk_sample_sections_and_tables_are_read():
    """The walker's building blocks on real GPO XML: the part finder (streaming), AMDDATE,
    and the HTML-like TABLE/TR/TD rows the bulk XML uses (§ 17.2 of Title 1)."""
    content = shared("ecfr-bulk-title1-format-sample-2024-02.xml").read_bytes()
    part, facts = us.stream_part(content, part="17")
    assert facts["amddate"].startswith("Dec. 29, 2022")
    lines = [line.text for div8 in part.iter("DIV8") for line in us.section_lines(div8)]
    assert any(text.startswith("Monday Wednesday Thursday") for text in lines)
    assert any(text.startswith("(c) The regular schedule") for text in lines)
    # its sections have no DEA code numbers, so no entries
    assert [us.walk_section(d, "17.x", "I") for d in part.iter("DIV8")] == \
        [[] for _ in part.iter("DIV8")]


def transcribed_section() -> list[str]:
    text = shared("ecfr-1308.13-text-transcribed.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_transcribed_ketamine_line_matches_the_fixture():
    lines = transcribed_section()
    index = next(i for i, line in enumerate(lines) if line.startswith("(7) Ketamine"))
    text, code = lines[index].split("\t")
    assert text == f"(7) {KETAMINE_TEXT}" and code == "7285"
    assert lines[index + 1] == KETAMINE_NOTE
    fixture = fixture_bytes("ecfr-part1308.xml").decode()
    assert row(text, code) + row(lines[index + 1], None) in fixture
    gpotable = fixture_bytes("ecfr-part1308-gpotable.xml").decode()
    assert f'<ENT I="01">{text}</ENT><ENT>{code}</ENT>' in gpotable
    assert f"<ENT I=\"03\">{lines[index + 1]}</ENT><ENT/>" in gpotable


def test_transcribed_paragraph_c_walks_like_the_fixture():
    """The transcribed (c) as flat P elements (tab → space, *…* → <I>) gives the same entries
    as the fixture's § 1308.13(c)."""
    lines = transcribed_section()
    start = next(i for i, line in enumerate(lines) if line.startswith("(c) "))
    end = next(i for i, line in enumerate(lines) if line.startswith("(d) "))
    div8 = etree.Element("DIV8", N="§ 1308.13", TYPE="SECTION")
    for line in lines[start:end]:
        p = etree.fromstring("<P>" + re.sub(r"\*(.+?)\*", r"<I>\1</I>", line.replace(
            "&", "&amp;").replace("<", "&lt;")).replace("\t", " ") + "</P>")
        div8.append(p)
    walked = [(e.provision, e.text, e.code, e.notes) for e in
              us.walk_section(div8, "1308.13", "III")]
    fixture = [(e.provision, e.text, e.code, e.notes) for e in
               us.read_part_1308(fixture_bytes("ecfr-part1308.xml")).entries
               if e.provision.startswith("21 CFR 1308.13(c)")]
    assert walked == fixture
    assert ("21 CFR 1308.13(c)(7)", KETAMINE_TEXT, "7285", (KETAMINE_NOTE,)) in walked


# --- Federal Register ----------------------------------------------------------------------

def fr_results(*names: str) -> list[dict]:
    found: list[dict] = []
    for name in names:
        found.extend(json.loads(fixture_bytes(name))["results"])
    return found


BASE_FR = ("fr-documents-page1.json", "fr-documents-page2.json")


def fr_document(results: list[dict], *, retrieved_at: datetime = WHEN,
                term: list[dict] | None = None) -> Document:
    content = us.canonical_federal_register(
        {"cfr-21-part-1308": results, "term-ketamine": term or []}, retrieved_at.date())
    return make_document(content, source_id=us.FR_SOURCE_ID,
                         url="https://www.federalregister.gov/api/v1/documents.json",
                         retrieved_at=retrieved_at)


def parse_fr(document: Document, watch=DEFAULT_WATCH):
    result = us.parse_federal_register(document, watch)
    return validate(result, source_id=us.FR_SOURCE_ID, watched=watch.keys)


def test_fr_history_gives_the_1999_final_rule_and_nothing_pending():
    result = parse_fr(fr_document(fr_results(*BASE_FR),
                                  term=fr_results("fr-documents-ketamine.json")))
    ketamine = by_substance(result)["ketamine"]
    assert ketamine.status == "controlled"
    assert ketamine.schedule == "III" and ketamine.control_level == "C3"
    assert ketamine.instrument == "64 FR 37673"
    assert ketamine.provision == "FR Doc 99-17803"
    # the real title of FR Doc 99-17803 (GPO header: "Placement of Ketamine into Schedule III")
    assert ketamine.listed_as == "Schedules of Controlled Substances: Placement of Ketamine into Schedule III"
    assert ketamine.basis == "final rule"
    assert ketamine.effective_from == "1999-08-12"
    assert ketamine.in_force_since == "1999-08-12"
    assert ketamine.in_force_since_basis == "64 FR 37673, effective 1999-08-12"
    assert ketamine.in_force_since_kind == "instrument"
    assert ketamine.evidence_date == "2026-06-11"  # the day the answer speaks for (Washington)
    assert ketamine.dates == (("published", "1999-07-13"), ("effective", "1999-08-12"))
    assert ketamine.source_url.endswith("/99-17803/schedules-of-controlled-substances-placement-of-ketamine-into-schedule-iii")
    for isomer in ("esketamine", "arketamine"):
        record = by_substance(result)[isomer]
        assert record.schedule == "III"
        assert record.basis == ('isomer of ketamine, covered by the final rule 64 FR 37673 '
                                '("including its salts, isomers, and salts of isomers")')
    # 1999 proposal superseded by the final rule; the 1981 one withdrawn (and before the API)
    assert result.pending == ()
    assert result.document_dates == (("latest Federal Register document published", "2024-01-02"),)


def read_fr_unchecked(document: Document, watch=DEFAULT_WATCH):
    """The parser without the completeness check (no document required): how proposals and
    withdrawals are read, on answers that ``parse_federal_register`` refuses."""
    result = us.read_federal_register(document, watch, required={})
    return validate(result, source_id=us.FR_SOURCE_ID, watched=watch.keys)


def test_fr_answer_without_the_1999_final_rule_is_refused():
    """An early-warning source never makes ketamine "not controlled" by itself: an answer
    without 64 FR 37673 is incomplete (issue 13)."""
    results = [r for r in fr_results(*BASE_FR) if r["document_number"] != "99-17803"]
    for watch in (DEFAULT_WATCH, build_watch_list(["esketamine"])):
        with pytest.raises(ExtractionError, match=r"lacks FR Doc 99-17803 \(64 FR 37673\), "
                           r"the 1999 final rule placing ketamine in Schedule III"):
            us.parse_federal_register(fr_document(results), watch)
    # a watch list that does not rest on that rule does not need it
    fentanyl = build_watch_list(["fentanyl"])
    assert parse_fr(fr_document(results), fentanyl).records[0].status == "not_controlled"


def test_fr_without_the_final_rule_the_1999_proposal_is_pending():
    results = [r for r in fr_results(*BASE_FR) if r["document_number"] != "99-17803"]
    result = read_fr_unchecked(fr_document(results))
    ketamine = by_substance(result)["ketamine"]
    assert ketamine.status == "not_controlled"
    assert ketamine.basis == "no DEA final rule in the Federal Register results"
    pending = [p for p in result.pending if p.substance == "ketamine"]
    assert len(pending) == 1
    item = pending[0]
    assert item.key == "FR:99-8815"
    assert item.action == "proposed_rule"
    assert item.proposed_schedule == "III"
    assert (item.date_label, item.date) == ("comment deadline", "1999-06-08")
    assert item.reference == "64 FR 17299"
    details = dict(item.details)
    assert details["document number"] == "99-8815"
    assert details["published"] == "1999-04-09"
    assert details["pdf"] == "https://www.govinfo.gov/content/pkg/FR-1999-04-09/pdf/99-8815.pdf"
    # the same-day withdrawal of the 1981 proposal (64 FR 17298) does not withdraw it
    assert "99-8812" not in {p.key[3:] for p in result.pending}


def test_fr_same_day_withdrawal_never_withdraws_the_new_proposal():
    results = [r for r in fr_results(*BASE_FR) if r["document_number"] != "99-17803"]
    for r in results:
        if r["document_number"] == "99-8812":
            r["abstract"] += " The new proposal appears at 64 FR 17299."
    assert {p.key for p in read_fr_unchecked(fr_document(results)).pending} == {"FR:99-8815"}


def test_fr_later_withdrawal_closes_the_proposal():
    results = [r for r in fr_results(*BASE_FR) if r["document_number"] != "99-17803"]
    withdrawal = copy.deepcopy(next(r for r in results if r["document_number"] == "99-8812"))
    withdrawal.update(document_number="00-0001", citation="65 FR 1", publication_date="2000-01-03",
                      abstract="DEA withdraws the proposed rule published at 64 FR 17299.")
    assert read_fr_unchecked(fr_document(results + [withdrawal])).pending == ()


def test_fr_proposed_move_to_schedule_ii_is_pending():
    results = fr_results(*BASE_FR, "fr-documents-proposed-schedule-ii.json")
    result = parse_fr(fr_document(results, retrieved_at=datetime(2031, 2, 20, tzinfo=UTC)))
    assert by_substance(result)["ketamine"].schedule == "III"  # the law has not changed
    items = {p.substance: p for p in result.pending}
    assert set(items) == {"ketamine", "esketamine", "arketamine"}
    item = items["ketamine"]
    assert item.key == "FR:2031-01234"
    assert item.action == "proposed_rule"
    assert item.proposed_schedule == "II"
    assert (item.date_label, item.date) == ("comment deadline", "2031-03-17")
    assert item.reference == "96 FR 12345"
    assert item.url.endswith("/2031-01234/schedules-of-controlled-substances-proposed-transfer-of-ketamine-from-schedule-iii-to-schedule-ii")
    assert dict(item.details)["full text xml"].endswith("/2031-01234.xml")
    assert items["esketamine"].description.startswith("Covers esketamine as an isomer of ketamine")


def test_fr_final_rule_with_a_future_effective_date_is_pending_then_in_effect():
    results = fr_results(*BASE_FR, "fr-documents-proposed-schedule-ii.json",
                         "fr-documents-final-future.json")
    before = parse_fr(fr_document(results, retrieved_at=datetime(2031, 9, 15, 14, tzinfo=UTC)))
    assert by_substance(before)["ketamine"].schedule == "III"
    item = next(p for p in before.pending if p.substance == "ketamine")
    assert [p.key for p in before.pending if p.substance == "ketamine"] == ["FR:2031-19876"]
    assert item.action == "final_rule"
    assert item.proposed_schedule == "II"
    assert (item.date_label, item.date) == ("effective", "2031-10-01")

    after = parse_fr(fr_document(results, retrieved_at=datetime(2031, 10, 2, 14, tzinfo=UTC)))
    ketamine = by_substance(after)["ketamine"]
    assert (ketamine.schedule, ketamine.instrument, ketamine.provision) == \
        ("II", "96 FR 54321", "FR Doc 2031-19876")
    assert ketamine.effective_from == "2031-10-01"
    assert (ketamine.in_force_since, ketamine.in_force_since_basis) == \
        ("2031-10-01", "96 FR 54321, effective 2031-10-01")
    assert after.pending == ()


def test_fr_effective_day_is_judged_in_washington():
    results = fr_results(*BASE_FR, "fr-documents-final-future.json")
    # 2031-10-01T02:00Z is still 30 September in Washington: not yet effective
    early = parse_fr(fr_document(results, retrieved_at=datetime(2031, 10, 1, 2, tzinfo=UTC)))
    assert [p.action for p in early.pending if p.substance == "ketamine"] == ["final_rule"]


def test_unconfirmed_final_rules():
    ecfr = parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml")).records
    results = fr_results(*BASE_FR, "fr-documents-final-future.json")
    # nothing to confirm: the eCFR shows the 1999 rule
    assert us.unconfirmed_final_rules(parse_fr(fr_document(results)), ecfr, date(2026, 6, 11)) == ()
    # in effect per the FR, eCFR still prints Schedule III
    after = parse_fr(fr_document(results, retrieved_at=datetime(2031, 10, 2, 14, tzinfo=UTC)))
    found = us.unconfirmed_final_rules(after, ecfr, date(2031, 10, 2))
    assert {u.substance for u in found} == {"ketamine", "esketamine", "arketamine"}
    ketamine = next(u for u in found if u.substance == "ketamine")
    assert (ketamine.reference, ketamine.document, ketamine.effective) == \
        ("96 FR 54321", "FR Doc 2031-19876", "2031-10-01")
    assert (ketamine.expected_schedule, ketamine.ecfr_schedule) == ("II", "III")
    # a rule pending at retrieval whose date has since passed
    before = parse_fr(fr_document(results, retrieved_at=datetime(2031, 9, 15, 14, tzinfo=UTC)))
    assert us.unconfirmed_final_rules(before, ecfr, date(2031, 9, 30)) == ()
    late = us.unconfirmed_final_rules(before, ecfr, date(2031, 10, 3))
    assert {(u.substance, u.document, u.expected_schedule) for u in late} == {
        ("ketamine", "FR Doc 2031-19876", "II"), ("esketamine", "FR Doc 2031-19876", "II"),
        ("arketamine", "FR Doc 2031-19876", "II")}


def test_fr_accepts_one_raw_api_page():
    document = make_document(fixture_bytes("fr-documents-page2.json"), source_id=us.FR_SOURCE_ID,
                             url="https://www.federalregister.gov/api/v1/documents.json")
    assert by_substance(parse_fr(document))["ketamine"].instrument == "64 FR 37673"


def test_fr_unwatched_substance_without_a_final_rule():
    watch = build_watch_list(["ketamine", "fentanyl"])
    records = by_substance(parse_fr(fr_document(fr_results(*BASE_FR)), watch))
    assert records["fentanyl"].status == "not_controlled"
    assert records["fentanyl"].basis == "no DEA final rule in the Federal Register results"


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>", "HTML page"),
    (b"not json at all", "not JSON"),
    (b"[1, 2, 3]", "expected a JSON object"),
    (b'{"count": 1, "results": "nope"}', 'no "results" list'),
    (b'{"count": 0, "description": "none"}', 'no "results" list'),
    (b'{"count": 0, "results": []}', "no Federal Register documents"),
    (b'{"results": [{"title": "x"}]}', "no valid document_number"),
    (b'{"results": [{"document_number": "99-1", "publication_date": "July 13"}]}',
     "no valid publication_date"),
])
def test_fr_broken_documents_are_extraction_errors(content, message):
    document = make_document(content, source_id=us.FR_SOURCE_ID,
                             url="https://www.federalregister.gov/api/v1/documents.json")
    with pytest.raises(ExtractionError, match=message):
        us.parse_federal_register(document, DEFAULT_WATCH)


@pytest.mark.parametrize(("watched", "printed"), [
    ("tiletamine", "T\u0131LETAM\u0130NE"),  # DOTLESS I, I WITH DOT ABOVE ~ i
    ("kassine", "\u212aA\u017f\u017fINE"),  # KELVIN SIGN ~ k, LONG S ~ s
])
def test_fr_case_insensitive_matches_beyond_lower_are_still_mentions(watched, printed):
    """The substring pre-check before the mention regex folds the characters that
    ``re.IGNORECASE`` equates with ASCII letters although ``lower`` does not."""
    final = copy.deepcopy(next(r for r in fr_results(*BASE_FR)
                               if r["document_number"] == "99-17803"))
    final.update(document_number="2024-00009", publication_date="2024-03-01",
                 effective_on="2024-04-01", citation="89 FR 11111", abstract="",
                 title=f"Schedules of Controlled Substances: Placement of {printed} Into "
                       "Schedule II")
    result = parse_fr(fr_document(fr_results(*BASE_FR) + [final]),
                      build_watch_list([watched, "ketamine"]))
    record = by_substance(result)[watched]
    assert (record.status, record.schedule, record.instrument) == \
        ("controlled", "II", "89 FR 11111")
    assert by_substance(result)["ketamine"].instrument == "64 FR 37673"


def test_ascii_case_fold_covers_every_character_ignorecase_equates_with_ascii():
    ascii_ignorecase = re.compile("[\x00-\x7f]", re.IGNORECASE)
    for code in range(0x80, 0x110000):
        char = chr(code)
        if ascii_ignorecase.fullmatch(char):
            same = [c for c in map(chr, range(0x80)) if re.fullmatch(re.escape(c), char, re.I)]
            assert us._folded(char) in {c.lower() for c in same}, hex(code)
    # Folding keeps one character for one: a match's span stays a substring.
    assert all(len(us._folded(chr(c))) == 1 for c in range(0x110000))


@pytest.mark.parametrize("substance", [*build_watch_list("all").substances,
                                       *build_watch_list(["tiletamine", "\u03b1\u03b2",
                                                          "Ketalar"]).substances])
def test_fr_mentions_are_the_mention_pattern(substance):
    docs = [us.FrDocument.from_json(r, i) for i, r in enumerate(fr_results(
        *BASE_FR, "fr-documents-ketamine.json", "fr-documents-final-future.json",
        "fr-documents-proposed-schedule-ii.json"))]
    pattern = us._mention_pattern(substance)
    mentions = us._Mentions(docs)
    assert [mentions(d, substance) for d in docs] == [us._mentions(d, pattern) for d in docs]


@pytest.mark.parametrize("text", [
    "Placement of Ketamine Into Schedule III", "  padded ", "two  spaces", "tab\there",
    "line\nbreak", "2- (methylamino)", "2-(methylamino)", "caf\u00e9", "en\u2013dash",
    "no\u00a0break", "e\u0301", "", "x- (y", "\u2003em space"])
def test_plain_is_normalise_text(text):
    from scrapers.records import normalise_text
    assert us._plain(text) == normalise_text(text)
    assert us._plain(None) == us._plain(3) == ""


def test_canonical_document_is_compact_json():
    """The C encoder writes it (an indent would force the pure-Python one): one line."""
    content = us.canonical_federal_register({"cfr-21-part-1308": fr_results(*BASE_FR)},
                                            date(2026, 6, 11))
    assert content.endswith(b"\n") and content.count(b"\n") == 1
    data = json.loads(content)
    assert content == (json.dumps(data, sort_keys=True, ensure_ascii=False,
                                  separators=(",", ":")) + "\n").encode()


def test_canonical_document_is_order_independent_and_tracks_effective_dates():
    results = fr_results(*BASE_FR, "fr-documents-final-future.json")
    term = fr_results("fr-documents-ketamine.json")
    one = us.canonical_federal_register({"cfr-21-part-1308": results, "term-ketamine": term},
                                        date(2031, 9, 15))
    two = us.canonical_federal_register(
        {"term-ketamine": list(reversed(term)), "cfr-21-part-1308": list(reversed(results))},
        date(2031, 9, 15))
    assert one == two
    data = json.loads(one)
    assert data["not_yet_effective"] == ["2031-19876"]
    assert [r["document_number"] for r in data["results"]] == [
        "97-11111", "99-8812", "99-8815", "99-17803", "2023-04248", "2024-00001", "2031-19876"]
    assert next(r for r in data["results"] if r["document_number"] == "99-17803")["matched_by"] == \
        ["cfr-21-part-1308", "term-ketamine"]
    # when the effective date passes the bytes change, so the parser runs again
    assert us.canonical_federal_register({"cfr-21-part-1308": results, "term-ketamine": term},
                                         date(2031, 10, 1)) != one


def test_sources_are_declared():
    assert us.CODE == "us" and us.NAME == "United States" and us.TIMEZONE == "America/New_York"
    assert us.SCHEDULE_LEVELS == {"I": "C1", "II": "C2", "III": "C3", "IV": "C4", "V": "C5"}
    ids = [s.id for s in us.SOURCES]
    assert ids == ["us-ecfr-1308", "us-federal-register"]
    ecfr, fr = us.SOURCES
    assert ecfr.endpoints["bulk_url"] == "https://www.govinfo.gov/bulkdata/ECFR/title-21/ECFR-title21.xml"
    assert (ecfr.media_type, fr.media_type) == ("application/xml", "application/json")
    assert ecfr.parse is us.parse_ecfr and fr.parse is us.parse_federal_register
    assert fr.early_warning and not ecfr.early_warning


def test_every_us_fixture_is_labelled_constructed():
    readme = (FIXTURES.parent / "README.md").read_text(encoding="utf-8")
    assert "**Every US fixture is CONSTRUCTED.**" in readme
    for path in sorted(FIXTURES.iterdir()):
        assert f"`{path.name}`" in readme, f"{path.name} is not described in README.md"
    for path in FIXTURES.glob("*.xml"):
        assert b"CONSTRUCTED" in path.read_bytes()[:400], path.name


# --- Real formats (issue 15): paragraph entries with a dash, eCFR tables, AMDDATE ----------

@pytest.mark.parametrize("line, expected", [
    # § 1308.13(f)(1) as printed: an em dash, no spaces (normalise_text makes it "-")
    ("(1) Anabolic steroids (see § 1300.01 of this chapter)\u20144000",
     ("(1) Anabolic steroids (see § 1300.01 of this chapter)", "4000")),
    # as the Markdown conversion of the eCFR writes it: a spaced hyphen
    ("(1) Anabolic steroids (see § 1300.01 of this chapter) - 4000",
     ("(1) Anabolic steroids (see § 1300.01 of this chapter)", "4000")),
    ("(1) Dronabinol … approved product - 7369.", ("(1) Dronabinol … approved product", "7369")),
    ("(1) Dronabinol … approved product\u20137369.", ("(1) Dronabinol … approved product", "7369")),
    ("(1) Dronabinol … approved product\u2014 7369", ("(1) Dronabinol … approved product", "7369")),
    # a code name at the end of an uncoded line is not a DEA code
    ("Some other names: AM-2201", ("Some other names: AM-2201", None)),
    ("Other names include UR-1441", ("Other names include UR-1441", None)),
])
def test_split_trailing_code_after_a_dash(line, expected):
    assert us.split_trailing_code(normalise_text(line)) == expected


def test_paragraph_entries_f_and_g_are_read_with_their_codes():
    """§ 1308.13(f)(1) anabolic steroids 4000 and (g)(1) dronabinol 7369 are paragraphs with
    the code after a dash; (g) puts its heading and "(1)" in one paragraph."""
    part = us.read_part_1308(fixture_bytes("ecfr-part1308.xml"))
    entries = {e.provision: e for e in part.entries}
    steroids = entries["21 CFR 1308.13(f)(1)"]
    assert (steroids.text, steroids.code, steroids.heading) == \
        ("Anabolic steroids (see § 1300.01 of this chapter)", "4000", "Anabolic Steroids")
    dronabinol = entries["21 CFR 1308.13(g)(1)"]
    assert dronabinol.code == "7369" and dronabinol.text.startswith("Dronabinol (synthetic)")
    assert dronabinol.parent == "(g) Hallucinogenic substances"
    assert dronabinol.notes[0].startswith("[Some other names for dronabinol:")
    assert "21 CFR 1308.13(g)" not in entries
    records = by_substance(parse_ecfr_bytes(fixture_bytes("ecfr-part1308.xml"),
                                            build_watch_list("all")))
    assert records["anabolic steroids"].provision == "21 CFR 1308.13(f)(1)"
    assert records["anabolic steroids"].basis == "named (anabolic steroid)"
    assert records["dronabinol"].provision == "21 CFR 1308.13(g)(1)"
    assert records["dronabinol"].schedule == "III"


def markdown_paragraphs(text: str) -> Any:
    """The Markdown excerpt of § 1308.13(d)–(g) as eCFR XML: paragraphs as P (``*…*`` as
    I), table rows as TR/TD with self-closing empty cells, as eCFR XML writes them."""
    div8 = etree.Element("DIV8", N="§ 1308.13", TYPE="SECTION")
    table = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("<!--") or line.startswith("[39 FR") \
                or re.fullmatch(r"\|[:\- |]+\|", line):
            continue
        escaped = re.sub(r"\*(.+?)\*", r"<I>\1</I>",
                         line.replace("&", "&amp;").replace("<", "&lt;"))
        if line.startswith("|"):
            if table is None:
                table = etree.SubElement(etree.SubElement(div8, "DIV", {"class": "gpotbl_div"}),
                                         "TABLE", {"class": "gpotbl_table"})
            tr = etree.SubElement(table, "TR")
            for cell in escaped.strip("|").split("|"):
                td = etree.fromstring(f"<TD>{cell.strip()}</TD>")
                tr.append(td)
            continue
        table = None
        div8.append(etree.fromstring(f"<P>{escaped}</P>"))
    return div8


def test_real_markdown_of_1308_13_d_to_g_walks_to_the_coded_entries():
    text = shared("ecfr-markdown-1308.13-d-to-g-excerpt.md").read_text(encoding="utf-8")
    walked = {e.provision: e for e in us.walk_section(markdown_paragraphs(text), "1308.13",
                                                     "III")}
    assert {p: e.code for p, e in walked.items()} == {
        "21 CFR 1308.13(d)": "9400", "21 CFR 1308.13(e)(1)(i)": "9803",
        "21 CFR 1308.13(e)(2)(i)": "9064", "21 CFR 1308.13(f)(1)": "4000",
        "21 CFR 1308.13(g)(1)": "7369"}
    assert walked["21 CFR 1308.13(f)(1)"].name == "Anabolic steroids"
    assert walked["21 CFR 1308.13(g)(1)"].notes[0].startswith("[Some other names for dronabinol")
    # the fixture prints the same (f) and (g) entries
    fixture = {e.provision: (e.code, e.name) for e in
               us.read_part_1308(fixture_bytes("ecfr-part1308.xml")).entries
               if e.provision.startswith(("21 CFR 1308.13(f)", "21 CFR 1308.13(g)"))}
    assert fixture == {p: (e.code, e.name) for p, e in walked.items()
                       if p.startswith(("21 CFR 1308.13(f)", "21 CFR 1308.13(g)"))}


def patch_new_side(name: str) -> str:
    """The text after a unified-diff patch of the eCFR's source XML: context and added
    lines (the hunks' "after" side)."""
    lines = shared(f"ecfr-source-xml-patches/{name}").read_text(encoding="utf-8").splitlines()
    return "\n".join(line[1:] for line in lines
                     if line[:1] in (" ", "+") and not line.startswith("+++"))


def test_real_ecfr_table_markup_from_the_source_patches_is_read():
    """eCFR XML's real table form (Title 17 part 211, the eCFR's own patch): a TH heading
    row, then TR/TD rows, inside DIV class="gpotbl_div"."""
    text = patch_new_side("17_008-fix-part-211-subpart-closing-tags_001.patch")
    tables = re.findall(r'<DIV width="100%"><DIV class="gpotbl_div">.*?</TABLE></DIV></DIV>',
                        text, re.S)
    assert tables, "no complete table in the patch"
    div8 = etree.fromstring(f'<DIV8 N="§ 211.1" TYPE="SECTION">{tables[-1]}</DIV8>')
    lines = [line.text for line in us.section_lines(div8)]
    assert lines == ["Index of Accounting and Auditing Enforcement Releases 1 Apr. 15, 1982 "
                     "47 FR 21030"]  # the TH row is a column heading, not a line


def test_real_amddate_values_of_title_21_volume_9_are_read():
    """The eCFR corrected Title 21 volume 9's AMDDATE several times (wrong but well-formed
    values, and an ISO one): every form on both sides of the patches reads as a date."""
    for name in ("21_014-fix-21v9-amddate_001.patch", "21_015-patch-2017-03-23-v9_2017-03-21_001.patch",
                 "21_021-fix-21v9-amddate_001.patch"):
        patch = shared(f"ecfr-source-xml-patches/{name}").read_text(encoding="utf-8")
        values = re.findall(r"^[-+]<AMDDATE>(.*)$", patch, re.M)
        assert len(values) == 2
        assert all(us.amddate_iso(v) for v in values), values
    assert us.amddate_iso("2017-03-21") == "2017-03-21"
    assert us.amddate_iso("March 21, 2017") == "2017-03-21"


def test_amddate_is_the_volumes_and_weak():
    """A whole-title file has one ECFRBRWS/AMDDATE per volume; the one kept is that of the
    volume holding Part 1308, labelled as that volume's (the real volume-9 markup of the
    eCFR's patch, behind a volume 8 of another date)."""
    volume9 = patch_new_side("21_014-fix-21v9-amddate_001.patch")
    volume9 = volume9[volume9.index("<ECFRBRWS>"):]
    assert volume9.rstrip().endswith('<DIV1 N="9" TYPE="TITLE">')
    part = fixture_bytes("ecfr-part1308.xml").decode()
    part = part[part.index("<DIV5 "):]
    title = ('<?xml version="1.0"?><DLPSTEXTCLASS><TEXT><BODY><ECFRBRWS><AMDDATE>Jan. 3, 2022'
             '</AMDDATE><DIV1 N="8" TYPE="TITLE"><DIV5 N="1299" TYPE="PART"><HEAD>PART 1299'
             "</HEAD></DIV5></DIV1></ECFRBRWS>" + volume9 + part +
             "</DIV1></ECFRBRWS></BODY></TEXT></DLPSTEXTCLASS>").encode()
    _, facts = us.stream_part(title)
    assert facts == {"amddate": "July 18, 2022", "amddate_volume": "9"}
    result = parse_ecfr_bytes(title)
    assert ("Title 21 volume 9 amended as of (AMDDATE, weak)", "2022-07-18") in \
        result.document_dates
    # weak: never the document's date nor a legal one
    ketamine = by_substance(result)["ketamine"]
    assert ketamine.evidence_date == "2026-06-10" and ketamine.in_force_since is None


def test_evidence_date_from_the_versioner_url_without_meta():
    """``schedwatch parse`` of a versioner answer has no meta: the date in its URL is the
    version's."""
    result = us.parse_ecfr(make_document(fixture_bytes("ecfr-part1308.xml"), meta={}),
                           DEFAULT_WATCH)
    assert by_substance(result)["ketamine"].evidence_date == "2026-06-10"


# --- Real formats (issue 15): Federal Register fields ---------------------------------------

def real_fr_page() -> bytes:
    return shared("fr-api-documents-2024-page1-of-2.json").read_bytes()


def test_real_fr_page_without_ketamine_documents_is_refused():
    """A real, complete API page (2024, no DEA document on Part 1308): non-empty but without
    the 1999 rule, so it must fail, never say "not controlled" (issue 13)."""
    document = make_document(real_fr_page(), source_id=us.FR_SOURCE_ID,
                             url="https://www.federalregister.gov/api/v1/documents.json")
    with pytest.raises(ExtractionError, match=r"1000 documents\) lacks FR Doc 99-17803 "
                                              r"\(64 FR 37673\)"):
        us.parse_federal_register(document, DEFAULT_WATCH)


def test_real_fr_rules_get_an_effective_date_labelled_by_its_source():
    """Real Rules with effective_on null (7 of 120 on the page) fall back to their DATES
    text, then to the publication date; citation_url is null everywhere and not needed."""
    results = json.loads(real_fr_page())["results"]
    assert all(ref["citation_url"] is None for r in results for ref in r["cfr_references"])
    rules = [us.FrDocument.from_json(r, i) for i, r in enumerate(results)
             if r["type"] == "Rule"]
    assert len(rules) == 120 and all(rule.effective for rule in rules)
    sources = [rule.effective_source for rule in rules]
    assert sources.count("effective_on") == 113
    by_number = {rule.number: rule for rule in rules}
    nulls = [r for r in results if r["type"] == "Rule" and r["effective_on"] is None]
    assert len(nulls) == 7
    for raw in nulls:
        rule = by_number[raw["document_number"]]
        if rule.effective_source == "dates":
            assert rule.effective_label == "effective (from the DATES text; effective_on is empty)"
        else:
            assert rule.effective_source == "publication_date"
            assert rule.effective == rule.published
            assert rule.effective_label == \
                "effective (publication date; no effective date stated)"
    # "January 16, 2024. For the implementation date …" is read from the DATES text
    assert {by_number[r["document_number"]].effective for r in nulls
            if (r["dates"] or "").startswith("January 16, 2024.")} == {"2024-01-16"}


@pytest.mark.parametrize("text, expected", [
    ("EFFECTIVE DATE: August 12, 1999.", "1999-08-12"),
    ("This final rule is effective on February 1, 2024.", "2024-02-01"),
    ("This temporary scheduling order is effective January 2, 2024.", "2024-01-02"),
    ("January 16, 2024. For the implementation date of the regulatory provision, see "
     "SUPPLEMENTARY INFORMATION.", "2024-01-16"),
    ("Comments must be received on or before June 8, 1999.", None),
    ("", None),
])
def test_dates_text_effective(text, expected):
    assert us.federal_register.dates_text_effective(text) == expected


def test_fr_final_rule_without_effective_on_falls_back_and_says_so():
    final = next(r for r in fr_results(*BASE_FR) if r["document_number"] == "99-17803")
    results = [r for r in fr_results(*BASE_FR) if r["document_number"] != "99-17803"]
    ketamine = by_substance(parse_fr(fr_document(results + [{**final, "effective_on": None}])))[
        "ketamine"]
    assert ketamine.in_force_since == "1999-08-12"
    assert ketamine.in_force_since_basis == "64 FR 37673, effective 1999-08-12 (per its DATES text)"
    assert ("effective (from the DATES text; effective_on is empty)", "1999-08-12") in \
        ketamine.dates
    bare = {**final, "effective_on": None, "dates": None}
    ketamine = by_substance(parse_fr(fr_document(results + [bare])))["ketamine"]
    assert ketamine.in_force_since == "1999-07-13"
    assert ketamine.in_force_since_basis == \
        "64 FR 37673, effective 1999-07-13 (its publication date; no effective date stated)"


def test_1999_fixtures_use_the_real_wording_of_the_gpo_headers():
    """Titles and actions of FR Docs 99-8812, 99-8815 and 99-17803 as the GPO text prints
    them: the withdrawal has the proposal's title; its action is "Notice of withdrawal of
    proposed rule."."""
    excerpt = shared("govinfo-FR-1999-ketamine-documents-header-excerpts.txt").read_text(
        encoding="utf-8")
    real = {}
    for block in re.split(r"^=== FR Doc ", excerpt, flags=re.M)[1:]:
        number = block.split(" ", 1)[0]
        lines = block.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("Schedules of"))
        end = next(i for i, line in enumerate(lines) if line.startswith("AGENCY:"))
        action = next(line for line in lines if line.startswith("ACTION:"))
        real[number] = (" ".join(" ".join(lines[start:end]).split()),
                        action.removeprefix("ACTION: "))
    fixtures = {r["document_number"]: (r["title"], r["action"])
                for r in fr_results(*BASE_FR, "fr-documents-ketamine.json")
                if r["document_number"] in real}
    assert fixtures == real
    assert real["99-8812"][0] == real["99-8815"][0]
    assert real["99-8812"][1] == "Notice of withdrawal of proposed rule."
