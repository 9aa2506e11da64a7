"""The summary a person reads in a pull request: one title line, one table, one footnote.

Proportions (accuracy, flip rate) are percentages with one decimal, accuracy deltas are
percentage points, macro-F1 and ECE are plain numbers with three decimals. When the
report measured how far each shift moved the text, two more columns give the mean
similarity (three decimals) and chrF (one decimal). The table's cells come from
:func:`summary_rows`, which the HTML report shares.
"""

from __future__ import annotations

from typing import Any

from shiftbench.movement import BASIS_NEAREST

MISSING = "–"
MOVEMENT_COLUMNS = ("similarity", "chrF")
NEAREST_MARK = "†"
DRIFT_MARK = " ✱"
WARNING_MARK = " ⚠"
COLUMNS = ("split", "kind", "n", "accuracy", "Δ accuracy", "flip rate", "macro-F1", "ECE")
METHOD_TEXT = {
    "wilson": "Wilson score",
    "percentile_bootstrap": "percentile bootstrap over examples",
    "paired_bootstrap": "paired bootstrap over example ids",
    "unpaired_bootstrap": "independent bootstrap of each side",
    "tango_score": "Tango's score interval over example ids",
    "debiased_ece": "debiased ECE (Kumar et al. 2019) within worst-case-bias bounds",
}


def _pct(est: dict[str, Any] | None) -> str:
    if not est:
        return MISSING
    return f"{est['value'] * 100:.1f}% [{est['low'] * 100:.1f}, {est['high'] * 100:.1f}]"


def _pp(est: dict[str, Any] | None) -> str:
    if not est:
        return MISSING
    return f"{est['value'] * 100:+.1f} pp [{est['low'] * 100:+.1f}, {est['high'] * 100:+.1f}]"


def _num(est: dict[str, Any] | None) -> str:
    if not est:
        return MISSING
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def _cells(record: dict[str, Any]) -> dict[str, Any]:
    """The estimate behind each numeric column of one split's row."""
    metrics = record.get("metrics") or {}
    return {
        "accuracy": metrics.get("accuracy"),
        "Δ accuracy": (record.get("delta") or {}).get("accuracy"),
        "flip rate": record.get("flip_rate"),
        "macro-F1": metrics.get("macro_f1"),
        "ECE": metrics.get("ece"),
    }


FORMATS = {"accuracy": _pct, "Δ accuracy": _pp, "flip rate": _pct, "macro-F1": _num, "ECE": _num}


def level_label(report: dict[str, Any]) -> str:
    """'95% CI' (or whatever level the report's intervals use)."""
    levels = {
        est["level"]
        for record in report["splits"]
        for est in _cells(record).values()
        if est and est.get("level")
    }
    level = levels.pop() if len(levels) == 1 else 0.95
    return f"{level * 100:g}% CI"


def _movement_cells(movement: dict[str, Any] | None) -> list[str]:
    """Mean similarity and chrF of one split, marked when measured against a nearest text."""
    if not movement:
        return [MISSING] * len(MOVEMENT_COLUMNS)
    mark = NEAREST_MARK if movement.get("basis") == BASIS_NEAREST else ""
    return [f"{movement['similarity']['mean']:.3f}{mark}", f"{movement['chrf']['mean']:.1f}{mark}"]


def drift_methods(report: dict[str, Any]) -> list[str]:
    """The drift detectors' method names, in suite order (none without drift results)."""
    return [r["method"] for r in next(iter((report.get("drift") or {}).values()), [])]


def p_text(p_value: float | None) -> str:
    if p_value is None:
        return "n/a"
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _drift_cells(results: list[dict[str, Any]] | None, methods: list[str]) -> list[str]:
    """Each detector's raw p-value for one split, its Holm-adjusted one in brackets, and
    ✱ where the adjusted one marks drift (see :func:`drift_note`)."""
    by_method = {r["method"]: r for r in results or []}
    cells = []
    for method in methods:
        result = by_method.get(method)
        if result is None:
            cells.append(MISSING)
            continue
        adjusted = result.get("holm_p")
        holm = f" ({p_text(adjusted)})" if adjusted is not None else ""
        cells.append(p_text(result["p_value"]) + holm
                     + (DRIFT_MARK if result.get("drifted_holm") else ""))
    return cells


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table, splits in report order (plain text cells).

    The movement columns appear only in reports that carry ``movement``, and one
    p-value column per drift detector only in reports that carry ``drift``.
    """
    ci = level_label(report)
    header = [c if c in COLUMNS[:3] else f"{c} [{ci}]" for c in COLUMNS]
    movement = report.get("movement")
    if movement:
        header += MOVEMENT_COLUMNS
    methods = drift_methods(report)
    header += [f"{m} p (Holm)" for m in methods]
    drift = report.get("drift") or {}
    rows = []
    for record in report["splits"]:
        cells = _cells(record)
        mark = WARNING_MARK if record.get("warnings") else ""
        row = [f"{record['name']}{mark}", str(record["kind"]), str(record["n"])]
        row += [FORMATS[c](cells[c]) for c in COLUMNS[3:]]
        if movement:
            row += _movement_cells(movement.get(record["name"]))
        if methods:
            row += _drift_cells(drift.get(record["name"]), methods)
        rows.append(row)
    return header, rows


def movement_note(report: dict[str, Any]) -> str:
    """What the similarity and chrF columns mean, or '' when the report has none."""
    movement = report.get("movement")
    if not movement:
        return ""
    note = ("similarity: mean cosine of MiniLM embeddings; chrF: mean sentence chrF (0–100); "
            "each shifted text against its original")
    if any(m.get("basis") == BASIS_NEAREST for m in movement.values()):
        note += (f" ({NEAREST_MARK}: against the nearest reference example by embedding, as "
                 "domain splits have no originals)")
    return note + ". Lower means the shift moved the text further."


def drift_family(report: dict[str, Any]) -> int | None:
    """How many split x detector tests the report's Holm adjustment covered (None when
    the report has no drift results, or predates the adjustment)."""
    results = [r for rs in (report.get("drift") or {}).values() for r in rs]
    return next((r["holm_family"] for r in results if "holm_family" in r), None)


def drift_note(report: dict[str, Any]) -> str:
    """What the drift columns mean, or '' when the report has none."""
    if not report.get("drift"):
        return ""
    family = drift_family(report)
    marks = (f"Each cell is the raw p-value and, in brackets, the p-value adjusted by Holm's "
             f"method over all {family} split × detector tests of this run;{DRIFT_MARK}: drift "
             "after that adjustment (the chance of marking any split that did not drift stays "
             "at the detector's alpha)"
             if family is not None else
             "Each cell is the raw p-value (this report predates the Holm adjustment: no drift "
             "marks)")
    return ("Drift p: each detector tests a shifted split's MiniLM embeddings (BBSD: the "
            "model's probabilities) against half of the reference; perturbed splits use only "
            f"their examples from the other half, so the samples are independent. {marks}. "
            "n/a: a detector without a p-value (uncalibrated), never marked.")


def label_free_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each domain split's label-free accuracy estimates (ATC, DoC) beside its measured
    accuracy, and how far each misses; no rows for reports without them."""
    ci = level_label(report)
    header = ["split", "measured accuracy", f"ATC [{ci}]", "ATC − measured", f"DoC [{ci}]",
              "DoC − measured"]
    rows = []
    for record in report["splits"]:
        estimates = record.get("label_free")
        if not estimates:
            continue
        miss = estimates["error"]
        rows.append([str(record["name"]), f"{estimates['measured'] * 100:.1f}%",
                     _pct(estimates["atc"]), f"{miss['atc'] * 100:+.1f} pp",
                     _pct(estimates["doc"]), f"{miss['doc'] * 100:+.1f} pp"])
    return header, rows


def label_free_note(report: dict[str, Any]) -> str:
    """What the label-free table shows and what its intervals do not cover."""
    caveat = next(r["label_free"]["caveat"] for r in report["splits"] if r.get("label_free"))
    return ("ATC (average thresholded confidence) and DoC (difference of confidences) estimate "
            "each domain split's accuracy from the reference without the split's labels, as "
            f"`monitor check` does on unlabelled traffic. {caveat}.")


def _label_free_markdown(report: dict[str, Any]) -> list[str]:
    header, rows = label_free_rows(report)
    if not rows:
        return []
    lines = ["## Label-free accuracy estimates vs measured (domain splits)", ""]
    for row in (header, ["---"] + ["---:"] * (len(header) - 1), *rows):
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return [*lines, "", label_free_note(report), ""]


def overlap_note(report: dict[str, Any]) -> str:
    """Splits the suite evaluates on training rows (allow_train_overlap), or ''."""
    shared = [f"{r['name']} ({r['train_overlap']} rows)" for r in report["splits"]
              if r.get("train_overlap")]
    if not shared:
        return ""
    return (f"Evaluated on training rows (the suite sets allow_train_overlap): {', '.join(shared)}"
            "; their numbers, and those of the reference's perturbations, are optimistic.")
def warning_lines(report: dict[str, Any]) -> list[str]:
    """Each split's warnings (e.g. one class predicted), as 'split: warning' lines."""
    return [f"{record['name']}: {warning}"
            for record in report["splits"] for warning in record.get("warnings") or []]


def footnote(report: dict[str, Any]) -> str:
    """One sentence naming the interval method(s) actually used for each column."""
    parts = []
    for column in COLUMNS[3:]:
        methods = []
        for record in report["splits"]:
            est = _cells(record)[column]
            if not est:
                continue
            text = METHOD_TEXT.get(est["method"], est["method"])
            if est.get("n_boot"):
                text += f" (B={est['n_boot']})"
            if text not in methods:
                methods.append(text)
        if methods:
            parts.append(f"{column}: {', '.join(methods)}")
    extra = "Δ = shifted − reference (negative: the shift costs accuracy)"
    return f"Intervals ({level_label(report)}) — {'; '.join(parts)}. {extra}."


def short_fingerprint(fingerprint: str) -> str:
    """'sklearn-5ba9a6c1' of 'sklearn-5ba9a6c1d2e3f4a5': enough to tell models apart."""
    adapter, _, hash_ = fingerprint.rpartition("-")
    return f"{adapter}-{hash_[:8]}" if adapter else fingerprint


def model_label(model: dict[str, Any]) -> str:
    """The model as the user named it (file or spec), the seed and train share it was
    fitted with, and its short fingerprint, e.g.
    'models/b.yaml (seed 1, train_fraction 0.9; sklearn-5ba9a6c1)'."""
    name = str(model.get("spec") or model.get("adapter") or "?")
    facts = [f"{key} {model[key]}" for key in ("seed", "train_fraction")
             if model.get(key) is not None]
    fingerprint = short_fingerprint(str(model.get("fingerprint") or ""))
    details = "; ".join(part for part in (", ".join(facts), fingerprint) if part)
    return f"{name} ({details})" if details else name


def title(report: dict[str, Any]) -> str:
    suite = report["suite"].get("name", "?")
    device = report["environment"].get("device", "?")
    return f"shiftbench: {suite} — {model_label(report['model'])} on {device}"


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def summary_markdown(report: dict[str, Any]) -> str:
    header, rows = summary_rows(report)
    align = ["---", "---", "---:"] + ["---:"] * (len(header) - 3)
    lines = [f"# {_md_cell(title(report))}", ""]
    for row in (header, align, *rows):
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines.append("")
    warnings = warning_lines(report)
    if warnings:
        lines += [f"**Warnings**{WARNING_MARK}:", "", *(f"- {_md_cell(w)}" for w in warnings), ""]
    lines += [footnote(report), ""]
    for note in (movement_note(report), drift_note(report), overlap_note(report)):
        if note:
            lines += [note, ""]
    lines += _label_free_markdown(report)
    return "\n".join(lines)
