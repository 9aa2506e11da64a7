"""Bootstrap draws of a metric or a difference of metrics, for the gate's tests.

A metric is its statistic (:meth:`shiftbench.metrics.Resampled.stat`): a function of a
(B, n) matrix of row indices -> B values, the same one its reported interval resamples;
its point value is the same function at the identity resample.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from shiftbench import metrics as M
from shiftbench.metrics import Stat


def _indices(rng: np.random.Generator, n: int, n_boot: int) -> Iterator[np.ndarray]:
    for size in M.resample_chunks(n_boot, n):
        yield rng.integers(0, n, size=(size, n))


def point_value(stat: Stat, n: int) -> float:
    return float(stat(np.arange(n)[None, :])[0])


def one_sample_draws(stat: Stat, n: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    return np.concatenate([stat(idx) for idx in _indices(rng, n, n_boot)])


def paired_draws(before: Stat, after: Stat, n: int, rng: np.random.Generator,
                 n_boot: int) -> np.ndarray:
    """Bootstrap of after - before, resampling pairs (the same rows on both sides)."""
    return np.concatenate([after(idx) - before(idx) for idx in _indices(rng, n, n_boot)])


def unpaired_draws(before: Stat, n_before: int, after: Stat, n_after: int,
                   rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap of after - before, resampling each side on its own (different examples)."""
    return (np.concatenate([after(idx) for idx in _indices(rng, n_after, n_boot)])
            - np.concatenate([before(idx) for idx in _indices(rng, n_before, n_boot)]))
