"""The extension each archived document is published under, kept between publishes.

A publish copies or links every document its pages cite into the site's ``documents/``,
named by its sha256 and an extension chosen from its recorded media type or, when that says
nothing, its first bytes (``pages.document_extension``). The bytes are fixed by the sha256,
so the extension is a function of the media type alone: it is kept in
``<data_dir>/cache/site/document-names`` by sha256 with the media type it was worked out
from, tagged with the site's code version. A publish still reads the cited documents' rows
(one query), but opens an archived copy to read its first bytes only for a document it
holds no extension for under that media type, not every cited document on every publish.

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
#: (media type as recorded, extension) of one document.
Named = tuple[str | None, str]


def load(data_dir: Path | None, version: str) -> dict[str, Named]:
    """sha256 → (media type, extension) as the last publish of this ``version`` kept them;
    {} when there is nothing of that shape (each extension is then worked out)."""
    found = kept.load(None if data_dir is None else data_dir / FILE, _tag(version))
    if type(found) is not dict or not kept.only(found, str) or \
            not kept.tuples(found.values(), 2, {str, type(None)}) or \
            not {extension for _, extension in found.values()} <= DOCUMENT_EXTENSIONS:
        return {}
    return found


def extension(known: Mapping[str, Named], sha: str, media_type: str | None) -> str | None:
    """The kept extension of the document ``sha`` when it was worked out from this same
    ``media_type``; None otherwise."""
    held = known.get(sha)
    return held[1] if held is not None and held[0] == media_type else None


def save(data_dir: Path | None, version: str, previous: Mapping[str, Named],
         names: Mapping[str, Named]) -> None:
    """Keep ``names`` (of the documents this publish cites) for the next publish; left as
    it is when that is what it holds."""
    if data_dir is not None and names != previous:
        kept.save(data_dir / FILE, _tag(version), dict(names))


def _tag(version: str) -> str:
    return f"{_SHAPE}\0{version}"
