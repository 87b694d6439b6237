"""The keyed diff as the pandas outer merge on substance that ``reports.diff.diff_records``
replaced: the reference tests/test_diff_keyed.py holds the plain keyed diff to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from reports.diff import Change, change_of
from scrapers.records import MATERIAL_FIELDS, RECORD_COLUMNS, StatusRecord


def to_frame(records: Iterable[StatusRecord]) -> pd.DataFrame:
    """Records as a DataFrame with fixed columns in a fixed order (empty → the same columns)."""
    frame = pd.DataFrame([r.as_dict() for r in records], columns=list(RECORD_COLUMNS))
    return frame.astype(object).where(frame.notna(), None)


def diff_records_frame(before: Sequence[StatusRecord], after: Sequence[StatusRecord], *,
                       jurisdiction_name: str, newly_watched: Iterable[str] = ()
                       ) -> list[Change]:
    """``diff_records`` as a pandas outer merge on substance."""
    columns = ["substance", *MATERIAL_FIELDS]
    # A sentinel for "no value" so that None compares equal to None across the merge.
    previous = to_frame(before)[columns].fillna("\0")
    current = to_frame(after)[columns].fillna("\0")
    merged = previous.merge(current, on="substance", how="outer", suffixes=("_before", "_after"),
                            indicator=True)
    differs = merged["_merge"] != "both"
    for name in MATERIAL_FIELDS:
        differs |= merged[f"{name}_before"] != merged[f"{name}_after"]
    by_before = {r.substance: r for r in before}
    by_after = {r.substance: r for r in after}
    baseline = set(newly_watched)
    result: list[Change] = []
    for substance in sorted(merged.loc[differs, "substance"]):
        old, new = by_before.get(substance), by_after.get(substance)
        if old is None and substance in baseline:
            continue
        change = change_of(substance, old, new, jurisdiction_name)
        if change is not None:
            result.append(change)
    return result
