"""Table exports of the site (status.csv, status.json, changes.csv), made with pandas.

pandas is imported inside each function: a publish whose tables did not change reuses the
previous files and never pays for the import. A table is handed to pandas column by column
(one list per column, ``dtype=object``: no inference, no copy per row).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

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


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
           csv: bool) -> pd.DataFrame:
    import pandas as pd

    data = {name: [row.get(name) for row in rows] for name in columns}
    if csv:
        data = {name: _csv_column(values) for name, values in data.items()}
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
    """The table as CSV (UTF-8, "\\n" line ends) into an open binary file, a chunk of rows at
    a time."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        _frame(rows, columns, csv=True).to_csv(text, index=False, lineterminator="\n")
        text.flush()
    finally:
        text.detach()  # the caller's file stays open


def write_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: BinaryIO) -> None:
    """The table as a JSON array of objects (UTF-8, indented) into an open binary file."""
    text = _frame(rows, columns, csv=False).to_json(orient="records", force_ascii=False,
                                                    indent=2)
    out.write((text or "[]").encode("utf-8"))
    out.write(b"\n")
