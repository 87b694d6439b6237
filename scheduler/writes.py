"""Parts of applying one source's decision in a run's transaction (``pipeline.write_outcome``):
the pending-item steps and the dated scheduling actions its document states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reports.diff import PendingStep, SourceOutcome
from scrapers.store import RunWriter


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
