"""Tiny inline-SVG charts for proportions with intervals: no plotting library, no network.

Values are proportions in [0, 1], drawn as percentages. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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

    def __init__(self, values: list[float], bottom: int) -> None:
        lo, hi = min(values), max(values)
        pad = max((hi - lo) * 0.1, 0.01)
        self.ticks = nice_ticks(max(0.0, lo - pad), min(1.0, hi + pad))
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.bottom = HEIGHT - bottom
        self.parts: list[str] = []

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - TOP)

    def axes(self, title: str, y_label: str) -> None:
        self.parts.append(f'<text class="title" x="{LEFT}" y="18">{escape(title)}</text>')
        for tick in self.ticks:
            y = self.y(tick)
            self.parts.append(
                f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{tick * 100:g}%</text>"
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


def _legend_width(names: Iterable[str]) -> float:
    """Approximate width of legend entries (swatch, gap, ~6.5 px per character)."""
    return sum(30 + 6.5 * len(name) for name in names)


def _extent(points: list[Point], reference: float | None) -> list[float]:
    values = [v for p in points for v in (p.low, p.high)]
    return values + ([reference] if reference is not None else [])


def category_chart(points: list[Point], reference: float | None, title: str,
                   legend: dict[str, str] | None = None, y_label: str = "accuracy") -> str:
    """One estimate per category (e.g. per split), the reference as a dashed line."""
    if not points:
        return ""
    longest = min(max(len(str(p.x)) for p in points), 40)
    canvas = _Canvas(_extent(points, reference), bottom=24 + int(longest * 3.6))
    canvas.axes(title, y_label)
    if legend:
        canvas.legend(legend, WIDTH - RIGHT - _legend_width(legend), 18)
    if reference is not None:
        canvas.reference(reference, "reference")
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    for i, p in enumerate(points):
        x = LEFT + slot * (i + 0.5)
        canvas.estimate(x, p)
        canvas.parts.append(
            f'<text class="tick" transform="translate({x:.1f},{canvas.bottom + 12}) rotate(-35)" '
            f'text-anchor="end">{escape(str(p.x))}</text>'
        )
    return canvas.svg(title)


def line_chart(series: dict[str, list[Point]], reference: float | None, title: str,
               x_label: str, y_label: str = "accuracy") -> str:
    """One line per series over a numeric x, intervals at each point, with a legend."""
    points = [p for line in series.values() for p in line]
    if not points:
        return ""
    legend_rows = math.ceil(_legend_width(series) / (WIDTH - LEFT - RIGHT - 60))
    canvas = _Canvas(_extent(points, reference), bottom=62 + 14 * legend_rows)
    canvas.axes(title, y_label)
    if reference is not None:
        canvas.reference(reference, "reference")
    xs = sorted({float(p.x) for p in points})
    x_lo, x_hi = xs[0] - 0.5, xs[-1] + 0.5
    width = WIDTH - LEFT - RIGHT - 20

    def sx(v: float) -> float:
        return LEFT + 10 + (v - x_lo) / (x_hi - x_lo) * width

    for v in xs:
        canvas.parts.append(
            f'<text class="tick" x="{sx(v):.1f}" y="{canvas.bottom + 16}" text-anchor="middle">'
            f"{v:g}</text>"
        )
    canvas.parts.append(
        f'<text class="axis" x="{LEFT + width / 2:.1f}" y="{canvas.bottom + 34}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    for i, line in enumerate(series.values()):
        dodge = (i - (len(series) - 1) / 2) * 6  # keeps intervals at one x apart
        line = sorted(line, key=lambda p: float(p.x))
        path = " ".join(f"{sx(float(p.x)) + dodge:.1f},{canvas.y(p.value):.1f}" for p in line)
        canvas.parts.append(
            f'<polyline points="{path}" fill="none" stroke="{line[0].color}" stroke-width="1.5"/>'
        )
        for p in line:
            canvas.estimate(sx(float(p.x)) + dodge, p)
    canvas.legend({name: line[0].color for name, line in series.items()}, LEFT,
                  canvas.bottom + 52)
    return canvas.svg(title)
