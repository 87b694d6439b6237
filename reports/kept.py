"""Data a publish keeps in the data folder's cache for the next one (``<data_dir>/cache/
site/``): the status exports' row texts, the fetch log's tally. Each file is ``marshal``
data — texts, numbers, tuples, lists and dicts, nothing in it is run — written by this
user into a folder only this user writes, and tagged with what it was made by: a file that
is missing, unreadable, of another tag or not of the expected shape is ignored (its owner
makes the data again), and one that cannot be written is left as it was (the site is
published all the same). Owners check the shape with ``only`` and ``tuples``."""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FOLDER = Path("cache") / "site"


def load(path: Path | None, tag: str) -> Any:
    """What ``save`` kept at ``path`` under ``tag``; None when there is nothing of that
    tag to read. The caller checks its shape."""
    if path is None:
        return None
    try:
        data = marshal.loads(path.read_bytes())  # noqa: S302 - our own data, see above
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not (type(data) is tuple and len(data) == 2 and data[0] == tag):
        return None
    return data[1]


def save(path: Path, tag: str, value: Any) -> None:
    """Written whole and renamed into place, so a reader never sees half a file."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(marshal.dumps((tag, value)))
            os.replace(name, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise


def only(values: Iterable[Any], kind: type) -> bool:
    """Whether every one of ``values`` is exactly of ``kind`` (true of none): a shape check
    of a whole collection in one C call, not a Python call a value — kept data holds tens
    of thousands of them (twenty years of fetch times, of weeks)."""
    return set(map(type, values)) <= {kind}


def tuples(values: Iterable[Any], length: int, kinds: set[type]) -> bool:
    """Whether every one of ``values`` is a tuple of ``length`` items, each exactly of one
    of ``kinds`` (true of none), checked as ``only`` checks: a collection at a time."""
    held = list(values)
    return (only(held, tuple) and set(map(len, held)) <= {length}
            and set(map(type, itertools.chain.from_iterable(held))) <= kinds)
