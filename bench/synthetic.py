"""Synthetic, realistic-size regulator documents for the benchmarks (written to a temporary
cache folder, never committed): the constructed test fixtures are a few dozen entries, the
real documents are thousands, and a benchmark on the former would flatter the parsers.

* ``poisons_standard_docx``: a Poisons Standard Word original with 4,278 entries across
  Schedules 2–10 (the June 2026 Standard's count) plus appendices, in the paragraph styles the
  parser reads (tests/fixtures/au/make_fixtures.py: ActHead1, PoisonsStandardScheduleEntry,
  Normal-hanging, the qualification styles), with the run and paragraph properties and run
  splits Word writes, so that word/document.xml has a real document's bulk (~1 MB zipped).
* ``ecfr_part_1308``: Part 1308 as the eCFR versioner serves it, in the layout of
  tests/fixtures/us/ecfr-part1308.xml: ~690 coded entries across §§ 1308.11–1308.15, other-
  names rows, plus the long exemption tables of §§ 1308.22–1308.34 that the parser must skip.
* ``federal_register_pages``: documents.json answers with ~650 DEA rules and proposed rules
  on Part 1308 (one page: ``per_page=1000``) and ~50 for the ketamine term query, with the
  real 1999 ketamine documents of the fixtures among them.

Names and wording are generated (deterministic seed): sizes and structure are what matter.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import random
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

from common import CACHE, FIXTURES, Corpus

#: Bump when a generator changes: cached documents are keyed by it.
VERSION = "5"

#: Entries per schedule, 4,278 in all (the June 2026 Standard's total; Schedule 8's 85 is
#: its real count, the others are an estimate of the real proportions).
AU_SCHEDULE_ENTRIES = {"2": 330, "3": 160, "4": 1480, "5": 260, "6": 1050, "7": 230, "8": 85,
                       "9": 620, "10": 63}
AU_APPENDIX_ENTRIES = {"B": 190, "C": 60, "D": 70, "E": 240, "F": 200, "G": 40, "H": 20,
                       "J": 60, "K": 140, "L": 30, "M": 20}
AU_HEADINGS = {
    "2": "Pharmacy Medicine", "3": "Pharmacist Only Medicine",
    "4": "Prescription Only Medicine, or Prescription Animal Remedy", "5": "Caution",
    "6": "Poison", "7": "Dangerous Poison", "8": "Controlled Drug",
    "9": "Prohibited Substance",
    "10": "Substances of such danger to health as to warrant prohibition of sale, supply and use",
}

_SYLLABLES = ("a", "ba", "ce", "dro", "fen", "glu", "hy", "imi", "ke", "lo", "me", "na", "oxy",
              "pra", "quo", "ri", "sul", "ta", "tri", "va", "xy", "zo", "clo", "flu", "bro",
              "pro", "eth", "meth", "but", "pent", "hex", "morph", "cod", "tra", "dia", "ven")
_SUFFIXES = ("mide", "pam", "lol", "zine", "tadine", "cillin", "statin", "fen", "pril", "sartan",
             "dronate", "oxacin", "azole", "mycin", "tidine", "pine", "triptan", "one", "ine",
             "ol", "ate", "amine", "orphan", "azepam", "barbital", "fentanil", "cathinone")
_LOCANTS = ("4-", "2,5-", "N-", "N,N-", "3,4-", "1-", "alpha-", "5-")


def _names(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
        name = stem + rng.choice(_SUFFIXES)
        if rng.random() < 0.18:
            name = rng.choice(_LOCANTS) + name
        if rng.random() < 0.06:
            name += " " + rng.choice(("acetate", "hydrochloride", "sulfate", "oxide", "acid"))
        if name not in taken:
            taken.add(name)
            found.append(name)
    return found


# --- the Poisons Standard ------------------------------------------------------------------

_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_TAILS = (
    " in preparations for oral use containing {n} mg or less per dosage unit",
    " except when included in Schedule {s}",
    " for human therapeutic use",
    " in preparations containing {n} per cent or less of {x}",
    " for veterinary use when packed and labelled for injection",
    " except in preparations for dermal use containing {n} per cent or less",
    "",
    "",
)
_QUALIFICATIONS = (
    "(a)\tin divided preparations containing {n} mg or less of {x} per dosage unit in packs "
    "of not more than {m} dosage units; or",
    "(b)\tin undivided preparations containing {n} mg or less of {x} per {m} mL; or",
    "(c)\tin preparations for topical use containing {n} per cent or less of {x}, when "
    "labelled with a recommended daily dose;",
    "except when included in Schedule {s} or separately specified in these Schedules.",
    "(i)\twhen supplied in a container with a child-resistant closure;",
)


def _au_entries(rng: random.Random) -> Iterator[tuple[str, str, list[str]]]:
    """(section, entry text, qualification texts), in document order."""
    taken: set[str] = set()
    pool: list[str] = []
    plan = [(label, n) for label, n in AU_SCHEDULE_ENTRIES.items()] + \
        [(f"Appendix {letter}", n) for letter, n in AU_APPENDIX_ENTRIES.items()]
    for section, count in plan:
        # A share of each section reuses names of other sections (a substance in several
        # schedules at different strengths: one record, several entries).
        reused = int(count * (0.3 if section in ("2", "3", "5", "7") else
                              0.15 if section.startswith("Appendix") else 0.05))
        names = sorted(rng.sample(pool, min(reused, len(pool))) +
                       _names(rng, count - min(reused, len(pool)), taken))
        pool.extend(names)
        if section == "8":
            names = sorted({*names[:-2], "ketamine", "esketamine"})
        for name in names:
            upper = name.upper().replace("-", "\u2011")  # noBreakHyphen as the register writes
            marker = rng.choices(("", "#", "*"), (0.93, 0.04, 0.03))[0]
            fields = {"n": rng.randint(1, 500), "m": rng.randint(5, 200),
                      "s": rng.choice(("2", "3", "4", "6")), "x": name.lower()}
            text = marker + upper + rng.choice(_TAILS).format(**fields) + "."
            qualifications = [rng.choice(_QUALIFICATIONS).format(**fields)
                              for _ in range(rng.choices((0, 1, 2, 3), (0.6, 0.2, 0.12, 0.08))[0])]
            yield section, text, qualifications


def _run(text: str, rsid: str) -> str:
    """A run as Word writes it: properties, then text; non-breaking hyphens as elements."""
    props = ('<w:rPr><w:rFonts w:ascii="Arial" w:hAnsi="Arial" w:cs="Arial"/>'
             '<w:sz w:val="20"/><w:szCs w:val="20"/><w:lang w:eastAsia="en-AU"/></w:rPr>')
    parts = []
    for i, chunk in enumerate(text.split("\u2011")):
        if i:
            parts.append(f'<w:r w:rsidRPr="{rsid}">{props}<w:noBreakHyphen/></w:r>')
        for piece in chunk.split("\t"):
            if piece:
                parts.append(f'<w:r w:rsidRPr="{rsid}">{props}'
                             f'<w:t xml:space="preserve">{escape(piece)}</w:t></w:r>')
            parts.append(f'<w:r>{props}<w:tab/></w:r>')
        parts.pop()  # the tab after the last piece
    return "".join(parts)


def _paragraph(style_id: str, text: str, rng: random.Random) -> str:
    rsid = f"{rng.randrange(16 ** 8):08X}"
    # Word splits a paragraph's text into several runs (spell check, revisions).
    words = text.split(" ")
    cut = sorted(rng.sample(range(1, len(words)), min(len(words) - 1, rng.randint(0, 2)))) \
        if len(words) > 1 else []
    pieces, start = [], 0
    for index in [*cut, len(words)]:
        pieces.append(" ".join(words[start:index]) + (" " if index < len(words) else ""))
        start = index
    runs = "".join(_run(piece, rsid) for piece in pieces)
    return (f'<w:p w:rsidR="{rsid}" w:rsidRDefault="{rsid}" w:rsidP="{rsid}"><w:pPr>'
            f'<w:pStyle w:val="{style_id}"/><w:spacing w:before="60" w:after="60"/>'
            f'<w:ind w:left="567" w:hanging="567"/></w:pPr>{runs}</w:p>')


def poisons_standard_docx(seed: int = 1, *, october: bool = False
                          ) -> tuple[bytes, dict[str, int]]:
    """The synthetic Standard (Word .docx bytes) and its counts; ``october``: the same
    entries under the next instrument's cover (the October 2026 Standard of the fixtures)."""
    spec = importlib.util.spec_from_file_location("make_fixtures",
                                                  FIXTURES / "au" / "make_fixtures.py")
    assert spec and spec.loader
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    # One paragraph per style through python-docx: the package, styles.xml and the style
    # ids the register's styles get; the body is then written in bulk.
    sample = mf.build_docx([(name, name) for name in ("Normal", *mf.CUSTOM_STYLES)])
    with zipfile.ZipFile(io.BytesIO(sample)) as package:
        parts = {info.filename: package.read(info.filename) for info in package.infolist()}
    body = parts["word/document.xml"].decode()
    style_ids = dict((name, sid) for sid, name in re.findall(
        r'<w:pStyle w:val="([^"]+)"/></w:pPr><w:r><w:t>([^<]+)</w:t>', body))
    style_ids.setdefault("Normal", "Normal")
    rng = random.Random(seed)
    paragraphs = [_paragraph(style_ids[style], text.replace("\u2014", "\u2014"), rng)
                  for style, text in (mf.cover(mf.OCTOBER, "1 October 2026") if october
                                      else mf.cover(mf.JUNE, "1 June 2026"))]
    entries = qualifications = 0
    section = None
    qual_styles = (mf.PARA, mf.CAVEAT, mf.PARAGRAPH, mf.SUB)
    for label, text, quals in _au_entries(rng):
        if label != section:
            section = label
            heading = f"Schedule {label}\u2014{AU_HEADINGS[label]}" if label.isdigit() else \
                f"{label}\u2014Substances listed for additional controls"
            paragraphs.append(_paragraph(style_ids[mf.HEAD], heading, rng))
            paragraphs.append(_paragraph(style_ids["Normal"],
                                         f"{heading.split(chr(0x2014))[0]} includes the "
                                         "following poisons.", rng))
        style = mf.HANGING if rng.random() < 0.15 else mf.ENTRY
        paragraphs.append(_paragraph(style_ids[style], text, rng))
        entries += label.isdigit()
        for qual in quals:
            paragraphs.append(_paragraph(style_ids[rng.choice(qual_styles)], qual, rng))
            qualifications += 1
    head, _, tail = body.partition("<w:body>")
    sect = tail[tail.index("<w:sectPr"):]
    parts["word/document.xml"] = (head + "<w:body>" + "".join(paragraphs) + sect).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data,
                             compress_type=zipfile.ZIP_DEFLATED)
    counts = {"schedule entries": entries, "qualification paragraphs": qualifications,
              "document.xml bytes": len(parts["word/document.xml"])}
    return out.getvalue(), counts


# --- eCFR Part 1308 -------------------------------------------------------------------------

#: (section, schedule, [(letter, heading, entries, sub-items per numbered entry)]).
ECFR_SECTIONS = (
    ("1308.11", "I", [("b", "Opiates", 100), ("c", "Opium derivatives", 30),
                      ("d", "Hallucinogenic substances", 110), ("e", "Depressants", 10),
                      ("f", "Stimulants", 25), ("g", "Cannabimimetic agents", 40),
                      ("h", "Temporary listing of substances subject to emergency scheduling",
                       60)]),
    ("1308.12", "II", [("b", "Substances, vegetable origin or chemical synthesis", 12),
                       ("c", "Opiates", 50), ("d", "Stimulants", 8), ("e", "Depressants", 6),
                       ("f", "Hallucinogenic substances", 2), ("g", "Immediate precursors", 5)]),
    ("1308.13", "III", [("b", "Stimulants", 6), ("c", "Depressants", 17),
                        ("d", "Nalorphine", 1), ("e", "Narcotic drugs", 8),
                        ("f", "Anabolic steroids", 75), ("g", "Hallucinogenic substances", 1)]),
    ("1308.14", "IV", [("b", "Narcotic drugs", 4), ("c", "Depressants", 70),
                       ("d", "Fenfluramine", 1), ("e", "Stimulants", 25), ("f", "Other", 6)]),
    ("1308.15", "V", [("c", "Narcotic drugs", 4), ("d", "Stimulants", 2),
                      ("e", "Depressants", 8)]),
)
#: Non-schedule sections and the rows of their exemption tables (columns: name, company,
#: form, date, ...), which the parser must walk past.
ECFR_TABLE_SECTIONS = (("1308.22", "Excluded substances", 640, 3),
                       ("1308.24", "Exempt chemical preparations", 700, 5),
                       ("1308.32", "Exempted prescription preparations", 420, 4),
                       ("1308.34", "Exempt anabolic steroid products", 120, 4))
_INTRO = ("Unless specifically excepted or unless listed in another schedule, any material, "
          "compound, mixture, or preparation which contains any quantity of the following "
          "substances, including its salts, isomers, and salts of isomers whenever the "
          "existence of such salts, isomers, and salts of isomers is possible within the "
          "specific chemical designation:")


def _table(rows: list[str]) -> str:
    return ('<GPOTABLE CDEF="s50,8" COLS="2" OPTS="L0,tp0">\n<BOXHD><CHED H="1"/>'
            '<CHED H="1"/></BOXHD>\n' + "\n".join(rows) + "\n</GPOTABLE>\n")


def _cita(rng: random.Random, count: int) -> str:
    amendments = ", ".join(f"{rng.randint(39, 90)} FR {rng.randint(100, 99999)}, "
                           f"{rng.choice(('Jan.', 'Mar.', 'June', 'Aug.', 'Oct.'))} "
                           f"{rng.randint(1, 28)}, {rng.randint(1975, 2025)}"
                           for _ in range(count))
    return f'<CITA TYPE="N">[38 FR 8254, Mar. 30, 1973, as amended at {amendments}]</CITA>\n'


def ecfr_part_1308(seed: int = 2) -> tuple[bytes, dict[str, int]]:
    rng = random.Random(seed)
    fixture = (FIXTURES / "us" / "ecfr-part1308-gpotable.xml").read_text(encoding="utf-8")
    # Keep the fixture's real § 1308.13(c) wording (ketamine 7285 and its other names).
    ketamine_rows = re.findall(r"<ROW><ENT I=\"0\d\">\(7\) Ketamine.*?</ROW>\n<ROW>.*?</ROW>",
                               fixture)[0]
    taken: set[str] = set()
    codes = iter(rng.sample(range(1000, 9999), 5000))
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           "<!-- SYNTHETIC benchmark document (bench/synthetic.py): not the law. -->\n",
           '<DIV5 N="1308" NODE="21:9.0.1.1.9" TYPE="PART">\n'
           "<HEAD>PART 1308—SCHEDULES OF CONTROLLED SUBSTANCES</HEAD>\n"
           "<AUTH><HED>Authority:</HED><PSPACE>21 U.S.C. 811, 812, 871(b), 956(b), unless "
           "otherwise noted.</PSPACE></AUTH>\n",
           '<DIV7 N="1" NODE="21:9.0.1.1.9.1" TYPE="SUBJGRP"><HEAD>General Information</HEAD>\n'
           '<DIV8 N="§ 1308.01" TYPE="SECTION"><HEAD>§ 1308.01   Scope of this part.</HEAD>'
           "<P>Schedules of controlled substances established by section 202 of the Act "
           "are set forth in this part.</P></DIV8>\n</DIV7>\n",
           '<DIV7 N="2" NODE="21:9.0.1.1.9.2" TYPE="SUBJGRP"><HEAD>Schedules</HEAD>\n']
    coded = 0
    for section, schedule, paragraphs in ECFR_SECTIONS:
        out.append(f'<DIV8 N="§ {section}" TYPE="SECTION">\n<HEAD>§ {section}   Schedule '
                   f"{schedule}.</HEAD>\n<P>(a) Schedule {schedule} shall consist of the drugs "
                   "and other substances, by whatever official name, common or usual name, "
                   "chemical name, or brand name designated, listed in this section. Each drug "
                   "or substance has been assigned the DEA Controlled Substances Code Number "
                   "set forth opposite it.</P>\n")
        for letter, heading, count in paragraphs:
            out.append(f"<P>({letter}) <I>{heading}.</I> {_INTRO}</P>\n")
            rows = []
            for number, name in enumerate(_names(rng, count, taken), start=1):
                if section == "1308.13" and letter == "c" and number == 7:
                    rows.append(ketamine_rows)
                    coded += 1
                    continue
                chemical = "-".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(4, 9)))
                text = f"({number}) {name.capitalize()}" + \
                    (f" ({chemical}yl-N-phenyl{rng.choice(_SUFFIXES)})" if rng.random() < 0.8
                     else "") + (", its salts, isomers, and salts of isomers"
                                 if rng.random() < 0.3 else "")
                rows.append(f'<ROW><ENT I="01">{escape(text)}</ENT><ENT>{next(codes)}</ENT></ROW>')
                coded += 1
                if rng.random() < 0.35:
                    others = "; ".join(rng.sample(sorted(taken), 3))
                    rows.append(f'<ROW><ENT I="03">Some trade or other names: {escape(others)}.'
                                "</ENT><ENT/></ROW>")
            out.append(_table(rows))
        out.append(_cita(rng, 60 if section == "1308.11" else 25))
        out.append("</DIV8>\n")
    out.append("</DIV7>\n")
    out.append('<DIV7 N="3" TYPE="SUBJGRP"><HEAD>Excluded and Exempted Substances</HEAD>\n')
    table_rows = 0
    for section, title, count, columns in ECFR_TABLE_SECTIONS:
        out.append(f'<DIV8 N="§ {section}" TYPE="SECTION">\n<HEAD>§ {section}   {title}.</HEAD>\n'
                   f"<P>(a) The following are {title.lower()} as listed below:</P>\n"
                   f'<GPOTABLE CDEF="s50,r50,8,8" COLS="{columns}" OPTS="L2,tp0">\n'
                   '<BOXHD><CHED H="1">Company</CHED><CHED H="1">Trade name</CHED>'
                   '<CHED H="1">NDC No.</CHED><CHED H="1">Form</CHED></BOXHD>\n')
        for _ in range(count):
            cells = [f"{rng.choice(_SYLLABLES).capitalize()}{rng.choice(_SUFFIXES)} "
                     f"{rng.choice(('Laboratories', 'Pharma Inc.', 'Chemicals Ltd.'))}",
                     f"{rng.choice(_SYLLABLES).capitalize()}{rng.choice(_SUFFIXES)} "
                     f"{rng.randint(1, 500)} mg tablets",
                     f"{rng.randint(10000, 99999)}-{rng.randint(100, 999)}",
                     rng.choice(("Tablet", "Capsule", "Solution", "Injectable", "Cream")),
                     f"{rng.choice(('1/1/1986', '5/27/1998', '3/3/2003', '8/9/2016'))}"]
            out.append("<ROW>" + "".join(f"<ENT>{escape(c)}</ENT>" for c in cells[:columns])
                       + "</ROW>\n")
            table_rows += 1
        out.append("</GPOTABLE>\n" + _cita(rng, 30) + "</DIV8>\n")
    out.append('<DIV8 N="§ 1308.49" TYPE="SECTION"><HEAD>§ 1308.49   Temporary scheduling.</HEAD>'
               "<P>(a) Pursuant to 21 U.S.C. 811(h), the Administrator may temporarily place "
               "substances in schedule I.</P></DIV8>\n</DIV7>\n</DIV5>\n")
    content = "".join(out).encode()
    return content, {"coded entries": coded, "exemption table rows": table_rows}


# --- Federal Register -----------------------------------------------------------------------

def _fr_doc(rng: random.Random, number: str, year: int, name: str, *, proposed: bool) -> dict:
    schedule = rng.choice(("I", "I", "II", "III", "IV", "V"))
    temporary = not proposed and rng.random() < 0.3
    verb = "Temporary Placement" if temporary else "Placement"
    title = f"Schedules of Controlled Substances: {verb} of {name.capitalize()} in Schedule " \
        f"{schedule}"
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    published = f"{year}-{month:02d}-{day:02d}"
    effective = None if proposed else f"{year}-{month:02d}-{min(day + 2, 28):02d}"
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    volume, page = year - 1935, rng.randint(100, 99999)
    return {
        "abstract": (f"The Drug Enforcement Administration {'proposes to place' if proposed else 'places'} "
                     f"{name} (chemical name: {name}-{rng.choice(_SUFFIXES)}), including its "
                     "salts, isomers, and salts of isomers whenever the existence of such salts, "
                     f"isomers, and salts of isomers is possible, in schedule {schedule} of the "
                     "Controlled Substances Act. This action imposes the regulatory controls and "
                     "administrative, civil, and criminal sanctions applicable to schedule "
                     f"{schedule} controlled substances on persons who handle (manufacture, "
                     "distribute, reverse distribute, import, export, engage in research, conduct "
                     "instructional activities or chemical analysis with, or possess), or propose "
                     f"to handle, {name}."),
        "action": "Notice of proposed rulemaking." if proposed else
        ("Temporary amendment; temporary scheduling order." if temporary else "Final rule."),
        "cfr_references": [{"title": 21, "part": 1308, "chapter": None,
                            "citation_url": "https://www.ecfr.gov/current/title-21/part-1308"}],
        "citation": f"{volume} FR {page}",
        "comments_close_on": f"{year}-{min(month + 1, 12):02d}-{day:02d}" if proposed else None,
        "dates": (f"Comments must be submitted on or before {year}-{min(month + 1, 12):02d}-"
                  f"{day:02d}." if proposed else f"Effective {effective}."),
        "document_number": number,
        "effective_on": effective,
        "full_text_xml_url": f"https://www.federalregister.gov/documents/full_text/xml/{year}/"
                             f"{month:02d}/{day:02d}/{number}.xml",
        "html_url": f"https://www.federalregister.gov/documents/{year}/{month:02d}/{day:02d}/"
                    f"{number}/{slug}",
        "pdf_url": f"https://www.govinfo.gov/content/pkg/FR-{published}/pdf/{number}.pdf",
        "publication_date": published,
        "title": title,
        "type": "Proposed Rule" if proposed else "Rule",
    }


def federal_register_pages(seed: int = 3, documents: int = 650,
                           term_documents: int = 45) -> tuple[list[bytes], bytes, dict[str, int]]:
    rng = random.Random(seed)
    us = FIXTURES / "us"
    real = [r for name in ("fr-documents-page1.json", "fr-documents-page2.json")
            for r in json.loads((us / name).read_text())["results"]]
    term_real = json.loads((us / "fr-documents-ketamine.json").read_text())["results"]
    taken: set[str] = set()
    names = _names(rng, documents, taken)
    synthetic = []
    for index, name in enumerate(names):
        year = 1994 + index * 32 // documents
        synthetic.append(_fr_doc(rng, f"{year}-{10000 + index:05d}", year, name,
                                 proposed=rng.random() < 0.45))
    cfr = sorted(real + synthetic, key=lambda r: (r["publication_date"], r["document_number"]))
    page = {"count": len(cfr), "description": "Documents of type Rule and Proposed Rule from "
            "Drug Enforcement Administration affecting 21 CFR 1308", "total_pages": 1,
            "results": cfr}
    term = term_real + rng.sample(synthetic, term_documents - len(term_real))
    term_page = {"count": len(term), "description": "Documents matching 'ketamine' of type Rule "
                 "and Proposed Rule from Drug Enforcement Administration", "total_pages": 1,
                 "results": sorted(term, key=lambda r: (r["publication_date"],
                                                        r["document_number"]))}
    return ([json.dumps(page, indent=1).encode()], json.dumps(term_page, indent=1).encode(),
            {"cfr query documents": len(cfr), "term query documents": len(term)})


# --- the realistic corpus --------------------------------------------------------------------

def realistic_corpus(folder: Path = CACHE / "synthetic") -> Corpus:
    """The fixture corpus with the US and AU documents replaced by synthetic realistic-size
    ones (generated once into ``folder``, reused while VERSION and the fixtures stay)."""
    corpus = Corpus.fixtures()
    make = FIXTURES / "au" / "make_fixtures.py"
    key = hashlib.sha256(VERSION.encode() + make.read_bytes() +
                         (FIXTURES / "us" / "ecfr-part1308.xml").read_bytes()).hexdigest()[:12]
    target = folder / key
    if not (target / "counts.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        word, au_counts = poisons_standard_docx()
        part, us_counts = ecfr_part_1308()
        pages, term, fr_counts = federal_register_pages()
        (target / "poisons-standard.docx").write_bytes(word)
        (target / "poisons-standard-october.docx").write_bytes(
            poisons_standard_docx(october=True)[0])
        (target / "ecfr-part1308.xml").write_bytes(part)
        (target / "fr-cfr-page1.json").write_bytes(pages[0])
        (target / "fr-term.json").write_bytes(term)
        (target / "counts.json").write_text(json.dumps({**au_counts, **us_counts, **fr_counts}))
    corpus.au_word = (target / "poisons-standard.docx").read_bytes()
    corpus.ecfr_part = (target / "ecfr-part1308.xml").read_bytes()
    corpus.fr_cfr_pages = [(target / "fr-cfr-page1.json").read_bytes()]
    corpus.fr_term = (target / "fr-term.json").read_bytes()
    corpus.label = "realistic"
    corpus.notes = json.loads((target / "counts.json").read_text())
    corpus.notes["folder"] = str(target)
    return corpus


def next_standard_corpus(corpus: Corpus) -> Corpus:
    """``corpus`` on the day the register lists a new Poisons Standard in force (the
    fixtures' October 2026 instrument, F2026L01302): the same entries under a new register id,
    so every Australian record's ``instrument`` changes."""
    import dataclasses

    au = FIXTURES / "au"
    return dataclasses.replace(
        corpus, au_titles=(au / "api-titles-october.json").read_bytes(),
        au_versions=(au / "api-versions-october.json").read_bytes(),
        au_word=(Path(corpus.notes["folder"]) / "poisons-standard-october.docx").read_bytes(),
        label=corpus.label + ", new Poisons Standard")
