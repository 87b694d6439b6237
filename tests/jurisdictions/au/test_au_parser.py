"""The Poisons Standard parser on CONSTRUCTED Word fixtures (tests/fixtures/au/, written by
make_fixtures.py; see tests/fixtures/README.md)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from jurisdictions import au
from jurisdictions.au import word
from jurisdictions.substances import build_watch_list
from scrapers.errors import ExtractionError
from scrapers.records import (
    CONTROL_LEVELS,
    MATERIAL_FIELDS,
    Document,
    StatusRecord,
    normalise_text,
    validate,
)
from tests.support.documents import SHARED_DOCS, WORD_CLOSE, WORD_OPEN, deflated, shared_doc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "au"
JUNE_TITLE = "Therapeutic Goods (Poisons Standard\u2014June 2026) Instrument 2026"
OCTOBER_TITLE = "Therapeutic Goods (Poisons Standard\u2014October 2026) Instrument 2026"
JUNE_META = {"instrument_id": "F2026L00633", "instrument_title": JUNE_TITLE,
             "register_id": "F2026L00633", "commencement": "2026-06-01",
             "registered_at": "2026-05-28T12:59:30+00:00"}
OCTOBER_META = {"instrument_id": "F2026L01302", "instrument_title": OCTOBER_TITLE,
                "register_id": "F2026L01302", "commencement": "2026-10-01",
                "registered_at": "2026-09-25T03:10:00+00:00"}
KETAMINES = build_watch_list(["ketamine", "esketamine", "arketamine"])
ALL = build_watch_list("all")


def document(content: bytes | str, meta: dict[str, str] | None = None) -> Document:
    data = content if isinstance(content, bytes) else (FIXTURES / content).read_bytes()
    return Document(source_id=au.SOURCE_ID, url="https://www.legislation.gov.au/F2026L00633/"
                    "asmade/2026-05-28/text/original/word", content=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                    retrieved_at=datetime(2026, 9, 1, 6, 0, tzinfo=UTC),
                    content_type=au.WORD_MEDIA_TYPE,
                    meta=JUNE_META if meta is None else meta)


def parse(name: str, watch=KETAMINES, meta: dict[str, str] | None = None):
    result = au.parse_poisons_standard(document(name, meta), watch)
    validate(result, source_id=au.SOURCE_ID, watched=watch.keys)
    return result


def by_key(result) -> dict[str, StatusRecord]:
    return {record.substance: record for record in result.records}


# --- the module contract ------------------------------------------------------------------


def test_module_contract():
    assert (au.CODE, au.NAME, au.TIMEZONE) == ("au", "Australia", "Australia/Sydney")
    assert set(au.SCHEDULE_LEVELS.values()) <= set(CONTROL_LEVELS)
    assert au.SCHEDULE_LEVELS["8"] == "C2"
    assert au.SCHEDULE_LEVELS["9"] == au.SCHEDULE_LEVELS["10"] == "C1"
    assert au.SCHEDULE_LEVELS["4"] == "C4"
    assert au.SCHEDULE_LEVELS["2"] == au.SCHEDULE_LEVELS["3"] == "C5"
    assert {au.SCHEDULE_LEVELS[s] for s in ("5", "6", "7", "Appendix B", "Appendix D")} == {"C6"}
    (source,) = au.SOURCES
    assert source.id == "au-poisons-standard"
    assert source.jurisdiction == "au"
    assert source.title == "Poisons Standard (SUSMP), Federal Register of Legislation"
    assert source.endpoints == {"url": "https://api.prod.legislation.gov.au/v1",
                                "register_url": "https://www.legislation.gov.au"}
    assert source.media_type == ("application/vnd.openxmlformats-officedocument."
                                 "wordprocessingml.document")
    assert source.parse is au.parse_poisons_standard
    assert source.fetch_plan is au.fetch_poisons_standard


# --- the baseline -------------------------------------------------------------------------


def test_baseline_ketamine_and_esketamine_are_schedule_8():
    result = parse("poisons-standard-june-2026.docx")
    records = by_key(result)
    assert list(records) == ["ketamine", "esketamine", "arketamine"]
    for key, name in (("ketamine", "KETAMINE"), ("esketamine", "ESKETAMINE")):
        record = records[key]
        assert record.status == "controlled"
        assert record.schedule == "8"
        assert record.control_level == "C2"
        assert record.instrument == "F2026L00633"
        assert record.provision == f"Sch. 8, entry {name}"
        assert record.listed_as == f"{name}."
        assert record.basis == "named"
        assert record.effective_from is None
        # The Standard speaks from its commencement; that is not when ketamine's status
        # began (Schedule 8 long before this Standard): the store fills in earliest evidence.
        assert record.evidence_date == "2026-06-01"
        assert record.in_force_since is None and record.in_force_since_kind is None
        assert record.dates == ((au.COMMENCEMENT_LABEL, "2026-06-01"), ("registered", "2026-05-28"))
        assert record.source_id == au.SOURCE_ID
        assert record.jurisdiction == "au"
    assert result.title == JUNE_TITLE
    assert result.instrument == "F2026L00633"
    assert result.document_dates == ((au.COMMENCEMENT_LABEL, "2026-06-01"),
                                     ("registered", "2026-05-28"))


def test_arketamine_is_reported_as_not_listed():
    record = by_key(parse("poisons-standard-june-2026.docx"))["arketamine"]
    assert record.status == "not_controlled"
    assert record.schedule is None and record.control_level is None
    assert record.basis.startswith("not listed in the Poisons Standard F2026L00633")
    # The reader also sees that its parent is listed, and where.
    assert "isomer of KETAMINE (Sch. 8)" in record.basis
    assert record.parent_entry == "KETAMINE (Sch. 8)"


def test_a_healthy_document_without_ketamine_reads_not_controlled():
    records = by_key(parse("poisons-standard-no-ketamine.docx"))
    assert records["ketamine"].status == "not_controlled"
    assert records["ketamine"].basis == "not listed in the Poisons Standard F2026L00633"
    assert records["esketamine"].schedule == "8"
    assert records["arketamine"].basis == "not listed in the Poisons Standard F2026L00633"
    assert records["arketamine"].parent_entry is None


def test_no_break_hyphens_inside_names_are_hyphens():
    records = by_key(parse("poisons-standard-june-2026.docx", ALL))
    record = records["n-ethylpentylone"]
    assert record.listed_as == "N-ETHYLPENTYLONE."
    assert record.provision == "Sch. 9, entry N-ETHYLPENTYLONE"
    assert records["4-methylaminorex"].listed_as == "4-METHYLAMINOREX."
    assert "2,5-dimethoxy-4-bromophenethylamine (2c-b)" in records
    assert records["2,4-dinitrophenol"].schedule == "10"


def test_itertext_would_lose_the_no_break_hyphen():
    """Why the parser walks runs: the hyphen is an element, not text (the register's Word
    files, seen in F2026L00633)."""
    with zipfile.ZipFile(FIXTURES / "poisons-standard-june-2026.docx") as package:
        body = etree.fromstring(package.read("word/document.xml"))
    texts = {"".join(p.itertext()): au.paragraph_text(p) for p in body.iter(word._P)}
    assert texts["NETHYLPENTYLONE."] == "N-ETHYLPENTYLONE."


def test_qualifications_land_in_listed_as():
    records = by_key(parse("poisons-standard-june-2026.docx", ALL))
    cannabis = records["cannabis"].listed_as
    assert cannabis.startswith("CANNABIS (including seeds, extracts, resins and the plant")
    assert " | (a) cultivated or produced" in cannabis
    assert " | (b) imported as therapeutic goods" in cannabis
    assert cannabis.endswith(" | except when separately specified in these Schedules.")
    # Paragraph and paragraphsub styles too, in the order printed.
    codeine = records["codeine"].listed_as
    assert ("[Sch. 2] CODEINE when compounded with one or more other therapeutically active "
            "substances: | (a) in divided preparations containing 10 mg or less of codeine per "
            "dosage unit; and | (i) in packs containing not more than 5 days\u2019 supply; | "
            "except when included in Schedule 3.") in codeine
    assert "(a) in divided preparations, each containing 400 mg" in records["ibuprofen"].listed_as
    # A qualification never becomes an entry of its own.
    assert not any(key.startswith("(") for key in records)


def test_a_substance_in_several_schedules_is_one_record():
    record = by_key(parse("poisons-standard-june-2026.docx", ALL))["codeine"]
    assert record.schedule == "2, 3, 4, 8"
    assert record.control_level == "C2"  # the strictest of C5, C5, C4, C2
    assert record.provision == ("Sch. 2, entry CODEINE; Sch. 3, entry CODEINE; "
                                "Sch. 4, entry CODEINE; Sch. 8, entry CODEINE")
    assert record.listed_as.count(" || ") == 3
    psilocybine = by_key(parse("poisons-standard-june-2026.docx", ALL))["psilocybin"]  # INN spelling, matched across jurisdictions
    assert (psilocybine.schedule, psilocybine.control_level) == ("8, 9", "C1")


def test_markers_are_stripped_from_names_and_noted():
    records = by_key(parse("poisons-standard-june-2026.docx", ALL))
    nandrolone = records["nandrolone"]
    assert nandrolone.schedule == "4"  # its Appendix D listing is not a schedule
    assert nandrolone.provision == "Sch. 4, entry NANDROLONE; App. D, entry NANDROLONE"
    assert nandrolone.basis == "named; marked # (Appendix D)"
    assert nandrolone.listed_as == "[Sch. 4] #NANDROLONE. || [App. D] NANDROLONE."
    assert records["turpentine oil"].basis == "named; marked * (trivial name)"


def test_appendix_b_listing_alone_is_not_control():
    record = by_key(parse("poisons-standard-june-2026.docx", ALL))["ascorbic acid"]
    assert record.status == "not_controlled"
    assert record.schedule is None
    assert record.provision == "App. B, entry ASCORBIC ACID"
    assert record.basis == "named; listed only in Appendix B"


def test_watch_all_reports_every_entry_of_every_schedule_and_appendix():
    result = parse("poisons-standard-june-2026.docx", ALL)
    assert set(by_key(result)) == {
        "ketamine", "esketamine", "arketamine",
        # Schedules 2 and 3
        "codeine", "ibuprofen", "paracetamol", "salbutamol",
        # Schedule 4
        "amoxicillin", "diazepam", "nandrolone", "tiletamine",
        # Schedules 5, 6, 7
        "acetic acid", "ammonia", "4-chloro-3-methylphenol", "turpentine oil", "arsenic",
        "strychnine",
        # Schedule 8
        "alprazolam", "cannabis", "fentanyl", "methadone", "morphine", "psilocybin",
        "tapentadol",
        # Schedules 9 and 10
        "2,5-dimethoxy-4-bromophenethylamine (2c-b)", "lysergic acid diethylamide", "4-methylaminorex",
        "n-ethylpentylone", "comfrey", "2,4-dinitrophenol",
        # Appendix B
        "ascorbic acid", "calcium carbonate",
    }
    # The watched substances come first, in the watch list's order.
    assert [r.substance for r in result.records[:3]] == ["ketamine", "esketamine", "arketamine"]
    assert by_key(result)["methadone"].listed_as == "METHADONE."  # Normal-hanging style


def test_watch_by_synonym_keys_the_record_on_the_watched_substance():
    watch = build_watch_list(["Spravato", "fentanyl"])
    records = by_key(parse("poisons-standard-june-2026.docx", watch))
    assert records["esketamine"].schedule == "8"
    assert records["fentanyl"].provision == "Sch. 8, entry FENTANYL"


# --- changes between documents ------------------------------------------------------------


def test_replacement_instrument_changes_only_the_instrument():
    june = by_key(parse("poisons-standard-june-2026.docx", ALL))
    october = by_key(parse("poisons-standard-october-2026.docx", ALL, OCTOBER_META))
    assert set(june) == set(october)
    for key, before in june.items():
        after = october[key]
        assert after.instrument == "F2026L01302"
        differing = {f for f in MATERIAL_FIELDS if getattr(before, f) != getattr(after, f)}
        # "not listed in the Poisons Standard <id>" names the instrument too.
        assert differing <= {"instrument", "basis"}, key
        assert after.basis.replace("F2026L01302", "F2026L00633") == before.basis
    assert october["ketamine"].dates == ((au.COMMENCEMENT_LABEL, "2026-10-01"),
                                         ("registered", "2026-09-25"))


def test_ketamine_moved_to_schedule_9_is_seen():
    records = by_key(parse("poisons-standard-ketamine-s9.docx"))
    assert records["ketamine"].schedule == "9"
    assert records["ketamine"].control_level == "C1"
    assert records["ketamine"].provision == "Sch. 9, entry KETAMINE"
    assert records["esketamine"].schedule == "8"
    assert records["arketamine"].parent_entry == "KETAMINE (Sch. 9)"


def test_style_ids_are_resolved_through_styles_xml():
    baseline = parse("poisons-standard-june-2026.docx", ALL)
    opaque = parse("poisons-standard-opaque-style-ids.docx", ALL)
    assert [r.material() for r in opaque.records] == [r.material() for r in baseline.records]


def test_without_meta_the_cover_names_the_instrument():
    result = parse("poisons-standard-june-2026.docx", meta={})
    assert result.title == JUNE_TITLE
    assert result.instrument == JUNE_TITLE
    assert result.document_dates == ((au.COMMENCEMENT_LABEL, "2026-06-01"),)
    assert by_key(result)["ketamine"].instrument == JUNE_TITLE


# --- documents that are not what the parser knows -----------------------------------------


def test_a_document_without_the_styles_is_an_extraction_error():
    with pytest.raises(ExtractionError, match="ActHead1"):
        au.parse_poisons_standard(document("poisons-standard-no-styles.docx"), KETAMINES)


def test_a_truncated_document_is_an_extraction_error_not_a_descheduling():
    with pytest.raises(ExtractionError, match=r"Schedule 7, 8, 9, 10"):
        au.parse_poisons_standard(document("poisons-standard-truncated.docx"), KETAMINES)


@pytest.mark.parametrize("content", [
    b"",
    b"<!DOCTYPE html><html><body>The page you requested cannot be found</body></html>",
    b"%PDF-1.7\n",
])
def test_not_a_zip_is_an_extraction_error(content):
    with pytest.raises(ExtractionError, match="not a Word"):
        au.parse_poisons_standard(document(content), KETAMINES)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, data in files.items():
            package.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_that_is_not_a_docx_is_an_extraction_error():
    with pytest.raises(ExtractionError, match="no word/document.xml"):
        au.parse_poisons_standard(document(_zip({"mimetype": b"application/epub+zip"})),
                                  KETAMINES)


def test_malformed_document_xml_is_an_extraction_error():
    with pytest.raises(ExtractionError, match="not readable XML"):
        au.parse_poisons_standard(document(_zip({"word/document.xml": b"<w:document"})),
                                  KETAMINES)


def test_entities_are_not_resolved():
    """A scraped document never makes the parser read a local file."""
    xml = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/'
           b'main"><w:body><w:p><w:r><w:t>before&x;</w:t></w:r></w:p></w:body></w:document>')
    paragraphs, _ = au.read_docx(_zip({"word/document.xml": xml}))
    assert len(paragraphs) == 1
    assert "root:" not in paragraphs[0].text


def test_a_part_declaring_a_huge_size_is_refused_before_inflating(monkeypatch):
    monkeypatch.setattr(word, "MAX_DOCUMENT_XML_BYTES", 1000)
    monkeypatch.setattr(word, "MAX_PART_BYTES", 1000)
    big = _zip({"word/document.xml": b"<w:document xmlns:w='x'>" + b" " * 2000
                + b"</w:document>"})
    with pytest.raises(ExtractionError, match="word/document.xml inflates to more than"):
        au.parse_poisons_standard(document(big), KETAMINES)
    small = _zip({"word/document.xml": b"<w:document xmlns:w='x'/>",
                  "word/styles.xml": b"<w:styles xmlns:w='x'>" + b" " * 2000 + b"</w:styles>"})
    with pytest.raises(ExtractionError, match="word/styles.xml inflates to more than"):
        au.parse_poisons_standard(document(small), KETAMINES)


def test_broken_styles_are_an_extraction_error_naming_the_part_at_fault():
    with zipfile.ZipFile(FIXTURES / "poisons-standard-june-2026.docx") as package:
        parts = {name: package.read(name) for name in package.namelist()}
    with pytest.raises(ExtractionError, match="word/styles.xml .*not readable XML"):
        au.parse_poisons_standard(document(_zip({**parts, "word/styles.xml": b"<w:styles"})),
                                  KETAMINES)
    # Both broken: the body is named, as when it was read first.
    with pytest.raises(ExtractionError, match="word/document.xml .*not readable XML"):
        au.parse_poisons_standard(document(_zip({**parts, "word/styles.xml": b"<w:styles",
                                                 "word/document.xml": b"<w:document"})),
                                  KETAMINES)


# --- the streamed reading is the tree walk it replaced ------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _reference_text(p) -> str:
    """The recursive walk the parser used before it streamed document.xml: the reference
    that ``paragraph_text`` must agree with."""
    parts: list[str] = []

    def walk(element) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in word._SKIP:
                continue
            if tag == word._T:
                parts.append(child.text or "")
            elif tag in word._HYPHENS:
                parts.append("-")
            elif tag in word._BLANKS:
                parts.append(" ")
            elif tag != word._P:
                walk(child)

    walk(p)
    return " ".join("".join(parts).split())


def _reference_paragraphs(content: bytes) -> list[tuple[str, str]]:
    """(role, text) of every paragraph from the whole tree, in ``iter`` order."""
    with zipfile.ZipFile(io.BytesIO(content)) as package:
        body = etree.fromstring(package.read("word/document.xml"))
        styles = word._style_names(etree.fromstring(package.read("word/styles.xml"))) \
            if "word/styles.xml" in package.namelist() else {}
    found = []
    for p in body.iter(word._P):
        style = p.find(f"{{{_W}}}pPr/{{{_W}}}pStyle")
        found.append((word._role(style.get(f"{{{_W}}}val") if style is not None else None, styles),
                      _reference_text(p)))
    return found


def _streamed(paragraphs) -> list[tuple[str, str]]:
    return [(p.role, p.text) for p in paragraphs]


def _as_kept(reference: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The reference without the paragraphs read_docx does not keep: "other" paragraphs
    after the first schedule heading, and empty paragraphs other than headings (no object
    per empty paragraph)."""
    cover, out = True, []
    for role, text in reference:
        if role == "heading" or (text and (cover or role != "other")):
            out.append((role, text))
        if role == "heading" and au.section_label(text) is not None:
            cover = False
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.docx")))
def test_streamed_paragraphs_equal_the_tree_walk(name):
    content = (FIXTURES / name).read_bytes()
    paragraphs, _ = au.read_docx(content)
    assert _streamed(paragraphs) == _as_kept(_reference_paragraphs(content))


def _tricky_docx() -> bytes:
    """Paragraphs in the shapes Word writes that the parser must read as the tree walk did:
    tab stops in the paragraph properties, deleted and moved text, field codes, alternate
    content with a text box (Choice read on its own, Fallback not at all), a table, a
    hyperlink and an inserted run, comments and processing instructions."""
    def p(style: str, inner: str) -> str:
        return (f'<w:p><w:pPr><w:pStyle w:val="{style}"/><w:tabs><w:tab w:val="left" '
                f'w:pos="567"/></w:tabs><w:rPr><w:b/></w:rPr></w:pPr>{inner}</w:p>')

    def r(text: str) -> str:
        return f'<w:r><w:rPr><w:sz w:val="20"/></w:rPr><w:t xml:space="preserve">{text}</w:t></w:r>'

    box = ('<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wps:txbx>'
           '<w:txbxContent>' + p("Normal", r("IN THE BOX")) + '</w:txbxContent></wps:txbx>'
           '</w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent>'
           + p("Normal", r("FALLBACK BOX")) + '</w:txbxContent></w:pict></mc:Fallback>'
           '</mc:AlternateContent></w:r>')
    body = "".join([
        p("Normal", r("Therapeutic Goods (Poisons Standard\u2014June 2026) Instrument 2026")),
        p("Normal", r("This instrument commences on 1 June 2026.") + box),
        p("ActHead1", r("Schedule 8") + '<w:r><w:t>\u2014Controlled Drug</w:t></w:r>'),
        p("Normal", r("Schedule 8 includes the following.")),
        p("PoisonsStandardScheduleEntry",
          r("N") + '<w:r><w:noBreakHyphen/></w:r>' + r("ETHYL") + '<w:r><w:tab/></w:r>'
          + '<w:del><w:r><w:delText>GONE</w:delText></w:r></w:del>'
          + '<w:moveFrom><w:r><w:t>MOVED AWAY</w:t></w:r></w:moveFrom>'
          + '<w:r><w:instrText>PAGEREF x</w:instrText></w:r>'
          + '<w:hyperlink><w:r><w:t>LINKED</w:t></w:r></w:hyperlink>'
          + '<w:ins><w:r><w:t>.</w:t></w:r></w:ins><!-- a comment --><?pi data?>'),
        '<w:tbl><w:tblPr/><w:tr><w:tc><w:tcPr/>'
        + p("Paragraph", r("(a) in a table cell")) + p("paragraphsub", r("(i) and another"))
        + '</w:tc></w:tr></w:tbl>',
        p("PoisonsStandardScheduleEntry", r("KETAMINE.") + box),
        p("Normal", r("after") + '<w:r><w:br/><w:t>the break</w:t></w:r>'),
    ])
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}" '
           'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
           'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
           f'<w:body>{body}<w:sectPr/></w:body></w:document>')
    return _zip({"word/document.xml": xml.encode()})


def test_streamed_paragraphs_in_words_shapes_equal_the_tree_walk():
    content = _tricky_docx()
    paragraphs, _ = au.read_docx(content)
    reference = _reference_paragraphs(content)
    assert _streamed(paragraphs) == _as_kept(reference)
    texts = [text for _, text in reference]
    # The text box's paragraph comes right after the paragraph holding it, twice (Choice
    # and Fallback copies are both paragraphs), and its text is not its holder's.
    assert texts[1:4] == ["This instrument commences on 1 June 2026.", "IN THE BOX",
                          "FALLBACK BOX"]
    assert texts[6] == "N-ETHYL LINKED."
    assert texts[7:9] == ["(a) in a table cell", "(i) and another"]
    assert texts[-1] == "after the break"
    [entry, ketamine] = au.collect_entries(paragraphs)
    assert (entry.section, entry.name, entry.text) == ("8", "N-ETHYL LINKED", "N-ETHYL LINKED.")
    assert entry.qualifications == ("(a) in a table cell", "(i) and another")
    assert ketamine.name == "KETAMINE"


# --- small pure pieces --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "name", "markers"), [
    ("KETAMINE.", "KETAMINE", ""),
    ("#NANDROLONE.", "NANDROLONE", "#"),
    ("*TURPENTINE OIL except in preparations", "TURPENTINE OIL", "*"),
    ("CANNABIS (including seeds, extracts)", "CANNABIS", ""),
    ("COMFREY (Symphytum spp.) for human internal use.", "COMFREY", ""),
    ("IBUPROFEN except:", "IBUPROFEN", ""),
    ("2,5-DIMETHOXY-4-BROMOPHENETHYLAMINE (2C-B).", "2,5-DIMETHOXY-4-BROMOPHENETHYLAMINE (2C-B)",
     ""),
    ("GLYCERYL TRINITRATE.", "GLYCERYL TRINITRATE", ""),
    ("\u03b1-METHYLFENTANYL.", "\u03b1-METHYLFENTANYL", ""),
    ("d-LYSERGIDE.", "d-LYSERGIDE", ""),
    ("VITAMIN D 25 000 units or less", "VITAMIN D", ""),
    ("N\u2011ETHYLPENTYLONE.", "N-ETHYLPENTYLONE", ""),
    ("except when included in Schedule 3.", "", ""),
])
def test_entry_name(text, name, markers):
    assert au.entry_name(text) == (name, markers)


@pytest.mark.parametrize("text", [
    "KETAMINE.", "2,5-DIMETHOXY-4-BROMOPHENETHYLAMINE (2C-B).", "2- (methylamino)",
    "x- (y", "N\u2011ETHYLPENTYLONE.", "days\u2019 supply", "caf\u00e9", "e\u0301", "",
    "a\u00a0b", "Schedule 8\u2014Controlled Drug"])
def test_normalise_spaced_is_normalise_text(text):
    assert au.normalise_spaced(text) == normalise_text(text)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.docx")))
def test_normalise_spaced_is_normalise_text_on_every_fixture_paragraph(name):
    paragraphs, _ = au.read_docx((FIXTURES / name).read_bytes())
    for paragraph in paragraphs:
        assert au.normalise_spaced(paragraph.text) == normalise_text(paragraph.text)


@pytest.mark.parametrize(("heading", "label"), [
    ("Schedule 8-Controlled Drug", "8"),
    ("Schedule 10 - Substances of such danger", "10"),
    ("Appendix D-Additional controls", "Appendix D"),
    ("Part 1-Preliminary", None),
])
def test_section_label(heading, label):
    assert au.section_label(heading) == label


# --- the mid-entry * before a trivial name (the real Standard's shape) ---------------------


@pytest.mark.parametrize(("text", "name", "trivial"), [
    ("BENZYLPIPERAZINE *(BZP).", "BENZYLPIPERAZINE", ("BZP",)),
    ("ALPHA-PYRROLIDINOVALEROPHENONE *(ALPHA-PVP).", "ALPHA-PYRROLIDINOVALEROPHENONE",
     ("ALPHA-PVP",)),
    ("1-(2,5-DIMETHOXY-4-METHYLPHENYL)-2-AMINOPROPANE *(STP or DOM).",
     "1-(2,5-DIMETHOXY-4-METHYLPHENYL)-2-AMINOPROPANE", ("STP", "DOM")),
    ("BENZYLPIPERAZINE * (BZP) except in preparations", "BENZYLPIPERAZINE", ("BZP",)),
    ("2,5-DIMETHOXY-4-BROMOPHENETHYLAMINE (2C-B).", "2,5-DIMETHOXY-4-BROMOPHENETHYLAMINE (2C-B)",
     ()),
    ("*TURPENTINE OIL except in preparations", "TURPENTINE OIL", ()),
])
def test_a_mid_entry_star_ends_the_name_before_its_trivial_name(text, name, trivial):
    assert au.entry_name(text)[0] == name
    assert au.trivial_names(text) == trivial


def test_a_trivial_name_finds_the_entry():
    watch = build_watch_list(["BZP", "DOM", "alpha-PVP", "ketamine"])
    records = by_key(parse("poisons-standard-trivial-names.docx", watch))
    bzp = records["bzp"]
    assert (bzp.status, bzp.schedule, bzp.control_level) == ("controlled", "9", "C1")
    assert bzp.provision == "Sch. 9, entry BENZYLPIPERAZINE"
    assert bzp.listed_as == "BENZYLPIPERAZINE *(BZP)."
    # The marker's meaning is in the basis.
    assert bzp.basis.startswith("named; trivial name BZP (marked *")
    assert "trivial name" in bzp.basis
    assert records["dom"].provision == \
        "Sch. 9, entry 1-(2,5-DIMETHOXY-4-METHYLPHENYL)-2-AMINOPROPANE"
    assert "trivial name STP or DOM" in records["dom"].basis
    assert records["alpha-pvp"].schedule == "9"
    assert records["ketamine"].schedule == "8"


def test_a_trivial_name_is_a_known_name_for_the_configuration():
    """``watch = ["BZP"]`` passes the configuration's check (a typo would not)."""
    from jurisdictions.matching import check_watch_names

    check_watch_names(["BZP"])  # no error
    assert build_watch_list(["BZP"]).keys == ("bzp",)


def test_watch_all_names_trivial_name_entries_by_their_name():
    records = by_key(parse("poisons-standard-trivial-names.docx", ALL))
    assert "benzylpiperazine" in records
    assert "alpha-pyrrolidinovalerophenone" in records
    assert not any("*" in key or "(bzp" in key for key in records)
    # An entry whose chemical name links to nothing is keyed by its trivial name's synonym.
    assert records["2,5-dimethoxy-4-methylamphetamine"].schedule == "9"


# --- a register Word file that is not a Poisons Standard -----------------------------------


def test_the_real_administrative_arrangements_order_is_not_a_poisons_standard():
    content = shared_doc("au/frl-word-AAO_2021-03-18.docx")
    with pytest.raises(ExtractionError, match=r"^the Word document is not a Poisons Standard "
                                              r"\(it begins 'COMMONWEALTH OF AUSTRALIA"):
        au.parse_poisons_standard(document(content, {}), KETAMINES)


def test_schedwatch_parse_refuses_it_in_one_line(run_cli):
    path = SHARED_DOCS / "au" / "frl-word-AAO_2021-03-18.docx"
    shared_doc("au/frl-word-AAO_2021-03-18.docx")  # skips with the reason when absent
    result = run_cli("parse", "au-poisons-standard", str(path))
    assert result.exit_code != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "not a Poisons Standard" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_constructed_non_standard_in_the_real_shape_is_refused():
    with pytest.raises(ExtractionError, match="not a Poisons Standard .*ADMINISTRATIVE"):
        au.parse_poisons_standard(document("not-a-poisons-standard.docx", {}), KETAMINES)
    # A document that names the Standard but lost its styles keeps its own message.
    with pytest.raises(ExtractionError, match="register changed its styles"):
        au.parse_poisons_standard(document("poisons-standard-no-styles.docx"), KETAMINES)


# --- resource caps (issue 16: a Word zip bomb) ---------------------------------------------




def test_the_caps_leave_room_for_a_real_standard():
    """The real F2026L00633 original is 966,941 bytes zipped; Word XML deflates ~8-12x."""
    assert 16 * 966_941 < au.MAX_DOCUMENT_XML_BYTES < 50_000_000  # below the 50 MB bomb


def test_a_document_xml_inflating_past_the_cap_is_refused():
    bomb = deflated({"word/document.xml": WORD_OPEN + b" " * (au.MAX_DOCUMENT_XML_BYTES + 1)
                      + WORD_CLOSE})
    assert len(bomb) < 200_000  # a small download
    with pytest.raises(ExtractionError, match=r"word/document.xml inflates to more than 32 MB"):
        au.parse_poisons_standard(document(bomb), KETAMINES)


def test_a_zip_lying_about_the_inflated_size_is_refused():
    """zipfile inflates no more than the declared size, and the CRC then fails."""
    data = WORD_OPEN + b" " * 5_000_000 + WORD_CLOSE
    honest = deflated({"word/document.xml": data})
    declared = len(data).to_bytes(4, "little")
    assert honest.count(declared) == 2  # the local header and the central directory
    lying = honest.replace(declared, (1000).to_bytes(4, "little"))
    with pytest.raises(ExtractionError, match="word/document.xml"):
        au.parse_poisons_standard(document(lying), KETAMINES)


def test_millions_of_empty_paragraphs_are_refused_in_bounded_memory():
    """3 million empty paragraphs (18 MB, under the size cap): refused at the paragraph cap,
    each paragraph costing no object. Before the cap, a list entry per paragraph took
    92 MiB (tracemalloc peak) per million."""
    import tracemalloc

    bomb = deflated({"word/document.xml": WORD_OPEN + b"<w:p/>" * 3_000_000 + WORD_CLOSE})
    tracemalloc.start()
    try:
        with pytest.raises(ExtractionError, match="more than 250,000 paragraphs"):
            au.read_docx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


def test_empty_paragraphs_below_the_cap_change_nothing_and_keep_no_object():
    with zipfile.ZipFile(FIXTURES / "poisons-standard-june-2026.docx") as package:
        parts = {name: package.read(name) for name in package.namelist()}
    body = parts["word/document.xml"]
    at = body.index(b"<w:body>") + len(b"<w:body>")
    padded = deflated({**parts, "word/document.xml": body[:at] + b"<w:p/>" * 100_000
                        + body[at:].replace(b"</w:p>", b"</w:p><w:p><w:pPr/></w:p>")})
    baseline, _ = au.read_docx((FIXTURES / "poisons-standard-june-2026.docx").read_bytes())
    paragraphs, _ = au.read_docx(padded)
    assert paragraphs == baseline
    assert [r.material() for r in au.parse_poisons_standard(document(padded), ALL).records] == \
        [r.material() for r in parse("poisons-standard-june-2026.docx", ALL).records]


def test_too_many_elements_are_refused():
    table = b"<w:tbl>" + b"<w:tr/>" * (au.MAX_ELEMENTS + 1) + b"</w:tbl>"
    with pytest.raises(ExtractionError, match="more than 2,000,000 elements"):
        au.read_docx(deflated({"word/document.xml": WORD_OPEN + table + WORD_CLOSE}))


def test_one_paragraph_of_too_many_elements_is_refused():
    runs = b"<w:p>" + b"<w:r/>" * (au.MAX_PARAGRAPH_ELEMENTS + 1) + b"</w:p>"
    with pytest.raises(ExtractionError, match="more than 20,000 elements in one paragraph"):
        au.read_docx(deflated({"word/document.xml": WORD_OPEN + runs + WORD_CLOSE}))
