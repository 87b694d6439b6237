"""Table exports: the site's status.csv, status.json and changes.csv, and the CSV of
``schedwatch status --format csv``.

There is one CSV writer (``write_csv_text``, the standard library's ``csv``), used by the
site and the CLI alike, so that a cell which a spreadsheet would run as a formula is
neutralised the same way everywhere. The JSON export is made with pandas, imported inside
the function: a publish whose tables did not change reuses the previous files and never
pays for the import, and the CLI never imports it. A table is handed to pandas column by
column (one list per column, ``dtype=object``: no inference, no copy per row).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: A spreadsheet runs a cell that starts with one of these as a formula; scraped text must
#: not (OWASP "CSV injection"). Such cells get a leading apostrophe in the CSV only; the JSON
#: export keeps the text exactly.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        value = "; ".join(f"{pair[0]}: {pair[1]}" if isinstance(pair, list | tuple)
                          and len(pair) == 2 else str(pair) for pair in value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_column(values: list[Any]) -> list[Any]:
    """``_csv_cell`` of each value; most cells are plain text or None, checked inline."""
    return [value if value is None or (type(value) is str and not value.startswith(
        _FORMULA_START)) else _csv_cell(value) for value in values]


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    data = {name: [row.get(name) for row in rows] for name in columns}
    return pd.DataFrame(data, columns=list(columns), dtype=object)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    out = io.BytesIO()
    write_csv(rows, columns, out)
    return out.getvalue()


def to_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    out = io.BytesIO()
    write_json(rows, columns, out)
    return out.getvalue()


def write_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: BinaryIO) -> None:
    """The table as CSV (UTF-8, "\\n" line ends) into an open binary file."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        write_csv_text(rows, columns, text)
        text.flush()
    finally:
        text.detach()  # the caller's file stays open


def write_csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   out: TextIO) -> None:
    """The one CSV writer: a header of ``columns``, then one line per row ("\\n" line ends,
    minimal quoting, None as an empty cell, a list of pairs as "label: value; ...") with
    every cell that starts like a formula prefixed by an apostrophe."""
    writer = csv.writer(out, lineterminator="\n")
    # Minimal quoting does not quote a bare "\r" (only the line terminator's characters):
    # a row holding one is written fully quoted, or a reader would split it.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    for row in rows:
        cells = ["" if value is None else value
                 for value in _csv_column([row.get(name) for name in columns])]
        (quoted if any("\r" in str(cell) for cell in cells) else writer).writerow(cells)


def write_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: BinaryIO) -> None:
    """The table as a JSON array of objects (UTF-8, indented) into an open binary file."""
    text = _frame(rows, columns).to_json(orient="records", force_ascii=False, indent=2)
    out.write((text or "[]").encode("utf-8"))
    out.write(b"\n")
