"""The extension each archived document is published under, kept between publishes.

A publish copies or links every document its pages cite into the site's ``documents/``,
named by its sha256 and an extension chosen from its recorded media type or, when that says
nothing, its first bytes (``pages.document_extension``). Both are fixed for a document (its
row is written once, its bytes are named by their digest), so the extension is kept in
``<data_dir>/cache/site/document-names`` by sha256, tagged with the site's code version and
trusted while the store's count of rewritten document rows is the one it was kept at (the
database's triggers count an edit by hand too, ``scrapers.schema.REVISED``): a publish
reads the row and opens the archived copy only for a document it holds none for,
not every cited document on every publish (345 on twenty years of history).

The file holds only data (``reports.kept``). An extension is taken only when it is one that
``document_extension`` gives, so what the file holds never chooses a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reports import kept
from reports.pages import DOCUMENT_EXTENSIONS

#: Bump when the file's shape changes.
_SHAPE = 1
FILE = kept.FOLDER / "document-names"


def load(data_dir: Path | None, version: str, count: int | None) -> dict[str, str]:
    """sha256 → extension as the last publish of this ``version`` kept them, while the
    store's count of rewritten document rows (``Store.revisions``) is the ``count`` they
    were kept at; {} otherwise (each extension is then worked out)."""
    found = kept.load(None if data_dir is None else data_dir / FILE, _tag(version))
    if count is None or not (type(found) is tuple and len(found) == 2 and found[0] == count
                             and type(found[1]) is dict):
        return {}
    extensions = found[1]
    if not kept.only(extensions, str) or not set(extensions.values()) <= DOCUMENT_EXTENSIONS:
        return {}
    return extensions


def save(data_dir: Path | None, version: str, count: int | None,
         previous: Mapping[str, str], extensions: Mapping[str, str]) -> None:
    """Keep ``extensions`` (of the documents this publish cites) for the next publish, at
    the store's ``count``; left as it is when that is what it holds, and not written for a
    store without the count."""
    if data_dir is not None and count is not None and extensions != previous:
        kept.save(data_dir / FILE, _tag(version), (count, dict(extensions)))


def _tag(version: str) -> str:
    return f"{_SHAPE}\0{version}"
