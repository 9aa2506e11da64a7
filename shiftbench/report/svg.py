"""Tiny inline-SVG charts for proportions with intervals: no plotting library, no network.

Values are proportions in [0, 1] (differences of proportions in [-1, 1] for the scatter
chart), drawn as percentages or percentage points; a line chart may also draw plain
numbers on another :class:`Scale` (a loss, from 0). Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 340
LEFT, RIGHT, TOP = 56, 16, 34
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")


@dataclass(frozen=True)
class Point:
    """One estimate: ``x`` is a category label or a number; ``tip`` becomes a hover title."""

    x: str | float
    value: float
    low: float
    high: float
    color: str = PALETTE[0]
    tip: str = ""
    label: str = ""


@dataclass(frozen=True)
class Scale:
    """A y axis: the values it may span (``bounds``), those it always shows (``shown``:
    0 under a loss, all of [0, 1] for an accuracy), and whether ticks are percentages."""

    bounds: tuple[float, float] = (0.0, 1.0)
    shown: tuple[float, ...] = ()
    percent: bool = True


PROPORTION = Scale()  # around the data, inside [0, 1]
WHOLE_PROPORTION = Scale(shown=(0.0, 1.0))
FROM_ZERO = Scale((0.0, math.inf), (0.0,), percent=False)  # a number, from 0 (or below)
MANY_X = 12  # a numeric x axis with more values than this gets round ticks instead


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    span = max(hi - lo, 1e-9)
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, max(last, first + 1) + 1)]


class _Canvas:
    """A chart's frame: the y scale (proportions) and the plot area, in pixels."""

    def __init__(self, values: list[float], bottom: int,
                 bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        self.ticks = _padded_ticks(values, bounds)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.bottom = HEIGHT - bottom
        self.parts: list[str] = []

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - TOP)

    def axes(self, title: str, y_label: str, unit: str = "%", percent: bool = True) -> None:
        self.parts.append(f'<text class="title" x="{LEFT}" y="18">{escape(title)}</text>')
        for tick in self.ticks:
            y = self.y(tick)
            self.parts.append(
                f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{f'{tick * 100:g}{unit}' if percent else f'{tick:g}'}</text>"
            )
        mid = (TOP + self.bottom) / 2
        self.parts.append(
            f'<text class="axis" transform="translate(14,{mid:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )

    def reference(self, value: float, label: str) -> None:
        y = self.y(value)
        self.parts.append(
            f'<line class="ref" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="reflabel" x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )

    def estimate(self, x: float, p: Point) -> None:
        """A dot with its interval bar and a hover title."""
        y0, y1, y = self.y(p.low), self.y(p.high), self.y(p.value)
        self.parts.append(
            f'<g><title>{escape(p.tip)}</title>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" stroke="{p.color}" '
            f'stroke-width="2"/>'
            f'<line x1="{x - 5:.1f}" x2="{x + 5:.1f}" y1="{y0:.1f}" y2="{y0:.1f}" '
            f'stroke="{p.color}"/>'
            f'<line x1="{x - 5:.1f}" x2="{x + 5:.1f}" y1="{y1:.1f}" y2="{y1:.1f}" '
            f'stroke="{p.color}"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{p.color}"/></g>'
        )

    def legend(self, items: dict[str, str], x: float, y: float) -> None:
        """Colour swatches with names from (x, y), wrapping at the right edge."""
        lx, ly = x, y
        for name, color in items.items():
            width = _legend_width([name])
            if lx + width > WIDTH and lx > x:
                lx, ly = x, ly + 14
            self.parts.append(
                f'<rect x="{lx:.1f}" y="{ly - 8:.1f}" width="10" height="10" fill="{color}"/>'
                f'<text class="tick" x="{lx + 14:.1f}" y="{ly + 1:.1f}">{escape(name)}</text>'
            )
            lx += width

    def svg(self, label: str) -> str:
        body = "".join(self.parts)
        return (
            f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="{escape(label)}">{body}</svg>'
        )


def _padded_ticks(values: list[float], bounds: tuple[float, float]) -> list[float]:
    """Ticks around ``values`` with a 10% margin that stops at ``bounds`` (values beyond
    them are still shown)."""
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.1, 0.01)
    return nice_ticks(max(min(bounds[0], lo), lo - pad), min(max(bounds[1], hi), hi + pad))


def _legend_width(names: Iterable[str]) -> float:
    """Approximate width of legend entries (swatch, gap, ~6.5 px per character)."""
    return sum(30 + 6.5 * len(name) for name in names)


def _extent(points: list[Point], reference: float | None) -> list[float]:
    values = [v for p in points for v in (p.low, p.high)]
    return values + ([reference] if reference is not None else [])


def category_chart(points: list[Point], reference: float | None, title: str,
                   legend: dict[str, str] | None = None, y_label: str = "accuracy",
                   reference_label: str = "reference", scale: Scale = PROPORTION) -> str:
    """One estimate per category (e.g. per split), the reference as a labelled dashed line."""
    if not points:
        return ""
    longest = min(max(len(str(p.x)) for p in points), 40)
    canvas = _Canvas(_extent(points, reference), bottom=24 + int(longest * 3.6),
                     bounds=scale.bounds)
    canvas.axes(title, y_label, percent=scale.percent)
    if legend:
        canvas.legend(legend, WIDTH - RIGHT - _legend_width(legend), 18)
    if reference is not None:
        canvas.reference(reference, reference_label)
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    for i, p in enumerate(points):
        x = LEFT + slot * (i + 0.5)
        canvas.estimate(x, p)
        canvas.parts.append(
            f'<text class="tick" transform="translate({x:.1f},{canvas.bottom + 12}) rotate(-35)" '
            f'text-anchor="end">{escape(str(p.x))}</text>'
        )
    return canvas.svg(title)


def _numeric_x_axis(canvas: _Canvas, ticks: list[float], sx: Callable[[float], float],
                    label: str, width: float) -> None:
    """Tick labels at ``ticks`` and the axis label under a numeric x axis."""
    for v in ticks:
        canvas.parts.append(
            f'<text class="tick" x="{sx(v):.1f}" y="{canvas.bottom + 16}" text-anchor="middle">'
            f"{v:g}</text>"
        )
    canvas.parts.append(
        f'<text class="axis" x="{LEFT + width / 2:.1f}" y="{canvas.bottom + 34}" '
        f'text-anchor="middle">{escape(label)}</text>'
    )


def line_chart(series: dict[str, list[Point]], reference: float | None, title: str,
               x_label: str, y_label: str = "accuracy", scale: Scale = PROPORTION,
               dots: bool = True) -> str:
    """One line per series over a numeric x, with a legend: a dot and its interval at each
    point, or the line alone (``dots=False``, for long series); a point with a label is
    ringed and labelled (e.g. the epoch a training kept)."""
    points = [p for line in series.values() for p in line]
    if not points:
        return ""
    legend_rows = math.ceil(_legend_width(series) / (WIDTH - LEFT - RIGHT - 60))
    canvas = _Canvas(_extent(points, reference) + list(scale.shown), bottom=62 + 14 * legend_rows,
                     bounds=scale.bounds)
    canvas.axes(title, y_label, percent=scale.percent)
    if reference is not None:
        canvas.reference(reference, "reference")
    xs = sorted({float(p.x) for p in points})
    x_lo, x_hi = xs[0] - 0.5, xs[-1] + 0.5
    width = WIDTH - LEFT - RIGHT - 20

    def sx(v: float) -> float:
        return LEFT + 10 + (v - x_lo) / (x_hi - x_lo) * width

    ticks = xs if len(xs) <= MANY_X else [t for t in nice_ticks(xs[0], xs[-1])
                                          if x_lo <= t <= x_hi]
    _numeric_x_axis(canvas, ticks, sx, x_label, width)
    spread = dots and any(p.low < p.high for p in points)
    taken: list[tuple[float, ...]] = []
    for i, line in enumerate(series.values()):
        dodge = (i - (len(series) - 1) / 2) * 6 if spread else 0  # intervals at one x apart
        line = sorted(line, key=lambda p: float(p.x))
        path = " ".join(f"{sx(float(p.x)) + dodge:.1f},{canvas.y(p.value):.1f}" for p in line)
        canvas.parts.append(
            f'<polyline points="{path}" fill="none" stroke="{line[0].color}" stroke-width="1.5"/>'
        )
        for p in line:
            x, y = sx(float(p.x)) + dodge, canvas.y(p.value)
            if dots:
                canvas.estimate(x, p)
            if p.label:
                canvas.parts.append(
                    f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="7" fill="none" '
                    f'stroke="{p.color}" stroke-width="1.5"><title>{escape(p.tip)}</title>'
                    "</circle>"
                    + _free_label(p.label, ((x, y - 11, "middle"), (x, y + 19, "middle"),
                                            (x + 10, y + 4, "start")), taken))
    canvas.legend({name: line[0].color for name, line in series.items()}, LEFT,
                  canvas.bottom + 52)
    return canvas.svg(title)


def scatter_chart(points: list[Point], title: str, x_label: str, y_label: str,
                  legend: dict[str, str] | None = None) -> str:
    """Labelled estimates of a difference (y, in percentage points, with a dashed zero
    line) over a numeric x in [-1, 1], e.g. Δ accuracy against text similarity."""
    if not points:
        return ""
    canvas = _Canvas(_extent(points, 0.0), bottom=50, bounds=(-1.0, 1.0))
    canvas.axes(title, y_label, unit="")
    if legend:
        canvas.legend(legend, WIDTH - RIGHT - _legend_width(legend), 18)
    canvas.reference(0.0, "no change")
    zero = canvas.y(0.0)
    taken = [(WIDTH - RIGHT - _legend_width(["no change"]), zero - 16, WIDTH, zero)]
    xs = _padded_ticks([float(p.x) for p in points], (-1.0, 1.0))
    width = WIDTH - LEFT - RIGHT - 20

    def sx(v: float) -> float:
        return LEFT + 10 + (v - xs[0]) / (xs[-1] - xs[0]) * width

    _numeric_x_axis(canvas, xs, sx, x_label, width)
    for p in points:
        x = sx(float(p.x))
        canvas.estimate(x, p)
        taken.append((x - 6, canvas.y(p.high) - 1, x + 6, canvas.y(p.low) + 1))
    for p in sorted(points, key=lambda p: p.value):  # the largest drops get labels first
        x, top, bottom = sx(float(p.x)), canvas.y(p.high), canvas.y(p.low)
        spots = ((x + 7, canvas.y(p.value) - 6, "start"), (x + 7, canvas.y(p.value) + 14, "start"),
                 (x, top - 5, "middle"), (x, bottom + 13, "middle"))
        canvas.parts.append(_free_label(p.label, spots, taken))
    return canvas.svg(title)


def _free_label(text: str, spots: Iterable[tuple[float, float, str]],
                taken: list[tuple[float, ...]]) -> str:
    """The label at the first spot (x, baseline y, anchor) where it overlaps no box in
    ``taken`` (its box joins them), or '' when all are taken: crowded points keep only
    their hover titles."""
    width = 6.2 * len(text)
    for x, y, anchor in spots:
        left = x - {"start": 0, "middle": width / 2, "end": width}[anchor]
        box = (left, y - 10, left + width, y + 2)
        free = all(box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]
                   for b in taken)
        if free and left >= LEFT and box[2] <= WIDTH:
            taken.append(box)
            return (f'<text class="tick" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
                    f"{escape(text)}</text>")
    return ""


def spark_histogram(counts: list[int], edges: list[float], label: str,
                    color: str = PALETTE[0]) -> str:
    """A 120 x 24 bar sparkline of a histogram; each bar's hover title gives range and count."""
    width, height = 120, 24
    top = max(max(counts), 1)
    step = width / len(counts)
    bars = "".join(
        f'<rect x="{i * step:.1f}" y="{height - 1 - c / top * (height - 2):.1f}" '
        f'width="{max(step - 1, 1):.1f}" height="{c / top * (height - 2):.1f}" fill="{color}">'
        f"<title>{edges[i]:g}–{edges[i + 1]:g}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}"><line class="grid" x1="0" x2="{width}" '
            f'y1="{height - 0.5}" y2="{height - 0.5}"/>{bars}</svg>')
