"""Checks on numeric arrays handed to shiftbench (embeddings, probabilities): one place, so
every detector, embedder and stream refuses bad input with the same one-line error."""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError


def check_matrix(x: Any, name: str) -> np.ndarray:
    """A 2-D array of finite numbers (float32 kept, other numbers as float64)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ShiftbenchError(f"{name}: expected numbers, got values of type {arr.dtype}")
    if arr.ndim != 2:
        raise ShiftbenchError(f"{name}: expected a 2-D array (rows x features), got shape "
                              f"{arr.shape}")
    if arr.shape[0] == 0:
        raise ShiftbenchError(f"{name} is empty (0 rows)")
    if arr.shape[1] == 0:
        raise ShiftbenchError(f"{name} has 0 features")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ShiftbenchError(f"{name}: {int(bad.sum())} NaN or infinite values (first at row "
                              f"{row}, column {col})")
    return np.ascontiguousarray(arr)
