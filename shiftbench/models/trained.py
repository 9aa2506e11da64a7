"""A head trained by :mod:`shiftbench.train` on a frozen encoder (``trained:<folder>``,
or the ``model.yaml`` the trainer writes into that folder).

The folder is a saved folder (:func:`~shiftbench.cache.write_saved`): ``head.json``
(classes, encoder, how it was trained) + ``arrays.npz`` (the layers' weights), checked
against their checksums when read; nothing is unpickled and torch is not needed to
predict. Embeddings come from the encoder through the runner, so they are cached and
shared with the probe on the same encoder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.cache import array_checksum, read_saved, write_saved
from shiftbench.models import ModelAdapter, digest
from shiftbench.models.embed import MINILM, TextEmbedder, text_embedder

if TYPE_CHECKING:
    from shiftbench.runner import Runner

HEAD_JSON = "head.json"
HEAD_FIELDS = {"classes": list, "encoder": str, "hidden": int, "method": dict,
               "training": dict}
OUTPUT_LAYER = {"weight": 2, "bias": 1}
HIDDEN_LAYER = {"hidden_weight": 2, "hidden_bias": 1}


def write_head(folder: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Save a trained head (fields :data:`HEAD_FIELDS`; the hidden layer's arrays when
    ``meta["hidden"]`` > 0) and the ``model.yaml`` that loads it."""
    write_saved(folder, HEAD_JSON, meta, arrays)
    (folder / "model.yaml").write_text(
        f"adapter: trained\nsource: {json.dumps(str(folder.resolve()))}\n", encoding="utf-8")


def read_head(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A trained head's (meta, arrays), every field, array and checksum checked."""
    try:  # which arrays to expect; read_saved names any problem with the file itself
        hidden = json.loads((folder / HEAD_JSON).read_text(encoding="utf-8")).get("hidden")
    except (OSError, ValueError, AttributeError):
        hidden = 0
    arrays = {**HIDDEN_LAYER, **OUTPUT_LAYER} if hidden else OUTPUT_LAYER
    return read_saved(folder, HEAD_JSON, "trained model", HEAD_FIELDS, arrays)


class TrainedHead(ModelAdapter):
    """A linear or one-hidden-layer head saved by the trainer, over its frozen encoder.
    ``embed`` gives the head's own representation (the hidden layer; the encoder's
    vectors for a linear head): the features a domain-adversarial method made invariant."""

    adapter = "trained"

    def __init__(self, source: str) -> None:
        self.source = source

    @cached_property
    def _saved(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return read_head(Path(self.source))

    @cached_property
    def _encoder(self) -> TextEmbedder:
        encoder = self._saved[0]["encoder"]
        return text_embedder(encoder)

    def _read_classes(self) -> list[str]:
        return [str(c) for c in self._saved[0]["classes"]]

    def fingerprint(self) -> str:
        meta, arrays = self._saved
        return digest(self.adapter, {"encoder": self._encoder.adapter.fingerprint(), "meta": meta,
                                     "arrays": {k: array_checksum(v) for k, v in arrays.items()}})

    def _representation(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        vectors = self._encoder(texts, runner).astype(np.float64)
        arrays = self._saved[1]
        if "hidden_weight" not in arrays:
            return vectors
        return np.maximum(vectors @ arrays["hidden_weight"].T + arrays["hidden_bias"], 0.0)

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        from scipy.special import softmax

        arrays = self._saved[1]
        scores = self._representation(texts, runner) @ arrays["weight"].T + arrays["bias"]
        return softmax(scores, axis=1)

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        return self._representation(texts, runner).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "source": self.source}


def encoder_name(encoder: str | None) -> str:
    """What a head records as its encoder: ``minilm`` or an absolute local directory
    (a hub id as given), so the model folder loads from any working directory."""
    if encoder is None or encoder == MINILM:
        return MINILM
    path = Path(encoder).expanduser()
    return str(path.resolve()) if path.is_dir() else encoder
