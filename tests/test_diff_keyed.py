"""The keyed diff in plain Python (``reports.diff.diff_records``) gives the same ``Change``
list as the pandas outer merge it replaced (``diff_records_frame``), on the real records the
parsers make from the fixtures (CA, US, AU; watch = "all" and a watch list): pairs of real
documents, and the records of one document with entries removed, added, re-worded,
re-scheduled, emptied (None) and newly watched."""

from __future__ import annotations

import dataclasses
import random

import pytest

from reports.diff import diff_records
from scrapers.records import MATERIAL_FIELDS, StatusRecord
from tests.support.fixture_records import fixture_records
from tests.support.pandas_diff import diff_records_frame

records = fixture_records


def both(before, after, newly_watched=()):
    kwargs = {"jurisdiction_name": "Somewhere", "newly_watched": tuple(newly_watched)}
    plain = diff_records(list(before), list(after), **kwargs)
    frame = diff_records_frame(list(before), list(after), **kwargs)
    return plain, frame


PAIRS = [
    ("ca/cdsa-mini.xml", "ca/cdsa-mini-item14-without-ketamine.xml"),
    ("ca/csr-mini.xml", "ca/ncr-mini.xml"),
    ("us/ecfr-part1308.xml", "us/ecfr-part1308-ptext.xml"),
    ("us/ecfr-part1308.xml", "us/ecfr-part1308-gpotable.xml"),
    ("au/poisons-standard-june-2026.docx", "au/poisons-standard-october-2026.docx"),
    ("au/poisons-standard-june-2026.docx", "au/poisons-standard-ketamine-s9.docx"),
    ("au/poisons-standard-june-2026.docx", "au/poisons-standard-no-ketamine.docx"),
    ("au/poisons-standard-june-2026.docx", "au/poisons-standard-trivial-names.docx"),
]


@pytest.mark.parametrize("watch_all", [True, False])
@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_real_document_pairs_give_the_same_changes(old, new, watch_all):
    before, after = records(old, watch_all), records(new, watch_all)
    for a, b in ((before, after), (after, before), (before, before), ((), after), (before, ())):
        plain, frame = both(a, b)
        assert plain == frame
    if new.endswith("october-2026.docx"):  # a new Standard: every entry's instrument moved
        assert len(both(before, after)[0]) == len(before)


def mutate(records_: tuple[StatusRecord, ...], seed: int) -> list[StatusRecord]:
    """The records with some removed, some added, some fields changed or emptied."""
    rng = random.Random(seed)
    out: list[StatusRecord] = []
    for record in records_:
        roll = rng.random()
        if roll < 0.1:
            continue  # gone
        if roll < 0.35:
            name = rng.choice(MATERIAL_FIELDS)
            value = getattr(record, name)
            if name == "status":
                new: object = rng.choice(["controlled", "not_controlled", "not_in_force"])
            elif value is None or rng.random() < 0.5:
                new = rng.choice([None, "X", "V", "C2", "an amended wording"])
            else:
                new = None
            record = dataclasses.replace(record, **{name: new})
        elif roll < 0.4:
            # a non-material field only: not a change
            record = dataclasses.replace(record, retrieved_at="2027-01-01T00:00:00+00:00",
                                         evidence_date="2027-01-01")
        out.append(record)
        if rng.random() < 0.05:
            out.append(dataclasses.replace(record, substance=record.substance + " added"))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", ["ca/cdsa-mini.xml", "ca/csr-mini.xml",
                                  "us/ecfr-part1308.xml", "au/poisons-standard-june-2026.docx"])
def test_mutated_real_records_give_the_same_changes(name, seed):
    before = records(name)
    after = mutate(before, seed)
    plain, frame = both(before, after)
    assert plain == frame
    assert plain, "the mutation changed something"
    plain, frame = both(after, before)
    assert plain == frame
    added = [r.substance for r in after if r.substance.endswith(" added")]
    plain, frame = both(before, after, newly_watched=added)
    assert plain == frame
    assert not any(c.substance in added for c in plain)
