"""``scrapers.records.record_json`` (how the run writer stores a record) writes the text
``json.dumps(record.as_dict(), ensure_ascii=False, sort_keys=True)`` wrote, for the real
records the parsers make from the fixtures and for records with non-ASCII text, empty fields,
dates and control-free quotes; and it reads back as the same record."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from scrapers.records import StatusRecord, record_json
from tests.support.fixture_records import fixture_records as records

NAMES = ["ca/cdsa-mini.xml", "ca/csr-mini.xml", "us/ecfr-part1308.xml",
         "au/poisons-standard-june-2026.docx"]


def reference(record: StatusRecord) -> str:
    return json.dumps(record.as_dict(), ensure_ascii=False, sort_keys=True)


@pytest.mark.parametrize("name", NAMES)
def test_real_records_are_written_as_before(name):
    found = records(name)
    assert found
    for record in found:
        text = record_json(record)
        assert text == reference(record)
        assert StatusRecord.from_dict(json.loads(text)) == record


def test_unusual_values_are_written_as_before():
    record = records("ca/cdsa-mini.xml")[0]
    odd = dataclasses.replace(
        record, listed_as='Kétamine "(±)" — 2‑(2‑chlorophényl) \\ \u2028', provision=None,
        dates=(("consolidated as of", "2026-06-05"), ("à jour", "2026-06-01")),
        review="a generic entry: 𝔄 analogue", legal_note="")
    assert record_json(odd) == reference(odd)
    assert StatusRecord.from_dict(json.loads(record_json(odd))) == odd


@pytest.mark.parametrize("digest", [False, True])
def test_a_stored_row_reads_back_as_the_interval_its_constructor_makes(digest):
    """The store fills a read interval's fields directly (``_interval_of``): it must be the
    interval ``StatusInterval(...)`` makes, with every field — one added to the dataclass
    and not filled in fails here."""
    from scrapers.rows import StatusInterval
    from scrapers.store import _interval_of

    record = records("ca/cdsa-mini.xml")[0]
    text = record_json(record)
    row = {"id": 7, "record": text, "source_id": record.source_id,
           "valid_from": "2026-01-05T06:00:00Z", "valid_to": None,
           "last_confirmed_at": "2026-01-05T06:00:00Z", "last_document_sha256": "a" * 64,
           "legal_from": "2026-01-01", "legal_to": None, "backfilled": 0}
    read = _interval_of(row, confirmed={record.source_id: ("2026-02-01T06:00:00Z", "b" * 64)},
                        digest=digest)
    made = StatusInterval(
        id=7, record=record, valid_from="2026-01-05T06:00:00Z", valid_to=None,
        last_confirmed_at="2026-02-01T06:00:00Z", last_document_sha256="b" * 64,
        legal_from="2026-01-01", legal_to=None, backfilled=False,
        record_digest=hashlib.sha256(text.encode()).hexdigest() if digest else "")
    assert read == made
    assert vars(read).keys() == {f.name for f in dataclasses.fields(StatusInterval)}
    assert read.record.dates == record.dates and type(read.record.dates[0]) is tuple
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.valid_to = "2026-03-01T00:00:00Z"  # type: ignore[misc]
