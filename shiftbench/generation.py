"""Text generation through the runner: one loop for every Hugging Face model that
generates (encoder-decoder models such as T5, BART or Marian, and decoder-only causal LMs).

Texts go through :meth:`~shiftbench.runner.Runner.map` with the :data:`TEXTS` codec: each
distinct input once, cached under the model's fingerprint and the decoding settings,
longest first, a batch that runs out of CUDA memory retried in halves. Decoding is
deterministic (greedy, or beam search with ``num_beams`` > 1; never sampling) with one
bound, ``max_new_tokens``, for every text, so an output depends on its input and the
model only, not on which texts share its batch (fp32 on CPU gives identical outputs at
any batch size). A decoder-only model is padded on the left, so every row's prompt ends
where generation starts, and only its new tokens are decoded. Other decoding settings
(e.g. ``no_repeat_ngram_size``) come from the model's own ``generation_config``.

A ``prompt`` (the text before and after each input) is cut inside the input: a long
input loses its end, never the prompt's cue that follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.backbone import Backbone, longest_prefix
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    import torch

    from shiftbench.runner import Runner


@dataclass(frozen=True)
class GenerationSettings:
    """How texts are decoded: part of every cached output's key."""

    max_new_tokens: int = 32
    num_beams: int = 1

    @property
    def key(self) -> str:
        return f"new{self.max_new_tokens}-beams{self.num_beams}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Generations:
    """The runner's batch function: token ids in, generated texts out (the model loads
    only when a batch needs it, so a fully cached run never loads weights)."""

    def __init__(self, backbone: Backbone, settings: GenerationSettings, runner: Runner,
                 prompt: tuple[str, str] = ("", "")) -> None:
        self.backbone = backbone
        self.settings = settings
        self.runner = runner
        self.prompt = prompt

    @cached_property
    def decoder_only(self) -> bool:
        return not getattr(self.backbone.config, "is_encoder_decoder", False)

    @cached_property
    def tokens(self) -> Any:
        return self.backbone.batch_fn(self.runner, self._generate, left=self.decoder_only)

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.prompt != ("", ""):
            texts = [self.filled(text) for text in texts]
        return self.tokens.encode(texts)

    def filled(self, text: str) -> str:
        """The prompt around ``text``, whose end is cut until the whole fits max_length."""
        before, after = self.prompt
        tokenizer, limit = self.backbone.tokenizer, self.backbone.max_length_

        def fits(part: str) -> bool:
            return len(tokenizer(before + part + after, verbose=False)["input_ids"]) <= limit

        if not fits(""):
            raise ShiftbenchError(f"{self.backbone.source}: max_length {limit} cannot hold the "
                                  "prompt without any text")
        return before + longest_prefix(text, fits) + after

    def __call__(self, batch: list[list[int]]) -> list[str]:
        ids = self.tokens(batch).astype(np.int64)  # token ids, exact as floats (< 2**24)
        decoded = self.backbone.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [text.strip() for text in decoded]

    def _generate(self, net: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """New token ids per row (an encoder-decoder's start token is special, so decoding
        drops it; a decoder-only model's prompt is cut off here)."""
        tokenizer = self.backbone.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
            tokenizer.eos_token_id
        out = net.generate(**inputs, max_new_tokens=self.settings.max_new_tokens,
                           num_beams=self.settings.num_beams, do_sample=False,
                           pad_token_id=pad)
        return out[:, inputs["input_ids"].shape[1]:] if self.decoder_only else out


def generate_batches(backbone: Backbone, texts: Sequence[str], settings: GenerationSettings,
                     runner: Runner, fingerprint: str,
                     prompt: tuple[str, str] = ("", "")) -> list[str]:
    """One generated text per input, in order, through the runner's cache (keyed by the
    model's ``fingerprint``, which must cover ``prompt``, the runner's precision and
    ``settings``); each input goes between the two parts of ``prompt``."""
    from shiftbench.runner import TEXTS

    namespace = f"{fingerprint}/{runner.precision_}/generate-{settings.key}"
    return runner.map(namespace, texts, Generations(backbone, settings, runner, prompt),
                      "generate", codec=TEXTS)
