"""Windows of a stream: a file, a growing file or a directory of files read in windows of
``window`` rows, each window remembering where the next row starts.

Sources:

- a data file (any of :data:`~shiftbench.file_formats.FILE_FORMATS`) read in
  consecutive windows of ``window`` rows;
- a growing file (JSON Lines or delimited text) followed with ``follow``: it is polled
  every ``poll_interval`` seconds and only complete lines are read (a last line without
  its newline is still being written); ``idle_timeout`` seconds without a new row ends it;
- a directory of such files in name order (e.g. one per day): one stream cut into
  windows of ``window`` rows across files, or, with ``per_file``, one window per file
  made of ``window`` rows drawn from it at random (seeded by the file name): a
  detector's threshold holds for one window size only. When following a directory, a
  file is finished once a later one exists (the newest may still be written), so
  per-file windows wait for the next file and appended rows of a passed file are unread.

Resuming: a window's ``end`` is where the next row starts (file, byte offset in a text
file or row in a Parquet file, rows so far); reading from it goes on after that window.
In a text file the end also keeps a fingerprint of the bytes read (the file's first and
last :data:`FINGERPRINT_BYTES` before the offset), so a file replaced or rewritten since
(a log rotated to a new file of the same name) is refused instead of read from the old
offset, which would test the wrong rows.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.file_formats import FILE_FORMATS, file_format
from shiftbench.monitor.rows import read_records


@dataclass(frozen=True)
class Position:
    """Where the next unread row starts: a file name (in a directory, else the file's own
    name), an offset in it (bytes for JSONL/CSV, rows for Parquet; per-file windows: the
    last file done) and the number of rows before it in the stream."""

    file: str
    offset: int
    row: int
    digest: str = ""  # the fingerprint of a text file's bytes before offset ("": unknown)


FINGERPRINT_BYTES = 4096
DIGEST_KEY = "end_digest"  # a window's fingerprint, kept in its ``extra``


def fingerprint(path: Path, offset: int) -> str:
    """A digest of what a stream read from the text file ``path``, its bytes before
    ``offset``: the first and last FINGERPRINT_BYTES of them (a replaced or rewritten file
    differs there; a large file is not read again)."""
    with path.open("rb") as f:
        head = f.read(min(offset, FINGERPRINT_BYTES))
        tail_start = max(0, offset - FINGERPRINT_BYTES)
        f.seek(tail_start)
        tail = f.read(offset - tail_start)
    return hashlib.sha256(head + b"\0" + tail).hexdigest()[:32]


@dataclass(frozen=True)
class Window:
    """``texts`` of stream rows ``start_row`` <= row < ``end.row``, from files ``source``."""

    index: int
    texts: list[str]
    start_row: int
    end: Position
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


class WindowReader:
    """Windows of ``window`` rows from a file, a growing file or a directory of files."""

    def __init__(self, source: str | Path, text_column: str = "text", window: int = 200,
                 per_file: bool = False, follow: bool = False, poll_interval: float = 1.0,
                 idle_timeout: float | None = None, seed: int = 0) -> None:
        self.source = Path(source)
        self.text_column = text_column
        self.window = window
        self.per_file = per_file
        self.follow = follow
        self.poll_interval = poll_interval
        self.idle_timeout = idle_timeout
        self.seed = seed
        self.leftover = 0  # rows read after the last full window when reading stopped
        if window < 1:
            raise ShiftbenchError(f"window must be at least 1 row, got {window}")
        if self.source.is_file():
            if per_file:
                raise ShiftbenchError(f"{self.source}: one window per file needs a directory")
            if follow and file_format(self.source) == "parquet":
                raise ShiftbenchError(f"{self.source}: a Parquet file cannot grow; follow a "
                                      "directory of Parquet files instead")
        elif not self.source.is_dir():
            raise ShiftbenchError(f"{self.source}: no such file or directory")
        elif not follow and not self._names():
            raise ShiftbenchError(f"{self.source}: no {', '.join(FILE_FORMATS)} files")

    def describe(self) -> dict[str, Any]:
        """The settings a resumed stream must keep."""
        return {"source": str(self.source.resolve()), "text_column": self.text_column,
                "window": self.window, "per_file": self.per_file}

    def windows(self, start: Position | None = None, first_index: int = 0) -> Iterator[Window]:
        """Windows from ``start`` (the beginning when None), numbered from ``first_index``."""
        start = start or Position("", 0, 0)
        if self.per_file:
            return self._file_windows(start, first_index)
        return self._row_windows(start, first_index)

    def _names(self) -> list[str]:
        if not self.source.exists():
            raise ShiftbenchError(f"{self.source}: gone (moved or deleted while monitored)")
        if self.source.is_file():
            return [self.source.name]
        return sorted(p.name for p in self.source.iterdir()
                      if p.suffix.lower() in FILE_FORMATS and not p.name.startswith(".")
                      and p.is_file())

    def _path(self, name: str) -> Path:
        return self.source if self.source.is_file() else self.source / name

    def _wait(self, last_row_at: float) -> bool:
        """Sleep one poll when following; False when reading should stop."""
        if not self.follow:
            return False
        if self.idle_timeout is not None and time.monotonic() - last_row_at >= self.idle_timeout:
            return False
        time.sleep(self.poll_interval)
        return True

    def check_unchanged(self, cursor: Position) -> None:
        """Refuse a resumed file whose bytes before the stream's offset changed (a file
        gone or shorter is refused where it is read, with its own message)."""
        path = self._path(cursor.file)
        if not cursor.digest or not path.is_file() or path.stat().st_size < cursor.offset:
            return
        if fingerprint(path, cursor.offset) != cursor.digest:
            raise ShiftbenchError(f"{path}: its first {cursor.offset} bytes, which the stream "
                                  "has read, changed since; was it replaced or rotated? Use a "
                                  "new stream name")

    def _end(self, cursor: Position) -> tuple[Position, dict[str, str]]:
        """A window's end, with the fingerprint of a text file, and its ``extra``."""
        path = self._path(cursor.file)
        if file_format(path) == "parquet":
            return cursor, {}
        end = replace(cursor, digest=fingerprint(path, cursor.offset))
        return end, {DIGEST_KEY: end.digest}

    def _row_windows(self, cursor: Position, index: int) -> Iterator[Window]:
        texts: list[str] = []
        files: list[str] = []
        last_row_at = time.monotonic()
        self.leftover = 0
        if cursor.file:
            self.check_unchanged(cursor)
        while True:
            names = self._names()
            if not cursor.file and names:
                cursor = Position(names[0], 0, cursor.row)
            if cursor.file and cursor.file not in names:
                raise ShiftbenchError(f"{self._path(cursor.file)}: the stream stopped in this "
                                      "file, but it is gone")
            later = names[names.index(cursor.file) + 1:] if cursor.file else []
            complete = bool(later) or not self.follow
            records = (read_records(self._path(cursor.file), cursor.offset, self.text_column,
                                    complete) if cursor.file else iter(()))
            for text, offset in records:
                last_row_at = time.monotonic()
                cursor = Position(cursor.file, offset, cursor.row + 1)
                texts.append(text)
                if cursor.file not in files:
                    files.append(cursor.file)
                self.leftover = len(texts) % self.window
                if not self.leftover:
                    end, extra = self._end(cursor)
                    yield Window(index, texts, cursor.row - self.window, end, _span(files), extra)
                    index, texts, files = index + 1, [], []
            if later:
                cursor = Position(later[0], 0, cursor.row)
            elif not self._wait(last_row_at):
                return

    def _file_windows(self, done: Position, index: int) -> Iterator[Window]:
        last_row_at = time.monotonic()
        while True:
            names = [name for name in self._names() if name > done.file]
            for name in names[:-1] if self.follow else names:
                texts = [text for text, _ in read_records(self._path(name), 0, self.text_column)]
                if len(texts) < self.window:
                    raise ShiftbenchError(f"{self._path(name)}: {len(texts)} rows, fewer than "
                                          f"the window ({self.window}); lower the window")
                rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
                picked = np.sort(rng.choice(len(texts), self.window, replace=False))
                end = Position(name, len(texts), done.row + len(texts))
                yield Window(index, [texts[i] for i in picked], done.row, end, name,
                             {"rows_in_file": len(texts)})
                index, done, last_row_at = index + 1, end, time.monotonic()
            if not self._wait(last_row_at):
                return


def _span(files: Sequence[str]) -> str:
    return files[0] if len(files) == 1 else f"{files[0]}..{files[-1]}"
