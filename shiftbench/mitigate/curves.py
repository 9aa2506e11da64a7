"""Training curves for the before/after report, read from each trained model's folder:
``log.jsonl`` (a row per step, then a row per epoch; see :mod:`shiftbench.train.trainer`)
and the epoch whose weights were kept (``head.json``).

What is read is checked: a missing or garbled log is a one-line error naming the file,
never a silently empty plot.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from shiftbench.errors import ShiftbenchError

EPOCH_FIELDS = ("epoch", "loss", "val_loss", "val_accuracy")  # every epoch row has these
MAX_POINTS = 200  # per seed and step curve: longer runs are averaged over windows of steps


def training_curves(trained: dict[str, list[tuple[Path, int]]]) -> dict[str, list[dict[str, Any]]]:
    """Each model kind's curves, one record per seed (see :func:`seed_curves`);
    ``trained``: per kind, each seed's training folder and the epoch it kept."""
    return {kind: [seed_curves(folder, kept) for folder, kept in seeds]
            for kind, seeds in trained.items()}


def seed_curves(folder: Path, kept: int) -> dict[str, Any]:
    """One training's per-epoch rows, its per-step values (each logged number but the
    step, the epoch and the total loss, averaged over at most :data:`MAX_POINTS` windows)
    and the epoch whose weights it kept (read from the folder's log)."""
    from shiftbench.train.trainer import LOG

    steps, epochs = read_log(folder / LOG)
    if kept not in [row["epoch"] for row in epochs]:
        raise ShiftbenchError(f"{folder / LOG}: no row for epoch {kept!r}, the epoch whose "
                              "weights were kept")
    names = [name for name in steps[0] if name not in ("step", "epoch", "loss")] if steps else []
    return {"folder": str(folder), "kept_epoch": kept, "epochs": epochs,
            "n_steps": len(steps),
            "steps": {name: window_means([row["step"] for row in steps],
                                         [row[name] for row in steps]) for name in names}}


def read_log(path: Path) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """A training log's (step rows, epoch rows), each row checked: numbers only, a step row
    with every value the first one has, an epoch row with :data:`EPOCH_FIELDS`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShiftbenchError(f"{path}: cannot read the training log "
                              f"({getattr(exc, 'strerror', None) or exc.__class__.__name__})"
                              ) from None
    steps: list[dict[str, float]] = []
    epochs: list[dict[str, float]] = []
    for number, line in enumerate(lines, 1):
        row = _row(path, number, line)
        needed = (steps[0] if steps else row) if "step" in row else dict.fromkeys(EPOCH_FIELDS)
        missing = [name for name in needed if name not in row]
        if missing:
            raise ShiftbenchError(f"{path}: line {number}: no {', '.join(missing)}")
        (steps if "step" in row else epochs).append(row)
    if not epochs:
        raise ShiftbenchError(f"{path}: no epoch rows (with {', '.join(EPOCH_FIELDS)})")
    return steps, epochs


def _row(path: Path, number: int, line: str) -> dict[str, float]:
    """One log line: a JSON object of finite numbers, or a one-line error."""
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict):
        raise ShiftbenchError(f"{path}: line {number}: not a JSON object")
    bad = next((name for name, value in row.items()
                if isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)), None)
    if bad is not None:
        raise ShiftbenchError(f"{path}: line {number}: {bad}={row[bad]!r} is not a finite number")
    return row


def window_means(x: list[float], y: list[float]) -> dict[str, list[float]]:
    """(x, y) averaged over at most :data:`MAX_POINTS` consecutive windows of equal size
    (within one); shorter series are kept as they are."""
    import numpy as np

    windows = np.array_split(np.arange(len(x)), min(len(x), MAX_POINTS))
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return {"x": [float(xs[w].mean()) for w in windows],
            "y": [float(ys[w].mean()) for w in windows]}
