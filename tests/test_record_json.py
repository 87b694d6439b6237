"""``scrapers.records.record_json`` (how the run writer stores a record) writes the text
``json.dumps(record.as_dict(), ensure_ascii=False, sort_keys=True)`` wrote, for the real
records the parsers make from the fixtures and for records with non-ASCII text, empty fields,
dates and control-free quotes; and it reads back as the same record."""

from __future__ import annotations

import dataclasses
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
