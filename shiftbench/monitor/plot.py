"""Plots of a drift history: each detector's evidence per window against its alarm level.

Detectors' statistics have unrelated scales (MMD^2 ~ 1e-3, KS distances, ...), so each is
drawn as a share of its own alarm level, 100% being the alarm threshold:
statistic / threshold for detectors with a threshold (online MMD), else
log(p) / log(alpha) for detectors with a p-value (alarm when p < alpha). Hover a
window's point for its raw statistic, threshold and p-value. Self-contained HTML (all
streams) or SVG (one stream); drawn with the report's SVG helpers, no plotting library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.store import WindowRecord
from shiftbench.report import svg

ALARM_COLOR = "#d62728"
Y_LABEL = "evidence, % of the alarm level"


def alarm_share(record: WindowRecord) -> float | None:
    """The record's statistic as a share of its alarm level (1.0 = the threshold)."""
    if record.threshold is not None and record.threshold > 0:
        return record.statistic / record.threshold
    if record.p_value is not None and record.alpha and 0 < record.alpha < 1:
        return math.log(max(record.p_value, 1e-300)) / math.log(record.alpha)
    return None


def _tip(r: WindowRecord) -> str:
    parts = [f"window {r.window} (rows {r.start_row}-{r.end_row}, {r.source})",
             f"{r.detector}: statistic {r.statistic:.6g}"]
    if r.threshold is not None:
        parts.append(f"threshold {r.threshold:.6g}")
    if r.p_value is not None:
        parts.append(f"p {r.p_value:.4g}")
    parts.append(("ALARM " if r.drifted else "") + r.time.strftime("%Y-%m-%d %H:%M:%S UTC"))
    return "; ".join(parts)


def history_svg(records: Sequence[WindowRecord], stream: str) -> str:
    """The chart of one stream: a line per detector, alarms as red dots."""
    series: dict[str, list[tuple[WindowRecord, float]]] = {}
    for r in sorted(records, key=lambda r: r.window):
        share = alarm_share(r)
        if r.stream == stream and share is not None:
            series.setdefault(r.detector, []).append((r, share))
    if not series:
        return ""
    shares = [v for line in series.values() for _, v in line]
    rows = svg.legend_rows([*series, "alarm"], svg.LEFT)
    # evidence is a share of the alarm level: from 0 (an unbiased MMD^2 can dip below it)
    canvas = svg.Canvas(shares + [0.0, 1.0], 76 + svg.LEGEND_ROW * (rows - 1),
                        (0.0, math.inf), height=svg.HEIGHT + svg.LEGEND_ROW * (rows - 1))
    canvas.axes(f"{stream}: drift evidence per window", Y_LABEL)
    canvas.reference(1.0, "alarm threshold")
    windows = [r.window for line in series.values() for r, _ in line]
    sx = svg.numeric_x(windows, canvas.left, canvas.right)
    canvas.x_axis(svg.x_ticks(windows), sx, "window")
    palette = [c for c in svg.PALETTE if c != ALARM_COLOR]
    colors = {name: palette[i % len(palette)] for i, name in enumerate(series)}
    for name, line in series.items():
        path = " ".join(f"{sx(r.window):.1f},{canvas.y(v):.1f}" for r, v in line)
        canvas.parts.append(f'<polyline points="{path}" fill="none" stroke="{colors[name]}" '
                            f'stroke-width="1.5"/>')
        for r, v in line:
            color = ALARM_COLOR if r.drifted else colors[name]
            radius = 4 if r.drifted else 2
            canvas.parts.append(f'<circle class="point" cx="{sx(r.window):.1f}" '
                                f'cy="{canvas.y(v):.1f}" r="{radius}" fill="{color}"><title>'
                                f"{escape(_tip(r))}</title></circle>")
    canvas.legend({**colors, "alarm": ALARM_COLOR}, svg.LEFT, canvas.bottom + 56)
    return canvas.svg(f"drift evidence per window, stream {stream}")


def _summary_table(records: Sequence[WindowRecord]) -> str:
    groups: dict[tuple[str, str], list[WindowRecord]] = {}
    for r in records:
        groups.setdefault((r.stream, r.detector), []).append(r)
    rows = []
    for (stream, detector), group in sorted(groups.items()):
        alarms = [r.window for r in group if r.drifted]
        last = max(group, key=lambda r: r.window)
        first_alarm = str(min(alarms)) if alarms else "-"
        rows.append(f"<tr><td>{escape(stream)}</td><td>{escape(detector)}</td>"
                    f'<td class="num">{len(group)}</td><td class="num">{len(alarms)}</td>'
                    f'<td class="num">{first_alarm}</td><td class="num">{last.window}</td>'
                    f"<td>{'ALARM' if last.drifted else 'ok'}</td></tr>")
    return ("<table><tr><th>stream</th><th>detector</th><th>windows</th><th>alarms</th>"
            "<th>first alarm</th><th>latest window</th><th>latest</th></tr>"
            f"{''.join(rows)}</table>")


def history_html(records: Sequence[WindowRecord]) -> str:
    from shiftbench.report.html import CSS

    streams = sorted({r.stream for r in records})
    charts = "".join(f"<h2>{escape(s)}</h2>{history_svg(records, s)}" for s in streams)
    note = ("Each detector's statistic per window as a share of its alarm level: "
            "statistic / threshold, or log(p) / log(alpha) for detectors with p-values. "
            "Above 100% is an alarm. Hover a point for the raw values.")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>shiftbench drift history</title><style>{CSS}</style></head><body>"
            f"<h1>Drift history</h1>{_summary_table(records)}<p class=\"note\">{note}</p>"
            f"{charts}</body></html>")


def write_history_plot(records: Sequence[WindowRecord], path: str | Path) -> Path:
    """``path`` ending in .html: all streams; .svg: the chart of the one stream there is."""
    from shiftbench.cache import atomic
    from shiftbench.report.html import CSS

    target = Path(path)
    if not records:
        raise ShiftbenchError("history: no windows to plot")
    streams = sorted({r.stream for r in records})
    suffix = target.suffix.lower()
    if suffix == ".svg":
        if len(streams) > 1:
            raise ShiftbenchError(f"{target}: an SVG holds one stream, the history has "
                                  f"{len(streams)}: choose one, or write .html")
        chart = history_svg(records, streams[0])
        if not chart:
            raise ShiftbenchError(f"history: stream {streams[0]!r} has no threshold or p-value "
                                  "to plot")
        text = chart.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
        text = text.replace(">", f"><style>{CSS}</style>", 1)
    elif suffix in (".html", ".htm"):
        text = history_html(records)
    else:
        raise ShiftbenchError(f"{target}: write the plot as .html or .svg")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)  # temp files start as 0600
    return target
