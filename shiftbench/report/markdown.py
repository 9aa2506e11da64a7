"""The summary a person reads in a pull request: one title line, one table, one footnote.

The table has a column per metric the report carries, headed and printed as the metric
table says (:mod:`shiftbench.metrics`: accuracy as a percentage with one decimal, macro-F1,
ECE and NLL as plain numbers with three), each metric's change from the reference right
after it (Δ accuracy, in percentage points) and, after the first change, the flip rate.
When the report measured how far each shift moved the text, two more columns give the
mean similarity (three decimals) and chrF (one decimal). The table's cells come from
:func:`summary_rows`, which the HTML report shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import metric_named
from shiftbench.movement import BASIS_NEAREST
from shiftbench.report.failures import DIRECTIONS
from shiftbench.report.numbers import CHANGE, MISSING, estimate_text, number

MOVEMENT_COLUMNS = ("similarity", "chrF")
NEAREST_MARK = "†"
UNPAIRED_MARK = "‡"
DRIFT_MARK = " ✱"
WARNING_MARK = " ⚠"
METHOD_TEXT = {
    "wilson": "Wilson score",
    "percentile_bootstrap": "percentile bootstrap over examples",
    "paired_bootstrap": "paired bootstrap over example ids",
    "unpaired_bootstrap": "independent bootstrap of each side",
    "tango_score": "Tango's score interval over example ids",
    "debiased_ece": "debiased ECE (Kumar et al. 2019) within worst-case-bias bounds",
}


@dataclass(frozen=True)
class Column:
    """One numeric column of the summary: its heading, the unit its numbers print in, and
    where a split's record keeps its estimate (``field``, and ``key`` for the fields
    keyed by metric: ``metrics`` and ``delta``)."""

    label: str
    unit: str
    field: str
    key: str | None = None

    def estimate(self, record: dict[str, Any]) -> dict[str, Any] | None:
        value = record.get(self.field)
        return (value or {}).get(self.key) if self.key else value


def report_task(report: dict[str, Any]) -> str:
    """``classification`` or ``generation`` (reports written before generation suites are
    classification)."""
    return str(report.get("task") or "classification")


FLIP_RATE = Column("flip rate", "%", "flip_rate")
OUTPUT_WORDS = Column("output words", "num", "output_words")


def shown_as(metric: str) -> tuple[str, str]:
    """A metric's heading and unit from the metric table (its name and plain numbers for
    a metric this installation does not know, e.g. a plug-in's, in an old report)."""
    try:
        row = metric_named(metric)
    except ShiftbenchError:
        return metric, "num"
    return row.label, row.unit


def _keys(report: dict[str, Any], field: str) -> list[str]:
    return list(dict.fromkeys(k for record in report["splits"] for k in record.get(field) or {}))


def columns(report: dict[str, Any]) -> list[Column]:
    """The summary's numeric columns: each metric of the report in its order, its change
    from the reference after it where the report has one, the flip rate after the first
    change (where the report has flip rates: a classifier's), the mean output length last
    (a generator's); changes of metrics the report does not carry come first."""
    metrics, changes = _keys(report, "metrics"), _keys(report, "delta")
    flips = any(record.get("flip_rate") for record in report["splits"])
    found: list[Column] = []
    for name in [*(c for c in changes if c not in metrics), *metrics]:
        label, unit = shown_as(name)
        if name in metrics:
            found.append(Column(label, unit, "metrics", name))
        if name in changes:
            found.append(Column(f"Δ {label}", CHANGE[unit], "delta", name))
            if flips and FLIP_RATE not in found:
                found.append(FLIP_RATE)
    if any(record.get("output_words") for record in report["splits"]):
        found.append(OUTPUT_WORDS)
    return found


def level_label(report: dict[str, Any]) -> str:
    """'95% CI' (or whatever level the report's intervals use)."""
    numeric = columns(report)
    levels = {
        est["level"]
        for record in report["splits"]
        for column in numeric
        if (est := column.estimate(record)) and est.get("level")
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
    numeric = columns(report)
    header = ["split", "kind", "n", *(f"{c.label} [{ci}]" for c in numeric)]
    movement = report.get("movement")
    if movement:
        header += MOVEMENT_COLUMNS
    methods = drift_methods(report)
    header += [f"{m} p (Holm)" for m in methods]
    drift = report.get("drift") or {}
    rows = []
    for record in report["splits"]:
        mark = WARNING_MARK if record.get("warnings") else ""
        row = [f"{record['name']}{mark}", str(record["kind"]), str(record["n"])]
        row += [estimate_text(c.estimate(record), c.unit) for c in numeric]
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
    return (f"Drift p: each detector tests a shifted split's {_drift_inputs(report)} against "
            "half of the reference; perturbed splits use only their examples from the other "
            f"half, so the samples are independent. {marks}. n/a: a detector without a p-value "
            "(uncalibrated), never marked.")


DRIFT_INPUTS = {"embeddings": "text embeddings", "probabilities": "the model's probabilities",
                "bits_per_byte": "bits per byte under the LM", "output_words": "output lengths"}


def _drift_inputs(report: dict[str, Any]) -> str:
    """What the report's detectors test, e.g. "text embeddings (mmd, ks) and the model's
    probabilities (bbsd)", from the registry (a detector this installation lacks: its
    inputs)."""
    from shiftbench.registry import DETECTORS

    by_input: dict[str, list[str]] = {}
    for name in dict.fromkeys(r.get("detector") or r.get("method") or "?"
                              for results in report["drift"].values() for r in results):
        try:
            kind = DRIFT_INPUTS.get(DETECTORS.load(name).input, "inputs")
        except ShiftbenchError:
            kind = "inputs"
        by_input.setdefault(kind, []).append(name)
    return " and ".join(f"{kind} ({', '.join(names)})" for kind, names in by_input.items())


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
        rows.append([str(record["name"]), number(estimates["measured"], "%"),
                     estimate_text(estimates["atc"], "%"), number(miss["atc"], "pp"),
                     estimate_text(estimates["doc"], "%"), number(miss["doc"], "pp")])
    return header, rows


def label_free_note(report: dict[str, Any]) -> str:
    """What the label-free table shows and what its intervals do not cover."""
    caveat = next(r["label_free"]["caveat"] for r in report["splits"] if r.get("label_free"))
    return ("ATC (average thresholded confidence) and DoC (difference of confidences) estimate "
            "each domain split's accuracy from the reference without the split's labels, as "
            f"`monitor check` does on unlabelled traffic. {caveat}.")


def perplexity_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The perplexity table (shared with the HTML report): per split, bits per byte and
    its change from the reference with intervals, token perplexity, texts scored."""
    section = report.get("perplexity") or {}
    header = ["split", "bits per byte", "Δ bits per byte", "token perplexity", "texts",
              "excluded (empty)"]
    rows = []
    for name, r in (section.get("splits") or {}).items():
        delta = r.get("delta_bits_per_byte")
        mark = UNPAIRED_MARK if delta and delta.get("method") == "unpaired_bootstrap" else ""
        rows.append([name, estimate_text(r["bits_per_byte"], "num"),
                     estimate_text(delta, "Δnum") + (mark if delta else ""),
                     estimate_text(r["token_perplexity"], "stat"), str(r["n"]),
                     str(r["excluded"])])
    return header, rows


def perplexity_note(report: dict[str, Any]) -> str:
    """What the perplexity table measures, under which LM; '' without one."""
    section = report.get("perplexity")
    if not section:
        return ""
    lm = section.get("lm") or {}
    return (f"Texts scored by the causal LM {lm.get('source')} (max_length "
            f"{lm.get('max_length')}, stride {lm.get('stride')}, {section.get('precision')}), "
            "not the model under test. Bits per byte: total nats / total UTF-8 bytes / ln 2 "
            "over a split's texts; 95% CI by percentile bootstrap over texts. Δ: paired on the "
            f"ids shared with the reference; {UNPAIRED_MARK}: a domain split, each side "
            "resampled on its own. Empty texts have no bits per byte and are left out.")


def _slice_cell(row: dict[str, Any] | None, min_n: int) -> str:
    """One slice of one split: its accuracy and drop with intervals, or why not (too few
    here: fewer than ``min_n``; else too few on the reference's side of its Δ)."""
    if row is None:
        return MISSING
    if row["too_few"]:
        return (f"too few (n={row['n']})" if row["n"] < min_n else
                f"n={row['n']}; too few in the reference to compare")
    text = f"{estimate_text(row['accuracy'], '%')} (n={row['n']})"
    return f"{text}; Δ {estimate_text(row['delta'], 'pp')}" if row["delta"] else text


def slice_tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """One table per slicing dimension (class, length, each metadata column): a row per
    split, a column per slice."""
    section = report.get("slices")
    if not section:
        return []
    found = {(r["split"], r["dimension"], r["slice"]): r for r in section["rows"]}
    splits = [r["name"] for r in report["splits"]]
    tables = []
    for dimension in section["dimensions"]:
        name, slices = dimension["name"], dimension["slices"]
        rows = [[split, *(_slice_cell(found.get((split, name, value)), section["min_n"])
                           for value in slices)]
                for split in splits]
        tables.append((f"Accuracy by {name}", ["split", *slices], rows,
                       f"Slices by {dimension['about']}. {slice_note(section)}"))
    return tables


def slice_note(section: dict[str, Any]) -> str:
    return (f"Accuracy with its 95% Wilson interval; Δ: against the same slice of the "
            f"reference (perturbations: paired by id, Tango's score interval; domain splits: "
            f"each side resampled on its own). Slices with fewer than {section['min_n']} "
            "examples (either side of a Δ) are marked too few. Intervals are per slice, not "
            "adjusted for the number of slices.")


def slice_findings(report: dict[str, Any], top: int = 5) -> list[str]:
    """The slices that lose the most against the reference, among those with enough
    examples whose whole interval is below zero (unadjusted: a pointer, not a test): the
    ``top`` of the perturbations, then of the domain splits (whose slices all differ from
    the reference's more)."""
    kinds = {r["name"]: r["kind"] for r in report["splits"]}
    rows = [r for r in (report.get("slices") or {}).get("rows") or []
            if r["delta"] and not r["too_few"] and (r["delta"]["high"] or 0) < 0]
    rows.sort(key=lambda r: r["delta"]["value"])
    chosen = [r for kind in ("perturbation", "domain")
              for r in [r for r in rows if kinds.get(r["split"]) == kind][:top]]
    return [f"{r['split']}, {r['dimension']} {r['slice']}: Δ "
            f"{estimate_text(r['delta'], 'pp')} (n={r['n']})" for r in chosen]


def note_sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The report's optional table sections (shared with the HTML report), each as
    (heading, header, rows, note under it), those without rows left out."""
    sections = []
    for heading, rows_of, note_of in (
            ("Label-free accuracy estimates vs measured (domain splits)", label_free_rows,
             label_free_note),
            ("Perplexity under shift", perplexity_rows, perplexity_note)):
        header, rows = rows_of(report)
        if rows:
            sections.append((heading, header, rows, note_of(report)))
    return sections


def _note_sections_markdown(report: dict[str, Any]) -> list[str]:
    lines = []
    for heading, header, rows, note in [*note_sections(report), *slice_tables(report)]:
        lines += [f"## {heading}", ""]
        for row in (header, ["---"] + ["---:"] * (len(header) - 1), *rows):
            lines.append("| " + " | ".join(md_cell(c) for c in row) + " |")
        lines += ["", note, ""]
    return lines


def diagnostic_lines(report: dict[str, Any]) -> list[str]:
    """The model's per-text diagnostics summarised per split ('' for models without)."""
    lines = []
    for name, diagnostic in report.get("diagnostics", {}).items():
        values = ", ".join(f"{split} {summary['mean']:.3g} (p10 {summary['p10']:.3g})"
                           for split, summary in diagnostic["splits"].items())
        lines.append(f"{name}, mean per split ({diagnostic['meaning']}): {values}.")
    return lines


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
    for column in columns(report):
        methods = []
        for record in report["splits"]:
            est = column.estimate(record)
            if not est:
                continue
            text = METHOD_TEXT.get(est["method"], est["method"])
            if est.get("n_boot"):
                text += f" (B={est['n_boot']})"
            if text not in methods:
                methods.append(text)
        if methods:
            parts.append(f"{column.label}: {', '.join(methods)}")
    extra = ("Δ = shifted − reference (negative: the shift costs accuracy)"
             if report_task(report) == "classification" else
             "Δ = shifted − reference (negative: the shift costs score); output words: mean "
             "words per generated text")
    return f"Intervals ({level_label(report)}) — {'; '.join(parts)}. {extra}."


def failures_note(inline: int | None, metric: str | None = None) -> str:
    """How to read the failure browser (``metric``: the score a generation run's compares)."""
    page = f"the first {inline} of each split are in the page, " if inline else ""
    if metric:
        which = (f"Per perturbation, the examples whose {shown_as(metric)[0]} changed from the "
                 "clean original (same id): the largest fall first, then the largest rise. Per "
                 "domain split (no originals): the examples scoring below the reference's "
                 "mean, the lowest first. Edits to the input and between the two outputs are")
    else:
        which = ("Per perturbation, the examples whose predicted class changed from the clean "
                 "original (same id): right → wrong first, then wrong → right, then wrong → "
                 "another wrong class, each sorted by the drop of the true label's probability "
                 "(original minus shifted; the largest gain first for wrong → right). Per "
                 "domain split (no originals): the most confident errors. Edits are")
    return (f"{which} marked word by word, and character by character inside a changed word; "
            f"{page}the rest one click away (failures.js, kept beside report.html).")


def failure_lines(report: dict[str, Any]) -> list[str]:
    """One line per split with failures: how many examples went each way."""
    groups = (report.get("failures") or {}).get("groups") or {}
    return [f"{name}: " + ", ".join(f"{count} {DIRECTIONS[d]}" for d, count in found.items()
                                    if d in DIRECTIONS) + f" of {found['n']}"
            for name, found in groups.items()]


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
    """Suite, model, device and precision (a number in fp32 and one in bf16 may differ)."""
    suite = report["suite"].get("name", "?")
    env = report["environment"]
    where = ", ".join(str(env[key]) for key in ("device", "precision") if env.get(key))
    return f"shiftbench: {suite} — {model_label(report['model'])} on {where or '?'}"


def md_cell(text: str) -> str:
    """Text that stays in its Markdown table cell (pipes and newlines escaped)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def summary_markdown(report: dict[str, Any]) -> str:
    header, rows = summary_rows(report)
    align = ["---", "---", "---:"] + ["---:"] * (len(header) - 3)
    lines = [f"# {md_cell(title(report))}", ""]
    for row in (header, align, *rows):
        lines.append("| " + " | ".join(md_cell(c) for c in row) + " |")
    lines.append("")
    warnings = warning_lines(report)
    if warnings:
        lines += [f"**Warnings**{WARNING_MARK}:", "", *(f"- {md_cell(w)}" for w in warnings), ""]
    lines += [footnote(report), ""]
    for note in (movement_note(report), drift_note(report), overlap_note(report),
                 *diagnostic_lines(report)):
        if note:
            lines += [note, ""]
    lines += _note_sections_markdown(report)
    worst = slice_findings(report)
    if worst:
        lines += ["Largest slice drops (whole 95% interval below zero, unadjusted):", "",
                  *(f"- {md_cell(line)}" for line in worst), ""]
    failed = failure_lines(report)
    if failed:
        lines += ["## Changed examples", "", *(f"- {md_cell(line)}" for line in failed), "",
                  "Read them in report.html's failure browser.", ""]
    return "\n".join(lines)
