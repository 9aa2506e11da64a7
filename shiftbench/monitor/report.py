"""A monitor check's views: ``monitor.json`` (the source of truth), ``monitor.html`` (one
self-contained page with inline SVG, built from the run report's CSS, tables and
charts) and the short text the CLI prints.

Rates (false alarms, power) are fractions with three decimals and their 95% Wilson
interval; accuracies are percentages with their 95% interval; ⚠ marks a detector whose
measured false-alarm rate is above alpha beyond its sampling error. A detector's
"drift" mark follows its Holm-adjusted p-value, as the verdict does.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from shiftbench.report import jsonable, svg, write_text
from shiftbench.report.html import CSS, facts_table, key_values_table
from shiftbench.report.markdown import model_label, p_text
from shiftbench.report.numbers import MISSING, estimate_text, number

JSON_FILE, HTML_FILE = "monitor.json", "monitor.html"
FLAG = "⚠"
VERDICT_TEXT = {"drift": "DRIFT", "no drift": "no drift", "undecided": "UNDECIDED"}


def write_monitor(out_dir: Path, result: dict[str, Any]) -> tuple[Path, Path]:
    """Write monitor.json and monitor.html into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = jsonable(result)
    json_path, html_path = out_dir / JSON_FILE, out_dir / HTML_FILE
    write_text(json_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    write_text(html_path, monitor_html(data))
    return json_path, html_path


# -- cells shared by the text and HTML views ----------------------------------------------


def _rate(est: dict[str, Any] | None) -> str:
    return estimate_text(est, "num")


def _pct(est: dict[str, Any] | None) -> str:
    return estimate_text(est, "%")


def _controls(result: dict[str, Any]) -> list[str]:
    return list(result["settings"].get("controls") or [])


def _holm_mark(record: dict[str, Any], alpha: float) -> str:
    """Drift by the Holm-adjusted p-value (the verdict's rule); '–' for a detector that
    does not decide (no p-value, or flagged for false alarms)."""
    if record.get("holm_p") is None:
        return MISSING
    return "yes" if record["holm_p"] < alpha else "no"


def detector_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the detector table (one row per detector)."""
    alpha = result["settings"]["alpha"]
    controls = _controls(result)
    header = ["detector", "input", "statistic", "p-value", "Holm p", "drift (Holm)", "decides",
              f"false alarms at α={alpha:g} [95% CI]", *(f"power vs {c}" for c in controls)]
    rows = []
    for r in result["detectors"]:
        cal = r.get("calibration") or {}
        false_alarm = _rate(cal.get("false_alarm")) + (f" {FLAG}" if cal.get("flagged") else "")
        rows.append([
            r["method"], r["input"], f"{r['statistic']:.4g}", p_text(r["p_value"]),
            p_text(r["holm_p"]) if r.get("holm_p") is not None else MISSING,
            _holm_mark(r, alpha), "yes" if r.get("decides") else "no",
            false_alarm if cal else "not measured",
            *(_rate((cal.get("power") or {}).get(c)) for c in controls),
        ])
    return header, rows


def accuracy_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, estimate, note) rows: reference accuracy, then the current estimates."""
    acc = result["accuracy"]
    if not acc.get("available"):
        return []
    ref = acc["reference"]["value"]

    def change(est: dict[str, Any]) -> str:
        return f"{number(est['value'] - ref, 'pp')} vs reference"

    rows = [("reference (labelled)", _pct(acc["reference"]),
             f"n={acc['reference']['n']}"),
            ("current, ATC estimate", _pct(acc["atc"]["estimate"]), change(acc["atc"]["estimate"])),
            ("current, DoC estimate", _pct(acc["doc"]), change(acc["doc"]))]
    if acc.get("actual"):
        rows.append(("current, actual (its labels)", _pct(acc["actual"]), change(acc["actual"])))
    else:
        rows.append(("current, actual", MISSING, acc.get("actual_unavailable") or ""))
    return rows


def verdict_line(result: dict[str, Any]) -> str:
    v = result["verdict"]
    text = f"verdict: {VERDICT_TEXT[v['status']]} (exit {v['exit_code']})"
    if v["status"] == "undecided":
        return f"{text}: {v['reason']}"
    return f"{text}; deciding detectors: {', '.join(v['deciding'])}"


# -- text ---------------------------------------------------------------------------------


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def summary_text(result: dict[str, Any]) -> str:
    """What the CLI prints: inputs, the detector table, the verdict and its rule, the
    accuracy estimates and the notes."""
    ref, cur, emb = result["reference"], result["current"], result["embeddings"]
    settings = result["settings"]
    lines = [f"reference: {ref['path']} ({ref['n_used']} rows used of {ref['n']})",
             f"current:   {cur['path']} ({cur['n']} rows)",
             f"embeddings: {emb['source']} ({emb['dim']}-d)"]
    if settings["window"] is not None:
        lines.append(f"calibration: {settings['calibrate_repeats']} random halves of the "
                     f"reference, window {settings['window']}; controls: "
                     f"{', '.join(_controls(result)) or 'none'}")
    lines += ["", *_aligned(*detector_rows(result)), ""]
    if any((r.get("calibration") or {}).get("flagged") for r in result["detectors"]):
        lines.append(f"{FLAG} false-alarm rate above alpha beyond sampling error: that detector's "
                     "alarms are not trustworthy at this alpha, so it does not decide")
    lines += [verdict_line(result), f"rule: {result['verdict']['rule']}", ""]
    acc = result["accuracy"]
    if acc.get("available"):
        lines.append(f"accuracy of the model (ATC score: {acc['atc_score']}):")
        lines += [f"  {what:<30} {est:<24} {note}".rstrip()
                  for what, est, note in accuracy_rows(result)]
        lines.append(f"  {acc['caveat']}")
    else:
        lines.append(f"accuracy: unavailable: {acc['reason']}")
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


# -- HTML ---------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]] | list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _calibration_chart(result: dict[str, Any]) -> str:
    """False-alarm rate and power per detector with intervals; alpha as the dashed line."""
    controls = _controls(result)
    colors = {"false alarms": svg.PALETTE[1],
              **{c: svg.PALETTE[(i + 2) % len(svg.PALETTE)] for i, c in enumerate(controls)}}
    points = []
    for r in result["detectors"]:
        cal = r.get("calibration")
        if not cal:
            continue
        measured = {"false alarms": cal["false_alarm"], **cal.get("power", {})}
        for what, est in measured.items():
            tip = f"{r['method']}, {what}: {_rate(est)} ({cal['n_repeats']} repeats)"
            points.append(svg.Point(f"{r['method']}: {what}", est["value"], est["low"],
                                    est["high"], colors[what], tip))
    return svg.category_chart(points, result["settings"]["alpha"],
                              "False alarms and power (95% intervals)",
                              colors, "share of windows flagged", reference_label="alpha")


def _accuracy(result: dict[str, Any]) -> str:
    acc = result["accuracy"]
    if not acc.get("available"):
        return f'<h2>Does it hurt?</h2><p class="note">Unavailable: {escape(acc["reason"])}</p>'
    estimates = {"reference": acc["reference"], "ATC": acc["atc"]["estimate"],
                 "DoC": acc["doc"], **({"actual": acc["actual"]} if acc.get("actual") else {})}
    points = [svg.Point(name, e["value"], e["low"], e["high"],
                        "#444444" if name == "reference" else svg.PALETTE[i], f"{name}: {_pct(e)}")
              for i, (name, e) in enumerate(estimates.items())]
    chart = svg.category_chart(points, acc["reference"]["value"],
                               "Accuracy: reference and current estimates (95% intervals)")
    return "".join([
        "<h2>Does it hurt?</h2>",
        _table(["", "accuracy", ""], accuracy_rows(result)),
        f'<p class="note">ATC (average thresholded confidence, score: {escape(acc["atc_score"])}'
        f", threshold {acc['atc']['threshold']:.4g}) and DoC (difference of confidences, "
        f"{escape(acc['doc_confidence'])}) estimate the current accuracy without its labels. "
        f"{escape(acc['caveat'])}. A gap between the two estimates is a warning that the shift "
        "breaks one of their assumptions.</p>",
        chart,
    ])


def _details(result: dict[str, Any]) -> str:
    parts = []
    for r in result["detectors"]:
        spec = {"params": r["params"], "details": r["details"], "saved": r["saved"]}
        parts.append(f"<details><summary>{escape(r['method'])}: parameters and details"
                     f"</summary><pre>{escape(json.dumps(spec, indent=2, default=str))}</pre>"
                     "</details>")
    return "".join(parts)


def monitor_html(result: dict[str, Any]) -> str:
    """The whole check as one HTML document."""
    ref, cur, emb, model = (result["reference"], result["current"], result["embeddings"],
                            result.get("model") or {})
    settings, verdict = result["settings"], result["verdict"]
    title = f"Drift check: {VERDICT_TEXT[verdict['status']]}"
    left = facts_table([
        ("reference", f"{ref['path']} ({ref['n_used']} of {ref['n']} rows)"),
        ("current", f"{cur['path']} ({cur['n']} rows)"),
        ("embeddings", f"{emb['source']} ({emb['dim']}-d)"),
        ("model", model_label(model) if model else None),
        ("fingerprint", model.get("fingerprint")),
        ("LM (bits per byte)", (result.get("lm") or {}).get("source")),
    ])
    right = facts_table([
        ("created", result.get("created")),
        ("alpha", settings["alpha"]),
        ("seed", settings["seed"]),
        ("window", settings["window"]),
        ("repeats", settings["calibrate_repeats"]),
        ("shiftbench", result.get("shiftbench_version")),
    ])
    notes = "".join(f"<li>{escape(n)}</li>" for n in result["notes"])
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="facts">{left}{right}</div>',
        f"<p><strong>{escape(verdict_line(result))}</strong></p>",
        f'<p class="note">Rule: {escape(verdict["rule"])}.</p>',
        "<h2>Detectors</h2>",
        _table(*detector_rows(result)),
        f'<p class="note">{FLAG}: the measured false-alarm rate lies above alpha beyond its '
        "sampling error (its 95% interval is wholly above alpha). False alarms: how often the "
        "detector fired on a window of held-out reference rows; power: how often it fired on "
        "the same window under a known shift.</p>",
        _calibration_chart(result),
        _details(result),
        _accuracy(result),
        f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "",
        key_values_table("Timings", result.get("timings") or {}, " s"),
        key_values_table("Runner", result.get("runner") or {}),
        "</body></html>\n",
    ])
