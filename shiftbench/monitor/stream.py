"""Streaming drift monitoring: test each window of a stream, keep a history.

The loop (``monitor_stream``) takes windows from a
:class:`~shiftbench.monitor.windows.WindowReader`, embeds each with the caller's
``embed`` callable, checks the embeddings (finite, one row per text), tests them with
every detector, and only then writes all results of the window at once; bad input
stops it before a write. Each stored window keeps where the next row starts, written in
the same transaction as its results, so a restarted monitor goes on after the stream's
last stored window (rows after it that did not fill a window are read again).
``run_stream`` adds the online MMD detector fitted on the reference (or loaded from a
folder that holds one fitted on the same reference) and, when asked, the one-shot tests
of ``monitor check`` (:mod:`~shiftbench.monitor.oneshot`), stored as more rows of the
same window (one detector each), in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.arrays import check_matrix
from shiftbench.detectors import DriftResult
from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.windows import DIGEST_KEY, Position, Window, WindowReader

if TYPE_CHECKING:
    from shiftbench.detectors.online import OnlineDetector
    from shiftbench.monitor.oneshot import OneShot
    from shiftbench.monitor.store import HistoryStore, WindowRecord

Embed = Callable[[list[str]], np.ndarray]


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


def stream_config(source: Mapping[str, Any], detectors: Mapping[str, OnlineDetector],
                  settings: Mapping[str, Any] | None = None,
                  oneshot: OneShot | None = None) -> dict[str, Any]:
    """Everything a resumed stream must keep: ``source`` (where its rows come from and
    how they are cut into windows), detectors (the one-shot ones too, when there are)
    and ``settings`` (e.g. the embedder's description: windows embedded otherwise are not
    comparable)."""
    extra = {"oneshot": oneshot.describe()} if oneshot is not None else {}
    return {**source,
            "detectors": {name: d.describe() for name, d in detectors.items()}, **extra,
            "settings": dict(settings or {})}


def window_results(stream: str, window: Window, detectors: Mapping[str, OnlineDetector],
                   embed: Embed, oneshot: OneShot | None = None
                   ) -> tuple[list[WindowRecord], dict[str, DriftResult]]:
    """Embed ``window`` and test it with every detector (online, then one-shot): its
    history rows (to store in one transaction) and the detectors' results. The one window
    test of every monitor."""
    from shiftbench.monitor.store import WindowRecord

    x = _embed(embed, window)
    results = {name: detector.test(x) for name, detector in detectors.items()}
    if oneshot is not None:
        results.update(oneshot.test(window.texts, x))
    stamp = datetime.now(timezone.utc)
    records = [WindowRecord(stream, window.index, name, r.method, window.source,
                            window.start_row, window.end.row, window.end.file,
                            window.end.offset, stamp, r.n_sample, r.statistic,
                            r.details.get("threshold"), r.p_value, r.alpha, r.drifted,
                            {**window.extra, **r.details})
               for name, r in results.items()]
    return records, results


def monitor_stream(reader: WindowReader, detectors: Mapping[str, OnlineDetector], embed: Embed,
                   store: HistoryStore, stream: str, max_windows: int | None = None,
                   on_window: Callable[[Window, Mapping[str, DriftResult]], None] | None = None,
                   settings: Mapping[str, Any] | None = None,
                   oneshot: OneShot | None = None) -> StreamSummary:
    """Test each window of ``reader`` with every detector (and the fitted ``oneshot``
    tests) and store the results, from where ``stream`` last stopped; ``on_window`` is
    called after each stored window. Alarms are the online detectors'. ``settings``: more
    settings the stream must keep (see :func:`stream_config`)."""
    if not detectors:
        raise ShiftbenchError("monitor: no detectors")
    if not stream.strip() or len(stream) > 200:
        raise ShiftbenchError(f"stream name {stream!r}: use 1 to 200 characters")
    for name, detector in detectors.items():
        if reader.window != detector.window:
            raise ShiftbenchError(f"windows of {reader.window} rows, but the {name} detector "
                                  f"is calibrated for windows of {detector.window}")
    if oneshot is not None:
        oneshot.check_window(reader.window)
    config = stream_config(reader.describe(), detectors, settings, oneshot)
    store.check_stream(stream, config)
    last = store.last_window(stream)
    start = resume_position(last)
    first = last.window + 1 if last else 0
    alarms, count, next_row = [], 0, start.row if start else 0
    for window in islice(reader.windows(start, first), max_windows):
        records, results = window_results(stream, window, detectors, embed, oneshot)
        store.write_window(stream, config, records)
        count, next_row = count + 1, window.end.row
        if any(results[name].drifted for name in detectors):
            alarms.append(window.index)
        if on_window is not None:
            on_window(window, results)
    return StreamSummary(stream, store.name, first, count, alarms, next_row, reader.leftover)


def resume_position(last: WindowRecord | None) -> Position | None:
    """Where a stream whose last stored window is ``last`` goes on (None: from the start)."""
    if last is None:
        return None
    return Position(last.end_file, last.end_offset, last.end_row,
                    str(last.extra.get(DIGEST_KEY) or ""))


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
               on_window: Callable[[Window, Mapping[str, DriftResult]], None] | None = None,
               oneshot: OneShot | None = None) -> StreamSummary:
    """Monitor ``source`` with the online MMD detector (threshold for ``ert`` windows
    between false alarms) fitted on the embedded ``reference_texts``, and the unfitted
    ``oneshot`` tests fitted there too (saved under ``detector_dir/oneshot``); see the
    module doc.

    Settings, source, store and the file a resumed stream stopped in are checked before the
    reference is embedded, so a typo costs nothing.
    """
    from shiftbench.detectors.online import OnlineMMD
    from shiftbench.monitor.store import HistoryStore

    detector = OnlineMMD(ert=ert, window=window, n_simulations=n_simulations,
                         backend=backend, device=device, seed=seed)
    reader = WindowReader(source, text_column, window, per_file, follow, poll_interval,
                          idle_timeout, seed)
    detector.validate(len(reference_texts))
    if oneshot is not None:
        oneshot.check_window(window)
    with HistoryStore(store) as history_store:
        history_store.check_stream(stream, stream_config(reader.describe(),
                                                         {detector.name: detector}, settings,
                                                         oneshot))
        start = resume_position(history_store.last_window(stream))
        if start is not None:
            reader.check_unchanged(start)
        reference = check_matrix(embed(list(reference_texts)), "reference embeddings")
        folder = Path(detector_dir) if detector_dir is not None else None
        fitted = fitted_online(reference, detector, folder)
        fit_oneshot(oneshot, reference_texts, reference, folder)
        return monitor_stream(reader, {detector.name: fitted}, embed, history_store, stream,
                              max_windows, on_window, settings, oneshot)


def fit_oneshot(oneshot: OneShot | None, texts: Sequence[str], reference: np.ndarray,
                detector_dir: Path | None) -> None:
    """Fit the one-shot tests on the reference, saved (and reused) beside the online
    detector, in ``detector_dir/oneshot``."""
    if oneshot is not None:
        oneshot.fit(texts, reference, detector_dir / "oneshot" if detector_dir else None)
