"""Classify changes: the previous table of a source against the new one → ``Change`` list.

A keyed diff (outer merge on substance, not ``DataFrame.compare``) so that rows that appear,
disappear or move are each classified once. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scrapers.records import (
    MATERIAL_FIELDS,
    STATUS_FIELDS,
    PendingItem,
    StatusRecord,
    to_frame,
)

#: Kinds that concern a source, not a substance.
SOURCE_KINDS = ("source_failed", "extraction_failed", "recovered")


@dataclass(frozen=True)
class Change:
    """A classified difference for one substance of one source."""

    kind: str
    jurisdiction: str
    substance: str | None
    source_id: str
    summary: str
    before: StatusRecord | None
    after: StatusRecord | None
    effective_date: str | None = None
    fields: tuple[str, ...] = ()  # which material fields differ


def display_name(substance: str) -> str:
    return substance[:1].upper() + substance[1:]


def schedule_label(record: StatusRecord | None) -> str:
    if record is None or record.status == "not_controlled":
        return "not controlled"
    label = f"Schedule {record.schedule}" if record.schedule else "controlled"
    if record.status == "not_in_force":
        label += " (not yet in force)"
    return label


def classify(before: StatusRecord | None, after: StatusRecord | None) -> tuple[str, ...] | None:
    """(kind, *differing fields) for a pair, or None when nothing material changed."""
    if before is None and after is None:
        return None
    if before is not None and after is not None:
        differing = tuple(f for f in MATERIAL_FIELDS
                          if getattr(before, f) != getattr(after, f))
        if not differing:
            return None
    else:
        differing = MATERIAL_FIELDS
    was = before is not None and before.status == "controlled"
    now = after is not None and after.status == "controlled"
    if not was and now:
        return ("scheduled", *differing)
    if was and not now:
        return ("descheduled", *differing)
    if was and now and any(f in differing for f in STATUS_FIELDS):
        return ("rescheduled", *differing)
    return ("amended", *differing)


def diff_records(before: Sequence[StatusRecord], after: Sequence[StatusRecord], *,
                 jurisdiction_name: str, newly_watched: Iterable[str] = ()) -> list[Change]:
    """Changes between a source's previous current records and its new ones.

    ``newly_watched`` substances had no record because they were not watched before: their
    first record is a baseline, not a "scheduled" change.
    """
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
        verdict = classify(old, new)
        if verdict is None:
            continue
        kind, *fields = verdict
        reference = new or old
        assert reference is not None
        result.append(Change(
            kind=kind, jurisdiction=reference.jurisdiction, substance=substance,
            source_id=reference.source_id,
            summary=summarise(kind, substance, jurisdiction_name, old, new),
            before=old, after=new,
            effective_date=new.effective_from if new is not None else None,
            fields=tuple(fields)))
    return result


def summarise(kind: str, substance: str, jurisdiction_name: str, before: StatusRecord | None,
              after: StatusRecord | None) -> str:
    """The one-line headline: ``Ketamine — Canada: Schedule I → III (rescheduled)``."""
    name = display_name(substance)
    if kind == "rescheduled" and before is not None and after is not None:
        move = f"Schedule {before.schedule} → {after.schedule}" \
            if before.schedule != after.schedule else \
            f"control level {before.control_level} → {after.control_level}"
        return f"{name} — {jurisdiction_name}: {move} ({kind})"
    if kind == "amended" and before is not None and after is not None:
        differing = [f for f in MATERIAL_FIELDS if getattr(before, f) != getattr(after, f)]
        what = ", ".join(f.replace("_", " ") for f in differing)
        return f"{name} — {jurisdiction_name}: {what} changed, {schedule_label(after)} " \
               f"unchanged ({kind})"
    return f"{name} — {jurisdiction_name}: {schedule_label(before)} → {schedule_label(after)} " \
           f"({kind})"


def pending_summary(item: PendingItem, jurisdiction_name: str) -> str:
    target = f" to Schedule {item.proposed_schedule}" if item.proposed_schedule else ""
    when = f", {item.date_label} {item.date}" if item.date else ""
    action = item.action.replace("_", " ")
    return f"{display_name(item.substance)} — {jurisdiction_name}: {action}{target} " \
           f"({item.reference}{when}) (pending)"


def source_summary(kind: str, source_id: str, jurisdiction_name: str, detail: str) -> str:
    words = {"source_failed": "source failing", "extraction_failed": "document not understood",
             "recovered": "source recovered"}
    return f"{jurisdiction_name} — {source_id}: {words.get(kind, kind)}" + (
        f": {detail}" if detail else "")


