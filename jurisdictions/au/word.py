"""Reading a Poisons Standard's Word original: the paragraphs of ``word/document.xml`` with
their roles (from the paragraph styles, resolved through ``word/styles.xml``) and text.

document.xml is streamed straight out of the zip (lxml ``iterparse``, one paragraph at a
time, each freed after use): the June 2026 original is ~1 MB zipped with 4,278 entries and
its document.xml several MB, so neither python-docx (an object per paragraph and run) nor a
whole lxml tree is held. The file is untrusted: its inflated size, paragraphs and elements
are capped (``MAX_*``), and a paragraph nothing reads costs no object.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

from jurisdictions.parsing import iterparse, release, xml_parser
from scrapers.errors import ExtractionError
from scrapers.records import normalise_text

if TYPE_CHECKING:  # pragma: no cover
    from lxml import etree

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_P = f"{{{_W}}}p"
_BODY = f"{{{_W}}}body"
_T = f"{{{_W}}}t"
_P_PR = f"{{{_W}}}pPr"
_P_STYLE = f"{{{_W}}}pStyle"
_VAL = f"{{{_W}}}val"
_BLANKS = frozenset({f"{{{_W}}}tab", f"{{{_W}}}br", f"{{{_W}}}cr", f"{{{_W}}}ptab"})
_HYPHENS = frozenset({f"{{{_W}}}noBreakHyphen"})
#: The elements a paragraph's text is made of, for ``iter`` (which walks in document order).
_TEXT_TAGS = (_T, *sorted(_HYPHENS), *sorted(_BLANKS))
#: Subtrees whose text is not the paragraph's own: properties, drawings and text boxes (their
#: paragraphs are visited on their own), the duplicate Fallback copy of alternate content,
#: deleted text and field codes.
_SKIP = frozenset({f"{{{_W}}}pPr", f"{{{_W}}}rPr", f"{{{_W}}}drawing", f"{{{_W}}}pict",
                   f"{{{_W}}}txbxContent", f"{{{_W}}}delText", f"{{{_W}}}instrText",
                   f"{{{_W}}}del", f"{{{_W}}}moveFrom", f"{{{_W}}}softHyphen",
                   f"{{{_MC}}}Fallback"})
#: A text element under one of these (below the paragraph) is not the paragraph's text: the
#: skipped subtrees, a nested paragraph (visited on its own), and the text elements
#: themselves (never read inside: ``w:pPr/w:tabs/w:tab`` tab stops are under ``w:pPr``).
_NOT_OWN = _SKIP | {_P, _T} | _HYPHENS | _BLANKS

#: Style names (case and spaces ignored) → paragraph role. Word writes a paragraph's style
#: *id* (``w:pStyle/@w:val``), which need not equal the name; ids are resolved through
#: word/styles.xml first.
_ROLES: dict[str, str] = {
    "acthead1": "heading",
    "poisonsstandardscheduleentry": "entry",
    "normal-hanging": "entry",
    "poisonsstandardscheduleentryparagraph": "qualification",
    "poisonsstandardscheduleentrycaveat": "qualification",
    "paragraph": "qualification",
    "paragraphsub": "qualification",
}

_SCHEDULE_HEADING = re.compile(r"Schedule\s+(\d{1,2})\b", re.IGNORECASE)
_APPENDIX_HEADING = re.compile(r"Appendix\s+([A-Z])\b", re.IGNORECASE)

# --- resource caps for an untrusted Word file (issue 16: a 110 KiB .docx whose document.xml
# --- inflated to 50 MB took 2 min 18 s and 924 MiB) ---------------------------------------
#: word/document.xml inflating past this is refused before it is inflated. The register's
#: Word original of F2026L00633 (4,278 entries) is 966,941 bytes zipped; Word's XML deflates
#: 8–12× (the real AAO original: document.xml 489,385 bytes from 59,332), so the real
#: document.xml is ~8–12 MB and no more than ~15 MB: 32 MiB leaves twice that.
MAX_DOCUMENT_XML_BYTES = 32 * 1024 * 1024
#: Any other part read whole (word/styles.xml: 45,566 bytes in the real AAO original).
MAX_PART_BYTES = 4 * 1024 * 1024
#: Paragraphs (``w:p``, empty ones included) in document.xml. The real AAO original has one
#: per ~310 bytes (1,569 in 489 KB): ~30,000–50,000 for a real Standard; 250,000 is 5× that.
MAX_PARAGRAPHS = 250_000
#: Elements in document.xml: the real AAO original has one per ~45 bytes (10,925), so a real
#: Standard has ~200,000–350,000; 2,000,000 is 6× that.
MAX_ELEMENTS = 2_000_000
#: Elements inside one paragraph (held until the paragraph ends). A real entry has a few
#: runs of a few elements each; a Standard's longest qualification, some hundreds.
MAX_PARAGRAPH_ELEMENTS = 20_000


@dataclass(frozen=True)
class _Paragraph:
    role: str  # heading | entry | qualification | other (cover paragraphs only)
    text: str  # ``paragraph_text``


#: The one object every empty heading shares (an empty ActHead1 still ends a section).
_EMPTY_HEADING = _Paragraph("heading", "")


def read_docx(content: bytes) -> tuple[list[_Paragraph], dict[str, str]]:
    """The paragraphs of ``word/document.xml`` that the parser reads, in document order, each
    with its role and text, and the styleId → name map of ``word/styles.xml`` that gave the
    roles. Kept: every heading, non-empty entry and qualification paragraphs, and non-empty
    paragraphs of the cover (before the first schedule heading); nothing else is kept, so a
    paragraph that is empty or read by nothing costs no object.

    document.xml is streamed out of the zip: each paragraph is read when it ends, then
    cleared with the siblings before it, so memory stays at a few paragraphs and not the
    whole tree (a real Standard's document.xml is several MB, ~10× that as an lxml tree).
    Sizes, paragraphs and elements are capped (``MAX_*``)."""
    try:
        package = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as error:
        start = content[:40].decode("utf-8", "replace")
        raise ExtractionError("the document is not a Word (.docx) file: not a zip archive "
                              f"(it starts {start!r})") from error
    with package:
        names = set(package.namelist())
        if "word/document.xml" not in names:
            raise ExtractionError("the document is a zip archive but not a Word document "
                                  "(no word/document.xml)")
        _check_size(package, "word/document.xml", MAX_DOCUMENT_XML_BYTES)
        try:
            styles = _style_names(_xml(package, "word/styles.xml")) \
                if "word/styles.xml" in names else {}
        except ExtractionError:
            # The body is read first to the end when both parts are broken, so its error
            # is the one reported (as when the body was parsed before the styles).
            for _ in _body_paragraphs(package, {}):
                pass
            raise
        paragraphs = list(_body_paragraphs(package, styles))
    return paragraphs, styles


def _check_size(package: zipfile.ZipFile, name: str, limit: int | None = None) -> None:
    """Refuse a part that declares a size past ``limit`` (a zip bomb); zipfile never
    inflates more than the declared size, and a part that is larger fails its CRC."""
    limit = MAX_PART_BYTES if limit is None else limit
    if package.getinfo(name).file_size > limit:
        raise ExtractionError(f"{name} inflates to more than {_megabytes(limit)}; refused "
                              "(a real Poisons Standard's is ~10 MB: a zip bomb or not the "
                              "Standard)")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


class _CappedStream:
    """A zip member read through a byte counter: even if the zip's declared size lied,
    no more than ``limit`` bytes are ever handed to the XML parser."""

    def __init__(self, stream: IO[bytes], name: str, limit: int) -> None:
        self._stream, self._name, self._left, self._limit = stream, name, limit, limit

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if 0 <= size <= self._left + 1 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise ExtractionError(f"{self._name} inflates to more than "
                                  f"{_megabytes(self._limit)}; refused")
        return data


def _unreadable(name: str, error: Exception) -> ExtractionError:
    return ExtractionError(f"{name} in the Word document is not readable XML: {error}")


def _xml(package: zipfile.ZipFile, name: str) -> etree._Element:
    from lxml import etree  # imported here: a warm run that parses nothing never loads it

    _check_size(package, name)
    try:
        return etree.fromstring(package.read(name), xml_parser())
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError) as error:
        raise _unreadable(name, error) from error


def _too_many(what: str, limit: int) -> ExtractionError:
    return ExtractionError(f"word/document.xml has more than {limit:,} {what}; refused (a "
                           "real Poisons Standard has a tenth of that: not the Standard, or "
                           "a document built to exhaust memory)")


class _CountingStream(_CappedStream):
    """The capped stream that also counts the elements passing through it (start tags: a
    ``<`` not followed by ``/``, ``?`` or ``!``; a ``<`` in a comment or CDATA counts too, so
    the count never falls short), with C-speed ``bytes.count``, so that the element caps cost
    no Python per element and ``iterparse`` can hand over only the paragraphs.

    lxml reads a chunk, parses it and delivers its events before reading the next, so when
    ``read`` is called every element read so far has been parsed: an open paragraph that
    started ``open_since`` elements in holds at least ``elements - open_since`` elements,
    and with no paragraph open at least ``elements - closed_at`` were read outside any."""

    def __init__(self, stream: IO[bytes], name: str, limit: int) -> None:
        super().__init__(stream, name, limit)
        self.elements = 0  # start tags read so far
        self.before_chunk = 0  # ... before the last chunk read
        self.open_since: int | None = None  # set by the reader while a paragraph is open
        self.closed_at = 0  # elements read when the last paragraph ended
        self.root: etree._Element | None = None  # the tree so far (set at w:body's start)
        self._ends_with_lt = False

    def read(self, size: int = -1) -> bytes:
        if self.open_since is not None:
            if self.elements - self.open_since > MAX_PARAGRAPH_ELEMENTS:
                raise _too_many("elements in one paragraph", MAX_PARAGRAPH_ELEMENTS)
        elif self.elements - self.closed_at > MAX_PARAGRAPH_ELEMENTS and self.root is not None:
            # Many elements and no paragraph since the last one (a table of empty rows):
            # everything before the open path is finished and read, and is freed.
            _release_finished(self.root)
            self.closed_at = self.elements
        data = super().read(size)
        count = data.count(b"<") - data.count(b"</") - data.count(b"<?") - data.count(b"<!")
        if self._ends_with_lt and data[:1] in (b"/", b"?", b"!"):
            count -= 1  # a closing tag, declaration or comment split across two chunks
        self._ends_with_lt = data[-1:] == b"<"
        self.before_chunk = self.elements
        self.elements += count
        if self.elements > MAX_ELEMENTS:
            raise _too_many("elements", MAX_ELEMENTS)
        return data


def _body_paragraphs(package: zipfile.ZipFile, styles: Mapping[str, str]
                     ) -> Iterator[_Paragraph]:
    """The kept paragraphs (``read_docx``) of word/document.xml in document order (a
    paragraph nested in a text box right after the one holding it), streamed with
    ``iterparse``. Text is read for the cover (up to the first schedule heading) and for
    paragraphs whose role the parser reads.

    Only the paragraphs' events come to Python (a Python step per element was most of the
    parse: ~430,000 events for a realistic Standard); the elements are counted in the bytes
    (``_CountingStream``). A finished paragraph is released with what precedes it, up to
    the body (the rows and cells of the tables it sits in), so a document of any shape holds
    only the open path, the current paragraph and at most ``MAX_PARAGRAPH_ELEMENTS``
    elements outside one."""
    from lxml import etree

    name = "word/document.xml"
    roles: dict[str | None, str] = {}
    cover = True
    depth = 0  # open w:p elements
    paragraphs = 0
    floor = 0  # elements read before the chunk in which the open paragraph started
    try:
        with package.open(name) as raw:
            stream = _CountingStream(raw, name, MAX_DOCUMENT_XML_BYTES)
            # iterparse needs only ``read``: the counter stands in for the file object.
            # w:body's start gives the counter the tree (``iterparse.root`` is set only
            # once the parse has finished), to free a long run of elements outside any
            # paragraph.
            events: Any = iterparse(cast(IO[bytes], stream), events=("start", "end"),
                                    tag=(_P, _BODY))
            for event, element in events:
                if element.tag == _BODY:
                    if event == "start":
                        stream.root = element.getparent()
                    continue
                if event == "start":
                    if not depth:
                        stream.open_since, floor = stream.elements, stream.before_chunk
                    depth += 1
                    continue
                depth -= 1
                paragraphs += 1
                if paragraphs > MAX_PARAGRAPHS:
                    raise _too_many("paragraphs", MAX_PARAGRAPHS)
                if depth:
                    continue  # read with the paragraph that holds it, in document order
                stream.open_since, stream.closed_at = None, stream.elements
                if stream.elements - floor > MAX_PARAGRAPH_ELEMENTS \
                        and sum(1 for _ in element.iter()) - 1 > MAX_PARAGRAPH_ELEMENTS:
                    raise _too_many("elements in one paragraph", MAX_PARAGRAPH_ELEMENTS)
                for p in element.iter(_P):
                    style_id = paragraph_style(p)
                    role = roles.get(style_id) or roles.setdefault(style_id,
                                                                   _role(style_id, styles))
                    if role == "other" and not cover:
                        continue  # nothing reads it: no text, no object
                    text = paragraph_text(p) if len(p) else ""  # no children: no text
                    if role == "heading":
                        if cover and section_label(text) is not None:
                            cover = False
                        yield _Paragraph(role, text) if text else _EMPTY_HEADING
                    elif text:
                        yield _Paragraph(role, text)
                release(element)
                _release_before(element)
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError) as error:
        raise _unreadable(name, error) from error


def _release_finished(root: etree._Element | None) -> None:
    """Free every element before the open path (the last child at each level), when no
    paragraph is open: each is finished, and every paragraph among them was read."""
    node = root
    while node is not None and len(node):
        del node[:-1]
        node = node[-1]


def _release_before(element: etree._Element) -> None:
    """Free what precedes each ancestor of a released paragraph (a table's earlier rows,
    earlier cells of its row); the body's earlier children were freed with the paragraph
    or before it."""
    node = element.getparent()
    while node is not None:
        parent = node.getparent()
        if parent is None:
            return
        while node.getprevious() is not None:
            del parent[0]
        node = parent

def _style_names(styles: etree._Element) -> dict[str, str]:
    names: dict[str, str] = {}
    for style in styles.iter(f"{{{_W}}}style"):
        style_id = style.get(f"{{{_W}}}styleId")
        name = style.find(f"{{{_W}}}name")
        if style_id and name is not None and name.get(_VAL):
            names[style_id] = name.get(_VAL, "")
    return names


def paragraph_style(p: etree._Element) -> str | None:
    """The style id of a paragraph (``w:pPr/w:pStyle/@w:val``), as ``p.find`` would find it
    but without ElementPath's per-call cost."""
    for properties in p.iterchildren(_P_PR):
        for style in properties.iterchildren(_P_STYLE):
            return style.get(_VAL)
    return None


def _role(style_id: str | None, styles: Mapping[str, str]) -> str:
    if not style_id:
        return "other"
    name = styles.get(style_id, style_id)
    return _ROLES.get(_style_key(name)) or _ROLES.get(_style_key(style_id)) or "other"


def _style_key(name: str) -> str:
    return name.replace(" ", "").lower()


def paragraph_text(p: etree._Element) -> str:
    """A paragraph's text from its runs: ``w:noBreakHyphen`` is a hyphen the text nodes do not
    hold (so ``itertext()`` would read "NETHYLPENTYLONE"), tabs and breaks are spaces. Text
    under properties, drawings, text boxes, deletions, field codes, the Fallback copy of
    alternate content and nested paragraphs (``_SKIP``) is not the paragraph's own."""
    parts: list[str] = []
    for node in p.iter(*_TEXT_TAGS):
        parent = node.getparent()
        while parent is not p:  # usually one step: w:r, whose parent is the paragraph
            if parent is None or parent.tag in _NOT_OWN:
                break
            parent = parent.getparent()
        else:
            tag = node.tag
            parts.append((node.text or "") if tag == _T else "-" if tag in _HYPHENS else " ")
    return " ".join("".join(parts).split())


def normalise_spaced(text: str) -> str:
    """``normalise_text`` of a text whose whitespace is already single spaces, none at either
    end (``" ".join(words)``, as ``paragraph_text`` gives). ASCII text without "- (" is
    returned as it is: Unicode normalisation, dash and no-break-space folding change only
    non-ASCII characters, and the hyphen rule needs "- (" — the regex passes cost ~6 µs a
    paragraph, thousands of times per Standard."""
    if text.isascii() and text.isprintable() and "- (" not in text:
        return text
    return normalise_text(text)


def section_label(heading: str) -> str | None:
    """"Schedule 8—Controlled Drug" → "8"; "Appendix D—…" → "Appendix D"; other → None."""
    match = _SCHEDULE_HEADING.match(heading)
    if match:
        return str(int(match.group(1)))
    match = _APPENDIX_HEADING.match(heading)
    return f"Appendix {match.group(1).upper()}" if match else None
