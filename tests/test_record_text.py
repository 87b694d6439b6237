"""``normalise_text`` and ``name_key`` take a shortcut for printable ASCII (most names of a
Standard): the same text as the full path — control characters, escape sequences, NFC and
NFKD folding, dashes, no-break and repeated spaces, the "- (" rule — on seeded random text
mixing ASCII, its controls and the characters the full path changes, and on the names of the
real fixture records."""

from __future__ import annotations

import random
import unicodedata

import pytest

from scrapers import records as R
from tests.support.fixture_records import fixture_records as records


def full_normalise(text: str) -> str:
    text = R._CONTROLS.sub("", text)
    text = unicodedata.normalize("NFC", text).translate(R._DASHES).replace("\u00a0", " ")
    text = R._SPACES.sub(" ", text).strip()
    return R._SPACE_AFTER_HYPHEN.sub("-", text)


def full_name_key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", full_normalise(text))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return folded.lower().rstrip(" .,;:")


ALPHABET = [chr(c) for c in range(128)] + list("éÉ–—\u2011\u00a0\u2028\x9b\u0301ﬁ") \
    + ["- (", "  ", "\x1b[31m", " ."]


@pytest.mark.parametrize("seed", range(4))
def test_the_shortcut_gives_the_full_result_on_random_text(seed):
    rng = random.Random(seed)
    for _ in range(20_000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
        assert R.normalise_text(text) == full_normalise(text), repr(text)
        assert R.name_key(text) == full_name_key(text), repr(text)


@pytest.mark.parametrize("name", ["ca/cdsa-mini.xml", "us/ecfr-part1308.xml",
                                  "au/poisons-standard-june-2026.docx"])
def test_the_shortcut_gives_the_full_result_on_real_names(name):
    for record in records(name):
        for text in (record.listed_as or "", record.basis, record.substance):
            assert R.normalise_text(text) == full_normalise(text)
            assert R.name_key(text) == full_name_key(text)
