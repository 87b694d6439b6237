"""Sorted times held as one text (``reports.sorted_lines``): what the fetch log's tally
keeps of each source's healthy fetches and the weekly reports read. Each answer is checked
against the same question asked of a plain sorted list of the times."""

from __future__ import annotations

import bisect
import random

import pytest

from reports.sorted_lines import Lines, first_after, joined, with_added

STAMPS = [f"2026-03-{day:02d}T0{hour}:00:00+00:00" for day in range(1, 29) for hour in (6, 9)]


@pytest.mark.parametrize("lines", [
    STAMPS,  # every line as long as the first: found by its place
    ["2026-03-01", "2026-03-01T06:00:00+00:00", "2026-03-02T06:00", "2027"],  # split once
    ["only"], ["a", "b"], ["ab", "c"], ["a", "bc"],
    ["ab", "c", "def"],  # as long in all as lines of the first's length: not of one length
])
def test_the_lines_of_a_text_are_the_sorted_list_it_was_made_from(lines: list[str]) -> None:
    expected = sorted(lines)
    held = Lines(joined(lines))
    assert len(held) == len(expected)
    assert list(held) == expected
    assert [held[-i] for i in range(1, len(expected) + 1)] == expected[::-1]
    assert held[1:3] == expected[1:3] and held[::-2] == expected[::-2]
    with pytest.raises(IndexError):
        held[len(expected)]
    with pytest.raises(IndexError):
        held[-len(expected) - 1]
    # The last at or before a moment: before the first, on a line, between two, after all.
    for moment in [" ", *expected, *(line + "!" for line in expected), "~"]:
        position = bisect.bisect_right(expected, moment)
        assert held.last_up_to(moment) == (expected[position - 1] if position else None)


def test_no_lines_are_none() -> None:
    held = Lines("")
    assert len(held) == 0 and list(held) == [] and held.last_up_to("~") is None
    assert Lines("") == Lines(joined([])) and Lines("a") != Lines("b")


def test_lines_added_take_their_places_whatever_order_they_come_in() -> None:
    shuffled = random.Random(7).sample(STAMPS, len(STAMPS))
    text = ""
    for start in range(0, len(shuffled), 5):
        text = with_added(text, shuffled[start:start + 5])
        assert text == joined(shuffled[:start + 5])
    assert with_added(text, []) is text
    # A day's new times, after the last ones: written at the end, the text before them
    # unchanged.
    later = ["2026-04-01T06:00:00+00:00", "2026-03-31T06:00:00+00:00"]
    assert with_added(text, later) == text + "\n" + "\n".join(sorted(later))


@pytest.mark.parametrize(("old", "new", "since"), [
    (None, ["a", "b"], "a"),  # a source first checked: from its first fetch
    (None, [], None),  # never checked healthy, then or now
    (["a", "b"], ["a", "b"], None),  # nothing new
    (["a", "b"], ["a", "b", "c", "d"], "c"),  # the day's new fetches
    (["a", "b"], ["a", "b", "c"], "c"),
    ([], ["a"], "a"),
    (["a", "c"], ["a", "b", "c"], ""),  # one committed late, before the last: any
    (["a", "b"], ["a", "bc"], ""),  # its old text begins the new one, but not its lines
    (["a", "b"], ["a", "bcd"], ""),
    (["a", "b"], ["a"], ""),  # one gone
    (["a", "b"], [], ""),
])
def test_a_sources_healthy_fetches_differ_from_the_first_new_one_or_from_any(
        old: list[str] | None, new: list[str], since: str | None) -> None:
    assert first_after(None if old is None else joined(old), joined(new)) == since
