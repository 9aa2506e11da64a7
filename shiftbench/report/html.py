"""One self-contained HTML report: run facts, the summary table, inline SVG plots and,
when the run measured it, how far each shift moved the text (with the examples most
likely to have changed meaning).

Nothing is fetched when the file is opened (no scripts, stylesheets or fonts from
elsewhere), so it can be attached to a CI run or mailed. Every text is escaped.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import metric_named
from shiftbench.report import svg
from shiftbench.report.markdown import (
    WARNING_MARK,
    diagnostic_lines,
    drift_methods,
    drift_note,
    failures_note,
    footnote,
    movement_note,
    note_sections,
    p_text,
    shown_as,
    slice_findings,
    slice_tables,
    summary_rows,
    title,
    warning_lines,
)
from shiftbench.report.numbers import MISSING, estimate_text, number

KIND_COLORS = {"reference": "#444444", "perturbation": svg.PALETTE[0], "domain": svg.PALETTE[1]}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:28px 0 8px}
table{border-collapse:collapse;margin:4px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#f5f5f5;font-weight:600}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:0 32px}
.facts th{background:none;width:9em;color:#555;font-weight:500}.facts td{word-break:break-all}
pre{font-size:12px;background:#f7f7f7;padding:8px;overflow:auto}
.note{color:#555;font-size:13px}
.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:6px 12px;margin:8px 0}
svg{width:100%;max-width:720px;height:auto;display:block;margin:8px 0 20px}
svg text{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:600}
svg .grid{stroke:#e8e8e8}svg .ref{stroke:#444;stroke-dasharray:5 4}
svg .reflabel{fill:#444;font-style:italic}
svg.spark{width:120px;height:24px;display:inline-block;margin:0}
td.slice{text-align:right;font-variant-numeric:tabular-nums;min-width:9em}
.wide{overflow-x:auto;max-width:100%}
details{margin:6px 0}summary{cursor:pointer}td.text{white-space:pre-wrap;max-width:420px}
table{display:block;max-width:100%;overflow-x:auto}
@media print{body{max-width:none;padding:0;font-size:11px}
svg{max-width:100%;break-inside:avoid}h2,h3{break-after:avoid}
table{display:table;max-width:100%}thead{display:table-header-group}tr{break-inside:avoid}
th,td{padding:2px 5px;overflow-wrap:break-word}td.num{white-space:normal}table{font-size:10px}}
"""


def facts_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
        for k, v in rows
        if v not in (None, "", {})
    )
    return f"<table>{body}</table>"


def key_values_table(heading: str, values: dict[str, Any], unit: str = "") -> str:
    if not values:
        return ""
    body = "".join(
        f'<tr><td>{escape(str(k))}</td><td class="num">{escape(_fmt(v, unit))}</td></tr>'
        for k, v in values.items()
    )
    return f"<h2>{escape(heading)}</h2><table>{body}</table>"


def _fmt(value: Any, unit: str) -> str:
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}"


def _model_params(model: dict[str, Any]) -> dict[str, Any]:
    """The adapter's ``params``, else whatever it described beyond name, fingerprint, classes."""
    if isinstance(model.get("params"), dict):
        return model["params"]
    return {k: v for k, v in model.items()
            if k not in ("adapter", "spec", "fingerprint", "classes")}


def _header(report: dict[str, Any]) -> str:
    suite, model, env = report["suite"], report["model"], report["environment"]
    left = facts_table([
        ("suite", suite.get("name")),
        ("suite file", suite.get("path")),
        ("suite hash", suite.get("hash")),
        ("model", model.get("spec") or model.get("adapter")),
        ("adapter", model.get("adapter")),
        ("fingerprint", model.get("fingerprint")),
        ("classes", ", ".join(map(str, model.get("classes") or []))),
        ("model params", json.dumps(_model_params(model), sort_keys=True, default=str)),
    ])
    right = facts_table([
        ("run id", report.get("run_id")),
        ("created", report.get("created")),
        ("seed", report.get("seed")),
        ("device", env.get("device")),
        ("precision", env.get("precision")),
        ("shiftbench", report.get("shiftbench_version")),
        ("python", env.get("python")),
        ("platform", env.get("platform")),
        ("predictions", report.get("predictions_file")),
    ])
    return f'<div class="facts">{left}{right}</div>'


def _warnings(report: dict[str, Any]) -> str:
    """The splits' warnings as a highlighted list ('' when there are none)."""
    lines = warning_lines(report)
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div class="warn"><strong>Warnings{WARNING_MARK}</strong><ul>{items}</ul></div>'


def _table(report: dict[str, Any]) -> str:
    header, rows = summary_rows(report)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(c)}</td>" if i < 2 else f'<td class="num">{escape(c)}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def headline(report: dict[str, Any]) -> str:
    """The metric the plots show: accuracy where the report has it, else its first metric
    (a generation suite's first)."""
    names = [k for r in report["splits"] for k in (r.get("metrics") or {})]
    return "accuracy" if "accuracy" in names or not names else names[0]


def _scale(metric: str) -> svg.Scale:
    """A proportion's axis in percent; any other metric's in its own numbers, within the
    bounds of its row in the metric table."""
    if shown_as(metric)[1] == "%":
        return svg.PROPORTION
    try:
        bounds = metric_named(metric).bounds
    except ShiftbenchError:
        bounds = (-math.inf, math.inf)
    return svg.Scale(bounds, percent=False)


def _estimate(record: dict[str, Any], metric: str) -> dict[str, Any] | None:
    return (record.get("metrics") or {}).get(metric)


def _point(x: str | float, record: dict[str, Any], color: str, metric: str) -> svg.Point:
    est = _estimate(record, metric)
    tip = f"{record['name']}: {estimate_text(est, shown_as(metric)[1])} (n={record['n']})"
    return svg.Point(x, est["value"], est["low"], est["high"], color, tip)


def _plots(report: dict[str, Any]) -> str:
    metric = headline(report)
    label, scale = shown_as(metric)[0], _scale(metric)
    heading = label[:1].upper() + label[1:]
    records = [r for r in report["splits"] if _estimate(r, metric)]
    ref = next((r for r in records if r["kind"] == "reference"), None)
    ref_value = _estimate(ref, metric)["value"] if ref else None
    per_split = svg.category_chart(
        [_point(r["name"], r, KIND_COLORS.get(r["kind"], svg.PALETTE[2]), metric)
         for r in records],
        ref_value,
        f"{heading} per split (95% intervals)",
        {k: c for k, c in KIND_COLORS.items() if any(r["kind"] == k for r in records)},
        y_label=label, scale=scale,
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["kind"] == "perturbation" and isinstance(r.get("severity"), (int, float)):
            groups.setdefault(str(r.get("shift") or r["name"]), []).append(r)
    series = {
        name: [_point(r["severity"], r, svg.PALETTE[i % len(svg.PALETTE)], metric) for r in rs]
        for i, (name, rs) in enumerate(groups.items())
    }
    by_severity = svg.line_chart(
        series, ref_value, f"{heading} vs severity per shift (95% intervals)", "severity", label,
        scale) or '<p class="note">No perturbation with a severity: nothing to plot.</p>'
    return per_split + by_severity


def _delta_scatter(report: dict[str, Any], x_of: dict[str, float], x_name: str, title: str,
                   x_label: str, x_bounds: tuple[float, float] = (-1.0, 1.0)) -> str:
    """Δ accuracy (with its interval) of each split against a number per split, within
    ``x_bounds``."""
    points, kinds = [], set()
    for r in report["splits"]:
        delta = (r.get("delta") or {}).get("accuracy")
        if not delta or r["name"] not in x_of:
            continue
        x = x_of[r["name"]]
        tip = f"{r['name']}: {x_name} {x:.3f}, Δ accuracy {estimate_text(delta, 'pp')}"
        points.append(svg.Point(x, delta["value"], delta["low"], delta["high"],
                                KIND_COLORS.get(r["kind"], svg.PALETTE[2]), tip, str(r["name"])))
        kinds.add(r["kind"])
    return svg.scatter_chart(points, title, x_label, "Δ accuracy (pp)",
                             {k: c for k, c in KIND_COLORS.items() if k in kinds}, x_bounds)


def _movement_plot(report: dict[str, Any]) -> str:
    """Δ accuracy against mean similarity: a drop where the text hardly moved is the
    model's; one where it moved far may be the shift's."""
    similarity = {name: m["similarity"]["mean"] for name, m in report["movement"].items()}
    return _delta_scatter(report, similarity, "similarity",
                          "Δ accuracy vs mean similarity (95% intervals)",
                          "mean similarity to the original / nearest reference text")


def _drift_row(split: str, result: dict[str, Any]) -> str:
    """One detector's result on one split: raw p, Holm-adjusted p and both decisions."""
    if result.get("holm_p") is None:
        holm_p, after = "–", ("not tested (no p-value)" if result["p_value"] is None else "–")
    else:
        holm_p = p_text(result["holm_p"])
        after = "drift" if result["drifted_holm"] else "no drift"
    return (f"<tr><td>{escape(split)}</td><td>{escape(result['method'])}</td>"
            f'<td class="num">{result["statistic"]:.4g}</td>'
            f'<td class="num">{p_text(result["p_value"])}</td><td class="num">{holm_p}</td>'
            f"<td>{after}</td><td>{'drift' if result['drifted'] else 'no drift'}</td>"
            f'<td class="num">{result["n_reference"]} / {result["n_sample"]}</td></tr>')


def _drift(report: dict[str, Any]) -> str:
    """Each detector's result per split, raw and after Holm's adjustment, and Δ accuracy
    against the first one's statistic."""
    drift = report.get("drift") or {}
    if not drift:
        return ""
    rows = "".join(_drift_row(name, r) for name, results in drift.items() for r in results)
    head = "".join(f"<th>{h}</th>" for h in
                   ("split", "detector", "statistic", "p-value", "Holm p", "after Holm",
                    "unadjusted, at its alpha", "n ref / sample"))
    first = {name: results[0]["statistic"] for name, results in drift.items() if results}
    top = max(first.values(), default=0.0) or 1.0
    plot = _delta_scatter(report, {n: s / top for n, s in first.items()}, "relative statistic",
                          f"Δ accuracy vs {drift_methods(report)[0]} drift statistic",
                          "drift statistic / the largest across splits", (0.0, 1.0))
    return (f"<h2>Drift</h2><p class=\"note\">{escape(drift_note(report))}</p>{plot}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _note_sections(sections: list[tuple[str, list[str], list[list[str]], str]],
                   level: str = "h2", cell: str = "num") -> str:
    """Table sections (label-free estimates, perplexity, slices), each a heading, a table
    whose first column names the row and the others are numbers (``cell``: their class),
    and a note."""
    html = []
    for heading, header, rows, note in sections:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" if i == 0 else
                                        f'<td class="{cell}">{escape(c)}</td>'
                                        for i, c in enumerate(row)) + "</tr>" for row in rows)
        html.append(f"<{level}>{escape(heading)}</{level}><div class=\"wide\">"
                    f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
                    f'<p class="note">{escape(note)}</p>')
    return "".join(html)


def _slices(report: dict[str, Any]) -> str:
    """Accuracy per slice under each shift, the largest drops first ('' without slices)."""
    tables = slice_tables(report)
    if not tables:
        return ""
    worst = slice_findings(report)
    findings = ("<p>Largest slice drops (whole 95% interval below zero, unadjusted):</p><ul>"
                + "".join(f"<li>{escape(line)}</li>" for line in worst) + "</ul>"
                if worst else '<p class="note">No slice loses significantly against the '
                "reference (95% intervals, unadjusted).</p>")
    return ("<h2>Slices: where the model breaks</h2>" + findings
            + _note_sections(tables, "h3", "slice"))


def _movement_table(movement: dict[str, Any]) -> str:
    head = ("<tr><th>split</th><th>basis</th><th>n</th><th>similarity mean</th><th>median</th>"
            "<th>p10 – p90</th><th>distribution (0 → 1)</th><th>chrF mean</th><th>median</th>"
            "<th>p10 – p90</th><th>negation changed</th></tr>")
    rows = []
    for name, m in movement.items():
        sim, chrf, neg = m["similarity"], m["chrf"], m.get("negation_changed")
        hist = sim.get("histogram") or {}
        spark = (svg.spark_histogram(hist["counts"], hist["bins"], f"similarity of {name}")
                 if hist.get("counts") else "")
        negated = f"{neg['count']} ({number(neg['share'], '%')})" if neg else MISSING
        sampled = m.get("sampled")
        n_text = f"{m['n']} of {sampled['of']}" if sampled else str(m["n"])
        cells = [f"{sim['mean']:.3f}", f"{sim['median']:.3f}",
                 f"{sim['p10']:.3f} – {sim['p90']:.3f}"]
        chrf_cells = [f"{chrf['mean']:.1f}", f"{chrf['median']:.1f}",
                      f"{chrf['p10']:.1f} – {chrf['p90']:.1f}"]
        rows.append(
            f"<tr><td>{escape(str(name))}</td><td>{escape(str(m['basis']))}</td>"
            f'<td class="num">{escape(n_text)}</td>'
            + "".join(f'<td class="num">{escape(c)}</td>' for c in cells)
            + f"<td>{spark}</td>"
            + "".join(f'<td class="num">{escape(c)}</td>' for c in chrf_cells)
            + f'<td class="num">{escape(negated)}</td></tr>'
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _flagged(movement: dict[str, Any]) -> str:
    parts = []
    for name, m in movement.items():
        flagged = m.get("flagged") or []
        if not flagged:
            continue
        head = (f"<tr><th>id</th><th>similarity</th><th>chrF</th><th>reason</th>"
                f"<th>{escape(str(m['basis']))}</th><th>shifted</th></tr>")
        body = "".join(
            f"<tr><td>{escape(str(f['id']))}</td>"
            f'<td class="num">{f["similarity"]:.3f}</td><td class="num">{f["chrf"]:.1f}</td>'
            f"<td>{escape(str(f['reason']))}</td><td class=\"text\">{escape(str(f['original']))}"
            f"</td><td class=\"text\">{escape(str(f['shifted']))}</td></tr>"
            for f in flagged
        )
        parts.append(f"<details><summary>{escape(str(name))}: {len(flagged)} example(s)"
                     f"</summary><table><thead>{head}</thead><tbody>{body}</tbody></table>"
                     "</details>")
    return "".join(parts)


def _movement(report: dict[str, Any]) -> str:
    """The section on how far each shift moved the text; '' for reports without it."""
    movement = report.get("movement")
    if not movement:
        return ""
    return "".join([
        "<h2>How far each shift moved the text</h2>",
        f'<p class="note">{escape(movement_note(report))} A large accuracy drop on text that '
        "barely moved is the model's fault; on text that moved far, check the flagged "
        "examples: the shift may have changed the meaning (and the label).</p>",
        _movement_plot(report),
        _movement_table(movement),
        "<h3>Examples most likely to have changed meaning</h3>",
        '<p class="note">Per split: the least similar changed examples, and those where a '
        "negation word was added or dropped.</p>",
        _flagged(movement) or '<p class="note">None: no text changed.</p>',
    ])


def _shift_stats(report: dict[str, Any]) -> str:
    """Throughput of shifts that report it (back-translation): cost and identical share."""
    stats = report.get("shift_stats") or {}
    if not stats:
        return ""
    head = ("split", "hops", "translated", "cache hits", "texts/s", "identical to input")
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(' → '.join(s.get('hops') or []))}</td>"
        f'<td class="num">{s.get("translated", 0)}</td><td class="num">{s.get("cache_hits", 0)}'
        f'</td><td class="num">{escape(_fmt(s.get("texts_per_second") or "–", ""))}</td>'
        f'<td class="num">{escape(_fmt(100 * s.get("identical", 0.0), "%"))}</td></tr>'
        for name, s in stats.items()
    )
    cells = "".join(f"<th>{h}</th>" for h in head)
    return (f"<h2>Translation</h2><table><thead><tr>{cells}</tr></thead><tbody>{rows}"
            "</tbody></table><p class=\"note\">texts/s: texts translated per second, per "
            "direction, not counting cache hits; identical: outputs equal to their input.</p>")


def _failures(report: dict[str, Any], view: str) -> str:
    """The failure browser section (``view``: its HTML, '' when the run has none)."""
    if not view:
        return ""
    failures = report.get("failures") or {}
    metric = failures.get("metric")
    changed = f"{shown_as(metric)[0]} changed" if metric else "prediction changed"
    return (f"<h2>Failures: the examples whose {escape(changed)}</h2>"
            f'<p class="note">{escape(failures_note(failures.get("inline"), metric))}</p>{view}')


def report_html(report: dict[str, Any], failures: str = "") -> str:
    """The whole report as one HTML document; ``failures``: the failure browser's HTML
    (:mod:`shiftbench.report.failure_view`), built from the run's predictions."""
    env = report["environment"]
    suite_spec = json.dumps(report["suite"].get("spec") or {}, indent=2, default=str)
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{escape(title(report))}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title(report))}</h1>",
        _header(report),
        "<h2>Summary</h2>",
        _table(report),
        _warnings(report),
        f'<p class="note">{escape(footnote(report))}</p>',
        *(f'<p class="note">{escape(line)}</p>' for line in diagnostic_lines(report)),
        "<h2>Plots</h2>",
        _plots(report),
        _failures(report, failures),
        _movement(report),
        _drift(report),
        _slices(report),
        _note_sections(note_sections(report)),
        _shift_stats(report),
        key_values_table("Timings", report.get("timings") or {}, " s"),
        key_values_table("Runner", report.get("runner") or {}),
        key_values_table("Packages", env.get("packages") or {}),
        f"<h2>Suite</h2><details><summary>spec</summary><pre>{escape(suite_spec)}</pre>"
        "</details>",
        "</body></html>\n",
    ])
