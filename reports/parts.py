"""Parts of a big page reused from the page as last published.

The compliance reference and the index are remade on every publish (they show when they
were generated), but with ``watch = "all"`` they hold thousands of entries and rows of
which a day's run changes a few. Each of the reference's substance blocks (heading,
entries, scheduling history) and each chunk of the index's all-records table is written
between two comments carrying the digest of what it is made from; the next publish copies
a part whose digest is unchanged out of the previous file instead of making it again.

A part's text can only come from this module's own output: everything scraped in a page
is escaped (``<`` is written ``&lt;``), so no scraped text can open or close a part. The
digest includes the site's version (templates, code, reader's zone): a part made by other
code is never reused. Offsets, not text, are kept of the previous file until a part is
used, so reuse costs the previous page's bytes in memory once.

A reused part is not decoded: the page's text holds a placeholder naming it
(``<!--reused:<digest>-->``), and ``Parts.write`` writes the page with each placeholder
replaced by the part's bytes from the previous file. Decoding thousands of parts, joining
them into the page's text and encoding it again cost more than the rest of copying them
(the reference's heading dash makes every block's text two bytes a character: 17 million
characters a publish with ``watch = "all"``). A placeholder, like a part's markers, can
only come from this module (scraped "<" is escaped), and only one this object issued is
replaced: any other is an error, never written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from markupsafe import Markup

__all__ = ["Parts"]

_OPEN = b"<!--part:"
_CLOSE = b"<!--/part-->"
_DIGEST = 64  # hex characters of a sha256
_REUSED = "<!--reused:"


class Parts:
    """The parts of one page: those of its previous version (``previous``, None when there
    is none to reuse) and the count of parts made and reused this time."""

    def __init__(self, salt: str, previous: Path | None = None) -> None:
        self._salt = salt.encode()
        self._old = b""
        self._spans: dict[str, tuple[int, int]] = {}
        self._issued: set[str] = set()  # the digests of the reused parts' placeholders
        self.made = 0
        self.reused = 0
        if previous is not None:
            try:
                self._old = previous.read_bytes()
            except OSError:  # no previous page (or not readable): every part is made
                self._old = b""
            self._spans = _spans(self._old)

    def key(self, inputs: Any) -> str:
        """The digest of what a part is made from (``repr`` of stored rows, tuples and
        text is deterministic from one process to the next)."""
        digest = hashlib.sha256(self._salt)
        digest.update(b"\0")
        digest.update(repr(inputs).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def part(self, inputs: Any, make: Callable[[], str]) -> Markup:
        """The part made from ``inputs``: when the previous page holds one made from the
        same inputs, a placeholder that ``write`` replaces by its bytes; else ``make()``
        (text that is markup as it stands) between the part's markers."""
        key = self.key(inputs)
        if key in self._spans:
            self.reused += 1
            self._issued.add(key)
            return Markup(f"{_REUSED}{key}-->")  # noqa: S704 - digits and letters only
        self.made += 1
        # ``make``'s escaped markup.
        return Markup(f"<!--part:{key}-->{make()}<!--/part-->")  # noqa: S704

    def write(self, text: str, out: BinaryIO) -> None:
        """``text`` (of a page holding parts from ``part``) into ``out`` as UTF-8, each
        reused part's placeholder replaced by the part's markers and bytes from the
        previous page; ``ValueError`` for a placeholder this object did not issue."""
        old = memoryview(self._old)
        position = 0
        while (at := text.find(_REUSED, position)) >= 0:
            start = at + len(_REUSED)
            key = text[start:start + _DIGEST]
            if key not in self._issued or text[start + _DIGEST:start + _DIGEST + 3] != "-->":
                raise ValueError(f"a part placeholder not issued for this page at {at}")
            span = self._spans[key]
            out.write(text[position:at].encode("utf-8"))
            out.write(_OPEN + key.encode("ascii") + b"-->")
            out.write(old[span[0]:span[1]])
            out.write(_CLOSE)
            position = start + _DIGEST + 3
        out.write(text[position:].encode("utf-8"))


def _spans(page: bytes) -> dict[str, tuple[int, int]]:
    """digest → (start, end) of each part's text in a previous page."""
    spans: dict[str, tuple[int, int]] = {}
    position = 0
    while (start := page.find(_OPEN, position)) >= 0:
        head = start + len(_OPEN)
        body = head + _DIGEST + 3
        key = page[head:head + _DIGEST]
        end = page.find(_CLOSE, body)
        if end < 0:
            break  # a page cut short: the rest is made again
        if page[head + _DIGEST:body] == b"-->":
            spans[key.decode("ascii", "replace")] = (body, end)
        position = end + len(_CLOSE)
    return spans
