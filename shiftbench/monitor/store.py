"""History of drift monitoring: one row per window and detector, over SQLAlchemy Core.

The store is an SQLite file by default (a plain path, or ``sqlite:///path``), opened in
WAL mode so dashboards and ``monitor history`` can read while a monitor writes; any
SQLAlchemy URL works too (e.g. ``postgresql+psycopg://user@host/db``).

Two tables, named with a ``shiftbench_`` prefix so they can share a database:

- ``shiftbench_windows``: stream name, window index, detector name and method, the rows
  the window covers (``start_row`` <= row < ``end_row``, counted from the stream's first
  row; ``source``: its file names), where the next window starts (``end_file``,
  ``end_offset``: a byte offset in text files, a row in Parquet), time, n, statistic,
  threshold, p-value, alpha, drifted, and ``extra`` (JSON: the detector's details);
- ``shiftbench_streams``: each stream's settings (source, window, detectors), so a
  stream is never resumed under other settings that would make its history a mix.

Every window is written in ONE transaction: all its detectors' rows (and, for a new
stream, its settings) or nothing, so a crash or an error never leaves half a window,
and the last stored window is always a consistent place to resume from.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table
    from sqlalchemy.engine import URL

WINDOWS_TABLE = "shiftbench_windows"
STREAMS_TABLE = "shiftbench_streams"
SQLITE_TIMEOUT_S = 30  # a writer waits this long for another writer's lock
CONNECT_TIMEOUT_S = 10  # an unreachable server fails after this long


@dataclass(frozen=True)
class WindowRecord:
    """One detector's result for one window of a stream (one row of the history)."""

    stream: str
    window: int
    detector: str
    method: str
    source: str
    start_row: int
    end_row: int
    end_file: str
    end_offset: int
    time: datetime
    n: int
    statistic: float
    threshold: float | None
    p_value: float | None
    alpha: float | None
    drifted: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat()}


def _tables() -> tuple[Any, Table, Table]:
    from sqlalchemy import (
        JSON,
        BigInteger,
        Boolean,
        Column,
        DateTime,
        Double,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    metadata = MetaData()
    windows = Table(
        WINDOWS_TABLE, metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("stream", String(200), nullable=False),
        Column("window_index", Integer, nullable=False),
        Column("detector", String(100), nullable=False),
        Column("method", String(100), nullable=False),
        Column("source", Text, nullable=False),
        Column("start_row", BigInteger, nullable=False),
        Column("end_row", BigInteger, nullable=False),
        Column("end_file", Text, nullable=False),
        Column("end_offset", BigInteger, nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("n", Integer, nullable=False),
        Column("statistic", Double, nullable=False),
        Column("threshold", Double),
        Column("p_value", Double),
        Column("alpha", Double),
        Column("drifted", Boolean, nullable=False),
        Column("extra", JSON, nullable=False),
        UniqueConstraint("stream", "window_index", "detector"),
    )
    streams = Table(
        STREAMS_TABLE, metadata,
        Column("stream", String(200), primary_key=True),
        Column("config", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    return metadata, windows, streams


def _mask(text: str) -> str:
    """A URL as text with any password hidden."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", text)


def _reason(exc: BaseException) -> str:
    """The first line of the database's own message (SQLAlchemy's adds SQL and links)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def parse_url(target: str | Path) -> URL:
    """An SQLAlchemy URL; a plain path (no ``://``) is an SQLite file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = str(target)
    if "://" not in text:
        return make_url("sqlite://").set(database=str(Path(text).expanduser()))
    try:
        return make_url(text)
    except ArgumentError:
        raise ShiftbenchError(f"history store {_mask(text)!r}: not a database URL (use a "
                              "file path, sqlite:///path or postgresql+psycopg://host/db)"
                              ) from None


def _json_safe(value: Any) -> Any:
    """Details as JSON: numpy scalars as numbers, NaN/inf and other objects as text."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


class HistoryStore:
    """Window results of drift monitoring; see the module doc for the schema."""

    def __init__(self, target: str | Path, create: bool = True) -> None:
        self.url = parse_url(target)
        self.name = _mask(self.url.render_as_string(hide_password=True))
        self._metadata, self.windows, self.streams_table = _tables()
        self.engine = self._open(create)

    def _open(self, create: bool) -> Engine:
        from sqlalchemy import create_engine, event, inspect
        from sqlalchemy.exc import SQLAlchemyError

        sqlite = self.url.get_backend_name() == "sqlite"
        database = self.url.database or ""
        on_disk = sqlite and database not in ("", ":memory:")
        try:
            if on_disk and create:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            elif on_disk and not Path(database).is_file():
                raise ShiftbenchError(f"history store {self.name}: no such file")
            if sqlite:
                engine = create_engine(self.url, connect_args={"timeout": SQLITE_TIMEOUT_S})
                event.listen(engine, "connect", _sqlite_pragmas)
            elif self.url.get_backend_name() == "postgresql":
                engine = create_engine(self.url,
                                       connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
            else:
                engine = create_engine(self.url)
            with engine.begin() as conn:
                if create:
                    self._metadata.create_all(conn)
                elif not inspect(conn).has_table(WINDOWS_TABLE):
                    raise ShiftbenchError(f"history store {self.name}: holds no shiftbench "
                                          "history")
        except (SQLAlchemyError, ImportError, OSError) as exc:
            raise ShiftbenchError(f"history store {self.name}: cannot open "
                                  f"({_reason(exc)})") from None
        return engine

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- streams ----------------------------------------------------------------------------

    def stream_config(self, stream: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        table = self.streams_table
        with self._reading() as conn:
            return conn.execute(select(table.c.config).where(table.c.stream == stream)
                                ).scalar_one_or_none()

    def check_stream(self, stream: str, config: Mapping[str, Any]) -> None:
        """Raise if ``stream`` was started with other settings than ``config``."""
        stored = self.stream_config(stream)
        if stored is not None:
            _same_settings(stream, stored, _json_safe(config))

    def stream_names(self) -> list[str]:
        from sqlalchemy import select

        table = self.streams_table
        with self._reading() as conn:
            return list(conn.execute(select(table.c.stream).order_by(table.c.stream)).scalars())

    # -- windows ----------------------------------------------------------------------------

    def write_window(self, stream: str, config: Mapping[str, Any],
                     records: Sequence[WindowRecord]) -> None:
        """All ``records`` of one window (and a new stream's settings) in one transaction."""
        if not records:
            raise ValueError("write_window needs at least one record")
        with self.writing(stream, records[0].window) as conn:
            self.insert_window(conn, stream, config, records)

    @contextlib.contextmanager
    def writing(self, stream: str, index: int | None,
                conn: Connection | None = None) -> Iterator[Connection]:
        """A transaction that writes window ``index`` of ``stream`` (None: its next one) on
        ``conn``, else on a new connection: committed at the end, rolled back on any error;
        a database error becomes a one-line ShiftbenchError naming the window."""
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        index = "(the next)" if index is None else index
        try:
            if conn is None:
                with self.engine.begin() as new:
                    yield new
            else:
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise ShiftbenchError(f"history store {self.name}: stream {stream!r} window {index} "
                                  "is already stored (is another monitor writing this stream?)"
                                  ) from None
        except SQLAlchemyError as exc:
            raise ShiftbenchError(f"history store {self.name}: cannot write window {index} of "
                                  f"stream {stream!r} ({_reason(exc)})") from None

    def insert_window(self, conn: Connection, stream: str, config: Mapping[str, Any],
                      records: Sequence[WindowRecord]) -> None:
        """Insert one window's rows (and a new stream's settings) inside the caller's
        transaction; settings other than the stream's stored ones are refused."""
        from sqlalchemy import insert, select

        config = _json_safe(config)
        table = self.streams_table
        # The window's rows first: SQLite takes its write lock at the first write.
        conn.execute(insert(self.windows), [_to_row(r) for r in records])
        stored = conn.execute(select(table.c.config).where(table.c.stream == stream)
                              ).scalar_one_or_none()
        if stored is None:
            conn.execute(insert(table).values(stream=stream, config=config,
                                              created_at=records[0].time))
        else:
            _same_settings(stream, stored, config)

    def last_window(self, stream: str, conn: Connection | None = None) -> WindowRecord | None:
        """The stream's latest stored window (any of its detectors' rows): where to resume.
        Read on ``conn`` (inside its transaction) when given."""
        from sqlalchemy import select

        query = (select(self.windows).where(self.windows.c.stream == stream)
                 .order_by(self.windows.c.window_index.desc()).limit(1))
        if conn is not None:
            row = conn.execute(query).mappings().first()
        else:
            with self._reading() as reader:
                row = reader.execute(query).mappings().first()
        return _from_row(row) if row is not None else None

    def latest(self) -> tuple[list[WindowRecord], dict[tuple[str, str], int]]:
        """Each (stream, detector)'s latest window row and its count of drift alarms: what
        the Prometheus gauges show, read without loading the whole history."""
        from sqlalchemy import func, select

        c = self.windows.c
        newest = (select(c.stream, c.detector, func.max(c.window_index).label("last"))
                  .group_by(c.stream, c.detector).subquery())
        rows = select(self.windows).join(newest, (c.stream == newest.c.stream)
                                         & (c.detector == newest.c.detector)
                                         & (c.window_index == newest.c.last))
        alarms = (select(c.stream, c.detector, func.count()).where(c.drifted)
                  .group_by(c.stream, c.detector))
        with self._reading() as conn:
            latest = [_from_row(row) for row in conn.execute(rows).mappings()]
            counts = {(s, d): n for s, d, n in conn.execute(alarms)}
        return latest, counts

    def records(self, stream: str | None = None, from_window: int = 0) -> list[WindowRecord]:
        """All stored rows (of one stream; of windows ``from_window`` on), by stream,
        window and detector."""
        from sqlalchemy import select

        c = self.windows.c
        query = (select(self.windows).where(c.window_index >= from_window)
                 .order_by(c.stream, c.window_index, c.detector))
        if stream is not None:
            query = query.where(c.stream == stream)
        with self._reading() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads; database errors become one-line ShiftbenchErrors."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise ShiftbenchError(f"history store {self.name}: cannot read "
                                  f"({_reason(exc)})") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers never block the writer nor see half a transaction; NORMAL sync keeps
    every commit across a process crash (only a power cut can lose the last ones)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as {"a.b": value} (an empty mapping adds nothing)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _same_settings(stream: str, stored: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Raise, naming the least nested setting that differs, if the settings differ."""
    old, new = _flat(stored), _flat(config)
    diff = sorted((k for k in old.keys() | new.keys() if old.get(k) != new.get(k)),
                  key=lambda k: (k.count("."), k))
    if diff:
        key = diff[0]
        raise ShiftbenchError(f"stream {stream!r} was started with {key} = "
                              f"{json.dumps(old.get(key))}, not {json.dumps(new.get(key))}; "
                              "use another stream name for other settings")


def _to_row(record: WindowRecord) -> dict[str, Any]:
    return {"stream": record.stream, "window_index": record.window,
            "detector": record.detector, "method": record.method, "source": record.source,
            "start_row": record.start_row, "end_row": record.end_row,
            "end_file": record.end_file, "end_offset": record.end_offset,
            "recorded_at": record.time, "n": record.n, "statistic": record.statistic,
            "threshold": record.threshold, "p_value": record.p_value, "alpha": record.alpha,
            "drifted": record.drifted, "extra": _json_safe(record.extra)}


def _from_row(row: Mapping[str, Any]) -> WindowRecord:
    time = row["recorded_at"]
    if time.tzinfo is None:  # SQLite keeps no zone; every time is written in UTC
        time = time.replace(tzinfo=timezone.utc)
    return WindowRecord(row["stream"], row["window_index"], row["detector"], row["method"],
                        row["source"], row["start_row"], row["end_row"], row["end_file"],
                        row["end_offset"], time, row["n"], row["statistic"], row["threshold"],
                        row["p_value"], row["alpha"], bool(row["drifted"]), row["extra"])


def history(target: str | Path, stream: str | None = None) -> list[WindowRecord]:
    """The stored window rows (of one stream); an error if there is no history there."""
    with HistoryStore(target, create=False) as store:
        if stream is not None and store.stream_config(stream) is None:
            known = ", ".join(store.stream_names()) or "none"
            raise ShiftbenchError(f"history store {store.name}: no stream {stream!r} "
                                  f"(streams: {known})")
        return store.records(stream)

