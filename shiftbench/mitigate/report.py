"""The before/after report of ``shiftbench mitigate``: each split's metrics per model,
paired accuracy deltas by example id and the training curves, written as JSON, Markdown
and self-contained HTML (:mod:`shiftbench.mitigate.html`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError
from shiftbench.report.numbers import estimate_text, number

if TYPE_CHECKING:
    import numpy as np

    from shiftbench.config import Suite
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.metrics import Estimate, Metric
    from shiftbench.mitigate.options import MitigateOptions
    from shiftbench.report.failures import Group
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation
    from shiftbench.train.trainer import TrainResult

POOLED_METHOD = "tango_score_seed_averaged"
FAILURES_FILE = "mitigate.failures.js"  # the failure browser's rows beyond the page's
NO_BASE = ("the base is an encoder without a classifier for these labels; ERM is the "
           "baseline")
# each paired comparison: its name, the model before and the model after
COMPARISONS = [("method_vs_base", "base", "method"), ("method_vs_erm", "erm", "method"),
               ("erm_vs_base", "base", "erm")]
DROP_NOTE = ("Drop: accuracy on the perturbed split minus accuracy on the clean reference, "
             "on the same examples (seeds averaged per example). Drop change: the method's "
             "drop minus the other model's, paired by example (positive: the method loses "
             "less to the perturbation), with a 95% interval as for the pooled deltas.")
INTERVALS = {
    "pooled": "paired by example id, each example's correctness averaged over seeds first "
              "(it counts once): the 95% interval covers the uncertainty from which examples "
              "were drawn, for these trained models (Tango's score interval on the averaged "
              "differences; exact for one seed, conservative where seeds disagree on an "
              "example). Seed-to-seed training spread is not in it: see the per-seed deltas "
              "and their range.",
    "seeds": "each seed's paired delta: Tango's score interval (95%), McNemar's exact p",
}


def before_after(suite: Suite, suite_path: Path, base_spec: str, mitigation: Mitigation,
                 train_params: dict[str, Any], options: MitigateOptions,
                 evaluated: list[Split], target: Split | None,
                 scored: dict[str, list[list[ScoredSplit]]], erm: list[TrainResult],
                 mitigated: list[TrainResult],
                 grid: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's content: what was trained and how, each split's metrics and paired
    deltas (see :func:`split_record`) and each trained model's curves; ``grid``: the grid
    search, its candidates' selection scores per seed and which was kept. ``scored``
    without "base": the base has no as-is accuracy (a bare encoder) and ERM is the
    baseline."""
    from shiftbench.metrics import metric_named
    from shiftbench.mitigate.curves import training_curves
    from shiftbench.train.trainer import TrainConfig

    table = {name: metric_named(name) for name in suite.metrics}
    trained = {"erm": [(r.folder, r.best_epoch) for r in erm],
               "method": [(r.folder, r.best_epoch) for r in mitigated]}
    target_splits = [] if target is None else list(target.info["splits"])
    return {
        "suite": {"name": suite.name, "path": str(suite_path), "hash": suite.spec_hash()},
        "base": base_spec, "baseline": "base" if "base" in scored else "erm",
        "method": mitigation.describe(),
        "training": asdict(TrainConfig(**train_params)) | {"seed": list(range(options.seeds))},
        "selection": "early stopping on held-out training rows (source validation)"
                     + ("" if grid is None else f"; the grid's combination by {grid['how']}")
                     + "; no target labels are used",
        **({} if grid is None else {"grid": grid}),
        "target": {"source": "suite splits, labels unused", "splits": target_splits,
                   "n_target_train": 0 if target is None else len(target),
                   "n_evaluated": {s.name: len(s) for s in evaluated
                                   if s.name in target_splits}},
        "models": {kind: [str(folder) for folder, _ in seeds] for kind, seeds in trained.items()},
        "intervals": INTERVALS,
        "metrics": describe_metrics(table),
        "splits": split_records(scored, table, suite.seed),
        "curves": training_curves(trained),
    }


def describe_metrics(table: dict[str, Metric]) -> list[dict[str, Any]]:
    """What the views need to print each metric: its label, unit and direction."""
    return [{"name": name, "label": metric.label, "unit": metric.unit,
             "higher_is_better": metric.higher_is_better} for name, metric in table.items()]


def correct_by_id(split: ScoredSplit) -> dict[str, bool]:
    """Example id -> whether the model predicted its label."""
    return dict(zip(split.ids, (split.pred == split.y).tolist(), strict=True))


def paired(before: dict[str, bool], after: dict[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The two models' outcomes on the examples both were evaluated on, in one id order."""
    import numpy as np

    ids = [i for i in before if i in after]
    return np.array([before[i] for i in ids]), np.array([after[i] for i in ids])


def comparisons(models: Iterable[str], names: Iterable[str]) -> list[tuple[str, str, str]]:
    """The paired comparisons among ``names`` whose two models are both in ``models``."""
    return [(name, before, after) for name, before, after in COMPARISONS
            if name in names and before in models and after in models]


def deltas(before: list[dict[str, bool]], after: list[dict[str, bool]]) -> dict[str, Any]:
    """Paired accuracy deltas (after - before) by example id: each seed's (Tango's score
    interval, McNemar's p) and pooled over seeds (:func:`pooled_delta`). A single
    ``before`` (the base) pairs with every seed."""
    from shiftbench.metrics import paired_delta

    pairs = [paired(before[k % len(before)], a) for k, a in enumerate(after)]
    return {"pooled": pooled_delta(before, after).to_dict(),
            "seeds": [paired_delta(b, a).to_dict() for b, a in pairs]}


def seed_means(outcomes: list[dict[str, bool]], ids: list[str]) -> np.ndarray:
    """Each example's share of seeds that got it right, in ``ids`` order."""
    import numpy as np

    return np.mean([[seed[i] for i in ids] for seed in outcomes], axis=0)


def pooled_delta(before: list[dict[str, bool]], after: list[dict[str, bool]]) -> Estimate:
    """The mean paired difference over examples, each example's correctness first averaged
    over seeds on each side: an example counts once, however many seeds saw it."""
    ids = shared_ids([*before, *after], "pooled delta")
    return bounded_mean(seed_means(after, ids) - seed_means(before, ids), 1.0)


def shared_ids(outcomes: list[dict[str, bool]], what: str) -> list[str]:
    """The example ids every one of ``outcomes`` has, in the first one's order."""
    ids = [i for i in outcomes[0] if all(i in seed for seed in outcomes)]
    if not ids:
        raise ShiftbenchError(f"{what}: no example id is shared by every model's seeds")
    return ids


def bounded_mean(d: np.ndarray, bound: float) -> Estimate:
    """The mean of per-example differences ``d`` in [-bound, bound] with a 95% interval.

    The interval is Tango's score interval with the scaled differences' positive and
    negative parts as the improved and worsened counts: exactly Tango's for 0/1 outcomes
    of one seed (``bound`` 1), and conservative when a difference lies between, since a
    difference with a given mean and mean size varies at most as much as a -1/0/+1 one. A
    t-interval or a bootstrap over examples collapses where few examples change (a
    t-interval covered ~65% in simulation with 1-2% changed).
    """
    import numpy as np

    from shiftbench.metrics import Estimate, paired_score_interval

    scaled = d / bound
    better, worse = float(np.clip(scaled, 0, None).sum()), float(np.clip(-scaled, 0, None).sum())
    low, high = paired_score_interval(worse, better, len(d))
    return Estimate(float(scaled.mean()) * bound, low * bound, high * bound, len(d),
                    POOLED_METHOD)


def drop_change(reference: dict[str, list[dict[str, bool]]],
                shifted: dict[str, list[dict[str, bool]]]) -> dict[str, Any]:
    """What a perturbation costs each model on the same examples (shifted - reference
    accuracy, seeds averaged per example) and how much the method changes that drop
    against the base (when evaluated) and ERM: per example ((method shifted - method
    reference) - (other shifted - other reference)) in [-2, 2], a positive change meaning a
    smaller drop."""
    import numpy as np

    ids = shared_ids([seed for outcomes in [*reference.values(), *shifted.values()]
                      for seed in outcomes], "drop change")
    drops = {name: seed_means(shifted[name], ids) - seed_means(reference[name], ids)
             for name in shifted}
    return {"n": len(ids), "drop": {name: float(np.mean(d)) for name, d in drops.items()},
            **{name: bounded_mean(drops[after] - drops[before], 2.0).to_dict()
               for name, before, after in comparisons(drops, ["method_vs_base",
                                                              "method_vs_erm"])}}


def model_metrics(scored: dict[str, list[list[ScoredSplit]]], k: int,
                  table: dict[str, Metric], seed: int) -> dict[str, dict[str, Any]]:
    """Each model's estimate of every suite metric on split ``k``, as ``run`` computes it:
    each seed's (with its interval) and the mean of the seeds' values."""
    import numpy as np

    from shiftbench.evaluate import metric_estimates

    models = {}
    for model, seeds in scored.items():
        per_seed = [metric_estimates(splits[k], table, seed) for splits in seeds]
        models[model] = {name: {"mean": float(np.mean([e[name]["value"] for e in per_seed])),
                                "seeds": [e[name] for e in per_seed]} for name in table}
    return models


def split_records(scored: dict[str, list[list[ScoredSplit]]], table: dict[str, Metric],
                  seed: int) -> list[dict[str, Any]]:
    """Each evaluated split's record, in order (see :func:`split_record`); ``scored``: each
    model's (base, erm, method; no base for a bare encoder) seeds' scored splits."""
    correct = {name: [[correct_by_id(split) for split in seed] for seed in seeds]
               for name, seeds in scored.items()}
    records = [split_record(split, correct, k, model_metrics(scored, k, table, seed))
               for k, split in enumerate(scored["erm"][0])]
    reference = {name: [seed[0] for seed in seeds] for name, seeds in correct.items()}
    for k, record in enumerate(records):
        if record["kind"] == "perturbation":
            record["drop"] = drop_change(reference,
                                         {name: [seed[k] for seed in seeds]
                                          for name, seeds in correct.items()})
    return records


def split_record(split: ScoredSplit, correct: dict[str, list[list[dict]]], k: int,
                 metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Split ``k``'s accuracies (per model, per seed), paired deltas and every metric."""
    import numpy as np

    outcome = {name: [seed[k] for seed in seeds] for name, seeds in correct.items()}
    accuracy = {name: {"mean": float(np.mean([np.mean(list(s.values())) for s in seeds])),
                       "seeds": [float(np.mean(list(s.values()))) for s in seeds]}
                for name, seeds in outcome.items()}
    return {"name": split.name, "kind": split.kind, "n": len(split.ids),
            "accuracy": accuracy,
            "delta": {name: deltas(outcome[before], outcome[after])
                      for name, before, after in comparisons(outcome, [c[0] for c in
                                                                       COMPARISONS])},
            "metrics": metrics}


def failure_groups(scored: dict[str, list[list[ScoredSplit]]],
                   classes: dict[str, list[str]], method: str) -> list[Group]:
    """Per split, the examples whose prediction the method changed against the base (when
    evaluated) and against ERM, paired by id: the first seed of each (the base has one),
    so every row is a real model's prediction; ``classes``: each model's classes."""
    from shiftbench.report.failures import changed

    labels = {"base": "base", "erm": "ERM", "method": method}
    versus = comparisons(scored, ["method_vs_base", "method_vs_erm"])
    return [changed(f"{split.name}: {method} vs {labels[before]}", scored[before][0][k], split,
                    classes["method"], (labels[before], method), classes[before])
            for k, split in enumerate(scored["method"][0]) for _, before, _ in versus]


def write_report(out: Path, report: dict[str, Any], groups: list[Group] | None = None,
                 inline: int | None = None) -> None:
    """mitigate.json, mitigate.md and mitigate.html, each written atomically, and the
    failure browser's sidecar (:data:`FAILURES_FILE`) when ``groups`` have more rows than
    the page holds (``inline`` per group; default :data:`INLINE`)."""
    from shiftbench.cache import atomic
    from shiftbench.mitigate.html import mitigate_html
    from shiftbench.report.failure_view import INLINE, failure_view, save_sidecar
    from shiftbench.report.failures import counts

    out.mkdir(parents=True, exist_ok=True)
    view = failure_view(groups, FAILURES_FILE, ("baseline", report["method"]["method"]),
                        inline or INLINE) if groups else None
    report = {**report, **({"failures": counts(groups)} if groups else {})}
    for name, text in [("mitigate.json", json.dumps(report, indent=2)),
                       ("mitigate.md", markdown(report)),
                       ("mitigate.html", mitigate_html(report, view.html if view else ""))]:
        with atomic(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    if view is not None:
        save_sidecar(view, out / FAILURES_FILE)


# --- the report's words and table rows, shared by the Markdown and the HTML


def title(report: dict[str, Any]) -> str:
    versus = (f"vs {report['base']}" if base_evaluated(report)
              else f"(both fine-tuned from {report['base']})")
    return f"mitigate {report['suite']['name']}: {report['method']['method']} vs ERM {versus}"


def baseline_text(report: dict[str, Any]) -> str:
    """Which model the method is measured against, and why ERM alone when it is."""
    if base_evaluated(report):
        return "Baselines: the base as it is and ERM."
    return f"Baseline: ERM only ({NO_BASE})."


def base_evaluated(report: dict[str, Any]) -> bool:
    """Whether the base was evaluated as it is (not for a bare encoder)."""
    return "base" in report["splits"][0]["accuracy"]


def model_columns(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The evaluated models, each as its key and column label."""
    labels = {"base": "base", "erm": "ERM", "method": report["method"]["method"]}
    return [(key, labels[key]) for key in report["splits"][0]["accuracy"]]


def method_columns(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The method's paired comparisons in the report (against the base, when it was
    evaluated, then ERM), each as its key and column label."""
    labels = dict(model_columns(report))
    return [(name, f"{labels['method']} − {labels[before]}") for name, before, _ in
            comparisons(labels, ["method_vs_base", "method_vs_erm"])]


def target_text(report: dict[str, Any]) -> str:
    target = report["target"]
    if not target["splits"]:
        return "none (the method trains on no unlabelled target)"
    evaluated = ", ".join(f"{k} {v}" for k, v in target["n_evaluated"].items()) or "none"
    return (f"{target['n_target_train']} unlabelled rows from "
            f"{', '.join(target['splits'])}; evaluated rows of each target "
            f"split: {evaluated} (disjoint, by id hash)")


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The before/after table: each split's accuracy per model (mean over seeds), the
    pooled paired deltas and the range of the seeds' deltas against the first baseline."""
    models, versus = model_columns(report), method_columns(report)
    header = ["split", "kind", "n", *(label for _, label in models),
              *(label for _, label in versus), f"seeds' range ({versus[0][1]})"]
    rows = []
    for split in report["splits"]:
        accuracy, delta = split["accuracy"], split["delta"]
        seeds = [d["value"] for d in delta[versus[0][0]]["seeds"]]
        rows.append([split["name"], split["kind"], str(split["n"]),
                     *(number(accuracy[m]["mean"], "%") for m, _ in models),
                     *(estimate_text(delta[name]["pooled"], "pp") for name, _ in versus),
                     f"{number(min(seeds), 'pp')} .. {number(max(seeds), 'pp')}"])
    return header, rows


def drop_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each perturbation's accuracy drop per model (shifted - reference on the same
    examples, mean over seeds) and the method's change of it (positive: a smaller drop)."""
    models, versus = model_columns(report), method_columns(report)
    header = ["split", "n", *(f"{label} drop" for _, label in models),
              *(f"{label} (drop change)" for _, label in versus)]
    rows = []
    for split in report["splits"]:
        if "drop" not in split:
            continue
        drop = split["drop"]
        rows.append([split["name"], str(drop["n"]),
                     *(number(drop["drop"][m], "pp") for m, _ in models),
                     *(estimate_text(drop[name], "pp") for name, _ in versus)])
    return header, rows


def seed_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each seed's paired accuracy deltas per split (Tango's score interval, McNemar's p):
    the spread of training over seeds that the pooled interval leaves out."""
    from shiftbench.report.markdown import p_text

    versus = method_columns(report)
    header = ["split", "seed", *(cell for _, label in versus for cell in (label, "McNemar p"))]
    rows = []
    for split in report["splits"]:
        delta = split["delta"]
        for seed, estimates in enumerate(zip(*(delta[name]["seeds"] for name, _ in versus),
                                             strict=True)):
            rows.append([split["name"], str(seed),
                         *(cell for e in estimates
                           for cell in (estimate_text(e, "pp"), p_text(e["p_value"])))])
    return header, rows


def metric_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every suite metric per split and model: the mean over seeds, then each seed's value
    (the base has one seed, shown with its 95% interval)."""
    models = model_columns(report)
    header = ["split", "metric", *(label for _, label in models)]
    rows = []
    for split in report["splits"]:
        for metric in report["metrics"]:
            cells = [_metric_cell(split["metrics"][m][metric["name"]], metric["unit"])
                     for m, _ in models]
            rows.append([split["name"], metric["label"], *cells])
    return header, rows


def _metric_cell(entry: dict[str, Any], unit: str) -> str:
    if len(entry["seeds"]) == 1:
        return estimate_text(entry["seeds"][0], unit)
    seeds = ", ".join(number(seed["value"], unit, True) for seed in entry["seeds"])
    return f"{number(entry['mean'], unit)} (seeds: {seeds})"


def cost_text(report: dict[str, Any]) -> str:
    """What the method costs on the clean reference, against each baseline."""
    reference = next(s for s in report["splits"] if s["kind"] == "reference")
    delta = reference["delta"]
    return (", ".join(f"{label} {estimate_text(delta[name]['pooled'], 'pp')}"
                      for name, label in method_columns(report))
            + f" (accuracy on {reference['name']}, n={reference['n']}, pooled over seeds)")


def gate_lines(report: dict[str, Any]) -> list[str]:
    """One line per seed's gate verdict (none without a policy)."""
    method = report["method"]["method"]
    return [f"Gate ({verdict['result']['policy']}), {method} seed {verdict['seed']} vs base: "
            f"{verdict['status']} ({_counts(verdict['result']['counts'])})"
            for verdict in report.get("gate") or []]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def kept_values(candidates: list[dict[str, Any]]) -> list[str]:
    """Each seed's kept combination of the grid, as ``name=value ...``."""
    seeds = len(candidates[0]["chosen"])
    kept = [next(c for c in candidates if c["chosen"][seed]) for seed in range(seeds)]
    return [" ".join(f"{k}={v}" for k, v in c["values"].items()) or "(no grid)" for c in kept]


def grid_lines(report: dict[str, Any]) -> list[str]:
    """The grid search's kept combination per seed (nothing without a grid)."""
    grid = report.get("grid")
    if not grid:
        return []
    return [f"Grid search ({grid['select']}): kept per seed: "
            + "; ".join(f"{name} " + ", ".join(kept_values(grid[name]))
                        for name in ("method", "erm")) + ".", ""]


def markdown(report: dict[str, Any]) -> str:
    """The before/after table, every metric, the cost on the clean reference and the gate's
    verdicts; the training curves are in the HTML."""
    lines = [f"# {title(report)}", "",
             f"Method: `{json.dumps(report['method'])}`; seeds: {len(report['training']['seed'])}"
             f"; model selection: {report['selection']}.", "", baseline_text(report), "",
             f"Target: {target_text(report)}.", "",
             *_markdown_table(*summary_rows(report)), "",
             *grid_lines(report),
             f"Cost on the clean reference: {cost_text(report)}.", "",
             "## What each perturbation costs", "", DROP_NOTE, "",
             *_markdown_table(*drop_rows(report)), "",
             f"Pooled deltas: {report['intervals']['pooled']}", "",
             f"Seeds' range: the range of {report['intervals']['seeds']}.", "",
             "## Every metric", "", *_markdown_table(*metric_rows(report)), "",
             "Training curves (loss, validation loss and accuracy per epoch, the method's "
             "per-step values): mitigate.html."]
    gate = gate_lines(report)
    return "\n".join(lines + ([""] + gate if gate else [])) + "\n"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    from shiftbench.report.markdown import md_cell

    return ["| " + " | ".join(map(md_cell, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(md_cell, row)) + " |" for row in rows)]
