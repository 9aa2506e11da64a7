"""A robustness summary per run, with intervals from one bootstrap over the examples.

Three numbers per run, each a Δ as in the run reports (shifted − reference, so a
negative Δ is what a shift costs): the mean Δ over the perturbation splits, the worst Δ
among them (the split that costs most), and the mean Δ over the domain splits. A
perturbation's Δ is over the examples it shares with the reference, paired by id (its
report's Δ); a domain's Δ is its score minus the reference's (different examples).

The intervals come from one bootstrap: each draw resamples the reference's examples (a
perturbed example goes with its original) and each domain split's examples, with
multinomial counts used as weights. The same draw serves every split and every run
(the runs share their examples: :func:`shiftbench.compare.load_entries` checks it), so
a mean over splits keeps the splits' correlation, and the difference between two runs
is paired by example. Percentile intervals at 95%, widened to contain their estimate
where a worst-of (a maximum) puts it outside. The metric must be a mean of per-example
scores (accuracy, exact match, ROUGE, chrF, sentence BLEU); corpus BLEU and macro-F1 are
not, and get no summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench import metrics as M

if TYPE_CHECKING:
    from shiftbench.compare import Entry
    from shiftbench.evaluate import ScoredSplit

LEVEL = 0.95
QUANTITIES = {"perturbation_mean": "mean Δ, perturbations",
              "perturbation_worst": "worst Δ, perturbations",
              "domain_mean": "mean Δ, domains"}


@dataclass
class Summary:
    """Each run's summary values (by run letter, then quantity), their bootstrap draws,
    and the split that is the worst at the estimate."""

    metric: str
    quantities: list[str]
    n_boot: int
    n_reference: int  # examples of the reference split
    reason: str = ""  # why there is no summary
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    draws: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    worst_split: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        runs = {}
        for run, values in self.values.items():
            runs[run] = {}
            for key, value in values.items():
                low, high = interval(value, self.draws[run][key])
                runs[run][key] = {"value": value, "low": low, "high": high}
            if "perturbation_worst" in runs[run]:
                runs[run]["perturbation_worst"]["split"] = self.worst_split[run]
        return {"metric": self.metric, "labels": {q: QUANTITIES[q] for q in self.quantities},
                "n_boot": self.n_boot, "level": LEVEL, "reason": self.reason or None,
                "method": "bootstrap over examples (multinomial weights; a perturbed example "
                          "resampled with its original; the same draws for every run)",
                "runs": runs}


def interval(value: float, draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the finite draws, widened to contain ``value``."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return value, value
    low, high = M.percentile_interval(finite, LEVEL)
    return min(low, value), max(high, value)


def per_example(metric: M.Metric, split: ScoredSplit) -> np.ndarray | None:
    """Per-example scores whose mean is the metric, or None when it is no such mean."""
    if isinstance(metric, M.Proportion):
        return metric.outcome(split.proba, split.y).astype(float)
    if hasattr(metric, "per_example"):
        return np.asarray(metric.per_example(split.proba, split.y), dtype=float)
    return None


@dataclass(frozen=True)
class Layout:
    """The examples of the first run in one order, which every run is aligned to: the
    reference's ids, each perturbation's ids shared with the reference (and their
    positions there; ``shared``: reference examples x perturbations, 1 where shared),
    each domain's ids."""

    reference: str
    reference_ids: list[str]
    perturbations: dict[str, tuple[list[str], np.ndarray]]
    shared: np.ndarray
    domains: dict[str, list[str]]

    @classmethod
    def of(cls, entry: Entry) -> Layout:
        splits = entry.run.splits.values()
        ref = next(s for s in splits if s.kind == "reference")
        position = {ex_id: i for i, ex_id in enumerate(ref.ids)}
        perturbations = {}
        for s in splits:
            if s.kind == "perturbation":
                ids = [ex_id for ex_id in s.ids if ex_id in position]
                perturbations[s.name] = (ids, np.array([position[i] for i in ids], dtype=int))
        shared = np.zeros((len(ref.ids), len(perturbations)))
        for j, (_, pos) in enumerate(perturbations.values()):
            shared[pos, j] = 1.0
        domains = {s.name: list(s.ids) for s in splits if s.kind == "domain"}
        return cls(ref.name, list(ref.ids), perturbations, shared, domains)

    def quantities(self) -> list[str]:
        """The summary's quantities that this suite's splits define."""
        return ((["perturbation_mean", "perturbation_worst"] if self.perturbations else [])
                + (["domain_mean"] if self.domains else []))


@dataclass(frozen=True)
class Scores:
    """One run's per-example scores in the layout's order: the reference's, each
    perturbed example's change from its original (reference examples x perturbations,
    0 where a perturbation lacks the example) and each domain's."""

    reference: np.ndarray
    changes: np.ndarray
    domains: dict[str, np.ndarray]

    @classmethod
    def of(cls, entry: Entry, layout: Layout, metric: M.Metric) -> Scores | None:
        def aligned(name: str, ids: list[str]) -> np.ndarray | None:
            split = entry.run.splits[name]
            scores = per_example(metric, split)
            return None if scores is None else scores[split.rows(ids)]

        reference = aligned(layout.reference, layout.reference_ids)
        if reference is None:
            return None
        changes = np.zeros_like(layout.shared)
        for j, (name, (ids, pos)) in enumerate(layout.perturbations.items()):
            changes[pos, j] = aligned(name, ids) - reference[pos]
        return cls(reference, changes,
                   {name: aligned(name, ids) for name, ids in layout.domains.items()})

    def deltas(self, layout: Layout, weights: np.ndarray,
               domain_weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each shifted split's Δ under each row of example weights (counts): a
        perturbation's is the weighted mean change over the examples it shares."""
        reference = weights @ self.reference / weights.shape[1]
        totals = weights @ layout.shared
        perturbed = np.where(totals > 0, (weights @ self.changes) / np.maximum(totals, 1),
                             np.nan)
        found = dict(zip(layout.perturbations, perturbed.T, strict=True))
        for name, scores in self.domains.items():
            w = domain_weights[name]
            found[name] = w @ scores / w.shape[1] - reference
        return found


def _mean(columns: list[np.ndarray]) -> np.ndarray:
    """The mean over splits of each draw, over the splits where it is defined."""
    stacked = np.vstack(columns)
    finite = np.isfinite(stacked)
    count = finite.sum(axis=0)
    return np.where(count > 0, np.where(finite, stacked, 0).sum(axis=0) / np.maximum(count, 1),
                    np.nan)


def _worst(columns: list[np.ndarray], higher_is_better: bool) -> np.ndarray:
    stacked = np.vstack(columns)
    if not higher_is_better:
        stacked = -stacked
    low = np.where(np.isfinite(stacked), stacked, np.inf).min(axis=0)
    low = np.where(np.isfinite(low), low, np.nan)
    return low if higher_is_better else -low


def _summarise(deltas: dict[str, np.ndarray], layout: Layout,
               higher_is_better: bool) -> dict[str, np.ndarray]:
    perturbed = [deltas[name] for name in layout.perturbations]
    found = {}
    if perturbed:
        found["perturbation_mean"] = _mean(perturbed)
        found["perturbation_worst"] = _worst(perturbed, higher_is_better)
    if layout.domains:
        found["domain_mean"] = _mean([deltas[name] for name in layout.domains])
    return found


def robustness(entries: list[Entry], metric_name: str, n_boot: int, seed: int = 0) -> Summary:
    """Every run's summary with ``n_boot`` bootstrap draws (see the module docstring)."""
    metric = M.metric_named(metric_name)
    layout = Layout.of(entries[0])
    summary = Summary(metric_name, layout.quantities(), n_boot, len(layout.reference_ids))
    scores = {e.letter: Scores.of(e, layout, metric) for e in entries}
    if any(s is None for s in scores.values()):
        summary.quantities, summary.reason = [], (
            f"{metric_name} is not a mean of per-example scores")
        return summary
    if not summary.quantities:
        summary.reason = "the suite has no perturbation or domain split"
        return summary
    higher = metric.higher_is_better
    ones = np.ones((1, len(layout.reference_ids)))
    for run, s in scores.items():
        deltas = s.deltas(layout, ones, {n: np.ones((1, len(ids)))
                                         for n, ids in layout.domains.items()})
        summary.values[run] = {k: float(v[0]) for k, v in
                               _summarise(deltas, layout, higher).items()}
        if layout.perturbations:
            sign = 1 if higher else -1
            summary.worst_split[run] = min(layout.perturbations,
                                           key=lambda n, d=deltas: sign * float(d[n][0]))
    rng = np.random.default_rng(seed)
    sizes = [len(layout.reference_ids), *(len(ids) for ids in layout.domains.values())]
    chunks: dict[str, dict[str, list[np.ndarray]]] = {run: {} for run in scores}
    for b in M.resample_chunks(n_boot, sum(sizes)):
        weights = _counts(rng, sizes[0], b)
        domain_weights = {name: _counts(rng, len(ids), b) for name, ids in layout.domains.items()}
        for run, s in scores.items():
            for key, draws in _summarise(s.deltas(layout, weights, domain_weights), layout,
                                         higher).items():
                chunks[run].setdefault(key, []).append(draws)
    summary.draws = {run: {k: np.concatenate(v) for k, v in parts.items()}
                     for run, parts in chunks.items()}
    return summary


def _counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """``b`` bootstrap resamples of ``n`` examples as counts per example (b x n)."""
    return rng.multinomial(n, np.full(n, 1 / n), size=b).astype(float)
