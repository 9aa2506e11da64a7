"""The monitor service's engine, in process or behind HTTP: records in, windows tested.

:class:`Monitor` stores sent records durably (:mod:`~shiftbench.monitor.service.records`)
and a worker thread cuts each stream's unprocessed records into windows and tests them
with :func:`~shiftbench.monitor.stream.window_results`, the window test of
``monitor stream``, so a served stream's history reads exactly like a streamed one.

Windows (:class:`Windowing`): by count, the next ``window`` records in arrival order;
or by time (``seconds``), all records that arrived within ``seconds`` of the oldest
unprocessed one, once that period is over; the detector then tests ``window`` of them
drawn at random (seeded by stream and window), since its threshold holds for one window
size only. A period with fewer than ``window`` records stays open until it has them.
The one-shot tests (:mod:`~shiftbench.monitor.oneshot`), when given, test the same texts
and are stored with the window, in its transaction.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.service.records import (
    RECORDS_TABLE,
    STREAM_NAME,
    Added,
    Backlog,
    Pending,
    Record,
    RecordStore,
    validation_reason,
)
from shiftbench.monitor.stream import Embed, stream_config, window_results
from shiftbench.monitor.windows import Position, Window

if TYPE_CHECKING:
    from shiftbench.detectors.online import OnlineDetector
    from shiftbench.monitor.oneshot import OneShot
    from shiftbench.monitor.store import WindowRecord

log = logging.getLogger("shiftbench.monitor.service")
Accuracy = Callable[[Sequence[str], Sequence[str] | None], dict[str, Any]]


class UnknownStream(ShiftbenchError):
    """A stream this monitor does not serve (or that has no history)."""


class InvalidInput(ShiftbenchError):
    """A record or stream name that breaks the schema; nothing of its batch was stored."""


def check_stream_name(stream: str) -> str:
    """``stream`` unchanged if it is a safe name (letters, digits, . _ -; no path tricks)."""
    if not re.fullmatch(STREAM_NAME, stream):
        raise InvalidInput(f"stream name {stream[:140]!r}: use 1 to 128 letters, digits, "
                              "'.', '_' or '-', starting with a letter or digit")
    return stream


@dataclass(frozen=True)
class Windowing:
    """How a stream's records are cut into windows; see the module doc."""

    window: int = 200
    seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ShiftbenchError(f"--window must be at least 2 records, got {self.window}")
        if self.seconds is not None and not self.seconds > 0:
            raise ShiftbenchError(f"--window-seconds must be > 0, got {self.seconds}")

    def describe(self) -> dict[str, Any]:
        """The settings a stream keeps (a restart with others is refused)."""
        return {"source": "service", "window": self.window, "window_seconds": self.seconds}

    def closes(self, pending: Sequence[Pending]) -> datetime | None:
        """When the window of these (oldest first) unprocessed records is complete: None
        while too few records are in."""
        if len(pending) < self.window:
            return None
        complete = pending[self.window - 1].received_at
        if self.seconds is None:
            return complete
        return max(complete, pending[0].received_at + timedelta(seconds=self.seconds))

    def cut(self, pending: Sequence[Pending], now: datetime) -> list[Pending] | None:
        """The records of the next window (oldest first), or None while it is open."""
        closes = self.closes(pending)
        if closes is None or closes > now:
            return None
        if self.seconds is None:
            return list(pending[:self.window])
        period = next((k for k, p in enumerate(pending) if p.received_at > closes),
                      len(pending))
        return list(pending[:max(period, self.window)])

    def texts(self, taken: Sequence[Pending], stream: str, index: int) -> list[str]:
        """The texts the detector tests: all of a count window; ``window`` of a time
        window's records drawn at random, the same in every process."""
        from shiftbench.split import unit_hash

        if len(taken) == self.window:
            return [p.text for p in taken]
        seed = int(unit_hash("window", self.seed, stream, index) * 2**63)
        picked = np.sort(np.random.default_rng(seed).choice(len(taken), self.window,
                                                            replace=False))
        return [taken[k].text for k in picked]


class Monitor:
    """Takes records of named streams, stores them before returning, and tests them in
    windows on a worker thread (:meth:`start`), or when :meth:`process_ready` is called.

    ``max_queue``: unprocessed records a stream may hold; more are refused
    (:class:`~shiftbench.monitor.service.records.QueueFull`) until the worker catches up.
    ``streams``: the only stream names accepted (None: any valid name). ``accuracy``:
    called with each window's texts and labels (None unless all records have one), its
    result stored as the window's ``extra["accuracy"]`` (see
    :class:`~shiftbench.monitor.service.accuracy.WindowAccuracy`). ``oneshot``: fitted
    one-shot tests run on every window beside the online detectors.
    """

    def __init__(self, store: RecordStore, detectors: Mapping[str, OnlineDetector],
                 embed: Embed, windowing: Windowing, *, settings: Mapping[str, Any] | None = None,
                 max_queue: int = 10_000, streams: Collection[str] | None = None,
                 poll_interval: float = 0.5, accuracy: Accuracy | None = None,
                 oneshot: OneShot | None = None) -> None:
        if max_queue < windowing.window:
            raise ShiftbenchError(f"--max-queue {max_queue} is below the window "
                                  f"({windowing.window}): no window could ever fill")
        for name, detector in detectors.items():
            if detector.window != windowing.window:
                raise ShiftbenchError(f"windows of {windowing.window} records, but the {name} "
                                      f"detector is calibrated for {detector.window}")
        self.store = store
        self.detectors = dict(detectors)
        self.embed = embed
        if oneshot is not None:
            oneshot.check_window(windowing.window)
        self.windowing = windowing
        self.oneshot = oneshot
        self.config = stream_config(windowing.describe(), detectors, settings, oneshot)
        self.max_queue = max_queue
        self.streams = None if streams is None else {check_stream_name(s) for s in streams}
        self.poll_interval = poll_interval
        self.accuracy = accuracy
        self.errors = 0  # windows that failed (retried later)
        self.last_error: str | None = None
        self._registered: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_reference(cls, reference_texts: Sequence[str], embed: Embed, *,
                       store: str | Path, window: int = 200,
                       window_seconds: float | None = None, ert: float = 500.0,
                       detector_dir: str | Path | None = None,
                       n_simulations: int | None = None, backend: str = "auto",
                       device: str = "auto", seed: int = 0,
                       settings: Mapping[str, Any] | None = None,
                       oneshot: OneShot | None = None, **options: Any) -> Monitor:
        """A monitor with the online MMD of ``monitor stream`` (threshold for ``ert``
        windows between false alarms) fitted on the embedded reference, or loaded from
        ``detector_dir`` when it was fitted there on the same reference, and the unfitted
        ``oneshot`` tests fitted (or reused) the same way; ``options`` go to the
        constructor."""
        from shiftbench.arrays import check_matrix
        from shiftbench.detectors.online import OnlineMMD
        from shiftbench.monitor.stream import fit_oneshot, fitted_online

        windowing = Windowing(window, window_seconds, seed)
        detector = OnlineMMD(ert=ert, window=window, n_simulations=n_simulations,
                             backend=backend, device=device, seed=seed)
        detector.validate(len(reference_texts))
        if oneshot is not None:
            oneshot.check_window(window)
        record_store = RecordStore(store)
        reference = check_matrix(embed(list(reference_texts)), "reference embeddings")
        folder = Path(detector_dir) if detector_dir is not None else None
        fitted = fitted_online(reference, detector, folder)
        fit_oneshot(oneshot, reference_texts, reference, folder)
        return cls(record_store, {detector.name: fitted}, embed, windowing, settings=settings,
                   oneshot=oneshot, **options)

    # -- records in ---------------------------------------------------------------------------

    def send(self, stream: str, records: Sequence[Record | Mapping[str, Any] | str]) -> Added:
        """Store ``records`` (Record objects, dicts of their fields, or bare texts) of
        ``stream``: all of them or, on any error, none. Resent ids count as duplicates."""
        self.check_stream(stream)
        checked = [self._record(r, k) for k, r in enumerate(records)]
        seen: dict[str, int] = {}
        for k, record in enumerate(checked):
            if record.id is not None and seen.setdefault(record.id, k) != k:
                raise InvalidInput(f"records[{k}].id: {record.id!r} repeats "
                                      f"records[{seen[record.id]}].id")
        if not checked:
            raise InvalidInput("records: the batch is empty")
        if stream not in self._registered:
            self.store.register(stream, self.config)
            self._registered.add(stream)
        added = self.store.add(stream, checked, self.max_queue)
        self._wake.set()
        return added

    def check_stream(self, stream: str) -> None:
        """Refuse a bad name, or one this monitor does not serve."""
        check_stream_name(stream)
        if self.streams is not None and stream not in self.streams:
            raise UnknownStream(f"stream {stream!r} is not served here (streams: "
                                f"{', '.join(sorted(self.streams))})")

    @staticmethod
    def _record(record: Record | Mapping[str, Any] | str, k: int) -> Record:
        if isinstance(record, Record):
            return record
        try:
            return Record.model_validate({"text": record} if isinstance(record, str) else record)
        except ValidationError as exc:
            raise InvalidInput(validation_reason(exc, f"records[{k}]")) from None

    # -- windows ------------------------------------------------------------------------------

    def process_ready(self, on_error: Callable[[str, Exception], None] | None = None) -> int:
        """Test every complete window of every stream; the number of windows written. A
        window that fails raises, or with ``on_error`` is reported to it (stream, error)
        and the other streams go on (its records stay unprocessed, claimed again later)."""
        done = 0
        for stream in self.store.backlog():
            try:
                while not self._stop.is_set() and self._process_next(stream):
                    done += 1
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(stream, exc)
        return done

    def _process_next(self, stream: str) -> bool:
        """Claim, test and store the stream's next window, all in one transaction; False
        when it is not complete yet (or another instance holds the stream)."""
        limit = self.windowing.window if self.windowing.seconds is None else self.max_queue
        with self.store.claiming(stream) as conn:
            if conn is None:
                return False
            taken = self.windowing.cut(self.store.pending(conn, stream, limit),
                                       datetime.now(timezone.utc))
            if taken is None:
                return False
            last = self.store.last_window(stream, conn)
            index = last.window + 1 if last else 0
            start = last.end_row if last else 0
            window = Window(index, self.windowing.texts(taken, stream, index), start,
                            Position(RECORDS_TABLE, taken[-1].seq, start + len(taken)),
                            f"records {taken[0].record_id}..{taken[-1].record_id}",
                            self._extra(taken))
            records, _ = window_results(stream, window, self.detectors, self.embed,
                                        self.oneshot)
            self.store.insert_window(conn, stream, self.config, records)
            self.store.mark_processed(conn, stream, [p.seq for p in taken], index)
        return True

    def _extra(self, taken: Sequence[Pending]) -> dict[str, Any]:
        """What a window keeps beside its test: its record count, accuracy estimates."""
        extra: dict[str, Any] = {"records": len(taken)}
        if self.accuracy is not None:
            labels = [p.label for p in taken]
            extra["accuracy"] = self.accuracy([p.text for p in taken],
                                              None if None in labels else labels)
        return extra

    def windows(self, stream: str, limit: int = 50) -> list[WindowRecord]:
        """The stream's latest ``limit`` windows' rows, oldest first; UnknownStream if it
        has never been sent to."""
        check_stream_name(stream)
        if self.store.stream_config(stream) is None:
            raise UnknownStream(f"no stream {stream!r} (nothing was sent to it)")
        last = self.store.last_window(stream)
        return self.store.records(stream, last.window - limit + 1) if last else []

    def backlog(self) -> dict[str, Backlog]:
        return self.store.backlog()

    def lag_seconds(self, stream: str, now: datetime | None = None) -> float:
        """How long the stream's next complete window has waited for the worker (0: none
        is complete)."""
        now = now or datetime.now(timezone.utc)
        with self.store.engine.connect() as conn:
            closes = self.windowing.closes(self.store.pending(conn, stream,
                                                              self.windowing.window))
        return max(0.0, (now - closes).total_seconds()) if closes is not None else 0.0

    # -- the worker ---------------------------------------------------------------------------

    def start(self) -> Monitor:
        """Run the worker thread (once)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._work, name="shiftbench-monitor",
                                            daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the worker after its current window (an unfinished one is not written)."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.store.close()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            errors = self.errors
            try:
                self.process_ready(on_error=self._failed)
            except Exception as exc:  # noqa: BLE001 - e.g. the store unreachable: retried
                self._failed(None, exc)
            if self.errors == errors:
                self.last_error = None
            self._wake.wait(self.poll_interval)

    def _failed(self, stream: str | None, exc: Exception) -> None:
        """Count and log a failed window; the worker goes on."""
        self.errors += 1
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.last_error = reason if stream is None else f"stream {stream!r}: {reason}"
        log.error("window not written, retried later: %s", self.last_error,
                  exc_info=not isinstance(exc, ShiftbenchError))
