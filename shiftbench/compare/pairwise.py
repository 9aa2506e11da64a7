"""Pairwise differences between compared runs, tested as the gate tests them, with Holm's
adjustment over all of them.

Every pair of runs (A, B) is compared on each split and on each summary quantity; the
difference is B − A. On a split the gate's own paired test is used
(:func:`shiftbench.gate.kinds.paired_test`: exact McNemar for a proportion such as
accuracy, a paired bootstrap for other metrics), on a summary quantity the gate's
bootstrap test (:func:`shiftbench.gate.stats.bootstrap_test`) of the summary's paired
draws. The gate's tests are one-sided; a difference in either direction matters here,
so each is run both ways and the two-sided p-value is twice the smaller one (for McNemar
that is the exact two-sided test). Holm's step-down adjustment runs over the whole
family (every split and summary quantity of every pair), so the chance that any
difference marked on the page is not real stays at most :data:`ALPHA`.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench import metrics as M
from shiftbench.split import example_seed

if TYPE_CHECKING:
    from shiftbench.compare import Entry
    from shiftbench.compare.summary import Summary

ALPHA = 0.05
LEVEL = 0.95
SEED = 0


def family_size(entries: list[Entry], quantities: list[str]) -> int:
    """How many differences are tested: per pair of runs, each split and quantity."""
    pairs = len(entries) * (len(entries) - 1) // 2
    return pairs * (len(entries[0].run.splits) + len(quantities))


def boot_size(family: int) -> int:
    """Bootstrap draws enough for a two-sided p-value (at least 2 / (1 + B)) to fall
    below Holm's smallest level, ALPHA / family; never fewer than 2,000."""
    return max(2 * M.N_BOOT, math.ceil(2 * family / ALPHA))


def two_sided(one_sided: tuple[float, float]) -> float:
    return min(1.0, 2 * min(one_sided))


def _split_difference(a: Entry, b: Entry, split: str, metric: M.Metric,
                      n_boot: int) -> dict[str, Any]:
    """B − A on one split, paired by example id, with the gate's paired test both ways."""
    from shiftbench.gate.kinds import paired_test
    from shiftbench.gate.policy import Setup, Trial

    def test(before: Entry, after: Entry):
        rng = np.random.default_rng(example_seed(SEED, f"compare:{a.letter}:{b.letter}", split))
        setup = Setup(f"Δ {metric.name}", metric.unit, ">=", 0.0)
        trial = Trial(before.run, after.run, split, setup, (1 - LEVEL) / 2, None, 0.8, n_boot,
                      rng)
        return paired_test(metric, "auto", before.run.splits[split], after.run.splits[split],
                           trial)

    forward, backward = test(a, b), test(b, a)
    return {"kind": "split", "what": split, "first": a.letter, "second": b.letter,
            "value": forward.value, "low": forward.low, "high": forward.high,
            "p_value": two_sided((forward.p_value, backward.p_value)),
            "method": f"{forward.method}, two-sided", "n": forward.n}


def _summary_difference(a: Entry, b: Entry, key: str, summary: Summary) -> dict[str, Any]:
    """B − A on one summary quantity, from the paired bootstrap draws of both."""
    from shiftbench.gate.stats import bootstrap_test

    value = summary.values[b.letter][key] - summary.values[a.letter][key]
    draws = summary.draws[b.letter][key] - summary.draws[a.letter][key]
    draws = draws[np.isfinite(draws)]
    alpha, n = (1 - LEVEL) / 2, summary.n_reference
    tests = [bootstrap_test(value, draws, 0.0, op, alpha, None, 0.8, "paired bootstrap", n)
             for op in (">=", "<=")]
    low, high = tests[0].low, tests[0].high
    return {"kind": "summary", "what": key, "first": a.letter, "second": b.letter,
            "value": value, "low": min(low, value), "high": max(high, value),
            "p_value": two_sided((tests[0].p_value, tests[1].p_value)),
            "method": "paired bootstrap over examples, two-sided", "n": n}


def compare_pairs(entries: list[Entry], metric_name: str, summary: Summary) -> list[dict]:
    """Every pair's differences with raw and Holm-adjusted p-values and whether they are
    significant after the adjustment."""
    metric = M.metric_named(metric_name)
    found = []
    for a, b in combinations(entries, 2):
        found += [_split_difference(a, b, name, metric, summary.n_boot)
                  for name in a.run.splits]
        found += [_summary_difference(a, b, key, summary) for key in summary.quantities]
    for difference, adjusted in zip(found, M.holm([d["p_value"] for d in found]), strict=True):
        difference["p_holm"] = adjusted
        difference["significant"] = adjusted <= ALPHA
    return found
