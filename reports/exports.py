"""Table exports of the site (status.csv, status.json, changes.csv), made with pandas.

pandas is imported inside each function: a publish whose tables did not change reuses the
previous files and never pays for the import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    import pandas as pd

    frame = pd.DataFrame([{c: _csv_cell(row.get(c)) for c in columns} for row in rows],
                         columns=list(columns), dtype=object)
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def to_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    import pandas as pd

    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows],
                         columns=list(columns), dtype=object)
    text = frame.to_json(orient="records", force_ascii=False, indent=2)
    return (text or "[]").encode("utf-8") + b"\n"
