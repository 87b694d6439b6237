"""Sorted texts held as one text, a line each: a source's healthy fetch times as the fetch
log's tally keeps them (``reports.check_tally``) and the weekly reports read them.

Twenty years of daily checks of five sources are 36,500 times. Held as that many strings,
every publish loaded, checked, sorted, joined, digested and saved each of them again,
though a day's run adds a handful at the end. As one text per source, loading and saving
are a copy of its bytes, "is it what the last publish saw, with more after it" is one
``startswith`` (``week_carry``), and the one question the reports ask of the times ("the
last at or before this moment") is a binary search over the text. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import overload


def joined(lines: Iterable[str]) -> str:
    """``lines`` sorted, as one text."""
    return "\n".join(sorted(lines))


def with_added(text: str, lines: Sequence[str]) -> str:
    """The sorted ``text`` with ``lines`` added in their places. A day's new times come
    after the last ones: they are written at the end, and only a time earlier than the
    last (a fetch committed late) splits the text to sort it again."""
    if not lines:
        return text
    added = sorted(lines)
    if not text:
        return "\n".join(added)
    if added[0] >= text[text.rfind("\n") + 1:]:
        return text + "\n" + "\n".join(added)
    return joined([*text.split("\n"), *added])


def first_after(old: str | None, new: str) -> str | None:
    """The earliest line of ``new`` that may differ from ``old`` (both sorted texts; None:
    nothing before): None when they are the same, the first line after ``old`` when
    ``new`` is ``old`` with lines after it, and "" (any) otherwise — a line gone, or one
    added before the last of ``old``."""
    old = old or ""
    if new == old:
        return None
    if not old:
        return new.partition("\n")[0]
    if new.startswith(old) and new[len(old):len(old) + 1] == "\n":
        return new[len(old) + 1:].partition("\n")[0]  # the day's times: a few lines
    return ""


class Lines(Sequence[str]):
    """The lines of a sorted text as a sequence (``bisect`` works on it), read from the
    text where it is held, not split into a string each: when every line is as long as the
    first — the store's stamps are — a line is found by its place; otherwise the text is
    split once, when first read."""

    __slots__ = ("text", "_count", "_width", "_split")

    def __init__(self, text: str) -> None:
        self.text = text
        self._count = text.count("\n") + 1 if text else 0
        width = text.find("\n") if self._count > 1 else len(text)
        # Every line is ``width`` long when the text's length says so and its newlines are
        # exactly at every (width + 1)th place: there are count - 1 of each.
        fixed = len(text) == self._count * (width + 1) - 1 and \
            text[width::width + 1] == "\n" * (self._count - 1)
        self._width = width if fixed else -1
        self._split: list[str] | None = None

    def __len__(self) -> int:
        return self._count

    def __eq__(self, other: object) -> bool:
        return self.text == other.text if isinstance(other, Lines) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal by text, as a list is

    def __repr__(self) -> str:
        return f"Lines({self._count} lines)"

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("line index out of range")
        if self._width >= 0:
            start = index * (self._width + 1)
            return self.text[start:start + self._width]
        if self._split is None:
            self._split = self.text.split("\n")
        return self._split[index]

    def last_up_to(self, moment: str) -> str | None:
        """The last line at or before ``moment`` (None: there is none)."""
        position = bisect.bisect_right(self, moment)
        return self[position - 1] if position else None
