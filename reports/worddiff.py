"""Word-level diff of legal text: two strings in, (operation, text) segments out. Pure."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

#: Words, single punctuation marks and runs of whitespace. Punctuation is its own token so
#: that "(c)(7)" → "(c)(8)" marks only the "7", not the whole pinpoint.
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)

EQUAL, INSERT, DELETE = "equal", "insert", "delete"
Segment = tuple[str, str]


def tokens(text: str) -> list[str]:
    return _TOKENS.findall(text)


def word_diff(before: str | None, after: str | None) -> list[Segment]:
    """Segments that turn ``before`` into ``after``: ``equal`` text, ``delete`` (only in
    before) and ``insert`` (only in after). A deletion comes before the insertion that
    replaces it. ``None`` reads as empty text."""
    old, new = tokens(before or ""), tokens(after or "")
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    raw: list[Segment] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            raw.append((EQUAL, "".join(old[i1:i2])))
            continue
        if op in ("delete", "replace"):
            raw.append((DELETE, "".join(old[i1:i2])))
        if op in ("insert", "replace"):
            raw.append((INSERT, "".join(new[j1:j2])))
    return _merge(_absorb_spaces(raw))


def _absorb_spaces(segments: Sequence[Segment]) -> list[Segment]:
    """A lone space between two edits reads better inside them: "[-a b-][+c d+]" rather
    than "[-a-][+c+] [-b-][+d+]"."""
    result: list[Segment] = []
    for index, (op, text) in enumerate(segments):
        between_edits = (op == EQUAL and text.isspace() and 0 < index < len(segments) - 1
                         and segments[index - 1][0] != EQUAL
                         and segments[index + 1][0] != EQUAL)
        if between_edits:
            result += [(DELETE, text), (INSERT, text)]
        else:
            result.append((op, text))
    return result


def _merge(segments: Sequence[Segment]) -> list[Segment]:
    """Join neighbours of one kind and put each run's deletions before its insertions."""
    result: list[Segment] = []
    run: dict[str, str] = {DELETE: "", INSERT: ""}

    def flush() -> None:
        for op in (DELETE, INSERT):
            if run[op]:
                result.append((op, run[op]))
                run[op] = ""

    for op, text in segments:
        if not text:
            continue
        if op == EQUAL:
            flush()
            if result and result[-1][0] == EQUAL:
                result[-1] = (EQUAL, result[-1][1] + text)
            else:
                result.append((EQUAL, text))
        else:
            run[op] += text
    flush()
    return result


def changed(segments: Sequence[Segment]) -> bool:
    return any(op != EQUAL for op, _ in segments)


def as_text(segments: Sequence[Segment]) -> str:
    """The diff as plain text with ``[-deleted-]`` and ``[+inserted+]`` markers, for
    plain-text email and for readers without colour."""
    marks = {EQUAL: ("", ""), DELETE: ("[-", "-]"), INSERT: ("[+", "+]")}
    return "".join(marks[op][0] + text + marks[op][1] for op, text in segments)
