"""Choosing among a grid's trained models without target labels.

- ``source``: the lowest held-out source validation loss (the best epoch's, from the
  training's log): right when the target looks like the source, blind to the shift.
- ``dev``: Deep Embedded Validation (You et al. 2019, ICML): the source validation loss
  importance-weighted towards the target, with a control variate. The density ratio
  w(x) = p(target | x) / p(source | x) * n_source / n_target comes from a seeded logistic
  regression telling the base's embeddings of the source training rows from those of the
  target rows, evaluated on the held-out validation rows (which it never saw); each
  candidate's per-row losses on those rows give DEV risk = mean(w l) + eta mean(w) - eta,
  eta = -Cov(w l, w) / Var(w).

Neither uses a target label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.split import Split
    from shiftbench.train.trainer import TrainConfig, TrainResult

Score = Callable[[int, "ModelAdapter", "TrainResult"], float]
"""(seed, trained model, its training) -> selection score, lower is better."""

HOW = {"source": "the lowest held-out source validation loss (training rows held out by id)",
       "dev": "Deep Embedded Validation (You et al. 2019): the source validation loss "
              "importance-weighted towards the target by a domain classifier on the base's "
              "embeddings, with a control variate"}


def dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """DEV risk of per-row ``losses`` under importance ``weights``: mean(w l) + eta mean(w)
    - eta with eta = -Cov(w l, w) / Var(w) (0 when the weights do not vary, leaving the
    weighted mean loss)."""
    weighted = weights * losses
    variance = float(np.var(weights, ddof=1)) if len(weights) > 1 else 0.0
    eta = 0.0 if variance == 0 else -float(np.cov(weighted, weights)[0, 1]) / variance
    return float(weighted.mean() + eta * weights.mean() - eta)


def density_ratio(source: np.ndarray, target: np.ndarray, rows: np.ndarray,
                  seed: int) -> np.ndarray:
    """p(target | x) / p(source | x) * n_source / n_target at ``rows``, from a logistic
    regression fitted on ``source`` (0) vs ``target`` (1) features."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([source, target])
    y = np.concatenate([np.zeros(len(source)), np.ones(len(target))])
    classifier = LogisticRegression(max_iter=1000, random_state=seed).fit(x, y)
    p = np.clip(classifier.predict_proba(rows)[:, 1], 1e-6, 1 - 1e-6)
    return p / (1 - p) * len(source) / len(target)


def row_losses(model: ModelAdapter, rows: Split, runner: Runner) -> np.ndarray:
    """The model's cross-entropy on each labelled row."""
    from shiftbench.mitigate import score

    [scored] = score(model, [rows], runner)
    return -np.log(np.clip(scored.proba[np.arange(len(scored.y)), scored.y], 1e-12, None))


def source_score(seed: int, model: ModelAdapter, result: TrainResult) -> float:
    """The training's lowest held-out validation loss (its kept epoch's)."""
    return min(row["val_loss"] for row in result.epoch_log)


def dev_score(base: ModelAdapter, train: Split, target: Split, config: TrainConfig,
              runner: Runner) -> Score:
    """DEV risk of a seed's model on that seed's validation rows; the density ratio is
    fitted once per seed on the base's embeddings."""
    from dataclasses import replace

    from shiftbench.train.trainer import validation_rows

    cache: dict[int, tuple[Split, np.ndarray]] = {}

    def weighted_rows(seed: int) -> tuple[Split, np.ndarray]:
        if seed not in cache:
            held = validation_rows(train.ids, replace(config, seed=seed))
            validation = train.subset([k for k, h in enumerate(held) if h])
            fitted = train.subset([k for k, h in enumerate(held) if not h])
            embed = [base.embed(split.texts, runner) for split in (fitted, target, validation)]
            cache[seed] = validation, density_ratio(*embed, seed)
        return cache[seed]

    def score(seed: int, model: ModelAdapter, result: TrainResult) -> float:
        validation, weights = weighted_rows(seed)
        return dev_risk(weights, row_losses(model, validation, runner))

    return score
