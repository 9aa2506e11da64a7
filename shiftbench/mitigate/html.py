"""mitigate.html: the before/after report as one self-contained page (inline CSS and SVG,
nothing fetched), with the examples each model fixed or broke (the failure browser, its
one inline script) and the training curves of every trained model.

It is drawn from the report dict alone (:func:`shiftbench.mitigate.report.before_after`),
with the run report's styles and charts. Every text is escaped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from shiftbench.mitigate.curves import MAX_POINTS
from shiftbench.mitigate.report import (
    DROP_NOTE,
    baseline_text,
    cost_text,
    drop_rows,
    gate_lines,
    grid_lines,
    metric_rows,
    seed_rows,
    summary_rows,
    target_text,
    title,
)
from shiftbench.report import svg
from shiftbench.report.html import CSS, facts_table
from shiftbench.report.numbers import with_interval

EPOCH_CURVES = {"loss": "training loss (epoch mean)", "val_loss": "validation loss",
                "val_accuracy": "validation accuracy"}


FAILURES_NOTE = ("Per split, the examples whose predicted class the method changed, against "
                 "the base (when evaluated) and against ERM, paired by id: fixed (wrong → "
                 "right), broke (right → wrong) and wrong → another wrong class, each sorted "
                 "by the change of the true label's probability. The first seed's models "
                 "(the base has one), so each row is a real model's prediction; the pooled "
                 "numbers above average over seeds.")


def _failures(view: str) -> str:
    if not view:
        return ""
    return (f"<h2>Examples the method fixed or broke</h2><p class=\"note\">"
            f"{escape(FAILURES_NOTE)}</p>{view}")


def mitigate_html(report: dict[str, Any], failures: str = "") -> str:
    """The whole report as one HTML document; ``failures``: the failure browser's HTML
    (:mod:`shiftbench.report.failure_view`) over the examples each model changed."""
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title(report))}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title(report))}</h1>",
        _header(report),
        f"<p>{escape(baseline_text(report))}</p>",
        "<h2>Before / after: accuracy</h2>",
        _table(*summary_rows(report)),
        f'<p class="note">Pooled deltas: {escape(report["intervals"]["pooled"])} Seeds\' '
        f'range: the range of {escape(report["intervals"]["seeds"])}.</p>',
        "<details><summary>Each seed's paired deltas</summary>",
        _table(*seed_rows(report)),
        "</details>",
        "<h2>Cost on the clean reference</h2>",
        f"<p>{escape(cost_text(report))}.</p>",
        "<h2>What each perturbation costs</h2>",
        f'<p class="note">{escape(DROP_NOTE)}</p>',
        _table(*drop_rows(report)),
        _failures(failures),
        _gate(report),
        "<h2>Every metric</h2>",
        _table(*metric_rows(report)),
        "<h2>Training curves</h2>",
        '<p class="note">One line per seed; the ring marks the epoch whose weights were kept '
        f"(lowest validation loss). Per-step values of a run longer than {MAX_POINTS} steps "
        f"are means over {MAX_POINTS} windows of consecutive steps.</p>",
        *(_model_curves(_kind_label(report, kind), seeds)
          for kind, seeds in report["curves"].items()),
        "</body></html>\n",
    ])


def _kind_label(report: dict[str, Any], kind: str) -> str:
    return {"erm": "ERM", "method": report["method"]["method"]}.get(kind, kind)


def _header(report: dict[str, Any]) -> str:
    suite, training = report["suite"], report["training"]
    left = facts_table([
        ("suite", suite["name"]), ("suite file", suite["path"]), ("suite hash", suite["hash"]),
        ("base model", report["base"]),
        ("method", json.dumps(report["method"], sort_keys=True)),
    ])
    right = facts_table([
        ("seeds", ", ".join(map(str, training["seed"]))),
        ("training", json.dumps({k: v for k, v in training.items() if k != "seed"},
                                sort_keys=True)),
        ("model selection", report["selection"]),
        ("target", target_text(report)),
        *([("grid search", " ".join(grid_lines(report)))] if report.get("grid") else []),
        ("models", ", ".join(sorted({str(Path(folder).parent) for seeds in
                                     report["models"].values() for folder in seeds}))),
    ])
    return f'<div class="facts">{left}{right}</div>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Text in the first two columns, numbers (right-aligned) in the others."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" if i < 2 else f'<td class="num">{escape(c)}</td>'
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gate(report: dict[str, Any]) -> str:
    """Each seed's gate verdict with its rules ('' without a policy)."""
    verdicts = report.get("gate") or []
    if not verdicts:
        return ""
    parts = ["<h2>Gate</h2>"]
    for line, verdict in zip(gate_lines(report), verdicts, strict=True):
        rows = [[v["rule"], v["split"], v["status"],
                 with_interval(v["estimate"], v["low"], v["high"], v["unit"]), v["reason"]]
                for v in verdict["result"]["verdicts"]]
        parts += [f"<p><strong>{escape(line)}</strong></p>",
                  _table(["rule", "split", "status", "estimate", "reason"], rows)]
    return "".join(parts)


def _model_curves(label: str, seeds: list[dict[str, Any]]) -> str:
    """A model kind's charts: each epoch curve, then each value logged per step."""
    steps = dict.fromkeys(name for seed in seeds for name in seed["steps"])
    charts = [_epoch_chart(label, seeds, field, name) for field, name in EPOCH_CURVES.items()]
    charts += [_step_chart(label, seeds, name) for name in steps]
    return f"<h3>{escape(label)}</h3>" + "".join(charts)


def _scale(name: str) -> svg.Scale:
    """All of [0, 1] for an accuracy; from 0 for anything else (losses, coefficients)."""
    return svg.WHOLE_PROPORTION if name.endswith("accuracy") else svg.FROM_ZERO


def _epoch_chart(label: str, seeds: list[dict[str, Any]], field: str, name: str) -> str:
    series = {}
    for k, seed in enumerate(seeds):
        color = svg.PALETTE[k % len(svg.PALETTE)]
        series[f"seed {k}"] = [
            svg.Point(row["epoch"], row[field], row[field], row[field], color,
                      f"seed {k}, epoch {row['epoch']}: {field} {row[field]:.4g}"
                      + (" (kept)" if row["epoch"] == seed["kept_epoch"] else ""),
                      "kept" if row["epoch"] == seed["kept_epoch"] else "")
            for row in seed["epochs"]]
    return svg.line_chart(series, None, f"{label}: {name}", "epoch", field, _scale(field))


def _step_chart(label: str, seeds: list[dict[str, Any]], name: str) -> str:
    series = {}
    for k, seed in enumerate(seeds):
        curve = seed["steps"].get(name)
        if curve:
            color = svg.PALETTE[k % len(svg.PALETTE)]
            series[f"seed {k}"] = [svg.Point(x, y, y, y, color)
                                   for x, y in zip(curve["x"], curve["y"], strict=True)]
    return svg.line_chart(series, None, f"{label}: {name} per step", "step", name, _scale(name),
                          dots=False)
