"""Parts of a page reused from the page as last published (reports/parts.py): a part is
copied only when made from the same inputs by the same code, and nothing scraped can pose
as a part."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reports.entries import entries_html
from reports.parts import Parts
from tests.support.entry_cases import CASES, HEALTHS, entry


def expand(parts: Parts, text: str) -> bytes:
    """``text`` as ``Parts.write`` writes it."""
    out = io.BytesIO()
    parts.write(text, out)
    return out.getvalue()


def page_of(parts: Parts, blocks: dict[str, str]) -> bytes:
    """A page of the blocks as ``Parts.write`` writes it (reused parts from the previous
    page)."""
    return expand(parts, "<html>" + "".join(parts.part(key, lambda text=text: text)
                                           for key, text in blocks.items()) + "</html>")


def test_a_part_made_from_the_same_inputs_is_copied_from_the_previous_page(
        tmp_path: Path) -> None:
    previous = tmp_path / "page.html"
    first = Parts("v1")
    previous.write_bytes(page_of(first, {"a": "<p>Ä one</p>", "b": "<p>two</p>"}))
    assert (first.made, first.reused) == (2, 0)
    again = Parts("v1", previous)
    made: list[str] = []
    text = expand(again, again.part("a", lambda: made.append("a") or "<p>other</p>"))
    assert made == [] and "<p>Ä one</p>".encode() in text
    assert "<p>new</p>" in again.part("c", lambda: "<p>new</p>")
    assert (again.made, again.reused) == (1, 1)


def test_other_code_or_a_page_cut_short_makes_the_part_again(tmp_path: Path) -> None:
    previous = tmp_path / "page.html"
    previous.write_bytes(page_of(Parts("v1"), {"a": "<p>one</p>"}))
    other_code = Parts("v2", previous)
    assert "fresh" in other_code.part("a", lambda: "fresh")
    assert other_code.reused == 0
    previous.write_bytes(previous.read_bytes()[:-len("<!--/part--></html>")])
    cut = Parts("v1", previous)
    assert "fresh" in cut.part("a", lambda: "fresh") and cut.reused == 0
    missing = Parts("v1", tmp_path / "no-such-page.html")
    assert "fresh" in missing.part("a", lambda: "fresh")


def test_scraped_text_cannot_pose_as_a_part(tmp_path: Path) -> None:
    """An entry listing text that looks like a part's markers: escaped, so the previous
    page holds only the genuine part, and its copy is the entry as made."""
    forged = "<!--part:" + "0" * 64 + "-->forged<!--/part-->"
    hostile = entry(0, HEALTHS[0])
    hostile["record"]["listed_lines"] = [forged]
    made = str(entries_html([hostile], "UTC"))
    assert "<!--part:" not in made
    previous = tmp_path / "reference.html"
    previous.write_bytes(page_of(Parts("v1"), {"substance": made}))
    again = Parts("v1", previous)
    assert expand(again, again.part("substance", lambda: "remade")).count(b"<!--part:") == 1
    assert again.reused == 1
    assert made.encode() in expand(again, again.part("substance", lambda: "remade"))


def test_every_entry_shape_survives_a_round_trip(tmp_path: Path) -> None:
    blocks = {str(i): str(entries_html(items, "Australia/Sydney")) for i, items in
              enumerate(CASES)}
    previous = tmp_path / "reference.html"
    previous.write_bytes(page_of(Parts("v1"), blocks))
    again = Parts("v1", previous)
    for key, text in blocks.items():
        assert expand(again, again.part(key, lambda: "remade")) == \
            f"<!--part:{again.key(key)}-->{text}<!--/part-->".encode()
    assert again.reused == len(blocks)


def test_a_reused_part_is_written_from_the_previous_pages_bytes_and_only_its_own(
        tmp_path: Path) -> None:
    """A reused part's text is a placeholder until the page is written: ``write`` puts the
    previous page's bytes in its place (what making it again would give, markers
    included), and refuses a placeholder it did not issue — one of another page, one of a
    part that was not reused, or one cut short — rather than write a page with a hole or
    another page's part in it."""
    previous = tmp_path / "page.html"
    previous.write_bytes(page_of(Parts("v1"), {"a": "<p>α one</p>", "b": "<p>two</p>"}))
    again = Parts("v1", previous)
    reused = again.part("a", lambda: "remade")
    assert "α" not in reused and again.key("a") in reused
    page = "".join(["<p>§ before</p>", reused, again.part("c", lambda: "<p>new</p>")])
    assert expand(again, page) == (
        f"<p>§ before</p><!--part:{again.key('a')}--><p>α one</p><!--/part-->"
        f"<!--part:{again.key('c')}--><p>new</p><!--/part-->").encode()
    other = Parts("v1", previous)
    with pytest.raises(ValueError, match="not issued"):
        expand(other, reused)  # another object's (another page's) placeholder
    not_reused = "<!--reused:" + again.key("b") + "-->"
    with pytest.raises(ValueError, match="not issued"):
        expand(again, not_reused)  # in the previous page, but never reused here
    with pytest.raises(ValueError, match="not issued"):
        expand(again, reused[:-1])
