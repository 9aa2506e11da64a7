"""The data file formats commands read, by file name suffix: the one table that
``monitor check`` (a whole file, :func:`shiftbench.data.read_file`) and ``monitor
stream`` (row by row, :mod:`shiftbench.monitor.rows`) both go by.

Each format is a data source kind (:data:`shiftbench.registry.SOURCES`), so a file
reads the same as a suite source of that kind.
"""

from __future__ import annotations

import json
from pathlib import Path

from shiftbench.errors import ShiftbenchError

FILE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
                ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
"""File name suffix (lower case) -> data source kind. ``.json`` files are JSON Lines."""


def file_format(path: Path) -> str:
    """The data source kind of ``path`` by its suffix; a one-line error naming the
    suffixes read when it has none of them."""
    kind = FILE_FORMATS.get(path.suffix.lower())
    if kind is None:
        found = repr(path.suffix) if path.suffix else "(no suffix)"
        raise ShiftbenchError(f"{path}: unknown file type {found}; use "
                              f"{', '.join(FILE_FORMATS)}")
    return kind

DELIMITERS = {"csv": ",", "tsv": "\t"}
"""The field separator of each delimited kind (a suite source may set another)."""


def json_problem(exc: ValueError) -> str:
    """What is wrong with a line that json.loads refused, with its column: "invalid JSON
    (Unterminated string starting at column 12)" (a decoding error has no column)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
    return f"invalid JSON ({exc})"
