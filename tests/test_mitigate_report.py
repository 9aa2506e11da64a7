"""The before/after report of `shiftbench mitigate`, on hand-made inputs: the pooled
interval counts each example once, however many seeds saw it."""

import numpy as np
import pytest

from shiftbench.metrics import paired_delta, paired_score_interval
from shiftbench.mitigate.report import deltas, pooled_delta


def outcomes(*rows: list[int]) -> list[dict[str, bool]]:
    """One id -> correct dict per seed, ids e0, e1, ..."""
    return [{f"e{i}": bool(v) for i, v in enumerate(row)} for row in rows]


def test_identical_seeds_give_the_one_seed_interval_which_is_tangos() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(60) < 0.8
    method = np.where(rng.random(60) < 0.1, ~base, base)
    one = deltas(outcomes(base), outcomes(method))["pooled"]
    three = deltas(outcomes(base), outcomes(method, method, method))["pooled"]
    tango = paired_delta(base, method)
    assert three["n"] == one["n"] == 60
    for pooled in (one, three):  # not sqrt(3) narrower, as n x seeds pairs would be
        assert (pooled["value"], pooled["low"], pooled["high"]) == pytest.approx(
            (tango.value, tango.low, tango.high), abs=1e-9)


def test_each_example_is_averaged_over_seeds_before_pairing() -> None:
    base = outcomes([1, 1, 0, 0])
    method = outcomes([1, 0, 1, 0], [1, 1, 1, 0])  # per example: 1, 1/2, 1, 0
    pooled = pooled_delta(base, method)  # differences 0, -1/2, +1, 0
    assert pooled.value == pytest.approx(0.5 / 4) and pooled.n == 4
    assert (pooled.low, pooled.high) == pytest.approx(paired_score_interval(0.5, 1, 4))
    erm = outcomes([1, 0, 0, 0], [1, 1, 0, 1])  # per example: 1, 1/2, 0, 1/2
    versus_erm = pooled_delta(erm, method)  # differences 0, 0, +1, -1/2
    assert versus_erm.value == pytest.approx(0.5 / 4)
    assert (versus_erm.low, versus_erm.high) == pytest.approx(paired_score_interval(0.5, 1, 4))


def test_examples_pair_by_id_whatever_their_order() -> None:
    base = [{"a": True, "b": False, "c": True}]
    method = [{"c": True, "b": True, "a": True}, {"b": True, "a": False, "c": True}]
    pooled = deltas(base, method)["pooled"]  # differences: a -1/2, b +1, c 0
    assert pooled["value"] == pytest.approx(0.5 / 3) and pooled["n"] == 3


def test_the_pooled_interval_covers_where_few_examples_change() -> None:
    """Where 2% of examples change and a few more depend on the seed, the interval still
    covers the population's mean difference (a t-interval covered ~85% here)."""
    rng = np.random.default_rng(7)
    size, n, seeds = 20_000, 100, 3
    base = rng.random(size) < 0.9
    method = np.repeat(np.where(rng.random(size) < 0.02, ~base, base)[:, None], seeds, 1)
    fickle = rng.random(size) < 0.03
    method[fickle] = rng.random((int(fickle.sum()), seeds)) < 0.5
    truth = (method.mean(1) - base).mean()
    covered = 0
    for _ in range(200):
        rows = rng.integers(0, size, n)
        estimate = pooled_delta(outcomes(base[rows]), outcomes(*method[rows].T))
        covered += estimate.low <= truth <= estimate.high
    assert covered / 200 >= 0.94
