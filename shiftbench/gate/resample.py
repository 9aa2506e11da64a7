"""Bootstrap draws of a metric or a difference of metrics, for the gate's tests.

A metric is its statistic (:meth:`shiftbench.metrics.Resampled.stat`): a function of a
(B, n) matrix of row indices -> B values, the same one its reported interval resamples;
its point value is the same function at the identity resample.
"""

from __future__ import annotations

import numpy as np

from shiftbench import metrics as M
from shiftbench.metrics import Stat


def point_value(stat: Stat, n: int) -> float:
    return float(stat(np.arange(n)[None, :])[0])


def one_sample_draws(stat: Stat, n: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    return np.concatenate([stat(idx) for idx in M.bootstrap_indices(rng, n, n_boot)])
