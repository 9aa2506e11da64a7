"""Texts -> vectors for drift tests and text movement: the model's own representation or
an encoder.

Every path goes through a model adapter's ``embed`` and so through the runner's cache
(the HF adapters and the encoder probe cache per text; scikit-learn's transform is
cheap and not cached), exactly like predictions: monitoring the same reference twice
embeds it once.

Choice of source (``encoder``):

- ``model``: the model under test's own representation (``ModelAdapter.embed``);
  the default when a model is given, since that is the drift the model sees;
- ``minilm``: the packaged all-MiniLM-L6-v2 (mean-pooled, L2-normalised); the default
  without a model;
- a directory (or hub id): any encoder, mean-pooled like the probe's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner

MODEL, MINILM = "model", "minilm"


class TextEmbedder:
    """Embeds texts with one adapter; ``describe`` says which, for the report."""

    def __init__(self, adapter: ModelAdapter, source: str) -> None:
        self.adapter = adapter
        self.source = source

    def __call__(self, texts: Sequence[str], runner: Runner, name: str = "texts") -> np.ndarray:
        """(len(texts), d) float32 vectors; a non-finite value is an error naming ``name``."""
        from shiftbench.arrays import check_matrix

        vectors = self.adapter.embed(list(texts), runner)
        return check_matrix(vectors, f"{name} embeddings ({self.source})")

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "adapter": self.adapter.describe()}


def text_embedder(encoder: str | None = None, model: ModelAdapter | None = None) -> TextEmbedder:
    """The embedder ``encoder`` names (see the module doc); nothing loads until first use."""
    from shiftbench.models.probe import EncoderProbe

    choice = encoder or (MODEL if model is not None else MINILM)
    if choice == MODEL:
        if model is None:
            raise ShiftbenchError("--encoder model embeds with the model under test: give --model")
        return TextEmbedder(model, f"model ({model.describe().get('adapter', 'model')})")
    if choice == MINILM:
        return TextEmbedder(EncoderProbe(), "all-MiniLM-L6-v2")
    return TextEmbedder(EncoderProbe(source=choice), f"encoder {choice}")
