"""Table exports: the site's status.csv, status.json and changes.csv, and the CSV of
``schedwatch status --format csv``.

There is one CSV writer (``write_csv_text``: the bytes of the standard library's ``csv``),
used by the site and the CLI alike, so that a cell which a spreadsheet would run as a formula is
neutralised the same way everywhere. The JSON export is written with the standard
library's ``json`` in exactly the bytes pandas' ``DataFrame.to_json(orient="records",
force_ascii=False, indent=2)`` writes (the format the site has always published: ``"key":
value`` without a space, ``/`` escaped as ``\\/``, an empty list as ``[`` blank line ``]``).
Importing pandas and building a frame cost more than writing the file; pandas is still
imported, lazily, for a table holding a value whose text the two libraries write
differently (a float, a date object, an integer beyond 64 bits, a non-text key, text that
is not valid Unicode), so the bytes stay pandas' whatever the table holds.
"""

from __future__ import annotations

import csv
import io
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring as _string  # C, when built
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
    every cell that starts like a formula prefixed by an apostrophe (``csv_lines``)."""
    lines = csv_table_lines(rows, columns)
    for start in range(0, len(lines), _CHUNK_ROWS):
        out.write("".join(lines[start:start + _CHUNK_ROWS]))


def csv_table_lines(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """The lines ``write_csv_text`` writes, each ending in "\n": the header's, then each
    row's (``csv_lines``)."""
    header: list[str] = []
    csv.writer(_Lines(header.append), lineterminator="\n").writerow(columns)
    return [header[0], *csv_lines(rows, columns)]


def csv_lines(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """Each row's line as the standard library's ``csv.writer`` (minimal quoting, "\\n"
    line ends) writes its cells (``_csv_column``), one string a row: ``"".join`` of them is
    the table's body (``write_csv_text`` writes them after the header; reports/status_exports
    keeps them between publishes). Minimal quoting does not quote a bare "\\r" (only the line
    terminator's characters): a row holding one is written fully quoted, or a reader would
    split it.

    The lines are joined here, column by column, rather than by ``csv.writer``: it looks up
    every character of every cell in the line terminator (a fifth of ``status --format
    csv`` on a ten-year store went to that search); a column is searched once for the
    characters that need quotes (``,``, ``"``, a line break) and only a column holding one
    is quoted cell by cell, as ``csv.writer`` quotes (tests/test_exports.py compares the
    bytes)."""
    if not columns:
        return ["\n"] * len(rows)
    cells = [_csv_column(_column_values(rows, name)) for name in columns]
    texts = [_csv_texts(column) for column in cells]
    lines = [",".join(row) + "\n" for row in zip(*texts, strict=True)]
    if len(columns) == 1:  # csv.writer writes a row of one empty cell as ""
        lines = ['""\n' if line == "\n" else line for line in lines]
    carriage = {index for column in texts if "\r" in "".join(column)
                for index, text in enumerate(column) if "\r" in text}
    quoted: list[str] = []
    writer = csv.writer(_Lines(quoted.append), lineterminator="\n", quoting=csv.QUOTE_ALL)
    for index in sorted(carriage):
        writer.writerow([column[index] for column in cells])
        lines[index] = quoted.pop()
    return lines


def _column_values(rows: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """Each row's value of one column, None where a row lacks it. Read in one C call when
    every row has it (the status rows always do: a third of ``csv_lines`` went to a Python
    step a cell for ``status --format csv`` on a ten-year store)."""
    try:
        return list(map(operator.itemgetter(name), rows))
    except KeyError:
        return [row.get(name) for row in rows]


def _csv_texts(column: list[Any]) -> list[str]:
    """Each cell's text as ``csv.writer`` writes it: text as it is, None as nothing, another
    value as its ``str``, quoted when it holds a delimiter, a quote or a line break."""
    texts = [value if type(value) is str else "" if value is None
             else str.__str__(value) if isinstance(value, str) else str(value)
             for value in column]
    joined = "".join(texts)
    if "," not in joined and '"' not in joined and "\n" not in joined:
        return texts
    return ['"' + text.replace('"', '""') + '"'
            if "," in text or '"' in text or "\n" in text else text for text in texts]


def write_csv_lines(columns: Sequence[str], lines: Sequence[str], out: BinaryIO) -> None:
    """A header of ``columns`` and the lines ``csv_lines`` made (UTF-8) into an open binary
    file: the bytes of ``write_csv``."""
    header: list[str] = []
    csv.writer(_Lines(header.append), lineterminator="\n").writerow(columns)
    out.write(header[0].encode("utf-8"))
    for start in range(0, len(lines), _CHUNK_ROWS):
        out.write("".join(lines[start:start + _CHUNK_ROWS]).encode("utf-8"))


class _Lines:
    """A file for ``csv.writer`` that keeps each line it is given (the writer writes a row
    in one call)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write


def write_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: BinaryIO) -> None:
    """The table as a JSON array of objects (UTF-8, indented) into an open binary file."""
    chunks = _stdlib_json(rows, columns)
    if chunks is None:
        chunks = [_pandas_json(rows, columns)]
    for chunk in chunks:
        out.write(chunk)
    out.write(b"\n")


# --- the JSON text ------------------------------------------------------------------------

class Unsupported(Exception):
    """A value the two libraries may write differently: the table goes to pandas."""


#: ujson (pandas' writer) writes integers of 64 bits; a larger one is left to pandas.
_INT_LIMIT = 1 << 63
_PAD = tuple(" " * (2 * depth) for depth in range(32))
_CHUNK_ROWS = 256


def _stdlib_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
                 ) -> list[bytes] | None:
    """pandas' bytes for a table of text, None, bools, 64-bit integers and lists/dicts of
    those, encoded a few hundred rows at a time (the chunks are kept until the end: a value
    only pandas writes right, met late, sends the whole table to pandas); None for any
    other table. One ``%`` template per row
    (the keys and the indent are the same in every row) filled with each value's JSON
    text: the standard library's string escaping is pandas' (every code point checked),
    except that pandas also escapes "/" — which occurs only inside strings in JSON text,
    so escaping every one of the finished text is exact."""
    try:
        return _array(json_objects(rows[start:start + _CHUNK_ROWS], columns)
                      for start in range(0, len(rows), _CHUNK_ROWS))
    except (Unsupported, UnicodeEncodeError):  # a lone surrogate: pandas decides
        return None


def _array(parts: Iterable[Sequence[str]]) -> list[bytes]:
    """The JSON array of the objects in ``parts`` (a few hundred a part), one UTF-8 chunk a
    part; ``UnicodeEncodeError`` for a lone surrogate."""
    chunks: list[bytes] = []
    for part in parts:
        chunks.append((",\n" if chunks else "[\n").encode() + ",\n".join(part).encode("utf-8"))
    return [*chunks, b"\n]"] if chunks else [b"[\n\n]"]


def write_json_objects(objects: Sequence[str], out: BinaryIO) -> bool:
    """The array of the objects ``json_objects`` made into an open binary file: the bytes
    of ``write_json``. False, with nothing written, when the text holds a lone surrogate
    (``write_json`` leaves that table to pandas)."""
    try:
        chunks = _array(objects[start:start + _CHUNK_ROWS]
                        for start in range(0, len(objects), _CHUNK_ROWS))
    except UnicodeEncodeError:
        return False
    for chunk in chunks:
        out.write(chunk)
    out.write(b"\n")
    return True


def json_objects(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """Each row's object as ``write_json`` writes it with the standard library, one string a
    row: ``"[\n" + ",\n".join(them) + "\n]"`` is the array. ``Unsupported`` when a value is
    one only pandas writes right."""
    row_text = "  {\n" + ",\n".join(
        "    " + _string(name).replace("%", "%%") + ":%s" for name in columns) + "\n  }"
    return [(row_text % tuple([_string(value) if type(value) is str else _value(value, 2)
                               for value in map(row.get, columns)])).replace("/", "\\/")
            for row in rows]


def _value(value: Any, depth: int) -> str:
    """The JSON text of one value as pandas indents it at ``depth`` (an empty list or
    object is written open, a blank line, closed at its own indent)."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int and -_INT_LIMIT <= value < _INT_LIMIT:
        return int.__repr__(value)
    if kind is list or kind is tuple or kind is dict:
        if depth + 1 >= len(_PAD):
            raise Unsupported
        opening, closing = ("{", "}") if kind is dict else ("[", "]")
        if not value:
            return f"{opening}\n\n{_PAD[depth]}{closing}"
        if kind is dict:
            if any(type(key) is not str for key in value):
                raise Unsupported
            items = [_string(key) + ":" + _value(item, depth + 1)
                     for key, item in value.items()]
        else:
            items = [_value(item, depth + 1) for item in value]
        inner = "\n" + _PAD[depth + 1]
        return opening + inner + ("," + inner).join(items) + "\n" + _PAD[depth] + closing
    raise Unsupported  # a float, a date, a big integer …


def _pandas_json(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    text = _frame(rows, columns).to_json(orient="records", force_ascii=False, indent=2)
    return (text or "[]").encode("utf-8")


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    data = {name: [row.get(name) for row in rows] for name in columns}
    return pd.DataFrame(data, columns=list(columns), dtype=object)
