"""What the change pages and changes.csv read of each stored change, kept between publishes.

Every publish works out the fingerprint of every change page, and on a day with a change
writes changes.csv again, a line for every change ever recorded. Both read a change's
stored JSON: a page's fingerprint the substance its ``after`` names and the document its
``details`` cite (``pages.change_inputs``), changes.csv its schedules before and after and
its error (``feed.change_row``). Decoding years of records for those few values was the
larger part of reading the changes (``StoredChange`` decodes its JSON when first read). So
what each change gave is kept in ``<data_dir>/cache/site/`` (``reports.kept``), found by
the change's row digest (``StoredChange.row_digest``: every column as stored), and a
publish decodes only the changes it holds nothing for — a new one, one rewritten in the
store. A change not read from the store has no digest and is read every time.

Each file is tagged with the site's code version (a new schedwatch makes it again) and
holds only data; one that is missing, of another tag or not of the expected shape is
ignored and made again, one that cannot be written is left as it was
(``reports.kept``). The page fingerprints and changes.csv's bytes are those of reading
every change (tests/test_change_carry.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from reports import exports, kept
from reports.pages import Facts, change_facts
from scrapers.rows import StoredChange

#: Bump when a kept file's shape changes.
_SHAPE = 1
FACTS_FILE = kept.FOLDER / "change-facts"
LINES_FILE = kept.FOLDER / "change-lines"
_Value = TypeVar("_Value")


def facts(changes: Sequence[StoredChange], *, data_dir: Path | None, version: str,
          reuse: bool = True) -> list[Facts]:
    """``pages.change_facts`` of each change, in order: kept from the last publish where its
    stored row is the same. ``reuse`` False: every change decoded (and kept for the next
    publish)."""
    return _carried(changes, None if data_dir is None else data_dir / FACTS_FILE,
                    f"{_SHAPE}\0{version}", reuse, lambda made: [change_facts(c) for c in made],
                    _facts_shaped)


def csv_lines(changes: Sequence[StoredChange], columns: Sequence[str],
              row: Callable[[StoredChange], dict[str, Any]], *, data_dir: Path | None,
              version: str, reuse: bool = True) -> list[str]:
    """Each change's line of changes.csv (``exports.csv_lines`` of its ``row``), in order:
    kept from the last publish where its stored row is the same. A line depends on its row
    alone, so the kept ones and the new ones join into the bytes of writing every row."""
    return _carried(changes, None if data_dir is None else data_dir / LINES_FILE,
                    f"{_SHAPE}\0{version}\0{chr(31).join(columns)}", reuse,
                    lambda made: exports.csv_lines([row(c) for c in made], columns),
                    lambda values: kept.only(values, str))


def _carried(changes: Sequence[StoredChange], path: Path | None, tag: str, reuse: bool,
             make: Callable[[list[StoredChange]], list[_Value]],
             shaped: Callable[[Iterable[Any]], bool]) -> list[_Value]:
    """What ``make`` gives each change, taken from the file at ``path`` for those whose
    row digest it holds; the file then holds the current changes' values of the kept
    ``shaped`` alone."""
    found = kept.load(path, tag) if reuse else None
    previous: dict[str, Any] = found if (type(found) is dict and kept.only(found, str)
                                         and shaped(found.values())) else {}
    values: list[Any] = [previous.get(change.row_digest) if change.row_digest else None
                         for change in changes]
    missing = [index for index, value in enumerate(values) if value is None]
    made = make([changes[index] for index in missing])
    added = {}
    for index, value in zip(missing, made, strict=True):
        values[index] = value
        # A value of another shape (from a record written by hand) is made every time.
        if changes[index].row_digest and shaped([value]):
            added[changes[index].row_digest] = value
    # Each change found holds its own entry (a row digest names one row), so the file
    # holds others only when it holds more than were found: then it is made anew of the
    # current ones. A day's run only adds: the entries are kept and the new ones added.
    stale = len(previous) > len(changes) - len(missing)
    if stale:
        previous = {change.row_digest: value for change, value in zip(changes, values,
                                                                       strict=True)
                    if change.row_digest and shaped([value])}
    if path is not None and (stale or added):
        kept.save(path, tag, previous | added)
    return values


def _facts_shaped(values: Iterable[Any]) -> bool:
    return kept.tuples(values, 2, {str, type(None)})
