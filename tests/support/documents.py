"""The real regulator documents (``../shared/regulator-documents``, skipped with the reason
when absent), the project's own fixtures, and variants made from them in the test."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DOCS = ROOT.parent / "shared" / "regulator-documents"
SHARED_CA = SHARED_DOCS / "ca"
FIXTURES = ROOT / "tests" / "fixtures"

CDSA_2019 = "ca/cdsa-C-38.8-en-pit2019-09-19.xml"
CDSA_2024 = "ca/cdsa-C-38.8-en-pit2024-05-27.xml"
CDSA_2026 = "ca/cdsa-C-38.8-en-pit2026-06-05.xml"
CSR_2026 = "ca/csr-SOR-2025-242-en-pit2026-04-17.xml"


def shared_doc(relative: str) -> bytes:
    """A real regulator document from ../shared, or skip the test with the reason."""
    path = SHARED_DOCS / relative
    if not SHARED_DOCS.is_dir():
        pytest.skip("../shared/regulator-documents is absent: real-document tests skipped")
    if not path.is_file():
        pytest.skip(f"../shared/regulator-documents/{relative} is absent")
    return path.read_bytes()


def without_item(xml: bytes, text_start: str) -> bytes:
    """Delete the first <Item> whose <Text> starts with ``text_start`` (a variant made in the
    test from the original, never by editing the shared file)."""
    source = xml.decode("utf-8-sig")
    pattern = re.compile(r"<Item\b[^>]*>\s*<Label>[^<]*</Label>\s*<Text>" + re.escape(text_start)
                         + r"[^<]*</Text>\s*</Item>")
    result, count = pattern.subn("", source, count=1)
    assert count == 1, f"no item starting {text_start!r}"
    return result.encode("utf-8")


def insert_into_schedule(xml: bytes, schedule_label: str, item_xml: str) -> bytes:
    """Insert an <Item> at the start of the first <List> of the schedule with this label."""
    source = xml.decode("utf-8-sig")
    at = source.index(f"<Label>{schedule_label}</Label>")
    list_start = source.index("<List", at)
    list_end = source.index(">", list_start) + 1
    return (source[:list_end] + item_xml + source[list_end:]).encode("utf-8")


#: Ketamine's Schedule I subitem text in the real CDSA.
KETAMINE_ITEM = "Ketamine (2-(2-chlorophenyl)-2-(methylamino)cyclohexanone)"


def ketamine_moved_to_schedule_iii(cdsa: bytes, text: str = KETAMINE_ITEM,
                                   label: str = "99") -> bytes:
    """The CDSA with ketamine's subitem deleted from Schedule I and listed in Schedule III
    (``text`` is inserted as is: escape it first if it is meant to be text)."""
    return insert_into_schedule(without_item(cdsa, "Ketamine"), "SCHEDULE III",
                                f"<Item><Label>{label}</Label><Text>{text}</Text></Item>")


#: A Word document's body, for the Word reader's tests: ``WORD_OPEN + paragraphs + WORD_CLOSE``.
WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
WORD_OPEN = f'<w:document xmlns:w="{WORD_NS}"><w:body>'.encode()
WORD_CLOSE = b"</w:body></w:document>"


def deflated(files: dict[str, bytes]) -> bytes:
    """A zip (a .docx package) of these parts, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            package.writestr(name, data)
    return buffer.getvalue()
