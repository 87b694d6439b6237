"""The site's status.csv and status.json, each row's text kept between publishes.

A day's run makes both files again: every row says when its source last confirmed it
(``retrieved_at``), by which document (``document_sha256``) and how the source is
(``source_health``), and a healthy check changes those on every row of its source. The rest
of a row changes only with its record or its interval. So the text of each row is kept in
``<data_dir>/cache/site/status-rows`` with those three cells left open; a publish fills them
in and makes only the rows it holds no text for (a new or rewritten record, a legal span
that changed) — the bytes of making every row (tests/test_status_exports.py compares them).

A row's kept text is found by everything the row shows but the three cells: the record's
stored text (its digest), the interval's legal and observed span, whether it was
backfilled; and the whole file by the site's code version, so a new schedwatch makes the
texts again. A file that is missing, of another version, unreadable or not of that shape is
ignored and made again; one that cannot be written is left as it was (the site is published
all the same). It is read with ``marshal`` (``reports.kept``): data only (texts in a dict,
nothing in it is run), from the data folder, which only its user writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reports import exports, kept, status_rows
from reports.pages import Snapshot, record_key

#: The cells a source's check changes on every row; filled in on each publish.
OPEN_CELLS = ("retrieved_at", "document_sha256", "source_health")
#: A private-use code point standing for each open cell while a row's text is made.
_MARK = "\ue000"
#: A value written as itself in a CSV cell (no quotes, not like a formula) and inside a
#: JSON string (nothing escaped): timestamps, sha256 digests, health words. Any other
#: value makes its row whole.
_PLAIN = re.compile(r"(?:[0-9A-Za-z_][0-9A-Za-z_.:+ -]*)?\Z")
#: Bump when the kept file's shape changes.
_SHAPE = 2
_BATCH = 256
KEPT_FILE = kept.FOLDER / "status-rows"
#: A row's text cut at its open cells: the text before the first, between, after the last.
Template = tuple[str, ...]


def row_key(interval: Any) -> str:
    """What a status row shows besides its open cells (``status_rows.status_row`` reads the
    record, the legal and observed span and ``backfilled``; the open cells besides)."""
    return repr((record_key(interval), interval.legal_from, interval.legal_to,
                 interval.valid_from, interval.valid_to, interval.backfilled))


def status_texts(snap: Snapshot, columns: Sequence[str], *, data_dir: Path | None,
                 version: str, reuse: bool = True) -> tuple[list[str], list[str]] | None:
    """The CSV line and the JSON object of each current row, in ``snap.current`` order, as
    ``exports.csv_lines`` and ``exports.json_objects`` write them; None when a row holds a
    value only pandas writes right, or the columns are not the site's (the caller writes
    the whole table as before). ``reuse`` False: every row made (and kept for the next
    publish)."""
    if tuple(name for name in columns if name in OPEN_CELLS) != OPEN_CELLS:
        return None
    path = data_dir / KEPT_FILE if data_dir is not None else None
    tag = f"{_SHAPE}\0{version}\0{chr(31).join(columns)}"
    found = kept.load(path, tag) if reuse else None
    rows = found if type(found) is dict else {}
    return _texts(snap, columns, rows, path, tag)


def _texts(snap: Snapshot, columns: Sequence[str], previous: dict[str, Any],
           path: Path | None, tag: str) -> tuple[list[str], list[str]] | None:
    intervals = snap.current
    keys = [row_key(interval) for interval in intervals]
    values = _open_values(snap, intervals)
    # A kept text not cut as ours are (a file written by hand) is made again.
    templates = [_usable(previous.get(key)) for key in keys]
    lines: list[str] = [""] * len(intervals)
    objects: list[str] = [""] * len(intervals)
    made: dict[str, tuple[Template, Template]] = {}
    missing = [index for index, found in enumerate(templates) if found is None]
    marks = dict.fromkeys(OPEN_CELLS, _MARK)
    # A few hundred rows at a time: ten years of rows are not all held as dicts at once.
    for start in range(0, len(missing), _BATCH):
        batch = missing[start:start + _BATCH]
        rows = [_row(snap, intervals[index]) | marks for index in batch]
        try:
            open_lines = exports.csv_lines(rows, columns)
            open_objects = exports.json_objects(rows, columns)
        except exports.Unsupported:
            return None
        del rows
        for at, index in enumerate(batch):
            found = _templates(open_lines[at], open_objects[at])
            if found is None:  # a mark in scraped text: this row is made every time
                lines[index], objects[index] = _whole(_row(snap, intervals[index]), columns)
            else:
                templates[index] = made[keys[index]] = found
    current = set(keys)
    if path is not None and (made or previous.keys() - current):
        kept.save(path, tag, {key: value for key, value in previous.items()
                              if key in current} | made)
    del made
    for index, found in enumerate(templates):
        if found is None:
            continue  # made whole above
        cells = values[index]
        if cells is None:  # an open cell that is not plain: the row made whole
            lines[index], objects[index] = _whole(_row(snap, intervals[index]), columns)
            continue
        (line_a, line_b, line_c, line_d), (obj_a, obj_b, obj_c, obj_d) = found
        csv_cells = ["" if value is None else value for value in cells]
        lines[index] = "".join((line_a, csv_cells[0], line_b, csv_cells[1], line_c,
                                csv_cells[2], line_d))
        json_cells = ["null" if value is None else f'"{value}"' for value in cells]
        objects[index] = "".join((obj_a, json_cells[0], obj_b, json_cells[1], obj_c,
                                  json_cells[2], obj_d))
    return lines, objects


def _usable(found: Any) -> tuple[Template, Template] | None:
    if type(found) is tuple and len(found) == 2 and all(
            type(text) is tuple and len(text) == len(OPEN_CELLS) + 1
            and all(type(part) is str for part in text) for text in found):
        return found
    return None


def _row(snap: Snapshot, interval: Any) -> dict[str, Any]:
    source = interval.record.source_id
    return status_rows.status_row(interval, state=snap.states.get(source),
                                  disabled=source in snap.disabled)


def _open_values(snap: Snapshot, intervals: Sequence[Any]) -> list[tuple[Any, ...] | None]:
    """Each row's open cells (``OPEN_CELLS``, as ``status_rows.status_row`` states them);
    None for a row where one is not plain."""
    health = {source: "disabled" if source in snap.disabled
              else state.health if state else "unknown"
              for source, state in snap.states.items()}
    seen: dict[str, bool] = {}  # a source's time and document repeat on all its rows
    found: list[tuple[Any, ...] | None] = []
    for interval in intervals:
        source = interval.record.source_id
        cells = (interval.last_confirmed_at, interval.last_document_sha256,
                 health.get(source, "disabled" if source in snap.disabled else "unknown"))
        found.append(cells if _plain(cells, seen) else None)
    return found


def _plain(cells: tuple[Any, ...], seen: dict[str, bool]) -> bool:
    for value in cells:
        if value is None:
            continue
        if type(value) is not str:
            return False
        known = seen.get(value)
        if known is None:
            known = seen[value] = bool(_PLAIN.match(value))
        if not known:
            return False
    return True


def _templates(line: str, obj: str) -> tuple[Template, Template] | None:
    """The row's texts cut where its open cells are; None when the mark is found anywhere
    else (scraped text holding it)."""
    line_parts = tuple(line.split(_MARK))
    obj_parts = tuple(obj.split(f'"{_MARK}"'))
    cells = len(OPEN_CELLS)
    if len(line_parts) != cells + 1 or len(obj_parts) != cells + 1 or obj.count(_MARK) != cells:
        return None
    return line_parts, obj_parts


def _whole(row: dict[str, Any], columns: Sequence[str]) -> tuple[str, str]:
    return exports.csv_lines([row], columns)[0], exports.json_objects([row], columns)[0]
