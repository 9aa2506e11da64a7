"""Streaming drift monitoring: read a production log in windows, test each, keep a history.

Sources (``WindowReader``):

- a file (JSONL, CSV or Parquet) read in consecutive windows of ``window`` rows;
- a growing file (JSONL or CSV) followed with ``follow``: it is polled every
  ``poll_interval`` seconds and only complete lines are read (a last line without its
  newline is still being written); ``idle_timeout`` seconds without a new row ends it;
- a directory of such files in name order (e.g. one per day): one stream cut into
  windows of ``window`` rows across files, or, with ``per_file``, one window per file
  made of ``window`` rows drawn from it at random (seeded by the file name): a
  detector's threshold holds for one window size only. When following a directory, a
  file is finished once a later one exists (the newest may still be written), so
  per-file windows wait for the next file and appended rows of a passed file are unread.

Resuming: each stored window keeps where the next row starts (file, byte offset in a
text file or row in a Parquet file, rows so far), written in the same transaction as
its results, so a restarted monitor goes on after the stream's last stored window. Rows
after it that did not fill a window are read again next time.

The loop (``monitor_stream``) embeds each window with the caller's ``embed`` callable,
checks the embeddings (finite, one row per text), tests them with every detector, and
only then writes all results of the window at once; bad input stops it before a write.
``run_stream`` adds the online MMD detector fitted on the reference (or loaded from a
folder that holds one fitted on the same reference).
"""

from __future__ import annotations

import csv
import io
import json
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.detectors import DriftResult, check_matrix
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.detectors.online import OnlineDetector
    from shiftbench.monitor.store import HistoryStore

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Position:
    """Where the next unread row starts: a file name (in a directory, else the file's own
    name), an offset in it (bytes for JSONL/CSV, rows for Parquet; per-file windows: the
    last file done) and the number of rows before it in the stream."""

    file: str
    offset: int
    row: int


@dataclass(frozen=True)
class Window:
    """``texts`` of stream rows ``start_row`` <= row < ``end.row``, from files ``source``."""

    index: int
    texts: list[str]
    start_row: int
    end: Position
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


# -- reading rows ---------------------------------------------------------------------------


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ShiftbenchError(f"{path}: unknown file type; use {', '.join(FORMATS)}")
    return fmt


def read_records(path: Path, offset: int, text_column: str,
                 complete: bool = True) -> Iterator[tuple[str, int]]:
    """Each text from ``offset`` on, with the offset just after its row. ``complete``: the
    file is finished, so a last line without a newline is a row (else it is skipped: it
    is still being written)."""
    fmt = file_format(path)
    if fmt == "parquet":
        return _parquet_records(path, offset, text_column)
    size = path.stat().st_size
    if offset > size:
        raise ShiftbenchError(f"{path}: {size} bytes, fewer than where the stream stopped "
                              f"({offset}); was it truncated or rotated? Use a new stream name")
    reader = _jsonl_records if fmt == "jsonl" else _csv_records
    return reader(path, offset, text_column, complete)


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
                row = json.loads(raw)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise ShiftbenchError(f"{path}: {_line(path, start)}: invalid JSON "
                                      f"({getattr(exc, 'msg', exc)})") from None
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


def _parse_csv(record: bytes, path: Path, start: int) -> list[str]:
    try:
        text = record.decode("utf-8-sig" if start == 0 else "utf-8")
    except UnicodeDecodeError:
        raise ShiftbenchError(f"{path}: {_line(path, start)}: not valid UTF-8") from None
    return next(csv.reader(io.StringIO(text, newline="")), [])


def _csv_records(path: Path, offset: int, column: str,
                 complete: bool) -> Iterator[tuple[str, int]]:
    with open(path, "rb") as fh:
        first = next(_csv_rows(fh, 0, complete), None)
        if first is None:
            return
        header = _parse_csv(first[0], path, 0)
        if column not in header:
            raise ShiftbenchError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
        at = header.index(column)
        for record, start in _csv_rows(fh, max(offset, len(first[0])), complete):
            if not record.strip():
                continue
            fields = _parse_csv(record, path, start)
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
    """All texts of one JSONL, CSV or Parquet file (e.g. the reference)."""
    path = Path(path)
    if not path.is_file():
        raise ShiftbenchError(f"{path}: file not found")
    return [text for text, _ in read_records(path, 0, text_column)]


# -- windows --------------------------------------------------------------------------------


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
            raise ShiftbenchError(f"{self.source}: no {', '.join(FORMATS)} files")

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
                      if p.suffix.lower() in FORMATS and not p.name.startswith(".")
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

    def _row_windows(self, cursor: Position, index: int) -> Iterator[Window]:
        texts: list[str] = []
        files: list[str] = []
        last_row_at = time.monotonic()
        self.leftover = 0
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
                    yield Window(index, texts, cursor.row - self.window, cursor, _span(files))
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


# -- the loop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSummary:
    """What one run of the monitor did (windows of earlier runs are in the store)."""

    stream: str
    store: str
    first_window: int
    windows: int
    alarms: list[int]
    next_row: int
    leftover_rows: int

    @property
    def resumed(self) -> bool:
        return self.first_window > 0


def _embed(embed: Embed, window: Window) -> np.ndarray:
    where = f"embeddings of window {window.index} (rows {window.start_row}-{window.end.row})"
    x = check_matrix(embed(window.texts), where)
    if len(x) != len(window.texts):
        raise ShiftbenchError(f"{where}: {len(x)} rows for {len(window.texts)} texts")
    return x


def stream_config(reader: WindowReader, detectors: Mapping[str, OnlineDetector],
                  settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything a resumed stream must keep: source, window, detectors and ``settings``
    (e.g. the embedder's description: windows embedded otherwise are not comparable)."""
    return {**reader.describe(),
            "detectors": {name: d.describe() for name, d in detectors.items()},
            "settings": dict(settings or {})}


def monitor_stream(reader: WindowReader, detectors: Mapping[str, OnlineDetector], embed: Embed,
                   store: HistoryStore, stream: str, max_windows: int | None = None,
                   on_window: Callable[[Window, Mapping[str, DriftResult]], None] | None = None,
                   settings: Mapping[str, Any] | None = None) -> StreamSummary:
    """Test each window of ``reader`` with every detector and store the results, from
    where ``stream`` last stopped; ``on_window`` is called after each stored window.
    ``settings``: more settings the stream must keep (see :func:`stream_config`)."""
    from shiftbench.monitor.store import WindowRecord

    if not detectors:
        raise ShiftbenchError("monitor: no detectors")
    if not stream.strip() or len(stream) > 200:
        raise ShiftbenchError(f"stream name {stream!r}: use 1 to 200 characters")
    for name, detector in detectors.items():
        if reader.window != detector.window:
            raise ShiftbenchError(f"windows of {reader.window} rows, but the {name} detector "
                                  f"is calibrated for windows of {detector.window}")
    config = stream_config(reader, detectors, settings)
    store.check_stream(stream, config)
    last = store.last_window(stream)
    start = Position(last.end_file, last.end_offset, last.end_row) if last else None
    first = last.window + 1 if last else 0
    alarms, count, next_row = [], 0, start.row if start else 0
    for window in islice(reader.windows(start, first), max_windows):
        x = _embed(embed, window)
        results = {name: detector.test(x) for name, detector in detectors.items()}
        stamp = datetime.now(timezone.utc)
        records = [WindowRecord(stream, window.index, name, r.method, window.source,
                                window.start_row, window.end.row, window.end.file,
                                window.end.offset, stamp, r.n_sample, r.statistic,
                                r.details.get("threshold"), r.p_value, r.alpha, r.drifted,
                                {**window.extra, **r.details})
                   for name, r in results.items()]
        store.write_window(stream, config, records)
        count, next_row = count + 1, window.end.row
        if any(r.drifted for r in results.values()):
            alarms.append(window.index)
        if on_window is not None:
            on_window(window, results)
    return StreamSummary(stream, store.name, first, count, alarms, next_row, reader.leftover)


def fitted_online(reference: np.ndarray, detector: OnlineDetector,
                  directory: Path | None = None) -> OnlineDetector:
    """``detector`` fitted on ``reference``, or the one saved in ``directory`` when it has
    the same parameters and was fitted on the same reference (saving the simulation);
    a fresh fit is saved there. A saved detector that fails its checks is refused."""
    from shiftbench.detectors import reference_digest
    from shiftbench.detectors.online import SAVED_JSON

    if directory is not None and (directory / SAVED_JSON).is_file():
        try:
            saved = type(detector).load(directory)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"{exc}; remove {directory} to fit the detector again") \
                from None
        if saved.get_params() == detector.get_params() \
                and saved.reference_digest_ == reference_digest(reference):
            return saved
    detector.fit(reference)
    if directory is not None:
        detector.save(directory)
    return detector


def run_stream(reference_texts: Sequence[str], source: str | Path, embed: Embed, *,
               store: str | Path, stream: str, window: int = 200, ert: float = 500.0,
               text_column: str = "text", per_file: bool = False, follow: bool = False,
               poll_interval: float = 5.0, idle_timeout: float | None = None,
               max_windows: int | None = None, detector_dir: str | Path | None = None,
               n_simulations: int | None = None, backend: str = "auto", device: str = "auto",
               seed: int = 0, settings: Mapping[str, Any] | None = None,
               on_window: Callable[[Window, Mapping[str, DriftResult]], None] | None = None
               ) -> StreamSummary:
    """Monitor ``source`` with the online MMD detector (threshold for ``ert`` windows
    between false alarms) fitted on the embedded ``reference_texts``; see the module doc.

    Settings, source and store are checked before the reference is embedded, so a typo
    costs nothing.
    """
    from shiftbench.detectors.online import OnlineMMD
    from shiftbench.monitor.store import HistoryStore

    detector = OnlineMMD(ert=ert, window=window, n_simulations=n_simulations,
                         backend=backend, device=device, seed=seed)
    reader = WindowReader(source, text_column, window, per_file, follow, poll_interval,
                          idle_timeout, seed)
    detector.validate(len(reference_texts))
    with HistoryStore(store) as history_store:
        history_store.check_stream(stream, stream_config(reader, {detector.name: detector},
                                                         settings))
        reference = check_matrix(embed(list(reference_texts)), "reference embeddings")
        folder = Path(detector_dir) if detector_dir is not None else None
        fitted = fitted_online(reference, detector, folder)
        return monitor_stream(reader, {detector.name: fitted}, embed, history_store, stream,
                              max_windows, on_window, settings)
