"""Parts of applying one source's decision in a run's transaction (``pipeline.write_outcome``):
the status-interval steps, the pending-item steps and the dated scheduling actions its
document states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reports.diff import Closing, Decision, Opening, PendingStep, Replacement, SourceOutcome
from scrapers.records import StatusRecord
from scrapers.store import RunWriter


def apply_steps(writer: RunWriter, decision: Decision, *, source_id: str, at: datetime,
                backfilled: bool = False) -> None:
    """Close, open and rewrite the status intervals, in the decision's order. A run of
    consecutive openings (a cold ``watch = "all"`` run opens thousands, past segments and
    current ones interleaved, in that order) is one ``open_intervals``, a run of rewrites
    (a new Poisons Standard re-issues thousands of unchanged entries under its new id) one
    ``replace_open_records``: one statement, not one per entry. A run ends wherever the
    kind of step changes, so every statement sees the rows the steps before it left (a
    closing before the opening that follows it)."""
    openings: list[Opening] = []
    replacements: list[StatusRecord] = []

    def flush() -> None:
        if openings:
            writer.open_intervals([o.record for o in openings], at=at,
                                  spans=[(o.legal_from, o.legal_to) for o in openings],
                                  closed=[o.closed for o in openings], backfilled=backfilled)
            openings.clear()
        if replacements:
            writer.replace_open_records(replacements)
            replacements.clear()

    for step in decision.steps:
        if isinstance(step, Replacement):
            if openings:
                flush()
            replacements.append(step.record)
        elif isinstance(step, Opening):
            if replacements:
                flush()
            openings.append(step)
        elif isinstance(step, Closing):
            flush()
            writer.close_intervals(source_id, [step.substance], at=at,
                                   confirmed_at=decision.confirmed_at,
                                   confirmed_sha256=decision.confirmed_sha256,
                                   legal_to=step.legal_to)
    flush()


def apply_pending(writer: RunWriter, steps: Sequence[PendingStep], *, at: datetime) -> None:
    """Open, touch, reopen or resolve the pending rows, as decided."""
    for step in steps:
        if step.action == "open":
            assert step.item is not None
            writer.open_pending(step.item, at=at)
        elif step.action == "touch":
            assert step.item is not None and step.row_id is not None
            writer.touch_pending(step.row_id, step.item, at=at)
        elif step.action == "reopen":
            assert step.item is not None and step.row_id is not None
            writer.reopen_pending(step.row_id, step.item, at=at)
        else:
            assert step.row_id is not None
            writer.resolve_pending(step.row_id, at=at)


def store_actions(writer: RunWriter, outcome: SourceOutcome, *, backfilled: bool = False) -> int:
    """The dated scheduling actions of a healthy parsed document (``ParseResult.actions``),
    each stored once with the document's sha256; nothing from a failed or unread one."""
    result, document = outcome.result, outcome.document
    if not outcome.healthy or result is None or document is None or not result.actions:
        return 0
    return writer.add_actions(result.actions, at=outcome.started_at,
                              document_sha256=document.sha256, backfilled=backfilled)
