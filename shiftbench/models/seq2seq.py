"""A Hugging Face encoder-decoder that generates text (``hf-seq2seq:<dir or hub id>``):
T5, FLAN-T5, BART, Marian and alike, through ``AutoModelForSeq2SeqLM``.

A model file sets the decoding: ``max_new_tokens``, ``num_beams`` (1: greedy) and
``prefix``, prepended to every input (T5's task prefixes, e.g. ``"summarize: "``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.backbone import Backbone, mean_pool
from shiftbench.errors import ShiftbenchError
from shiftbench.generation import GenerationSettings, generate_batches
from shiftbench.models import Count, Generator, digest

if TYPE_CHECKING:
    import torch

    from shiftbench.runner import Runner


def _encoder_mean(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean-pooled last hidden state of the encoder: the model's view of the input."""
    hidden = model.get_encoder()(**inputs).last_hidden_state
    return mean_pool(hidden, inputs["attention_mask"])


class HFSeq2Seq(Generator):
    """``AutoModelForSeq2SeqLM``: greedy (or beam) decoding of each input, after ``prefix``;
    inputs are cut to ``max_length`` tokens."""

    adapter = "hf-seq2seq"

    def __init__(self, source: str, max_new_tokens: Count = 32, num_beams: Count = 1,
                 prefix: str = "", max_length: Count = 512) -> None:
        self.source = source
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.prefix = prefix
        self.max_length = max_length
        self._backbone = Backbone(source, "AutoModelForSeq2SeqLM", max_length)

    @property
    def settings(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.num_beams)

    def _check_encoder_decoder(self) -> None:
        if not getattr(self._backbone.config, "is_encoder_decoder", False):
            kind = getattr(self._backbone.config, "model_type", "?")
            raise ShiftbenchError(f"model {self.source}: a {kind} model is not an "
                                  "encoder-decoder; hf-seq2seq needs one (T5, BART, Marian, ...)")

    def fingerprint(self) -> str:
        self._check_encoder_decoder()
        return digest(self.adapter, {"files": self._backbone.files_hash, "prefix": self.prefix,
                                     "max_length": self.max_length, **self.settings.to_dict()})

    def generate(self, texts: Sequence[str], runner: Runner) -> list[str]:
        return generate_batches(self._backbone, [self.prefix + text for text in texts],
                                self.settings, runner, self.fingerprint())

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        return self._backbone.embed(texts, runner, self.fingerprint(), _encoder_mean)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "source": self.source, "prefix": self.prefix,
                "max_length": self.max_length, **self.settings.to_dict()}
