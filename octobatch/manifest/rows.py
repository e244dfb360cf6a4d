"""`rows: FILE`: one job per row of a spreadsheet (CSV or TSV with a header row) or JSONL file.

Each row's columns are API fields or template variables, exactly as matrix values are; every
value remembers the line and column it came from, so a problem is reported there
(`shots.csv:14:9: job 'beach': seconds: ...`). The file is read like any other input file:
confined to the manifest's folder, size-bounded, UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octobatch.inputs import InputFileError, open_regular, unreadable
from octobatch.jobs import Position
from octobatch.manifest.templates import Variable

ROW_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}


@dataclass(frozen=True)
class Row:
    """One row: its cells by column name (empty cells left out), and where it starts."""

    cells: dict[str, Variable]
    at: Position


class RowsProblem(Exception):
    def __init__(self, at: Position | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.at, self.message, self.hint = at, message, hint


def read_rows(value: str, shown: str, root: Path, allow_outside: bool, max_bytes: int
              ) -> list[Row]:
    """The rows of the file `value` (relative to the manifest's folder `root`; `shown` as
    messages name it). Raises RowsProblem (at None: at the `rows:` key) or InputFileError."""
    suffix = Path(value).suffix.lower()
    if suffix not in ROW_FORMATS:
        raise InputFileError(f"'{value}' is not a .csv, .tsv or .jsonl file",
                             "give a CSV or TSV file with a header row, or a JSONL file")
    try:
        path = (root / value).resolve()
    except (OSError, ValueError):
        raise InputFileError(f"{value!r} is not a usable file path") from None
    if not allow_outside and not path.is_relative_to(root):
        raise InputFileError(f"'{value}' is outside the manifest's directory",
                             "pass --allow-outside-files to read files from anywhere")
    text = _read_text(value, path, max_bytes)
    if suffix == ".jsonl":
        return _jsonl_rows(text, shown)
    return _table_rows(text, shown, ROW_FORMATS[suffix] or ",")


def _read_text(value: str, path: Path, max_bytes: int) -> str:
    try:
        with open_regular(path) as (f, size):
            if size > max_bytes:
                raise InputFileError(
                    f"'{value}' is {size / (1 << 20):.1f} MB; at most "
                    f"{max_bytes / (1 << 20):g} MB allowed",
                    "split it, or raise the limit with OCTOBATCH_MAX_ROWS_MB")
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise unreadable(exc, value) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"'{value}' is not UTF-8 text (byte {exc.start + 1} is invalid)",
                             "save it as UTF-8 (CSV UTF-8 in a spreadsheet's export)") from None


def _table_rows(text: str, shown: str, delimiter: str) -> list[Row]:
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise RowsProblem(Position(shown, 1, 1), "the first line must name the columns",
                              "e.g. id,prompt,seconds")
        names = [h.strip() for h in header]
        columns = _columns(lines[0] if lines else "", delimiter, len(names))
        for i, name in enumerate(names):
            if not name:
                raise RowsProblem(Position(shown, 1, columns[i]), f"column {i + 1} has no name")
            if name in names[:i]:
                raise RowsProblem(Position(shown, 1, columns[i]), f"column '{name}' appears twice")
        rows: list[Row] = []
        start = reader.line_num + 1
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) > len(names):
                raise RowsProblem(Position(shown, line, 1), f"this row has {len(cells)} cells; "
                                  f"the header names {len(names)} columns",
                                  "quote a cell that contains the separator")
            at = _columns(lines[line - 1] if line <= len(lines) else "", delimiter, len(cells))
            rows.append(Row({
                name: Variable(cell, (), Position(shown, line, at[i]),
                               Position(shown, 1, columns[i] if i < len(columns) else 1))
                for i, (name, cell) in enumerate(zip(names, cells)) if cell != ""
            }, Position(shown, line, 1)))
    except csv.Error as exc:
        raise RowsProblem(Position(shown, reader.line_num, 1), f"not valid CSV: {exc}") from None
    return rows


def _columns(line: str, delimiter: str, count: int) -> list[int]:
    """The 1-based character column of each cell of `line` (1 for each when it has quotes)."""
    parts = line.split(delimiter)
    if '"' in line or len(parts) < count:
        return [1] * count
    columns, at = [], 1
    for part in parts[:count]:
        columns.append(at)
        at += len(part) + len(delimiter)
    return columns


def _jsonl_rows(text: str, shown: str) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except ValueError as exc:
            raise RowsProblem(Position(shown, number, 1), f"not valid JSON: {exc}") from None
        if not isinstance(value, dict) or not value:
            raise RowsProblem(Position(shown, number, 1),
                              "each line must be a JSON object of columns, e.g. "
                              '{"id": "beach", "prompt": "waves"}')
        rows.append(Row({
            str(key): Variable(cell, (), Position(shown, number, _key_column(line, str(key))),
                               Position(shown, number, _key_column(line, str(key))))
            for key, cell in value.items() if cell is not None
        }, Position(shown, number, 1)))
    return rows


def _key_column(line: str, key: str) -> int:
    index = line.find(json.dumps(key))
    return index + 1 if index >= 0 else 1
