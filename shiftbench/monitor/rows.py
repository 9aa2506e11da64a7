"""Reading a data file row by row from a saved offset, for a stream that resumes where
it stopped and follows files that grow.

Any format of :data:`~shiftbench.file_formats.FILE_FORMATS`: JSON Lines and delimited
text are read by byte offset, and only whole lines (a last line without its newline is
still being written unless the file is finished); Parquet by row number. Bad rows stop
the reading with a one-line error naming the file and line (or row).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from shiftbench.errors import ShiftbenchError
from shiftbench.file_formats import DELIMITERS, file_format, json_problem


def read_records(path: Path, offset: int, text_column: str,
                 complete: bool = True) -> Iterator[tuple[str, int]]:
    """Each text from ``offset`` on, with the offset just after its row. ``complete``: the
    file is finished, so a last line without a newline is a row (else it is skipped: it
    is still being written)."""
    kind = file_format(path)
    if kind == "parquet":
        return _parquet_records(path, offset, text_column)
    size = path.stat().st_size
    if offset > size:
        raise ShiftbenchError(f"{path}: {size} bytes, fewer than where the stream stopped "
                              f"({offset}); was it truncated or rotated? Use a new stream name")
    if kind == "jsonl":
        return _jsonl_records(path, offset, text_column, complete)
    return _delimited_records(path, offset, text_column, complete, DELIMITERS[kind])


def _line(path: Path, offset: int) -> str:
    """The line of the byte at ``offset``, as "line N" (reads the file up to it: errors only)."""
    with open(path, "rb") as fh:
        number = fh.read(offset).count(b"\n") + 1
    return f"line {number}"


def _lines(fh: Any, offset: int, complete: bool) -> Iterator[tuple[bytes, int]]:
    """Complete lines from ``offset``, each with the offset where it starts."""
    fh.seek(offset)
    for raw in fh:
        if not raw.endswith(b"\n") and not complete:
            return
        yield raw, offset
        offset += len(raw)


def _text(value: Any, path: Path, column: str, where: Callable[[], str]) -> str:
    """``value`` if it is a non-blank string; ``where`` names the row (only on error)."""
    if not isinstance(value, str) or not value.strip():
        raise ShiftbenchError(f"{path}: {where()}: empty or missing text in {column!r}")
    return value


def _jsonl_records(path: Path, offset: int, column: str,
                   complete: bool) -> Iterator[tuple[str, int]]:
    with open(path, "rb") as fh:
        for raw, start in _lines(fh, offset, complete):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.rstrip(b"\r\n"))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise ShiftbenchError(f"{path}: {_line(path, start)}: "
                                      f"{json_problem(exc)}") from None
            if not isinstance(row, dict):
                raise ShiftbenchError(f"{path}: {_line(path, start)}: expected a JSON "
                                      "object")
            yield _text(row.get(column), path, column, partial(_line, path, start)), \
                start + len(raw)


def _csv_rows(fh: Any, offset: int, complete: bool) -> Iterator[tuple[bytes, int]]:
    """Whole CSV records (a quoted field may hold newlines) with their start offsets."""
    pending, start = b"", offset
    for raw, line_start in _lines(fh, offset, complete):
        if not pending:
            start = line_start
        pending += raw
        if pending.count(b'"') % 2 == 0:  # quotes balanced: the record is whole
            yield pending, start
            pending = b""


def _parse_csv(record: bytes, path: Path, start: int, delimiter: str) -> list[str]:
    try:
        text = record.decode("utf-8-sig" if start == 0 else "utf-8")
    except UnicodeDecodeError:
        raise ShiftbenchError(f"{path}: {_line(path, start)}: not valid UTF-8") from None
    return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])


def _delimited_records(path: Path, offset: int, column: str, complete: bool,
                       delimiter: str) -> Iterator[tuple[str, int]]:
    with open(path, "rb") as fh:
        first = next(_csv_rows(fh, 0, complete), None)
        if first is None:
            return
        header = _parse_csv(first[0], path, 0, delimiter)
        if column not in header:
            raise ShiftbenchError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
        at = header.index(column)
        for record, start in _csv_rows(fh, max(offset, len(first[0])), complete):
            if not record.strip():
                continue
            fields = _parse_csv(record, path, start, delimiter)
            if len(fields) != len(header):
                raise ShiftbenchError(f"{path}: {_line(path, start)}: {len(fields)} "
                                      f"fields, the header has {len(header)}")
            yield _text(fields[at], path, column, partial(_line, path, start)), \
                start + len(record)


def _parquet_records(path: Path, offset: int, column: str) -> Iterator[tuple[str, int]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ShiftbenchError(f"{path}: not a readable Parquet file "
                              f"({exc.__class__.__name__})") from None
    names = parquet.schema_arrow.names
    if column not in names:
        raise ShiftbenchError(f"{path}: no column {column!r} (columns: {', '.join(names)})")
    row = 0
    for batch in parquet.iter_batches(columns=[column]):
        if row + batch.num_rows <= offset:
            row += batch.num_rows
            continue
        for value in batch.column(0).to_pylist():
            row += 1
            if row > offset:
                yield _text(value, path, column, partial(str.format, "row {}", row)), row


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """All texts of one data file (e.g. the reference)."""
    path = Path(path)
    if not path.is_file():
        raise ShiftbenchError(f"{path}: file not found")
    return [text for text, _ in read_records(path, 0, text_column)]
