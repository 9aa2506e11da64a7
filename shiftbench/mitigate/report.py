"""The before/after report of ``shiftbench mitigate``: each split's metrics per model,
paired accuracy deltas by example id and the training curves, written as JSON, Markdown
and self-contained HTML (:mod:`shiftbench.mitigate.html`)."""

from __future__ import annotations

import json
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
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation
    from shiftbench.train.trainer import TrainResult

POOLED_METHOD = "tango_score_seed_averaged"
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
    search, its candidates' selection scores per seed and which was kept."""
    from shiftbench.metrics import metric_named
    from shiftbench.mitigate.curves import training_curves
    from shiftbench.train.trainer import TrainConfig

    table = {name: metric_named(name) for name in suite.metrics}
    trained = {"erm": [(r.folder, r.best_epoch) for r in erm],
               "method": [(r.folder, r.best_epoch) for r in mitigated]}
    target_splits = [] if target is None else list(target.info["splits"])
    return {
        "suite": {"name": suite.name, "path": str(suite_path), "hash": suite.spec_hash()},
        "base": base_spec, "method": mitigation.describe(),
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
    against the base and ERM: per example ((method shifted - method reference) - (other
    shifted - other reference)) in [-2, 2], a positive change meaning a smaller drop."""
    import numpy as np

    ids = shared_ids([seed for outcomes in [*reference.values(), *shifted.values()]
                      for seed in outcomes], "drop change")
    drops = {name: seed_means(shifted[name], ids) - seed_means(reference[name], ids)
             for name in shifted}
    return {"n": len(ids), "drop": {name: float(np.mean(d)) for name, d in drops.items()},
            "method_vs_base": bounded_mean(drops["method"] - drops["base"], 2.0).to_dict(),
            "method_vs_erm": bounded_mean(drops["method"] - drops["erm"], 2.0).to_dict()}


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
    model's (base, erm, method) seeds' scored splits."""
    correct = {name: [[correct_by_id(split) for split in seed] for seed in seeds]
               for name, seeds in scored.items()}
    records = [split_record(split, correct, k, model_metrics(scored, k, table, seed))
               for k, split in enumerate(scored["base"][0])]
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
            "delta": {"method_vs_base": deltas(outcome["base"], outcome["method"]),
                      "method_vs_erm": deltas(outcome["erm"], outcome["method"]),
                      "erm_vs_base": deltas(outcome["base"], outcome["erm"])},
            "metrics": metrics}


def write_report(out: Path, report: dict[str, Any]) -> None:
    """mitigate.json, mitigate.md and mitigate.html, each written atomically."""
    from shiftbench.cache import atomic
    from shiftbench.mitigate.html import mitigate_html

    out.mkdir(parents=True, exist_ok=True)
    for name, text in [("mitigate.json", json.dumps(report, indent=2)),
                       ("mitigate.md", markdown(report)), ("mitigate.html", mitigate_html(report))]:
        with atomic(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")


# --- the report's words and table rows, shared by the Markdown and the HTML


def title(report: dict[str, Any]) -> str:
    return (f"mitigate {report['suite']['name']}: {report['method']['method']} vs ERM vs "
            f"{report['base']}")


def target_text(report: dict[str, Any]) -> str:
    target = report["target"]
    evaluated = ", ".join(f"{k} {v}" for k, v in target["n_evaluated"].items()) or "none"
    return (f"{target['n_target_train']} unlabelled rows from "
            f"{', '.join(target['splits']) or 'no split'}; evaluated rows of each target "
            f"split: {evaluated} (disjoint, by id hash)")


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The before/after table: each split's accuracy per model (mean over seeds), the
    pooled paired deltas and the range of the seeds' deltas against the base."""
    method = report["method"]["method"]
    header = ["split", "kind", "n", "base", "ERM", method, f"{method} − base",
              f"{method} − ERM", f"seeds' range ({method} − base)"]
    rows = []
    for split in report["splits"]:
        accuracy, delta = split["accuracy"], split["delta"]
        seeds = [d["value"] for d in delta["method_vs_base"]["seeds"]]
        rows.append([split["name"], split["kind"], str(split["n"]),
                     *(number(accuracy[m]["mean"], "%") for m in ("base", "erm", "method")),
                     estimate_text(delta["method_vs_base"]["pooled"], "pp"),
                     estimate_text(delta["method_vs_erm"]["pooled"], "pp"),
                     f"{number(min(seeds), 'pp')} .. {number(max(seeds), 'pp')}"])
    return header, rows


def drop_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each perturbation's accuracy drop per model (shifted - reference on the same
    examples, mean over seeds) and the method's change of it (positive: a smaller drop)."""
    method = report["method"]["method"]
    header = ["split", "n", "base drop", "ERM drop", f"{method} drop",
              f"{method} − base (drop change)", f"{method} − ERM (drop change)"]
    rows = []
    for split in report["splits"]:
        if "drop" not in split:
            continue
        drop = split["drop"]
        rows.append([split["name"], str(drop["n"]),
                     *(number(drop["drop"][m], "pp") for m in ("base", "erm", "method")),
                     estimate_text(drop["method_vs_base"], "pp"),
                     estimate_text(drop["method_vs_erm"], "pp")])
    return header, rows


def seed_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each seed's paired accuracy deltas per split (Tango's score interval, McNemar's p):
    the spread of training over seeds that the pooled interval leaves out."""
    from shiftbench.report.markdown import p_text

    method = report["method"]["method"]
    header = ["split", "seed", f"{method} − base", "McNemar p", f"{method} − ERM", "McNemar p"]
    rows = []
    for split in report["splits"]:
        delta = split["delta"]
        for seed, (base, erm) in enumerate(zip(delta["method_vs_base"]["seeds"],
                                               delta["method_vs_erm"]["seeds"], strict=True)):
            rows.append([split["name"], str(seed), estimate_text(base, "pp"),
                         p_text(base["p_value"]), estimate_text(erm, "pp"),
                         p_text(erm["p_value"])])
    return header, rows


def metric_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every suite metric per split and model: the mean over seeds, then each seed's value
    (the base has one seed, shown with its 95% interval)."""
    header = ["split", "metric", "base", "ERM", report["method"]["method"]]
    rows = []
    for split in report["splits"]:
        for metric in report["metrics"]:
            cells = [_metric_cell(split["metrics"][m][metric["name"]], metric["unit"])
                     for m in ("base", "erm", "method")]
            rows.append([split["name"], metric["label"], *cells])
    return header, rows


def _metric_cell(entry: dict[str, Any], unit: str) -> str:
    if len(entry["seeds"]) == 1:
        return estimate_text(entry["seeds"][0], unit)
    seeds = ", ".join(number(seed["value"], unit, True) for seed in entry["seeds"])
    return f"{number(entry['mean'], unit)} (seeds: {seeds})"


def cost_text(report: dict[str, Any]) -> str:
    """What the method costs on the clean reference, against the base and ERM."""
    method = report["method"]["method"]
    reference = next(s for s in report["splits"] if s["kind"] == "reference")
    delta = reference["delta"]
    return (f"{method} − base {estimate_text(delta['method_vs_base']['pooled'], 'pp')}, "
            f"{method} − ERM {estimate_text(delta['method_vs_erm']['pooled'], 'pp')} "
            f"(accuracy on {reference['name']}, n={reference['n']}, pooled over seeds)")


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
             f"; model selection: {report['selection']}.", "",
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
