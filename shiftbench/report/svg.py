"""Tiny inline-SVG charts for estimates with intervals: no plotting library, no network.

Values are proportions in [0, 1] (differences of proportions in [-1, 1]), drawn as
percentages or percentage points; a chart may also draw plain numbers on another
:class:`Scale` (a loss, from 0). Every text is escaped.

What is drawn stays inside the chart: value axes span every point and interval, the
outermost points keep a margin from the plot area's edges, a point's label goes where it
fits (else only its hover title carries it), and long names are shortened (in full in
their hover title). An axis for a quantity that cannot be negative (a scale bounded
below by 0) starts at 0 or at the data, never below.

Stable classes, for tests that check the drawing: ``svg.plot`` (every chart; a table
cell's histogram sparkline is ``svg.spark``, its bars ``.bar``), ``.point``
(an estimate's dot, a history's window), ``.interval`` (an estimate's bar and caps),
``.label`` (a point's label), ``.tick`` (axis and category text), ``.legend`` (legend
names).
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
CHAR = 7.0  # width of a common character of 11 px text
TITLE_CHAR = 8.0  # of 13 px bold text (titles)
INSET = 10  # between the plot area's edges and the outermost points
MAX_NAME = 40  # longer category and label texts are shortened
ROW = 24  # a forest chart's row height
LEGEND_ROW = 14
# The y-axis title is turned on its baseline at x = Y_TITLE_X: its letters reach about
# Y_TITLE_RIGHT (their descent); tick labels end TICK_GAP left of the plot area.
Y_TITLE_X, Y_TITLE_RIGHT, TITLE_GAP, TICK_GAP = 14, 17, 3, 6


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
    """A value axis: the values it may span (``bounds``), those it always shows (``shown``:
    0 under a loss, all of [0, 1] for an accuracy), whether ticks are percentages, and
    the unit after a percentage tick ('' for percentage points: the axis label says so)."""

    bounds: tuple[float, float] = (0.0, 1.0)
    shown: tuple[float, ...] = ()
    percent: bool = True
    unit: str = "%"


PROPORTION = Scale()  # around the data, inside [0, 1]
WHOLE_PROPORTION = Scale(shown=(0.0, 1.0))
FROM_ZERO = Scale((0.0, math.inf), (0.0,), percent=False)  # a number, from 0 (or the data)
DIFFERENCE = Scale((-1.0, 1.0), unit="")  # a difference of proportions, in points
MANY_X = 12  # a numeric x axis with more values than this gets round ticks instead


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    span = max(hi - lo, 1e-9 * max(abs(lo), abs(hi), 1.0))
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, max(last, first + 1) + 1)]


def padded_range(values: Iterable[float], bounds: tuple[float, float]) -> tuple[float, float]:
    """The span of ``values`` with a 10% margin that stops at ``bounds`` (values beyond
    them are still shown): an axis bounded at 0 starts at 0 or at the data."""
    finite = [v for v in values if math.isfinite(v)] or [0.0]
    lo, hi = min(finite), max(finite)
    pad = max((hi - lo) * 0.1, 0.01 * max(abs(lo), abs(hi), 1.0))
    return max(min(bounds[0], lo), lo - pad), min(max(bounds[1], hi), hi + pad)


class Axis:
    """A value axis over the padded span of its values (:func:`padded_range`), drawn from
    pixel ``start`` to ``end`` (a vertical axis runs from the bottom up), with round ticks
    inside it."""

    def __init__(self, values: Iterable[float], bounds: tuple[float, float], start: float,
                 end: float) -> None:
        self.lo, self.hi = padded_range(values, bounds)
        tolerance = 1e-9 * (self.hi - self.lo)
        self.ticks = [t for t in nice_ticks(self.lo, self.hi)
                      if self.lo - tolerance <= t <= self.hi + tolerance]
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def numeric_x(values: Iterable[float], left: float, right: float,
              inset: float = INSET) -> Callable[[float], float]:
    """Pixels of x values: the smallest ``inset`` right of ``left``, the largest ``inset``
    left of ``right``; a single value in the middle."""
    values = list(values)
    lo, hi = min(values), max(values)
    if hi == lo:
        return lambda v: (left + right) / 2
    return lambda v: left + inset + (v - lo) / (hi - lo) * (right - left - 2 * inset)


def x_ticks(values: Iterable[float]) -> list[float]:
    """The values themselves when there are few, else round ticks between the extremes."""
    xs = sorted(set(values))
    if len(xs) <= MANY_X:
        return xs
    return [t for t in nice_ticks(xs[0], xs[-1]) if xs[0] <= t <= xs[-1]]


# Digits are all as wide as "0" in DejaVu Sans and most fonts (tabular): "1" is not narrow;
# "+" and its kin are as wide as "%".
NARROW, WIDE = set("fijlrtI.,:;'|!()[] "), set("mwMW@%+=<>~")


def text_width(text: str) -> float:
    """Width of 11 px text, estimated on the wide side (DejaVu Sans, the usual fallback,
    is wider than most)."""
    return sum(4.0 if c in NARROW else 10.5 if c in WIDE else 7.6 if c.isupper() else CHAR
               for c in text)


def shorten(text: str, chars: int = MAX_NAME) -> str:
    """``text`` cut to ``chars`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= chars else text[:max(chars - 1, 1)] + "…"


def _name(text: str, chars: int = MAX_NAME) -> str:
    """A shortened text with the full one as its hover title when it was cut."""
    short = shorten(text, chars)
    full = f"<title>{escape(text)}</title>" if short != text else ""
    return f"{full}{escape(short)}"


def legend_rows(items: Iterable[str], x: float, right: float = WIDTH - RIGHT) -> int:
    """How many rows a legend starting at ``x`` takes when it wraps at ``right``."""
    rows, lx = 1, x
    for name in items:
        width = _legend_width([name])
        if lx + width > right and lx > x:
            rows, lx = rows + 1, x
        lx += width
    return rows


def _legend_width(names: Iterable[str]) -> float:
    """Width of legend entries (swatch, gap, the name)."""
    return sum(30 + text_width(shorten(name)) for name in names)


def _top_legend(title: str, legend: dict[str, str] | None) -> tuple[float, float, float]:
    """(x, y, plot top) of a legend above the plot: beside the title when it fits there,
    else on rows under it, the plot starting below them."""
    if not legend:
        return 0.0, 0.0, TOP
    width = _legend_width(legend)
    beside = WIDTH - RIGHT - width
    if beside >= LEFT + TITLE_CHAR * len(title) + 16:
        return beside, 18, TOP
    rows = legend_rows(legend, LEFT)
    return LEFT, 36, TOP + 18 + LEGEND_ROW * rows


def tick_margin(texts: Iterable[str]) -> float:
    """The plot area's left edge that puts the widest tick label (right-aligned
    ``TICK_GAP`` left of it) clear of the rotated y-axis title: any number of digits."""
    return Y_TITLE_RIGHT + TITLE_GAP + max(map(text_width, texts)) + TICK_GAP


class Canvas:
    """A chart's frame: the vertical value axis, the plot area's edges in pixels and the
    parts drawn so far. The left edge leaves room for the tick labels."""

    def __init__(self, values: list[float], bottom: float, bounds: tuple[float, float] = (0, 1),
                 percent: bool = True, unit: str = "%", left: float = LEFT, top: float = TOP,
                 height: float = HEIGHT) -> None:
        self.height, self.top = height, top
        self.bottom = height - bottom
        # points at the axis' ends stay a dot's radius inside the plot area
        self.axis = Axis(values, bounds, self.bottom - 5, top + 5)
        self.ticks = self.axis.ticks
        self.tick_texts = [f"{t * 100:g}{unit}" if percent else f"{t:g}" for t in self.ticks]
        self.left = max(left, tick_margin(self.tick_texts))
        self.right = WIDTH - RIGHT
        self.parts: list[str] = []

    def y(self, value: float) -> float:
        return self.axis(value)

    def axes(self, title: str, y_label: str) -> None:
        """Title, horizontal grid lines with their tick labels, and the y axis label."""
        self.parts.append(f'<text class="title" x="{LEFT}" y="18">'
                          f"{_name(title, int((WIDTH - LEFT) / TITLE_CHAR))}</text>")
        for tick, text in zip(self.ticks, self.tick_texts, strict=True):
            y = self.y(tick)
            self.parts.append(
                f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{y:.1f}" '
                f'y2="{y:.1f}"/><text class="tick" x="{self.left - TICK_GAP}" y="{y + 4:.1f}" '
                f'text-anchor="end">{text}</text>'
            )
        mid = (self.top + self.bottom) / 2
        self.parts.append(
            f'<text class="axis" transform="translate({Y_TITLE_X},{mid:.1f}) rotate(-90)" '
            f'text-anchor="middle">{_name(y_label, int((self.bottom - self.top) / CHAR))}'
            "</text>"
        )

    def x_axis(self, ticks: Iterable[float], sx: Callable[[float], float], label: str,
               names: dict[float, str] | None = None) -> None:
        """Tick labels under a numeric x axis (``names``: the text of some ticks) and the
        axis label."""
        for v in ticks:
            text = (names or {}).get(v, f"{v:g}")
            self.parts.append(
                f'<text class="tick" x="{sx(v):.1f}" y="{self.bottom + 16}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        self.parts.append(
            f'<text class="axis" x="{(self.left + self.right) / 2:.1f}" y="{self.bottom + 34}" '
            f'text-anchor="middle">{_name(label, int((self.right - self.left) / CHAR))}</text>'
        )

    def reference(self, value: float, label: str) -> None:
        y = self.y(value)
        self.parts.append(
            f'<line class="ref" x1="{self.left}" x2="{self.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="reflabel" x="{self.right}" y="{y - 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )

    def estimate(self, x: float, p: Point) -> None:
        """A dot with its interval bar and a hover title."""
        self.parts.append(_estimate(p, ((x, self.y(p.low)), (x, self.y(p.high))),
                                    (x, self.y(p.value)), vertical=True))

    def legend(self, items: dict[str, str], x: float, y: float) -> None:
        """Colour swatches with names from (x, y), wrapping at the right edge."""
        lx, ly = x, y
        for name, color in items.items():
            width = _legend_width([name])
            if lx + width > self.right and lx > x:
                lx, ly = x, ly + LEGEND_ROW
            self.parts.append(
                f'<rect x="{lx:.1f}" y="{ly - 8:.1f}" width="10" height="10" fill="{color}"/>'
                f'<text class="legend" x="{lx + 14:.1f}" y="{ly + 1:.1f}">{_name(name)}</text>'
            )
            lx += width

    def area(self) -> tuple[float, float, float, float]:
        """Where a point's label may go: the plot area, up to the chart's right edge."""
        return self.left, self.top, WIDTH - 2, self.bottom

    def svg(self, label: str) -> str:
        return _svg(label, self.height, "".join(self.parts))


def _svg(label: str, height: float, body: str) -> str:
    return (f'<svg class="plot" viewBox="0 0 {WIDTH} {height:g}" width="{WIDTH}" '
            f'height="{height:g}" role="img" aria-label="{escape(label)}">{body}</svg>')


def _estimate(p: Point, ends: tuple[tuple[float, float], tuple[float, float]],
              dot: tuple[float, float], vertical: bool) -> str:
    """An interval bar between ``ends`` (a ``vertical`` one or a horizontal one) with caps
    across it, and the dot, in one group that carries the hover title."""
    (x0, y0), (x1, y1) = ends
    caps = "".join(
        f'<line class="interval" x1="{x - 5 * vertical:.1f}" x2="{x + 5 * vertical:.1f}" '
        f'y1="{y - 5 * (not vertical):.1f}" y2="{y + 5 * (not vertical):.1f}" '
        f'stroke="{p.color}"/>' for x, y in ends)
    return (f'<g><title>{escape(p.tip)}</title>'
            f'<line class="interval" x1="{x0:.1f}" x2="{x1:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" '
            f'stroke="{p.color}" stroke-width="2"/>{caps}'
            f'<circle class="point" cx="{dot[0]:.1f}" cy="{dot[1]:.1f}" r="4" '
            f'fill="{p.color}"/></g>')


def _extent(points: list[Point], reference: float | None) -> list[float]:
    values = [v for p in points for v in (p.low, p.value, p.high)]
    return values + ([reference] if reference is not None else [])


def category_chart(points: list[Point], reference: float | None, title: str,
                   legend: dict[str, str] | None = None, y_label: str = "accuracy",
                   reference_label: str = "reference", scale: Scale = PROPORTION) -> str:
    """One estimate per category (e.g. per split), the reference as a labelled dashed line.
    Category names are written at -35° under their point; the plot area starts far enough
    right for the first ones to fit."""
    if not points:
        return ""
    names = [str(p.x) for p in points]
    reach = [0.82 * text_width(shorten(name)) + 4 for name in names]  # left of the point
    end, n = WIDTH - RIGHT, len(points)
    left = max(LEFT, *((r - end * (i + 0.5) / n) / (1 - (i + 0.5) / n)
                       for i, r in enumerate(reach)))
    bottom = 24 + 0.58 * max(text_width(shorten(name)) for name in names)
    legend_x, legend_y, top = _top_legend(title, legend)
    canvas = Canvas(_extent(points, reference), bottom, scale.bounds, scale.percent, scale.unit,
                    left=left, top=top, height=HEIGHT - 100 + bottom + top - TOP)
    canvas.axes(title, y_label)
    if legend:
        canvas.legend(legend, legend_x, legend_y)
    if reference is not None:
        canvas.reference(reference, reference_label)
    slot = (canvas.right - canvas.left) / n
    for i, (p, name) in enumerate(zip(points, names, strict=True)):
        x = canvas.left + slot * (i + 0.5)
        canvas.estimate(x, p)
        canvas.parts.append(
            f'<text class="tick" transform="translate({x:.1f},{canvas.bottom + 12}) rotate(-35)" '
            f'text-anchor="end">{_name(name)}</text>'
        )
    return canvas.svg(title)


def line_chart(series: dict[str, list[Point]], reference: float | None, title: str,
               x_label: str, y_label: str = "accuracy", scale: Scale = PROPORTION,
               dots: bool = True, x_names: dict[float, str] | None = None,
               reference_label: str = "reference") -> str:
    """One line per series over a numeric x, with a legend: a dot and its interval at each
    point, or the line alone (``dots=False``, for long series); a point with a label is
    ringed and labelled (e.g. the epoch a training kept). ``x_names`` writes some x ticks
    as words (e.g. a run's name)."""
    points = [p for line in series.values() for p in line]
    if not points:
        return ""
    rows = legend_rows(series, LEFT)
    canvas = Canvas(_extent(points, reference) + list(scale.shown), 62 + LEGEND_ROW * rows,
                    scale.bounds, scale.percent, scale.unit,
                    height=HEIGHT + LEGEND_ROW * (rows - 1))
    canvas.axes(title, y_label)
    if reference is not None:
        canvas.reference(reference, reference_label)
    spread = dots and any(p.low < p.high for p in points)
    dodge_step = 6 if spread else 0  # intervals at one x drawn side by side
    widest = (len(series) - 1) / 2 * dodge_step
    xs = [float(p.x) for p in points]
    sx = numeric_x(xs, canvas.left, canvas.right, INSET + widest)
    canvas.x_axis(x_ticks(xs), sx, x_label, x_names)
    taken: list[tuple[float, ...]] = []
    for i, line in enumerate(series.values()):
        dodge = (i - (len(series) - 1) / 2) * dodge_step
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
                                            (x + 10, y + 4, "start"), (x - 10, y + 4, "end")),
                                  taken, canvas.area()))
    canvas.legend({name: line[0].color for name, line in series.items()}, LEFT,
                  canvas.bottom + 52)
    return canvas.svg(title)


def scatter_chart(points: list[Point], title: str, x_label: str, y_label: str,
                  legend: dict[str, str] | None = None,
                  x_bounds: tuple[float, float] = (-1.0, 1.0)) -> str:
    """Labelled estimates of a difference (y, in percentage points, with a dashed zero
    line) over a numeric x within ``x_bounds`` (e.g. Δ accuracy against text similarity,
    in [-1, 1], or against a drift statistic, from 0)."""
    if not points:
        return ""
    legend_x, legend_y, top = _top_legend(title, legend)
    canvas = Canvas(_extent(points, 0.0), 50, (-1.0, 1.0), unit="", top=top,
                    height=HEIGHT + top - TOP)
    canvas.axes(title, y_label)
    if legend:
        canvas.legend(legend, legend_x, legend_y)
    canvas.reference(0.0, "no change")
    zero = canvas.y(0.0)
    taken = [(canvas.right - text_width("no change"), zero - 16, WIDTH, zero)]
    sx = Axis([float(p.x) for p in points], x_bounds, canvas.left + INSET, canvas.right - INSET)
    canvas.x_axis(sx.ticks, sx, x_label)
    for p in points:
        x = sx(float(p.x))
        canvas.estimate(x, p)
        taken.append((x - 6, canvas.y(p.high) - 1, x + 6, canvas.y(p.low) + 1))
    for p in sorted(points, key=lambda p: p.value):  # the largest drops get labels first
        x, y, top_y, bottom_y = sx(float(p.x)), canvas.y(p.value), canvas.y(p.high), \
            canvas.y(p.low)
        near = [(x + 7, y - 6, "start"), (x + 7, y + 14, "start"),
                (x - 7, y - 6, "end"), (x - 7, y + 14, "end"),
                (x, top_y - 5, "middle"), (x, bottom_y + 13, "middle")]
        # among close points: a row or two further up or down beside the point
        farther = [(x + dx, y + dy, anchor) for dy in (-20, 28, -34, 42)
                   for dx, anchor in ((7, "start"), (-7, "end"))]
        spots = near + farther
        canvas.parts.append(_free_label(p.label, spots, taken, canvas.area()))
    return canvas.svg(title)


def forest_chart(rows: list[Point], reference: float | None, title: str, x_label: str,
                 reference_label: str = "reference", scale: Scale = PROPORTION) -> str:
    """A forest plot: one row per estimate (``x`` names it), its dot and interval drawn
    across a value axis, the reference as a dashed vertical line."""
    if not rows:
        return ""
    names = [str(p.x) for p in rows]
    left = max(LEFT, 14 + max(text_width(shorten(name)) for name in names))
    top = TOP + 8
    bottom = top + ROW * len(rows)
    height = bottom + 44
    right = WIDTH - RIGHT
    sx = Axis(_extent(rows, reference), scale.bounds, left + INSET, right - INSET)
    parts = [f'<text class="title" x="{LEFT}" y="18">'
             f"{_name(title, int((WIDTH - LEFT) / TITLE_CHAR))}</text>"]
    for tick in sx.ticks:
        x = sx(tick)
        text = f"{tick * 100:g}{scale.unit}" if scale.percent else f"{tick:g}"
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" '
                     f'text-anchor="middle">{text}</text>')
    parts.append(f'<text class="axis" x="{(left + right) / 2:.1f}" y="{bottom + 34}" '
                 f'text-anchor="middle">{_name(x_label, int((right - left) / CHAR))}</text>')
    if reference is not None:
        x = sx(reference)
        anchor = "start" if x < (left + right) / 2 else "end"
        parts.append(f'<line class="ref" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" '
                     f'y2="{bottom}"/><text class="reflabel" x="{x:.1f}" y="{top - 8}" '
                     f'text-anchor="{anchor}">{escape(reference_label)}</text>')
    for i, (p, name) in enumerate(zip(rows, names, strict=True)):
        y = top + ROW * (i + 0.5)
        parts.append(f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_name(name)}</text>"
                     + _estimate(p, ((sx(p.low), y), (sx(p.high), y)), (sx(p.value), y),
                               vertical=False))
    return _svg(title, height, "".join(parts))


def _free_label(text: str, spots: Iterable[tuple[float, float, str]],
                taken: list[tuple[float, ...]], area: tuple[float, float, float, float]) -> str:
    """The label at the first spot (x, baseline y, anchor) where it lies inside ``area``
    and overlaps no box in ``taken`` (its box joins them), or '' when there is none:
    crowded points keep only their hover titles."""
    short = shorten(text)
    width = text_width(short)
    for x, y, anchor in spots:
        left = x - {"start": 0, "middle": width / 2, "end": width}[anchor]
        box = (left, y - 10, left + width, y + 2)
        free = all(box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]
                   for b in taken)
        inside = (area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1]
                  and box[3] <= area[3])
        if free and inside:
            taken.append(box)
            return (f'<text class="label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
                    f"{_name(text)}</text>")
    return ""


def spark_histogram(counts: list[int], edges: list[float], label: str,
                    color: str = PALETTE[0]) -> str:
    """A 120 x 24 bar sparkline of a histogram; each bar's hover title gives range and count."""
    width, height = 120, 24
    top = max(max(counts), 1)
    step = width / len(counts)
    bars = "".join(
        f'<rect class="bar" x="{i * step:.1f}" y="{height - 1 - c / top * (height - 2):.1f}" '
        f'width="{max(step - 1, 1):.1f}" height="{c / top * (height - 2):.1f}" fill="{color}">'
        f"<title>{edges[i]:g}–{edges[i + 1]:g}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}"><line class="grid" x1="0" x2="{width}" '
            f'y1="{height - 0.5}" y2="{height - 0.5}"/>{bars}</svg>')
