"""How word/document.xml is streamed (``jurisdictions.au.word``): only paragraphs come to
Python, the elements are counted in the bytes. The count is exact on well-formed XML
whatever the chunk boundaries; paragraphs in table cells are read in document order; a long
table with no paragraph, and tables before the schedules, change nothing read."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from jurisdictions import au
from jurisdictions.au import word
from scrapers.errors import ExtractionError
from tests.support.documents import WORD_CLOSE, WORD_OPEN, deflated

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "au"
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

JUNE = FIXTURES / "poisons-standard-june-2026.docx"


class Chunks(io.RawIOBase):
    """Bytes served ``size`` at a time at most, whatever is asked."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.at = data, size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size if n < 0 else min(n, self.size)
        chunk = self.data[self.at:self.at + n]
        self.at += len(chunk)
        return chunk


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_elements_are_counted_exactly_across_chunk_boundaries(size):
    with zipfile.ZipFile(JUNE) as package:
        xml = package.read("word/document.xml")
    stream = word._CountingStream(Chunks(xml, size), "word/document.xml", len(xml) + 1)
    while stream.read(size):
        pass
    assert stream.elements == sum(1 for _ in etree.fromstring(xml).iter())


def _june_with(before_schedules: bytes) -> bytes:
    with zipfile.ZipFile(JUNE) as package:
        parts = {name: package.read(name) for name in package.namelist()}
    body = parts["word/document.xml"]
    at = body.index(b"<w:body>") + len(b"<w:body>")
    return deflated({**parts, "word/document.xml": body[:at] + before_schedules + body[at:]})


def test_a_long_table_without_paragraphs_changes_nothing_and_is_freed_as_read(monkeypatch):
    """60,000 rows and no paragraph: the rows already read are freed while the parse goes
    on (the tree held stays bounded), and what is read is the same."""
    held: list[tuple[int, int]] = []  # elements in the tree before / after each release
    real = word._release_finished

    def measured(root):  # type: ignore[no-untyped-def]
        before = sum(1 for _ in root.iter()) if root is not None else 0
        real(root)
        held.append((before, sum(1 for _ in root.iter()) if root is not None else 0))

    monkeypatch.setattr(word, "_release_finished", measured)
    baseline, _ = au.read_docx(JUNE.read_bytes())
    rows = b"<w:tbl><w:tblPr/>" + b"<w:tr><w:trPr/></w:tr>" * 60_000 + b"</w:tbl>"
    paragraphs, _ = au.read_docx(_june_with(rows))
    assert paragraphs == baseline
    assert held and all(after < before for before, after in held)
    assert max(after for _, after in held) < word.MAX_PARAGRAPH_ELEMENTS


def test_paragraphs_in_table_cells_are_read_in_order():
    cell = ('<w:tc><w:tcPr/><w:p><w:pPr><w:pStyle w:val="Normal"/></w:pPr>'
            '<w:r><w:t>row {i} cell {j}</w:t></w:r></w:p></w:tc>')
    table = "<w:tbl>" + "".join(
        "<w:tr>" + "".join(cell.format(i=i, j=j) for j in range(3)) + "</w:tr>"
        for i in range(3000)) + "</w:tbl>"
    content = deflated({"word/document.xml": WORD_OPEN + table.encode() + WORD_CLOSE})
    paragraphs, _ = au.read_docx(content)
    assert [p.text for p in paragraphs] == [f"row {i} cell {j}" for i in range(3000)
                                            for j in range(3)]


def test_elements_outside_paragraphs_still_count_towards_the_cap(monkeypatch):
    monkeypatch.setattr(word, "MAX_ELEMENTS", 5_000)
    rows = b"<w:tbl>" + b"<w:tr/>" * 5_001 + b"</w:tbl>"
    with pytest.raises(ExtractionError, match="more than 5,000 elements"):
        au.read_docx(deflated({"word/document.xml": WORD_OPEN + rows + WORD_CLOSE}))
