"""The validated records the parsers make from the constructed fixtures (CA, US, AU), for
tests that check a transformation of real records (the keyed diff, the stored JSON, text
normalisation) rather than a parser."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from jurisdictions import au, ca, us
from jurisdictions.substances import build_watch_list
from scrapers.records import Document, StatusRecord, validate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ALL = build_watch_list("all")
KETAMINES = build_watch_list(["ketamine", "esketamine", "arketamine"])
RETRIEVED = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)

#: The register's facts the fetch plan gives the Australian parser (as its fixtures say).
AU_META = {
    "june": {"instrument_id": "F2026L00633", "register_id": "F2026L00633",
             "instrument_title": "Therapeutic Goods (Poisons Standard\u2014June 2026) "
                                 "Instrument 2026",
             "commencement": "2026-06-01", "registered_at": "2026-05-28T12:59:30+00:00"},
    "october": {"instrument_id": "F2026L01302", "register_id": "F2026L01302",
                "instrument_title": "Therapeutic Goods (Poisons Standard\u2014October 2026) "
                                    "Instrument 2026",
                "commencement": "2026-10-01", "registered_at": "2026-09-25T03:10:00+00:00"},
}
ECFR_META = {"up_to_date_as_of": "2026-06-10", "latest_amended_on": "2024-01-02",
             "fetched_via": "versioner"}


@cache
def fixture_records(name: str, watch_all: bool = True) -> tuple[StatusRecord, ...]:
    """The records of one fixture document (``"ca/cdsa-mini.xml"``, ``"us/…"``, ``"au/…"``),
    validated as the pipeline does."""
    watch = ALL if watch_all else KETAMINES
    folder, _, file = name.partition("/")
    content = (FIXTURES / folder / file).read_bytes()
    sha = hashlib.sha256(content).hexdigest()

    def document(source_id: str, url: str, meta: dict[str, str]) -> Document:
        return Document(source_id=source_id, url=url, content=content, sha256=sha,
                        retrieved_at=RETRIEVED, meta=meta)

    if folder == "ca":
        source_id = "ca-cdsa" if file.startswith("cdsa") else "ca-csr"
        parser = ca.parse_cdsa if source_id == "ca-cdsa" else ca.parse_regulations
        result = parser(document(source_id, "https://laws-lois.justice.gc.ca/eng/XML/x.xml",
                                 {}), watch)
    elif folder == "us":
        source_id = us.ECFR_SOURCE_ID
        result = us.parse_ecfr(document(source_id, "https://www.ecfr.gov/api/versioner/v1/"
                                        "full/2026-06-10/title-21.xml?part=1308", ECFR_META),
                               watch)
    else:
        source_id = au.SOURCE_ID
        meta = AU_META["october" if "october" in file else "june"]
        result = au.parse_poisons_standard(
            document(source_id, "https://www.legislation.gov.au/F2026L00633/asmade/text/"
                     "original/word", meta), watch)
    return validate(result, source_id=source_id, watched=watch.keys).records
