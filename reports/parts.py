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
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import Markup

__all__ = ["Parts"]

_OPEN = b"<!--part:"
_CLOSE = b"<!--/part-->"
_DIGEST = 64  # hex characters of a sha256


class Parts:
    """The parts of one page: those of its previous version (``previous``, None when there
    is none to reuse) and the count of parts made and reused this time."""

    def __init__(self, salt: str, previous: Path | None = None) -> None:
        self._salt = salt.encode()
        self._old = b""
        self._spans: dict[str, tuple[int, int]] = {}
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
        """The part made from ``inputs``: copied from the previous page when it holds one
        made from the same inputs, else ``make()`` (text that is markup as it stands)."""
        key = self.key(inputs)
        span = self._spans.get(key)
        if span is not None:
            self.reused += 1
            text = self._old[span[0]:span[1]].decode("utf-8")
        else:
            self.made += 1
            text = make()
        # Either this module's own earlier output or ``make``'s escaped markup.
        return Markup(f"<!--part:{key}-->{text}<!--/part-->")  # noqa: S704


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
