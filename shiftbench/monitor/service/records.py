"""Records sent to the monitor service, kept durably until a window has tested them.

The table ``shiftbench_records`` lives beside the history (same database, same
SQLAlchemy engine: an SQLite file in WAL mode by default, or PostgreSQL), so a window's
results and the marking of its records as processed commit in ONE transaction:

- a record is acknowledged only after the transaction that inserts it has committed;
- ids are unique per stream: a retried batch inserts only the records not yet stored
  (the reply counts the others as duplicates), so a client's retry never double counts;
- ``window_index`` is NULL until a window takes the record; the worker claims the
  oldest unprocessed records, tests them, then writes the window's rows and sets their
  ``window_index`` in one transaction, refusing it if any of them was taken meanwhile.
  A crash before that commit leaves them unprocessed, to be claimed again: each record
  lands in exactly one window and no window is written twice (the history's unique
  (stream, window, detector) key refuses a second one);
- on PostgreSQL the worker holds the stream's settings row ``FOR UPDATE SKIP LOCKED``
  for the whole claim-test-write, so a second service instance on the same database
  skips a stream that another one is processing instead of testing it twice. SQLite
  has one writer at a time; there the final guarded update alone keeps windows whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.store import HistoryStore, _json_safe, _reason, _same_settings

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

RECORDS_TABLE = "shiftbench_records"
MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 200
MAX_CLASSES = 10_000
STREAM_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Record(BaseModel):
    """One text seen in production, with what the model said about it (all optional but
    the text). ``id`` makes a resend idempotent; without one a random id is given."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
    id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    prediction: str | int | None = None
    probabilities: Annotated[list[float], Field(min_length=1, max_length=MAX_CLASSES)] | None \
        = None
    label: str | int | None = None
    timestamp: datetime | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        """The rule of every file reader: a text has something besides whitespace."""
        if not value.strip():
            raise ValueError("empty or blank text")
        return value

    @field_validator("prediction", "label", mode="before")
    @classmethod
    def _class(cls, value: Any) -> Any:
        """A class is named by text or a whole number (one message, not one per type)."""
        if value is None or isinstance(value, str) or \
                isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"a class is text or a whole number, got {type(value).__name__}")

    @field_validator("probabilities", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        """Integers are probabilities too (0 and 1); strict mode would refuse them."""
        if isinstance(value, list):
            return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                    for v in value]
        return value

    @field_validator("probabilities")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(math.isfinite(v) and 0 <= v <= 1 for v in value):
            raise ValueError("probabilities must be finite numbers in [0, 1]")
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        """ISO 8601 text (JSON has no time type); strict mode alone would refuse it."""
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("timestamp must be ISO 8601 text") from None
        return value


@dataclass(frozen=True)
class Added:
    """What one batch did: records stored now, records already stored (resent), and the
    stream's unprocessed records after it."""

    accepted: int
    duplicates: int
    pending: int


@dataclass(frozen=True)
class Pending:
    """An unprocessed record as a window needs it."""

    seq: int
    record_id: str
    text: str
    probabilities: list[float] | None
    label: str | None
    received_at: datetime


@dataclass(frozen=True)
class Backlog:
    """A stream's unprocessed records: how many, and when the oldest arrived."""

    pending: int
    oldest: datetime | None


class QueueFull(ShiftbenchError):
    """The stream holds as many unprocessed records as allowed; retry later."""


class StreamConflict(ShiftbenchError):
    """The stream was started with other settings (window, detector, embedder)."""


def validation_reason(exc: ValidationError, prefix: str = "") -> str:
    """Pydantic's first error in one line: where (``records[2].text``) and what."""
    error = exc.errors()[0]
    where = prefix
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    return f"{where or 'body'}: {error['msg'].removeprefix('Value error, ')}"


def _records_table() -> tuple[Any, Table]:
    from sqlalchemy import (
        JSON,
        BigInteger,
        Column,
        DateTime,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    metadata = MetaData()
    table = Table(
        RECORDS_TABLE, metadata,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=True),
        Column("stream", String(200), nullable=False),
        Column("record_id", String(MAX_ID_CHARS), nullable=False),
        Column("text", Text, nullable=False),
        Column("prediction", Text),
        Column("probabilities", JSON),
        Column("label", Text),
        Column("sent_at", DateTime(timezone=True)),
        Column("received_at", DateTime(timezone=True), nullable=False),
        Column("window_index", Integer),
        UniqueConstraint("stream", "record_id"),
        Index("ix_shiftbench_records_pending", "stream", "window_index", "seq"),
    )
    return metadata, table


def _utc(time: datetime) -> datetime:
    """SQLite keeps no zone; every time is written in UTC."""
    return time.replace(tzinfo=timezone.utc) if time.tzinfo is None else time


class RecordStore(HistoryStore):
    """The history store plus the records table; see the module doc."""

    def __init__(self, target: str | Path) -> None:
        super().__init__(target)
        self._records_metadata, self.records_table = _records_table()
        with self._database("create the records table"), self.engine.begin() as conn:
            self._records_metadata.create_all(conn)
        self.postgres = self.url.get_backend_name() == "postgresql"

    @contextlib.contextmanager
    def _database(self, doing: str) -> Iterator[None]:
        """Database errors as one-line ShiftbenchErrors saying what was being done."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as exc:
            raise ShiftbenchError(f"history store {self.name}: cannot {doing} "
                                  f"({_reason(exc)})") from None

    # -- ingestion ----------------------------------------------------------------------------

    def register(self, stream: str, config: Mapping[str, Any]) -> None:
        """Store a new stream's settings; refuse a known stream's other settings."""
        from sqlalchemy import select

        table = self.streams_table
        config = _json_safe(config)
        with self._database(f"register stream {stream!r}"), self.engine.begin() as conn:
            conn.execute(self._insert_ignore(table), [{"stream": stream, "config": config,
                                                       "created_at": datetime.now(timezone.utc)}])
            stored = conn.execute(select(table.c.config).where(table.c.stream == stream)
                                  ).scalar_one()
        try:
            _same_settings(stream, stored, config)
        except ShiftbenchError as exc:
            raise StreamConflict(str(exc)) from None

    def add(self, stream: str, records: Sequence[Record], max_pending: int) -> Added:
        """Store the records not stored yet (by id), all or none; committed on return.
        QueueFull if the stream would hold more than ``max_pending`` unprocessed ones.
        The stream must be registered (its settings row is the SQLite lock)."""
        from sqlalchemy import func, select

        table = self.records_table
        now = datetime.now(timezone.utc)
        rows = [{"stream": stream, "record_id": r.id or uuid.uuid4().hex, "text": r.text,
                 "prediction": None if r.prediction is None else str(r.prediction),
                 "probabilities": r.probabilities,
                 "label": None if r.label is None else str(r.label),
                 "sent_at": r.timestamp, "received_at": now} for r in records]
        ids = [row["record_id"] for row in rows]
        with self._database(f"store records of stream {stream!r}"), \
                self.engine.begin() as conn:
            self._lock_ingestion(conn, stream)
            known = set(conn.execute(select(table.c.record_id).where(
                table.c.stream == stream, table.c.record_id.in_(ids))).scalars())
            new = [row for row in rows if row["record_id"] not in known]
            pending = conn.execute(select(func.count()).where(
                table.c.stream == stream, table.c.window_index.is_(None))).scalar_one()
            if new and pending + len(new) > max_pending:
                raise QueueFull(f"stream {stream!r} holds {pending} unprocessed records; "
                                f"{len(new)} more would pass the limit of {max_pending}")
            if new:
                conn.execute(self._insert_ignore(table), new)
        return Added(len(new), len(rows) - len(new), pending + len(new))

    def _lock_ingestion(self, conn: Connection, stream: str) -> None:
        """Serialise the stream's ingestion transactions, so the queue count each one reads
        stays true until it commits (the limit is exact, not passed by concurrent batches).
        PostgreSQL: a transaction-level advisory lock (not the row the worker holds while it
        tests a window, so ingestion never waits for embedding); SQLite: its write lock,
        taken by rewriting the stream's row (the worker takes it only to commit)."""
        from sqlalchemy import func, select, update

        if self.postgres:
            key = int.from_bytes(hashlib.sha256(f"shiftbench-ingest:{stream}".encode())
                                 .digest()[:8], "big", signed=True)
            conn.execute(select(func.pg_advisory_xact_lock(key)))
        else:
            table = self.streams_table
            conn.execute(update(table).where(table.c.stream == stream)
                         .values(stream=table.c.stream))

    def _insert_ignore(self, table: Table) -> Any:
        """INSERT that skips rows whose key is stored (a concurrent resend of the same id)."""
        if self.postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()

    # -- processing ---------------------------------------------------------------------------

    def backlog(self) -> dict[str, Backlog]:
        """Each stream's unprocessed records (streams without any are left out)."""
        from sqlalchemy import func, select

        c = self.records_table.c
        query = (select(c.stream, func.count(), func.min(c.received_at))
                 .where(c.window_index.is_(None)).group_by(c.stream))
        with self._reading() as conn:
            return {stream: Backlog(n, _utc(oldest)) for stream, n, oldest in conn.execute(query)}

    @contextlib.contextmanager
    def claiming(self, stream: str) -> Iterator[Connection | None]:
        """One transaction to claim, test and write the next window of ``stream``;
        None when another service instance holds the stream (PostgreSQL)."""
        from sqlalchemy import select

        table = self.streams_table
        with self._database(f"claim records of stream {stream!r}"), \
                self.engine.connect() as conn, self.writing(stream, None, conn):
            if self.postgres:
                held = conn.execute(select(table.c.stream).where(table.c.stream == stream)
                                    .with_for_update(skip_locked=True)).first()
                if held is None:
                    yield None
                    return
            yield conn

    def pending(self, conn: Connection, stream: str, limit: int) -> list[Pending]:
        """The stream's oldest ``limit`` unprocessed records, in arrival order."""
        from sqlalchemy import select

        c = self.records_table.c
        query = (select(c.seq, c.record_id, c.text, c.probabilities, c.label, c.received_at)
                 .where(c.stream == stream, c.window_index.is_(None))
                 .order_by(c.seq).limit(limit))
        return [Pending(seq, rid, text, probs, label, _utc(at))
                for seq, rid, text, probs, label, at in conn.execute(query)]

    def mark_processed(self, conn: Connection, stream: str, seqs: Sequence[int],
                       index: int) -> None:
        """Put the records in window ``index``; refused (so the caller's transaction rolls
        back) if any is gone or already in a window."""
        from sqlalchemy import update

        c = self.records_table.c
        done = 0
        for start in range(0, len(seqs), 500):  # bounded IN lists
            chunk = list(seqs[start:start + 500])
            done += conn.execute(update(self.records_table)
                                 .where(c.seq.in_(chunk), c.window_index.is_(None))
                                 .values(window_index=index)).rowcount
        if done != len(seqs):
            raise ShiftbenchError(f"stream {stream!r} window {index}: {len(seqs) - done} of its "
                                  "records were taken by another monitor meanwhile")

    # -- reading ------------------------------------------------------------------------------

    def record_windows(self, stream: str) -> dict[str, int | None]:
        """Record id -> its window (None: not processed yet), for audits and tests."""
        from sqlalchemy import select

        c = self.records_table.c
        with self._reading() as conn:
            return dict(conn.execute(select(c.record_id, c.window_index)
                                     .where(c.stream == stream)).all())
