"""Perplexity under shift: rolling log-likelihoods of whole texts, bits per byte per split
with intervals and paired changes, the bpb drift detector, and their bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shiftbench.models.rolling import RollingLM, windows
from shiftbench.runner import Runner

LONG = "the book was great and i would say the plot felt boring again. " * 6


def _runner(**kwargs) -> Runner:
    return Runner(device="cpu", progress=False, **kwargs)


def _hand_logprobs(directory: Path, text: str, context: int) -> tuple[float, int]:
    """Sum over the text's tokens of log p(token | at most ``context`` tokens before it,
    the BOS first), one forward pass per token: independent of the windowing code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    total = 0.0
    with torch.no_grad():
        for j in range(1, len(ids)):
            row = ids[max(0, j - context):j]
            total += model(torch.tensor([row])).logits[0, -1].log_softmax(-1)[ids[j]].item()
    return total, len(ids) - 1


@pytest.mark.parametrize(("n", "length", "stride"), [(0, 4, 2), (3, 4, 2), (4, 4, 4), (10, 4, 2),
                                                     (9, 4, 4), (50, 7, 3), (20, 5, 1)])
def test_windows_score_every_token_once_with_its_context_inside(n: int, length: int,
                                                                stride: int) -> None:
    spans = windows(n, length, stride)
    targets = [j for _, first, end in spans for j in range(first, end)]
    assert targets == list(range(1, n + 1))
    for start, first, end in spans:
        assert 0 <= start < first and end - 1 - start <= length
        assert first - start >= min(first, length - stride + 1)  # left context kept


def test_a_text_that_fits_one_window_is_its_exact_log_likelihood(tiny_causal_lm_dir: Path
                                                                 ) -> None:
    text = "the movie was great."
    expected, n_tokens = _hand_logprobs(tiny_causal_lm_dir, text, context=10**6)
    scores = RollingLM(str(tiny_causal_lm_dir), max_length=128).score([text], _runner())
    assert scores.tokens.tolist() == [n_tokens]
    assert scores.nats[0] == pytest.approx(expected, abs=1e-4)
    assert scores.bytes.tolist() == [20] and scores.words.tolist() == [4]


def test_long_text_windows_count_each_token_once(tiny_causal_lm_dir: Path) -> None:
    """Covered by one window: the exact sum; stride 1: each token sees exactly the
    max_length tokens before it (a sliding window), computed token by token."""
    exact, n_tokens = _hand_logprobs(tiny_causal_lm_dir, LONG, context=10**6)
    assert 16 < n_tokens < 128
    runner = _runner()
    whole = RollingLM(str(tiny_causal_lm_dir), max_length=128).score([LONG], runner)
    assert whole.nats[0] == pytest.approx(exact, abs=1e-3)
    sliding, _ = _hand_logprobs(tiny_causal_lm_dir, LONG, context=8)
    windowed = RollingLM(str(tiny_causal_lm_dir), max_length=8, stride=1).score([LONG], runner)
    assert windowed.tokens.tolist() == [n_tokens]
    assert windowed.nats[0] == pytest.approx(sliding, abs=1e-3)
    assert abs(windowed.nats[0] - exact) > 1e-2  # less context: another number


def test_scores_do_not_depend_on_batch_size_and_are_cached(tiny_causal_lm_dir: Path,
                                                           sentences: list[str],
                                                           tmp_path: Path) -> None:
    lm = RollingLM(str(tiny_causal_lm_dir), max_length=16, stride=8)
    texts = [*sentences[:12], LONG, ""]
    first = lm.score(texts, _runner(batch_size=1))
    cached = _runner(batch_size=5, cache_dir=tmp_path)
    second = lm.score(texts, cached)
    np.testing.assert_allclose(second.nats, first.nats, rtol=0, atol=1e-4)
    assert second.tokens.tolist() == first.tokens.tolist() and second.tokens[-1] == 0
    again = lm.score(texts, cached)
    assert cached.stats["computed"] == len(set(texts))
    np.testing.assert_array_equal(again.nats, second.nats)
