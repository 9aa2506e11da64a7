"""A scikit-learn text pipeline: ``sklearn:tfidf`` (trained here) or ``sklearn:<file.skops>``.

``tfidf`` fits TF-IDF (word 1-2 grams, sublinear tf) + ``LogisticRegression(C)`` on the
suite's train split. A ``.skops`` file is a pipeline trained elsewhere; it is loaded with
skops' default trusted types only: a file that needs any other type is refused with
the list of types, never trusted automatically (a skops file can name any callable).

``embed`` is the pipeline's transform before its final step, densified (for TF-IDF:
``max_features`` columns). It is cheap to recompute and too wide to be worth caching,
so unlike ``predict_proba`` it does not go through the runner's cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
    from shiftbench.runner import Runner
    from shiftbench.split import Split


class SklearnPipeline(ModelAdapter):
    """Any fitted scikit-learn classifier over raw texts that has ``predict_proba``."""

    adapter = "sklearn"

    def __init__(self, source: str = "tfidf", C: Positive = 1.0,
                 max_features: Count | None = 20_000, min_df: Count = 1,
                 train_fraction: Fraction = 1.0, seed: int = 0) -> None:
        self.source = source
        self.C = C
        self.max_features = max_features
        self.min_df = min_df
        self.train_fraction = train_fraction
        self.seed = seed

    @property
    def needs_training(self) -> bool:
        return self.source == "tfidf"

    @cached_property
    def _file(self) -> Path:
        path = Path(self.source).expanduser()
        if path.suffix != ".skops":
            raise ShiftbenchError(f"sklearn model {self.source!r}: use 'tfidf' or a .skops file")
        if not path.is_file():
            raise ShiftbenchError(f"{self.source}: skops file not found")
        return path

    @cached_property
    def _file_hash(self) -> str:
        return hashlib.sha256(self._file.read_bytes()).hexdigest()

    def _read_classes(self) -> list[str]:
        if self.needs_training:
            return super()._read_classes()
        return [str(c) for c in self._fitted().classes_]

    def fingerprint(self) -> str:
        if not self.needs_training:
            return digest(self.adapter, {"file": self._file_hash})
        return digest(self.adapter, {"source": "tfidf", "C": self.C, "ngrams": [1, 2],
                                     "max_features": self.max_features, "min_df": self.min_df,
                                     "train": getattr(self, "train_hash_", None)})

    def fit(self, train: Split, runner: Runner) -> SklearnPipeline:
        """Train the TF-IDF pipeline; a pipeline loaded from a file is used as it is."""
        if not self.needs_training:
            return self
        train = train_subset(train, self.train_fraction, self.seed)
        if train.labels is None or len(set(train.labels)) < 2:
            raise ShiftbenchError(f"split {train.name!r}: sklearn:tfidf trains on labels of at "
                                  "least two classes")
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                     max_features=self.max_features, min_df=self.min_df)
        pipeline = make_pipeline(vectorizer, LogisticRegression(C=self.C, max_iter=1000))
        try:
            self.pipeline_ = pipeline.fit(list(train.texts), list(train.labels))
        except ValueError as exc:  # a parameter scikit-learn refuses, or none left by min_df
            raise ShiftbenchError(f"sklearn:tfidf: cannot fit on split {train.name!r}: "
                                  f"{str(exc).splitlines()[0]}") from None
        self.classes_ = self.pipeline_.classes_
        self.train_hash_ = data_hash(train.texts, train.labels)
        return self

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        pipeline = self._fitted()
        if not hasattr(pipeline, "predict_proba"):
            raise ShiftbenchError(f"{self.source}: the model has no predict_proba (wrap the "
                                  "classifier in CalibratedClassifierCV)")
        out = runner.map(f"{self.fingerprint()}/proba", texts,
                         lambda batch: pipeline.predict_proba(list(batch)), desc="predict")
        return out.reshape(len(texts), len(self.classes_))

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        from sklearn.pipeline import Pipeline

        pipeline = self._fitted()
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
            raise ShiftbenchError(f"{self.source}: embed needs a Pipeline with a transform "
                                  "before the classifier")
        features = pipeline[:-1].transform(list(texts))
        dense = features.toarray() if hasattr(features, "toarray") else np.asarray(features)
        return dense.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        if not self.needs_training:
            return {"adapter": self.adapter, "source": self.source}
        subsample = ({"train_fraction": self.train_fraction, "seed": self.seed}
                     if self.train_fraction < 1 else {})
        return {"adapter": self.adapter, "source": "tfidf", "C": self.C,
                "max_features": self.max_features, "min_df": self.min_df, **subsample}

    def _fitted(self) -> Any:
        if self.needs_training:
            if not hasattr(self, "pipeline_"):
                raise ShiftbenchError("sklearn:tfidf: not trained; it needs fit() on a labelled "
                                      "train split before it can predict")
            return self.pipeline_
        if not hasattr(self, "pipeline_"):
            self.pipeline_ = load_skops(self._file)
        return self.pipeline_


def load_skops(path: Path) -> Any:
    """Load a skops file whose types are all in skops' default trusted set."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
        model = None if untrusted else sio.load(path)
    except Exception as exc:
        raise ShiftbenchError(f"{path}: not a readable skops file ({exc.__class__.__name__})") \
            from None
    if untrusted:
        raise ShiftbenchError(f"{path}: refusing to load types skops does not trust: "
                              f"{', '.join(untrusted)}")
    return model
