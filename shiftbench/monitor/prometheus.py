"""The latest window of each stream and detector in the Prometheus text format (0.0.4).

Written for node_exporter's textfile collector or any static scrape: one gauge family per
quantity, one sample per (stream, detector) from its latest window, labelled
``stream="..."`` and ``detector="..."``, no timestamps (the textfile collector rejects
them; ``shiftbench_drift_window_timestamp_seconds`` says when the window was stored, so
a stalled stream can be alerted on). Label values and help texts are escaped as the
format requires: backslash, double quote (labels only) and newline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from shiftbench.monitor.store import WindowRecord

# name, type, help, value of a record (None: no sample for it)
METRICS: tuple[tuple[str, str, str, Callable[[WindowRecord], float | None]], ...] = (
    ("shiftbench_drift_statistic", "gauge",
     "Drift statistic of the latest window.", lambda r: r.statistic),
    ("shiftbench_drift_threshold", "gauge",
     "Alarm threshold of the statistic (online detectors).", lambda r: r.threshold),
    ("shiftbench_drift_p_value", "gauge",
     "P-value of the latest window (one-shot tests).", lambda r: r.p_value),
    ("shiftbench_drift_holm_p_value", "gauge",
     "P-value of the latest window, Holm-adjusted over its one-shot tests; drift detected "
     "when below alpha.", lambda r: r.extra.get("holm_p")),
    ("shiftbench_drift_detected", "gauge",
     "1 if the latest window raised a drift alarm, else 0.", lambda r: float(r.drifted)),
    ("shiftbench_drift_window", "gauge",
     "Index of the latest window (0 is the stream's first).", lambda r: float(r.window)),
    ("shiftbench_drift_window_rows", "gauge",
     "Rows tested in the latest window.", lambda r: float(r.n)),
    ("shiftbench_drift_window_timestamp_seconds", "gauge",
     "Unix time when the latest window was stored.", lambda r: r.time.timestamp()),
)
ALARMS = ("shiftbench_drift_alarms_total", "counter",
          "Windows that raised a drift alarm since the stream began.")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _family(name: str, kind: str, text: str,
            values: dict[tuple[str, str], float | None]) -> list[str]:
    """HELP, TYPE and one sample per (stream, detector) with a value; nothing if none has."""
    samples = [f'{name}{{stream="{escape_label(stream)}",detector="{escape_label(detector)}"}} '
               f"{format_value(value)}"
               for (stream, detector), value in sorted(values.items()) if value is not None]
    if not samples:
        return []
    return [f"# HELP {name} {escape_help(text)}", f"# TYPE {name} {kind}", *samples]


def prometheus_text(records: Sequence[WindowRecord]) -> str:
    """Gauges of each (stream, detector)'s latest window, and its alarm count."""
    latest: dict[tuple[str, str], WindowRecord] = {}
    alarms: dict[tuple[str, str], float | None] = {}
    for record in records:
        key = (record.stream, record.detector)
        if key not in latest or record.window > latest[key].window:
            latest[key] = record
        alarms[key] = (alarms.get(key) or 0) + record.drifted
    lines = []
    for name, kind, text, value_of in METRICS:
        lines += _family(name, kind, text, {key: value_of(r) for key, r in latest.items()})
    lines += _family(*ALARMS, alarms)
    return "".join(f"{line}\n" for line in lines)


def write_prometheus(records: Sequence[WindowRecord], path: str | Path) -> Path:
    """Write :func:`prometheus_text` atomically (a scraper never reads half a file)."""
    from shiftbench.cache import atomic

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic(target) as tmp:
        tmp.write_text(prometheus_text(records), encoding="utf-8")
        tmp.chmod(0o644)  # readable by the exporter's user (temp files start as 0600)
    return target
