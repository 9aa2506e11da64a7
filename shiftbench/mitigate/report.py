"""The before/after report of ``shiftbench mitigate``: each split's accuracy per model and
paired deltas by example id, written as JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from shiftbench.config import Suite
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.mitigate.options import MitigateOptions
    from shiftbench.models import ModelAdapter
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation


def before_after(suite: Suite, suite_path: Path, base_spec: str, mitigation: Mitigation,
                 train_params: dict[str, Any], options: MitigateOptions,
                 evaluated: list[Split], target: Split | None,
                 scored: dict[str, list[list[ScoredSplit]]], erm: list[ModelAdapter],
                 mitigated: list[ModelAdapter],
                 grid: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's content: what was trained and how, and each split's accuracies and
    paired deltas (see :func:`split_record`); ``grid``: the grid search, its candidates'
    selection scores per seed and which was kept."""
    from shiftbench.train.trainer import TrainConfig

    target_splits = [] if target is None else list(target.info["splits"])
    correct = {name: [[correct_by_id(split) for split in seed] for seed in seeds]
               for name, seeds in scored.items()}
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
        "models": {"erm": [str(m.source) for m in erm],  # type: ignore[attr-defined]
                   "method": [str(m.source) for m in mitigated]},  # type: ignore[attr-defined]
        "splits": [split_record(s, correct, k) for k, s in enumerate(evaluated)],
    }


def correct_by_id(split: ScoredSplit) -> dict[str, bool]:
    """Example id -> whether the model predicted its label."""
    return dict(zip(split.ids, (split.pred == split.y).tolist(), strict=True))


def paired(before: dict[str, bool], after: dict[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The two models' outcomes on the examples both were evaluated on, in one id order."""
    import numpy as np

    ids = [i for i in before if i in after]
    return np.array([before[i] for i in ids]), np.array([after[i] for i in ids])


def deltas(before: list[dict[str, bool]], after: list[dict[str, bool]]) -> dict[str, Any]:
    """Paired accuracy deltas (after - before): each seed's, and pooled over seeds (the
    pairs of every seed together). A single ``before`` (the base) pairs with every seed."""
    import numpy as np

    from shiftbench.metrics import paired_delta

    pairs = [paired(before[k % len(before)], a) for k, a in enumerate(after)]
    pooled = paired_delta(np.concatenate([b for b, _ in pairs]),
                          np.concatenate([a for _, a in pairs]))
    return {"pooled": pooled.to_dict(),
            "seeds": [paired_delta(b, a).to_dict() for b, a in pairs]}


def split_record(split: Split, correct: dict[str, list[list[dict]]], k: int) -> dict[str, Any]:
    """One split's accuracies (per model, per seed) and paired deltas."""
    import numpy as np

    outcome = {name: [seed[k] for seed in seeds] for name, seeds in correct.items()}
    accuracy = {name: {"mean": float(np.mean([np.mean(list(s.values())) for s in seeds])),
                       "seeds": [float(np.mean(list(s.values()))) for s in seeds]}
                for name, seeds in outcome.items()}
    return {"name": split.name, "kind": split.info.get("kind", "reference"), "n": len(split),
            "accuracy": accuracy,
            "delta": {"method_vs_base": deltas(outcome["base"], outcome["method"]),
                      "method_vs_erm": deltas(outcome["erm"], outcome["method"]),
                      "erm_vs_base": deltas(outcome["base"], outcome["erm"])}}


def write_report(out: Path, report: dict[str, Any]) -> None:
    """mitigate.json and mitigate.md, each written atomically."""
    from shiftbench.cache import atomic

    out.mkdir(parents=True, exist_ok=True)
    with atomic(out / "mitigate.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    with atomic(out / "mitigate.md") as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")


def _delta(estimate: dict[str, Any]) -> str:
    return (f"{estimate['value']:+.3f} [{estimate['low']:+.3f}, {estimate['high']:+.3f}]")


def kept_values(candidates: list[dict[str, Any]]) -> list[str]:
    """Each seed's kept combination of the grid, as ``name=value ...``."""
    seeds = len(candidates[0]["chosen"])
    kept = [next(c for c in candidates if c["chosen"][seed]) for seed in range(seeds)]
    return [" ".join(f"{k}={v}" for k, v in c["values"].items()) or "(no grid)" for c in kept]


def markdown(report: dict[str, Any]) -> str:
    """The before/after table: accuracy per model, paired deltas (95% intervals)."""
    method = report["method"]["method"]
    target = report["target"]
    lines = [f"# mitigate {report['suite']['name']}: {method} vs ERM vs {report['base']}", "",
             f"Method: `{json.dumps(report['method'])}`; seeds: {len(report['training']['seed'])}"
             f"; model selection: {report['selection']}.", "",
             f"Target (unlabelled): {target['n_target_train']} rows from "
             f"{', '.join(target['splits']) or 'no split'}; evaluated rows of each target split: "
             + (", ".join(f"{k} {v}" for k, v in target["n_evaluated"].items()) or "none")
             + " (disjoint, by id hash).", "",
             f"| split | n | base | ERM | {method} | {method} - base | {method} - ERM "
             f"| seeds' spread ({method} - base) |",
             "|---|---|---|---|---|---|---|---|"]
    for split in report["splits"]:
        acc, delta = split["accuracy"], split["delta"]
        seeds = [d["value"] for d in delta["method_vs_base"]["seeds"]]
        lines.append(f"| {split['name']} | {split['n']} | {acc['base']['mean']:.3f} | "
                     f"{acc['erm']['mean']:.3f} | {acc['method']['mean']:.3f} | "
                     f"{_delta(delta['method_vs_base']['pooled'])} | "
                     f"{_delta(delta['method_vs_erm']['pooled'])} | "
                     f"{min(seeds):+.3f} .. {max(seeds):+.3f} |")
    if report.get("grid"):
        lines += ["", f"Grid search ({report['grid']['select']}): kept per seed: "
                  + "; ".join(f"{name} " + ", ".join(kept_values(report["grid"][name]))
                              for name in ("method", "erm")) + "."]
    reference = report["splits"][0]["delta"]
    lines += ["", f"Cost on the clean reference: {method} - base "
              f"{_delta(reference['method_vs_base']['pooled'])}, {method} - ERM "
              f"{_delta(reference['method_vs_erm']['pooled'])} (paired by id, pooled over "
              "seeds; 95% Tango score intervals)."]
    if report.get("gate"):
        lines.append("")
    for verdict in report.get("gate", []):
        lines.append(f"Gate ({verdict['result']['policy']}), {method} seed {verdict['seed']} "
                     f"vs base: **{verdict['status']}**")
    return "\n".join(lines) + "\n"
