"""Entries of the compliance reference in every shape (``pages.interval_view`` of an
interval, as ``reports.entries`` reads it), each scraped value hostile: for the tests of
the entries and of the parts that hold them."""

from __future__ import annotations

import itertools
from typing import Any

NASTY = '<script>alert("x")</script> & \'quoted\''
SHA_A, SHA_B = "a" * 64, "b" * 64
HEALTHS: list[dict[str, Any]] = [
    {"health": "healthy", "disabled": False, "failing": False, "failing_since": None,
     "error": None, "last_healthy_at": "2026-11-20T14:03:00+00:00"},
    {"health": "failing", "disabled": False, "failing": True,
     "failing_since": "2026-11-19T01:00:00+00:00", "error": NASTY,
     "last_healthy_at": "2026-11-18T01:00:00+00:00"},
    {"health": "failing", "disabled": False, "failing": True, "failing_since": None,
     "error": None, "last_healthy_at": None},
    {"health": "disabled", "disabled": True, "failing": False, "failing_since": None,
     "error": None, "last_healthy_at": None},
    {"health": "unknown", "disabled": False, "failing": False, "failing_since": None,
     "error": None, "last_healthy_at": None},
]


def _record(variant: int) -> dict[str, Any]:
    rich = variant % 2 == 0
    return {
        "source_id": "au-poisons-standard" if rich else NASTY, "label": f"Schedule 8 {NASTY}",
        "jurisdiction": "au" if rich else NASTY,
        "control_level": "C2" if rich else None, "level_description": f"strict {NASTY}",
        "review": NASTY if variant % 3 == 0 else None,
        "in_force_words": "in force since 2026-06-01" if rich else None,
        "legal_note": NASTY if variant % 4 == 1 else None,
        "instrument": "F2026L00633" if variant != 5 else None,
        "provision": "Sch. 8" if rich else None,
        "listed_lines": [["KETAMINE.", f"[Other names: {NASTY}]"], [], [NASTY]][variant % 3],
        "parent_entry": NASTY if variant % 5 == 0 else None,
        "basis": "named" if rich else None, "code": "7285" if variant % 3 == 1 else None,
        "code_label": "DEA code", "evidence_date": "2026-06-01" if rich else None,
        "dates": [{"label": NASTY, "date": "2026-06-01"}] if rich else [],
        "first_observed_at": "2026-11-20T14:03:00+00:00" if rich else None,
        "retrieved_at": "2026-11-20T14:03:00+00:00" if variant != 3 else None,
        "source_url": ["https://www.legislation.gov.au/F2026L00633/latest/text?a=1&b=2",
                       "javascript:alert(1)", None, "http://example.org/\"onmouseover=x",
                       "not a url"][variant % 5],
    }


def entry(variant: int, health: dict[str, Any]) -> dict[str, Any]:
    return {
        "record": _record(variant), "primary": variant % 2 == 1, "health": health,
        "source_title": f"Poisons Standard {NASTY}",
        "instrument_title": f"Poisons Standard June 2026 {NASTY}" if variant % 3 == 2 else None,
        "since": "2026-11-19T00:00:00+00:00", "as_of": "2026-11-21T00:00:00+00:00",
        "by_source_check": variant % 4 != 3,
        "evidence": {"role": "latest", "sha256": [SHA_A, None, SHA_B][variant % 3],
                     "href": f"documents/{SHA_A}.docx" if variant % 2 else None},
        "first_evidence": {"role": "first seen", "sha256": [SHA_A, SHA_B, None][variant % 3],
                           "href": None if variant % 2 else f"documents/{SHA_B}.txt"},
    }


CASES = [[entry(variant, health)] for variant, health in
         itertools.product(range(10), HEALTHS)]
