"""Model adapters: one interface over HF classifiers, encoder + probe, sklearn pipelines.

A model is named on the command line, never in a suite: ``probe``, ``probe:<encoder>``,
``hf:<dir or hub id>``, ``sklearn:tfidf``, ``sklearn:<file.skops>``, or a YAML model
file ``{adapter: NAME, ...params}``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import yaml

from shiftbench.errors import ShiftbenchError
from shiftbench.registry import MODELS
from shiftbench.split import unit_hash

if TYPE_CHECKING:
    from shiftbench.runner import Runner
    from shiftbench.split import Split


class ModelAdapter(ABC):
    """predict -> class probabilities (columns in ``classes_`` order); embed -> vectors.

    ``__init__`` only stores parameters; ``fit`` (for adapters that train on the
    suite's train split) returns self; learned state ends in ``_``.
    """

    adapter: ClassVar[str]
    classes_: list[str]

    @property
    def needs_training(self) -> bool:
        """True when ``fit`` must see the suite's train split before predicting."""
        return False

    def fit(self, train: Split, runner: Runner) -> ModelAdapter:
        return self

    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the exact model (weights, params, training data): the cache key."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        """(n, len(classes_)) probabilities."""

    @abstractmethod
    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        """(n, d) float32 vectors: the model's own representation, for drift work."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Adapter name and parameters, for the report (JSON-serialisable)."""


def digest(adapter: str, payload: dict[str, Any]) -> str:
    """A fingerprint: the adapter name + sha256 of the canonical JSON that defines the model."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{adapter}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def data_hash(texts: Sequence[str], labels: Sequence[str]) -> str:
    """sha256 of a training set (texts and labels, in order): part of a trained fingerprint."""
    blob = json.dumps([list(texts), list(labels)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def train_subset(train: Split, fraction: float, seed: int) -> Split:
    """A seeded share of the train split, chosen by a stable hash of each id.

    Models that train deterministically (logistic regression) have no seed of their own:
    retraining one "with another seed" means fitting it on another sample of its data.
    """
    if not 0 < fraction <= 1:
        raise ShiftbenchError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return train
    keep = [i for i, ex_id in enumerate(train.ids)
            if unit_hash("train-subsample", seed, ex_id) < fraction]
    return train.subset(keep)


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Turn a command-line model spec into (adapter name, parameters)."""
    path = Path(spec)
    if path.suffix in {".yaml", ".yml"}:
        if not path.is_file():
            raise ShiftbenchError(f"{spec}: model file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ShiftbenchError(f"{spec}: not valid YAML ({exc.__class__.__name__})") from exc
        if not isinstance(data, dict) or "adapter" not in data:
            raise ShiftbenchError(f"{spec}: a model file is a mapping with an 'adapter' field")
        params = dict(data)
        return str(params.pop("adapter")), params
    name, _, arg = spec.partition(":")
    return name, ({"source": arg} if arg else {})


def load_model(spec: str) -> ModelAdapter:
    """Build the adapter a spec names (no weights are loaded until first use)."""
    name, params = parse_model_spec(spec)
    cls = MODELS.load(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ShiftbenchError(f"model {spec!r}: {exc}") from exc
