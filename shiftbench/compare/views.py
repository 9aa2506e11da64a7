"""compare.md and compare.html: the runs, their metric per split, the robustness summary,
the differences that matter, and (HTML) a forest plot per split and trends. Both are
rendered from the comparison's plain data (compare.json); every text is escaped."""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any

from shiftbench.report import svg
from shiftbench.report.markdown import md_cell, shown_as
from shiftbench.report.numbers import CHANGE, estimate_text, with_interval

Comparison = dict[str, Any]


# --- what both views say


def title(c: Comparison) -> str:
    return f"shiftbench compare: {c['suite']['name']} — {len(c['runs'])} runs"


def _heading(text: str) -> str:
    return text[:1].upper() + text[1:]


def _units(c: Comparison) -> tuple[str, str, str]:
    """(label, unit, unit of a change) of the compared metric."""
    label, unit = shown_as(c["metric"])
    return label, unit, CHANGE.get(unit, unit)


def run_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["run", "model", "run id", "created", "device", "folder"]
    rows = [[r["letter"], r["model"], r["run_id"], r["created"],
             " ".join(str(r[k]) for k in ("device", "precision") if r.get(k)), r["path"]]
            for r in c["runs"]]
    return header, rows


def _higher_than(c: Comparison, kind: str, what: str, letter: str) -> list[str]:
    """The runs that ``letter`` is significantly higher than on ``what`` (after Holm)."""
    found = []
    for d in c["comparisons"]:
        if d["kind"] != kind or d["what"] != what or not d["significant"]:
            continue
        if d["second"] == letter and d["value"] > 0:
            found.append(d["first"])
        elif d["first"] == letter and d["value"] < 0:
            found.append(d["second"])
    return found


def _marked(text: str, higher_than: list[str]) -> str:
    return f"{text} > {', '.join(higher_than)}" if higher_than else text


def split_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """A row per split: its kind, size and each run's metric with its interval, marked
    '> B' where significantly higher than run B."""
    unit = _units(c)[1]
    letters = [r["letter"] for r in c["runs"]]
    rows = []
    for split in c["splits"]:
        cells = [_marked(estimate_text(c["estimates"][x][split["name"]]["metric"], unit),
                         _higher_than(c, "split", split["name"], x)) for x in letters]
        rows.append([split["name"], split["kind"], str(split["n"]), *cells])
    return ["split", "kind", "n", *letters], rows


def summary_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """A row per run: its metric on the reference and each summary Δ with its interval."""
    label, unit, change = _units(c)
    summary = c["summary"]
    reference = next(s["name"] for s in c["splits"] if s["kind"] == "reference")
    rows = []
    for run in c["runs"]:
        x = run["letter"]
        cells = [estimate_text(c["estimates"][x][reference]["metric"], unit)]
        for key in summary["labels"]:
            est = summary["runs"][x][key]
            text = with_interval(est["value"], est["low"], est["high"], change)
            if "split" in est:
                text += f" ({est['split']})"
            cells.append(_marked(text, _higher_than(c, "summary", key, x)))
        rows.append([x, run["model"], *cells])
    return ["run", "model", f"{label}, {reference}", *summary["labels"].values()], rows


def _what(c: Comparison, d: dict[str, Any]) -> str:
    return c["summary"]["labels"][d["what"]] if d["kind"] == "summary" else d["what"]


def difference_rows(c: Comparison, only_significant: bool) -> tuple[list[str], list[list[str]]]:
    _, unit, change = _units(c)
    rows = [[_what(c, d), f"{d['second']} − {d['first']}",
             with_interval(d["value"], d["low"], d["high"], change), d["method"],
             _p(d["p_value"]), _p(d["p_holm"]), "yes" if d["significant"] else "no"]
            for d in c["comparisons"] if d["significant"] or not only_significant]
    return ["split / summary", "difference", "estimate [95%]", "test", "p", "Holm p",
            "significant"], rows


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def notes(c: Comparison) -> list[str]:
    """What the numbers are and how they were computed, one paragraph each."""
    s, summary = c["settings"], c["summary"]
    label = _units(c)[0]
    lines = [
        f"Each split's {label} is the one its run's report gives, with that report's 95% "
        "interval. Δ = shifted − reference, as in the run reports: negative is what a shift "
        "costs, and the worst Δ is the split that costs most.",
    ]
    if summary["reason"]:
        lines.append(f"No robustness summary: {summary['reason']}.")
    else:
        lines.append(
            f"Summary intervals: {summary['n_boot']} bootstrap resamples of the examples "
            "(a perturbed example is resampled with its original, so a perturbation's Δ is "
            "paired by id; a domain split's examples are resampled on their own), the same "
            "resamples for every run, which share their examples; percentile intervals. "
            "Where few examples change under the shifts such an interval is narrow (a point "
            "when none does); each split's own Δ interval, in the forest plots, is its "
            "report's, which keeps its width.")
    lines.append(
        f"Differences: every pair of runs on every split and summary quantity ({s['family_size']}"
        f" comparisons), paired by example id. Splits use the gate's paired test (exact "
        "McNemar for a proportion, else a paired bootstrap), summary quantities the gate's "
        "bootstrap test on the paired resamples; each two-sided. '> B' marks a run "
        f"significantly higher than run B after Holm's adjustment over all {s['family_size']} "
        f"comparisons (family-wise error at most {s['alpha']:g}).")
    return lines


# --- Markdown


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def comparison_markdown(c: Comparison) -> str:
    label = _units(c)[0]
    lines = [f"# {md_cell(title(c))}", "", "## Runs", "", *_md_table(*run_rows(c)),
             f"## {_heading(label)} per split (95% intervals)", "",
             *_md_table(*split_rows(c))]
    if not c["summary"]["reason"]:
        lines += ["## Robustness summary (95% intervals)", "", *_md_table(*summary_rows(c))]
    header, rows = difference_rows(c, only_significant=True)
    lines += ["## Differences that matter", ""]
    lines += _md_table(header, rows) if rows else ["None after Holm's adjustment.", ""]
    lines += [line for note in notes(c) for line in (note, "")]
    return "\n".join(lines)


# --- HTML


def _html_table(header: list[str], rows: list[list[str]], text_columns: int) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" if i < text_columns
                         else f'<td class="num">{escape(cell)}</td>'
                         for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _color(c: Comparison, letter: str) -> str:
    index = [r["letter"] for r in c["runs"]].index(letter)
    return svg.PALETTE[index % len(svg.PALETTE)]


def _row_name(run: dict[str, Any]) -> str:
    return f"{run['letter']}: {run['model_spec']}"


def _value_scale(unit: str, metric: str) -> svg.Scale:
    if unit == "%":
        return svg.PROPORTION
    from shiftbench.errors import ShiftbenchError
    from shiftbench.metrics import metric_named

    try:
        return svg.Scale(metric_named(metric).bounds, percent=False)
    except ShiftbenchError:
        return svg.Scale((-math.inf, math.inf), percent=False)


def forest_plot(c: Comparison, split: dict[str, Any]) -> str:
    """The runs on one split: the metric on the reference (the dashed line: the first
    run's), Δ on a shifted split (the dashed line: no change)."""
    label, unit, change = _units(c)
    field, rows, letters = ("metric" if split["kind"] == "reference" else "delta"), [], []
    for run in c["runs"]:
        est = c["estimates"][run["letter"]][split["name"]][field]
        if est and est.get("low") is not None:
            shown = estimate_text(est, unit if field == "metric" else change)
            rows.append(svg.Point(_row_name(run), est["value"], est["low"], est["high"],
                                  _color(c, run["letter"]), f"{_row_name(run)}: {shown}"))
            letters.append(run["letter"])
    if not rows:
        return ""
    if field == "metric":
        return svg.forest_chart(rows, rows[0].value, f"{split['name']}: {label} (95% intervals)",
                                label, f"run {letters[0]}",
                                _value_scale(unit, c["metric"]))
    percent = unit == "%"
    scale = svg.DIFFERENCE if percent else svg.Scale((-math.inf, math.inf), percent=False)
    return svg.forest_chart(rows, 0.0, f"{split['name']}: Δ {label} vs reference (95% intervals)",
                            f"Δ {label}" + (" (pp)" if percent else ""), "no change", scale)


def _groups_over_time(c: Comparison) -> dict[str, list[dict[str, Any]]]:
    """Runs of one model spec made at two or more times, oldest first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in c["runs"]:
        groups.setdefault(run["model_spec"], []).append(run)
    return {spec: sorted(runs, key=lambda r: _time(r["created"]))
            for spec, runs in groups.items() if len({r["created"] for r in runs}) > 1}


def _time(created: str) -> datetime:
    try:
        return datetime.fromisoformat(created)
    except ValueError:
        return datetime.min


def trend_plots(c: Comparison) -> str:
    """Per model spec run at several times: its metric on the reference, and its summary,
    run after run."""
    label, unit, _ = _units(c)
    reference = next(s["name"] for s in c["splits"] if s["kind"] == "reference")
    parts = []
    for spec, runs in _groups_over_time(c).items():
        names = {float(i): r["letter"] for i, r in enumerate(runs, 1)}
        x_label = "run, oldest first (created: see the runs table)"
        points = []
        for i, run in enumerate(runs, 1):
            est = c["estimates"][run["letter"]][reference]["metric"]
            if est and est.get("low") is not None:
                points.append(svg.Point(i, est["value"], est["low"], est["high"], svg.PALETTE[0],
                                        f"{run['letter']} ({run['created']}): "
                                        f"{estimate_text(est, unit)}"))
        chart = svg.line_chart({reference: points}, None, f"{spec}: {label} on {reference} "
                               "over time (95% intervals)", x_label, label,
                               _value_scale(unit, c["metric"]), x_names=names)
        summary = c["summary"]
        series = {}
        for k, (key, name) in enumerate(summary["labels"].items()):
            color = svg.PALETTE[(k + 1) % len(svg.PALETTE)]
            series[name] = [svg.Point(i, e["value"], e["low"], e["high"], color,
                                      f"{run['letter']}: {name} {e['value'] * 100:+.1f} pp")
                            for i, run in enumerate(runs, 1)
                            for e in [summary["runs"][run["letter"]][key]]]
        drops = svg.line_chart(series, 0.0, f"{spec}: robustness over time (95% intervals)",
                               x_label, f"Δ {label} (pp)", svg.DIFFERENCE, x_names=names,
                               reference_label="no change") if series else ""
        parts.append(f"<h3>{escape(spec)}</h3>{chart}{drops}")
    if not parts:
        return ""
    return ("<h2>Trends</h2><p class=\"note\">Runs of one model spec made at different times, "
            "oldest first.</p>" + "".join(parts))


def comparison_html(c: Comparison) -> str:
    from shiftbench.report.html import CSS

    label = _units(c)[0]
    header, rows = difference_rows(c, only_significant=True)
    all_header, all_rows = difference_rows(c, only_significant=False)
    summary = ("" if c["summary"]["reason"] else
               "<h2>Robustness summary (95% intervals)</h2>"
               + _html_table(*summary_rows(c), text_columns=2))
    forests = "".join(forest_plot(c, split) for split in c["splits"])
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{escape(title(c))}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title(c))}</h1>",
        "<h2>Runs</h2>", _html_table(*run_rows(c), text_columns=6),
        f"<h2>{escape(_heading(label))} per split (95% intervals)</h2>",
        _html_table(*split_rows(c), text_columns=2),
        summary,
        "<h2>Differences that matter</h2>",
        _html_table(header, rows, text_columns=4) if rows else
        '<p class="note">None after Holm\'s adjustment.</p>',
        "".join(f'<p class="note">{escape(note)}</p>' for note in notes(c)),
        f"<details><summary>all {len(all_rows)} comparisons</summary>"
        f"{_html_table(all_header, all_rows, text_columns=4)}</details>",
        "<h2>Per split</h2>", forests,
        trend_plots(c),
        "</body></html>\n",
    ])

