"""The site's table exports (reports/exports.py): status.json is written with the standard
library in exactly the bytes pandas' ``to_json(orient="records", force_ascii=False,
indent=2)`` wrote before (the published format does not move), and status.csv/changes.csv
in the bytes pandas' ``to_csv`` would write for the same neutralised cells — for tricky
values: formulas, unicode, None, newlines, slashes, empty and nested lists, booleans."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest

from reports import exports
from reports.status_rows import STATUS_COLUMNS

TRICKY_TEXT = [
    "=HYPERLINK(\"http://evil.example/x\")", "+1", "-2", "@SUM(A1)", "\tstarts with a tab",
    "ketamine", "Kétamine — 2-(2-chlorophényl)-2-(méthylamino)cyclohexanone", "氯胺酮",
    "line one\nline two", "a \"quoted\" word, and a comma", "back\\slash", "a/b/c",
    "https://www.legislation.gov.au/F2026L00633/latest/text", "\u2028\u2029\x7f\x00\x1f",
    "emoji 🧪", "", " ", "[]", '"x":[]', "{}", "%s %d %%", "<b>&amp;</b>",
]
OTHER_VALUES: list[Any] = [None, True, False, 0, 7, -12, 2**62, [], [["in force", "2026-02-01"]],
                           [["a", "b"], ["c", []]], {"k": "v", "e": {}}, ()]
COLUMNS = ("jurisdiction", "substance", "listed_as", "backfilled", "dates", "id")


def _rows(values: list[Any]) -> list[dict[str, Any]]:
    """Every value in every column, and a row missing keys (exported as None)."""
    rows = [{name: values[(index + shift) % len(values)] for shift, name in enumerate(COLUMNS)}
            for index in range(len(values))]
    rows.append({"substance": "only one key"})
    return rows


def _pandas_json(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> bytes:
    """What the site published before: a frame of object columns, pandas' JSON writer."""
    frame = pd.DataFrame({name: [row.get(name) for row in rows] for name in columns},
                         columns=list(columns), dtype=object)
    text = frame.to_json(orient="records", force_ascii=False, indent=2)
    return (text or "[]").encode("utf-8") + b"\n"


def _pandas_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> bytes:
    frame = pd.DataFrame({name: [exports._csv_cell(row.get(name)) for row in rows]
                          for name in columns}, columns=list(columns), dtype=object)
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def test_json_is_byte_identical_to_pandas_for_tricky_values() -> None:
    rows = _rows(TRICKY_TEXT + OTHER_VALUES)
    assert exports.to_json(rows, COLUMNS) == _pandas_json(rows, COLUMNS)
    assert json.loads(exports.to_json(rows, COLUMNS))[0]["jurisdiction"] == TRICKY_TEXT[0]


@pytest.mark.parametrize("value", TRICKY_TEXT + OTHER_VALUES, ids=repr)
def test_json_of_each_value_alone_is_pandas_bytes(value: Any) -> None:
    rows = [{"a": value, "b": [value, [value]]}]
    assert exports.to_json(rows, ("a", "b")) == _pandas_json(rows, ("a", "b"))


def test_json_of_every_code_point_is_pandas_bytes() -> None:
    text = [chr(c) for c in range(0x800) if not 0xD800 <= c < 0xE000] + ["\U0001F9EA"]
    rows = [{"text": t} for t in text]
    assert exports.to_json(rows, ("text",)) == _pandas_json(rows, ("text",))


@pytest.mark.parametrize("value", [1.5, 0.1 + 0.2, float("nan"), 1e300, 2**70,
                                   {1: "int key"}], ids=repr)
def test_json_of_values_the_writers_differ_on_is_still_pandas_bytes(value: Any) -> None:
    """A float, a huge integer or a non-text key: the table is written by pandas, as
    before (nothing in status.json holds one today; the bytes must not depend on it)."""
    rows = [{"a": "x/y", "b": value}]
    assert exports.to_json(rows, ("a", "b")) == _pandas_json(rows, ("a", "b"))


def test_json_of_an_empty_table_is_pandas_bytes() -> None:
    assert exports.to_json([], STATUS_COLUMNS) == _pandas_json([], STATUS_COLUMNS) \
        == b"[\n\n]\n"


def test_json_keeps_the_column_order_not_the_row_order() -> None:
    rows = [{"b": 1, "a": "x", "ignored": "not a column"}]
    assert exports.to_json(rows, ("a", "b")) == b'[\n  {\n    "a":"x",\n    "b":1\n  }\n]\n'


def test_csv_is_byte_identical_to_pandas_for_tricky_values() -> None:
    rows = _rows(TRICKY_TEXT + OTHER_VALUES)
    assert exports.to_csv(rows, COLUMNS) == _pandas_csv(rows, COLUMNS)


def test_csv_neutralises_formulas_and_json_keeps_them() -> None:
    rows = [{"a": "=1+1", "b": "@cmd", "c": "-x", "d": "plain"}]
    text = exports.to_csv(rows, ("a", "b", "c", "d")).decode()
    assert text == "a,b,c,d\n'=1+1,'@cmd,'-x,plain\n"
    assert json.loads(exports.to_json(rows, ("a", "b")))[0] == {"a": "=1+1", "b": "@cmd"}


def test_csv_row_with_a_bare_carriage_return_is_quoted_whole() -> None:
    """Minimal quoting leaves a lone "\\r" bare (pandas too): a reader would split the row.
    Such a row is written fully quoted, and reads back as one row."""
    import csv

    rows = [{"a": "one\rtwo", "b": "x"}]
    data = exports.to_csv(rows, ("a", "b"))
    assert data == b'a,b\n"one\rtwo","x"\n'
    assert list(csv.reader(io.StringIO(data.decode(), newline=""))) == [["a", "b"],
                                                                          ["one\rtwo", "x"]]


def test_writing_the_exports_does_not_import_pandas() -> None:
    """A publish pays neither for importing pandas nor for building a frame."""
    code = ("import sys; from reports import exports\n"
            "rows = [{'a': 'x/y', 'b': [['in force', '2026-01-01']], 'c': None}]\n"
            "exports.to_json(rows, ('a', 'b', 'c')); exports.to_csv(rows, ('a', 'b', 'c'))\n"
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_csv_quotes_only_the_rows_with_a_bare_carriage_return() -> None:
    rows = [{"a": "x", "b": None}, {"a": "one\rtwo", "b": 1}, {"a": "y", "b": [["k", "v"]]},
            {"b": "=2\r"}]
    assert exports.to_csv(rows, ("a", "b")) == \
        b'a,b\nx,\n"one\rtwo","1"\ny,k: v\n"","\'=2\r"\n'
    assert exports.to_csv(rows, ()) == b"\n\n\n\n\n"


def test_json_of_a_table_of_many_rows_is_pandas_bytes() -> None:
    """Written a few hundred rows at a time: the joins between chunks are pandas' too, and
    a value pandas must write found late still makes the whole table pandas'."""
    rows = _rows(TRICKY_TEXT + OTHER_VALUES) * 30
    assert len(rows) > 2 * exports._CHUNK_ROWS
    assert exports.to_json(rows, COLUMNS) == _pandas_json(rows, COLUMNS)
    late = [*rows, {"id": 0.5}]
    assert exports.to_json(late, COLUMNS) == _pandas_json(late, COLUMNS)


@pytest.mark.parametrize("seed", range(6))
def test_csv_of_columns_of_text_alone_is_pandas_bytes(seed: int) -> None:
    """Columns of text and None, written column by column: the bytes of the rule applied
    cell by cell, whether no value starts like a formula, one does, one holds a line break
    followed by "=" (not a formula), or a bare carriage return — and ``csv_lines`` (the kept
    export rows) gives the same lines."""
    import random

    rng = random.Random(seed)
    plain = ["ketamine", "Kétamine", "", None, "a, b", "two\nlines", "2026-12-03T06:00:00Z",
             "a" * 64, "healthy", "a \"quoted\" word"]
    pool = [*plain, "x\n=not a formula", "line\n+1 inside"]
    rare = ["=1+1", "@cmd", "-x", "+1", "\tx", "one\rtwo", "\rstart"]
    columns = ("a", "b", "c", "d")
    rows = [{name: rng.choice(plain if name in "ab" else pool) for name in columns}
            for _ in range(50)]
    if seed % 2:  # half of the tables: some rare values in one column
        for row in rng.sample(rows, 3):
            row[columns[seed % 4]] = rng.choice(rare)
    assert exports.to_csv(rows, columns) == _value_by_value_csv(rows, columns)
    assert "".join(exports.csv_lines(rows, columns)).encode() == \
        exports.to_csv(rows, columns).split(b"\n", 1)[1]


def _value_by_value_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> bytes:
    """The CSV rule cell by cell: each value neutralised (``_csv_cell``), minimal quoting,
    a row holding a bare carriage return quoted whole (pandas' bytes but for those rows)."""
    import csv

    out = io.StringIO()
    plain = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    plain.writerow(columns)
    for row in rows:
        cells = [exports._csv_cell(row.get(name)) for name in columns]
        bare_cr = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoted if bare_cr else plain).writerow(cells)
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize("columns", [("substance",), ("substance", "listed_as"), COLUMNS],
                         ids=lambda c: f"{len(c)} column(s)")
def test_csv_of_rows_with_and_without_each_column_is_pandas_bytes(
        columns: tuple[str, ...]) -> None:
    """Rows that hold every column and rows that lack some (an empty cell for each missing
    one), with one, two and every column: pandas' bytes, for the table and for each row's
    line."""
    full = [{name: f"{name} {index}" for name in COLUMNS} for index in range(5)]
    assert exports.to_csv(full, columns) == _pandas_csv(full, columns)
    partial = [*full[:2], {"id": 3}, *full[2:]]
    assert exports.to_csv(partial, columns) == _pandas_csv(partial, columns)
    assert exports.csv_lines(partial, columns) == \
        _pandas_csv(partial, columns).decode("utf-8").splitlines(keepends=True)[1:]


@pytest.mark.parametrize("seed", range(8))
def test_csv_lines_are_the_standard_library_writers_bytes(seed: int) -> None:
    """The rows are joined by ``exports`` itself, column by column (``csv.writer`` searched
    the line terminator for every character of every cell); on random tables of text with
    delimiters, quotes, line breaks and carriage returns, None, numbers, booleans and text
    subclasses, one to six columns, the lines are those ``csv.writer`` writes from the same
    cells (a row with a bare carriage return fully quoted, as before)."""
    import csv
    import random

    from markupsafe import Markup

    rng = random.Random(seed)
    pieces = ["a", "Kétamine", ",", '"', "\n", "\r", " ", "", "x,y", 'say "hi"', "=1", "'",
              "\t", ";", "🧪", "\r\n"]

    def value() -> Any:
        kind = rng.random()
        if kind < 0.08:
            return None
        if kind < 0.12:
            return rng.choice([0, -7, 2**70, True, False, 1.5])
        if kind < 0.14:
            return Markup("<b>" + rng.choice(pieces) + "</b>")
        return "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))

    columns = tuple(f"c{n}" for n in range(rng.randrange(1, 7)))
    rows = [{name: value() for name in columns if rng.random() > 0.05} for _ in range(200)]
    expected: list[str] = []
    plain = csv.writer(exports._Lines(expected.append), lineterminator="\n")
    every = csv.writer(exports._Lines(expected.append), lineterminator="\n",
                       quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = exports._csv_column([row.get(name) for name in columns])
        (every if any(isinstance(c, str) and "\r" in c for c in cells) else plain).writerow(
            cells)
    assert exports.csv_lines(rows, columns) == expected
    text = io.StringIO()
    exports.write_csv_text(rows, columns, text)
    assert text.getvalue() == ",".join(columns) + "\n" + "".join(expected)
