"""Word-level diff of legal text (reports.worddiff)."""

from __future__ import annotations

from reports.worddiff import DELETE, EQUAL, INSERT, as_text, changed, word_diff


def test_a_pinpoint_change_marks_only_the_numbers() -> None:
    segments = word_diff("Sch. I, item 14(1)", "Sch. III, item 15(1)")
    assert segments == [(EQUAL, "Sch. "), (DELETE, "I"), (INSERT, "III"), (EQUAL, ", item "),
                        (DELETE, "14"), (INSERT, "15"), (EQUAL, "(1)")]
    assert as_text(segments) == "Sch. [-I-][+III+], item [-14-][+15+](1)"


def test_added_words() -> None:
    segments = word_diff("Ketamine, its salts", "Ketamine, its salts, isomers")
    assert segments == [(EQUAL, "Ketamine, its salts"), (INSERT, ", isomers")]


def test_a_lone_space_between_edits_joins_them() -> None:
    assert word_diff("a b c", "x y z") == [(DELETE, "a b c"), (INSERT, "x y z")]


def test_none_and_empty() -> None:
    assert word_diff(None, "new text") == [(INSERT, "new text")]
    assert word_diff("old text", None) == [(DELETE, "old text")]
    assert word_diff(None, None) == []
    assert not changed(word_diff("same", "same"))
    assert changed(word_diff("same", "Same"))


def test_joining_the_segments_gives_both_texts_back() -> None:
    before = "Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone), its salts"
    after = "Kétamine (2-(2-chlorophényl)-2- (méthylamino)cyclohexanone) and its salts"
    segments = word_diff(before, after)
    assert "".join(t for op, t in segments if op != INSERT) == before
    assert "".join(t for op, t in segments if op != DELETE) == after
    # Deletions come before the insertions that replace them.
    ops = [op for op, _ in segments]
    assert all(not (a == INSERT and b == DELETE) for a, b in zip(ops, ops[1:], strict=False))
