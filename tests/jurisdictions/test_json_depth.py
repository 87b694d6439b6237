"""``jurisdictions.parsing``'s bound on JSON nesting (checked before ``json.loads`` on every
answer of the US and Australian APIs): brackets inside strings nest nothing, escapes are
honoured, an unterminated string hides what follows — the answers of a byte-by-byte count,
which it replaced because that count took 60 ms a megabyte."""

from __future__ import annotations

import json
import random

import pytest

from jurisdictions.parsing import MAX_JSON_DEPTH, _json_depth_ok, load_json
from scrapers.errors import ExtractionError


def counted(content: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """The byte-by-byte count: the behaviour to keep."""
    depth, in_string, escaped = 0, False, False
    for byte in content:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


CASES = [
    b"", b"{}", b"[]", b"[" * 64 + b"]" * 64, b"[" * 65 + b"]" * 65, b"[" * 65,
    b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
    b'["\\"' + b"[" * 70 + b'"]', b'["\\\\"' + b"[" * 70 + b"]",
    b'["unterminated ' + b"[" * 70, b'"\\' + b"[" * 70, b"]]]]" + b"[" * 66,
    b'{"k": ["x", {"y": "}}}}"}, "\\u005b"]}', b'"a\nb' + b"{" * 80,
]


@pytest.mark.parametrize("content", CASES)
def test_the_bound_answers_as_the_byte_count(content: bytes) -> None:
    assert _json_depth_ok(content) is counted(content)


def test_random_documents_of_brackets_quotes_and_escapes_answer_alike() -> None:
    rng = random.Random(20261203)
    alphabet = b'[]{}"\\ a,:'
    for _ in range(3000):
        content = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        limit = rng.randint(0, 6)
        assert _json_depth_ok(content, limit) is counted(content, limit), content


def test_an_api_answer_nested_too_deep_is_refused_and_a_real_one_read() -> None:
    nested: object = 1
    for _ in range(MAX_JSON_DEPTH):
        nested = [nested]
    deep = json.dumps({"results": nested}).encode()
    with pytest.raises(ExtractionError, match="nested deeper"):
        load_json(deep, "documents.json")
    fine = {"results": [{"title": "Schedules of Controlled Substances: [Placement] {x}",
                         "agencies": [{"name": "DEA", "raw": "\"quoted\" ]]]"}]}]}
    assert load_json(json.dumps(fine).encode(), "documents.json") == fine
