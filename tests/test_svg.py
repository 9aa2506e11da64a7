"""Plots that never mislead: every point, interval and label inside the chart, axes of
non-negative quantities never below 0, for the edge cases a real report meets."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import numpy as np
import pytest

from shiftbench.monitor.plot import history_svg
from shiftbench.monitor.store import WindowRecord
from shiftbench.report import svg

LONG = "a-very-long-split-name-that-goes-on-and-on-and-on@1"


def parse(chart: str) -> tuple[ET.Element, float, float]:
    """The chart's root, width and height (from its viewBox)."""
    root = ET.fromstring(chart)
    assert "plot" in root.get("class", "").split()
    _, _, width, height = map(float, root.get("viewBox").split())
    return root, width, height


def elements(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if cls in (e.get("class") or "").split()]


def own_text(element: ET.Element) -> str:
    """A text element's words without its hover title."""
    return "".join([element.text or "", *(child.tail or "" for child in element)])


def assert_inside(chart: str, area: tuple[float, float, float, float] | None = None) -> None:
    """Every point and interval end lies in ``area`` (default: the viewBox), and every
    label's box (its estimated width, by anchor) and every tick's anchor in the viewBox."""
    root, width, height = parse(chart)
    x0, y0, x1, y1 = area or (0, 0, width, height)
    points = elements(root, "point")
    assert points
    for point in points:
        cx, cy = float(point.get("cx")), float(point.get("cy"))
        assert x0 <= cx <= x1 and y0 <= cy <= y1, (cx, cy, chart[:200])
    for line in elements(root, "interval"):
        for x, y in ((line.get("x1"), line.get("y1")), (line.get("x2"), line.get("y2"))):
            assert 0 <= float(x) <= width and 0 <= float(y) <= height
    for label in elements(root, "label"):
        x, y = float(label.get("x")), float(label.get("y"))
        text_w = svg.text_width(own_text(label))
        left = x - {"start": 0, "middle": text_w / 2, "end": text_w}[label.get("text-anchor")]
        assert left >= 0 and left + text_w <= width and 10 <= y <= height, own_text(label)
    for name in elements(root, "legend"):
        x, y = float(name.get("x")), float(name.get("y"))
        assert x >= 0 and x + svg.text_width(own_text(name)) <= width and 0 <= y <= height
    for tick in elements(root, "tick"):
        if tick.get("x") is not None:
            assert 0 <= float(tick.get("x")) <= width and 0 <= float(tick.get("y")) <= height


def value_ticks(chart: str) -> list[float]:
    """The numbers of a chart's value-axis ticks (right-aligned left of the plot)."""
    return [float(t.rstrip("%")) for t in re.findall(r'text-anchor="end">(-?[\d.e+]+%?)</text>',
                                                      chart)]


def plot_area(chart: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the plot area, read from its grid lines."""
    lines = re.findall(r'class="grid" x1="([\d.]+)" x2="([\d.]+)" y1="([\d.]+)"', chart)
    ys = [float(y) for _, _, y in lines]
    return float(lines[0][0]), min(ys) - 60, float(lines[0][1]), max(ys)


def x_axis_starts_at_0(chart: str) -> bool:
    """Whether a scatter's x axis begins at 0: its 0 tick sits where the plot area's
    points may begin (a tick label alone would not tell: ticks lie inside the axis)."""
    ticks = re.findall(r'x="([\d.]+)" y="[\d.]+" text-anchor="middle">(-?[\d.]+)</text>', chart)
    zero = next((float(x) for x, text in ticks if text == "0"), None)
    return zero is not None and abs(zero - plot_area(chart)[0] - svg.INSET) < 0.1


def y_axis_starts_at_0(chart: str) -> bool:
    """Whether a chart's value axis begins at 0: its 0 tick sits at the bottom of the plot
    area (5 px above it, a dot's room), which the x tick labels hang 16 px below."""
    zero = re.search(r'<text class="tick" x="[\d.]+" y="([\d.]+)" text-anchor="end">0%?</text>',
                     chart)
    x_label = re.search(r'y="([\d.]+)" text-anchor="middle">', chart)
    return zero is not None and float(zero.group(1)) - 4 == float(x_label.group(1)) - 16 - 5


def point(x, value, low=None, high=None, label="") -> svg.Point:
    return svg.Point(x, value, value if low is None else low, value if high is None else high,
                     label=label, tip=str(x))


CASES = {
    "one point": [point("only", 0.5, 0.4, 0.6, "only")],
    "all equal": [point(f"s{i}", 0.7, 0.7, 0.7, f"s{i}") for i in range(5)],
    "at the ends": [point("zero", 0.0, 0.0, 0.05, "zero"), point("one", 1.0, 0.95, 1.0, "one")],
    "long names": [point(LONG + str(i), 0.2 * i, 0.2 * i - 0.1, 0.2 * i + 0.1, LONG)
                   for i in range(4)],
    "many": [point(f"split-{i}@{i % 3}", 0.5 + 0.01 * i, 0.45, 0.6, f"split-{i}")
             for i in range(30)],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_category_charts_keep_everything_inside(case: str) -> None:
    legend = {f"detector {k}: power on keyboard@{k}": "#000" for k in range(6)}
    chart = svg.category_chart(CASES[case], 0.5, "False alarms and power (95% intervals)",
                               legend)
    assert_inside(chart)
    root, width, _ = parse(chart)
    for name in elements(root, "tick"):
        if name.get("transform"):  # a rotated category name: it reaches 0.82 of its width left
            x = float(re.search(r"translate\(([\d.]+),", name.get("transform")).group(1))
            assert x - 0.82 * svg.text_width(own_text(name)) >= 0, own_text(name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_scatter_charts_keep_everything_inside(case: str) -> None:
    points = [svg.Point(i / max(len(CASES[case]) - 1, 1), p.value - 0.5, p.low - 0.5,
                        p.high - 0.5, label=p.label) for i, p in enumerate(CASES[case])]
    chart = svg.scatter_chart(points, "Δ accuracy vs drift", "statistic", "Δ (pp)",
                              {"perturbation": "#000", "domain": "#111"}, (0.0, 1.0))
    assert_inside(chart)


def test_close_points_of_a_scatter_all_keep_their_labels() -> None:
    """The browser test's report: five splits within 0.011 of similarity, two of them on the
    same spot; the domain split's label had no free spot next to its point and vanished."""
    splits = [("keyboard@1", 0.996, -0.031, -0.157, 0.079),
              ("keyboard@2", 0.996, -0.094, -0.242, 0.023),
              ("keyboard@4", 0.985, -0.188, -0.353, -0.060),
              ("word_delete@2", 0.993, -0.094, -0.242, 0.023),
              ("food reviews from a second site", 0.994, 0.0, 0.0, 0.0)]
    chart = svg.scatter_chart([point(*row[1:], label=row[0]) for row in splits],
                              "Δ accuracy vs mean similarity (95% intervals)",
                              "mean similarity", "Δ accuracy (pp)",
                              {"perturbation": "#000", "domain": "#111"})
    root, _, _ = parse(chart)
    assert sorted(own_text(label) for label in elements(root, "label")) == sorted(
        row[0] for row in splits)
    assert_inside(chart)


def test_the_right_most_point_of_a_drift_scatter_keeps_its_label_and_the_axis_starts_at_0():
    """The report's "Δ accuracy vs drift statistic": x is each statistic over the largest,
    so the right-most point sits at 1; its label used to fall off the right edge, and the
    x axis started at -0.25 for a statistic that cannot be negative."""
    points = [svg.Point(x, d, d - 0.03, d + 0.03, label=name) for x, d, name in
              [(0.0, -0.01, "keyboard@1"), (0.02, -0.02, "ocr@1"), (0.6, -0.25, "apple"),
               (1.0, -0.2, "self-driving-cars")]]
    chart = svg.scatter_chart(points, "Δ accuracy vs mmd drift statistic",
                              "drift statistic / the largest across splits", "Δ (pp)",
                              {"perturbation": "#000", "domain": "#111"}, (0.0, 1.0))
    root, _, _ = parse(chart)
    assert "self-driving-cars" in [own_text(e) for e in elements(root, "label")]
    assert_inside(chart)
    assert x_axis_starts_at_0(chart)


@pytest.mark.parametrize("values", [[0.0, 0.0], [3.0], [1e6, 1e6 + 1], [-5.0, 250.0]])
def test_line_charts_keep_everything_inside_for_any_numbers(values: list[float]) -> None:
    series = {f"seed {k}": [svg.Point(x, v + k, v + k - 0.5, v + k + 0.5, svg.PALETTE[k],
                                      label="kept" if x == 1 else "")
                            for x, v in enumerate(values, 1)] for k in range(3)}
    chart = svg.line_chart(series, None, "loss", "epoch", "loss", svg.FROM_ZERO)
    assert_inside(chart, plot_area(chart)[:1] + (0, svg.WIDTH, svg.HEIGHT + 20))
    if min(values) - 0.5 >= 0:  # every interval above 0: a loss axis from 0
        assert y_axis_starts_at_0(chart)


def test_axes_of_non_negative_quantities_never_start_below_zero() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        values = list(rng.uniform(0, 1, rng.integers(1, 6)) ** rng.integers(1, 6))
        for bounds in ((0.0, 1.0), (0.0, math.inf)):
            axis = svg.Axis(values, bounds, 300, 30)
            assert 0 <= axis.lo <= min(values) and axis.hi >= max(values)
            assert all(t >= 0 for t in axis.ticks) and len(axis.ticks) >= 1
    below = svg.Axis([-0.003, 0.4], (0.0, 1.0), 300, 30)  # data below the bound: from the data
    assert below.lo == -0.003


def test_a_proportion_axis_stays_inside_0_and_1() -> None:
    chart = svg.category_chart([point("a", 0.01, 0.0, 0.04), point("b", 0.99, 0.96, 1.0)],
                               None, "t")
    ticks = value_ticks(chart)
    assert min(ticks) >= 0 and max(ticks) <= 100


def _record(window: int, statistic: float, drifted: bool = False) -> WindowRecord:
    return WindowRecord("s", window, "mmd", "mmd", "file", 0, 10, "f", 0,
                        datetime(2024, 1, 1, tzinfo=timezone.utc), 10, statistic, 0.01, None,
                        None, drifted)


@pytest.mark.parametrize("windows", [[7], [0, 1], list(range(3, 300))])
def test_a_drift_history_keeps_its_windows_inside_and_starts_at_0(windows: list[int]) -> None:
    records = [_record(w, 0.002 + 0.0001 * (w % 7), w % 11 == 0) for w in windows]
    chart = history_svg(records, "s")
    left, _, right, bottom = plot_area(chart)
    assert_inside(chart, (left, 0, right, bottom))
    assert y_axis_starts_at_0(chart)
    x_ticks = re.findall(r'text-anchor="middle">(\d+)</text>', chart)
    assert len(x_ticks) == len(set(x_ticks)) >= 1  # a single window: one tick, not two


# Advance widths of 11 px DejaVu Sans (Chromium's sans-serif here; units per em / 2048 * 11):
# every digit 7.0 px (tabular: "1" too), "%" 10.45, "." 3.5, "-" 3.97, "e" 6.77, "+" 9.22.
DEJAVU = {**dict.fromkeys("0123456789", 7.0), "%": 10.45, ".": 3.5, "-": 3.97, "e": 6.77,
          "+": 9.22}


@pytest.mark.parametrize("peak", [0.02, 0.1, 1.0, 100.0])
def test_tick_labels_of_any_width_stay_clear_of_the_y_axis_title(peak: float) -> None:
    """The drift history's '1000%' ran into 'evidence, % of the alarm level': the plot's left
    edge follows the widest tick label, measured as the browser's font draws it."""
    chart = history_svg([_record(0, 0.001), _record(1, peak, True)], "s")
    root, _, _ = parse(chart)
    ticks = [t for t in elements(root, "tick") if t.get("text-anchor") == "end"]
    assert any(len(own_text(t)) >= 5 for t in ticks) or peak < 0.1
    for tick in ticks:
        text = own_text(tick)
        assert svg.text_width(text) >= sum(DEJAVU[c] for c in text), text
        assert float(tick.get("x")) - svg.text_width(text) >= svg.Y_TITLE_RIGHT + 2, text


def test_forest_charts_keep_everything_inside() -> None:
    rows = [svg.Point(f"{chr(65 + i)}: {LONG}", -0.3 + 0.1 * i, -0.5 + 0.1 * i, 0.1 * i)
            for i in range(6)]
    chart = svg.forest_chart(rows, 0.0, "typo@1: Δ accuracy", "Δ accuracy (pp)", "no change",
                             svg.DIFFERENCE)
    assert_inside(chart)
    root, _, height = parse(chart)
    assert len(elements(root, "point")) == 6
    names = [e for e in elements(root, "tick") if e.get("text-anchor") == "end"]
    assert all(float(n.get("x")) - svg.text_width(own_text(n)) >= 0 for n in names)


def test_the_report_draws_its_drift_scatter_from_0_with_every_label_inside() -> None:
    """report.html's Δ accuracy against each split's drift statistic (over the largest):
    the statistic cannot be negative, so its axis starts at 0."""
    from shiftbench.drift import adjust_for_multiplicity
    from shiftbench.evaluate import evaluate
    from shiftbench.report import SCHEMA_VERSION
    from shiftbench.report.html import report_html
    from shiftbench.split import Split

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    ref = Split("reference", [f"e{i}" for i in range(60)], ["t"] * 60,
                [["neg", "pos"][k] for k in y], {"kind": "reference"})

    def proba(accuracy: float) -> np.ndarray:
        right = rng.random(60) < accuracy
        p = np.where(right == (y == 1), 0.8, 0.2)
        return np.column_stack([1 - p, p])

    shifted = [(ref.derive(f"typo@{s}", ref.texts, kind="perturbation", shift="typo",
                           severity=s, params={}), proba(0.9 - 0.1 * s)) for s in (1, 2, 3)]
    records, _ = evaluate(ref, proba(0.9), shifted, ["neg", "pos"], ["accuracy"], seed=0,
                          n_boot=50)
    drift = {f"typo@{s}": [{"method": "mmd", "statistic": stat, "p_value": 0.01, "alpha": 0.05,
                            "drifted": True, "n_reference": 30, "n_sample": 30}]
             for s, stat in ((1, 0.001), (2, 0.01), (3, 0.04))}
    adjust_for_multiplicity(drift)
    report = {"schema_version": SCHEMA_VERSION, "run_id": "r", "created": "", "seed": 0,
              "suite": {"name": "s"}, "model": {"classes": ["neg", "pos"]},
              "environment": {}, "timings": {}, "runner": {}, "splits": records,
              "predictions_file": "p.parquet", "drift": drift}
    html = report_html(report)
    chart = next(c for c in re.findall(r'<svg class="plot".*?</svg>', html, re.S)
                 if "drift statistic" in c)
    assert_inside(chart)
    root, _, _ = parse(chart)
    assert {own_text(e) for e in elements(root, "label")} == {"typo@1", "typo@2", "typo@3"}
    assert x_axis_starts_at_0(chart)
