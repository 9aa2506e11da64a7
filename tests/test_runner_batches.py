"""Token-budget batches (issue 15): the plan, which functions get it, and proof that the
numbers and the cache are those of the fixed-count batches the runner used before."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.models.hf import HFClassifier
from shiftbench.runner import BATCH_SIZE, BATCH_TOKENS, Runner, padding_allowed, plan_batches
from shiftbench.runtime import add_runtime_flags, runtime_options

OLD = {"batch_size": 64, "batch_tokens": 0}  # the runner before token budgets


def lengths(n: int = 500, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([rng.randint(1, 20), rng.randint(20, 300)]) for _ in range(n)]


@pytest.mark.parametrize("budget", [64, 1000, 8192])
def test_token_plan_keeps_every_text_once_longest_first_within_the_budget(budget: int) -> None:
    sizes = lengths()
    plan = plan_batches(sizes, None, budget)
    flat = [i for batch in plan for i in batch]
    assert sorted(flat) == list(range(len(sizes)))
    assert [sizes[i] for i in flat] == sorted(sizes, reverse=True)
    for batch in plan:
        longest = sizes[batch[0]]
        assert len(batch) == 1 or len(batch) * longest <= budget
        assert all(longest - sizes[i] <= padding_allowed(longest) for i in batch)
    counts = [len(batch) for batch in plan]
    assert max(counts) > 3 * min(counts)  # short texts share batches, long ones do not
    assert max(map(len, plan_batches(sizes, 5, budget))) <= 5  # batch_size still caps


def test_budget_zero_is_the_fixed_count_plan() -> None:
    sizes = lengths()
    order = sorted(range(len(sizes)), key=lambda i: sizes[i], reverse=True)
    assert plan_batches(sizes, 7, 0) == [order[i:i + 7] for i in range(0, len(order), 7)]
    assert {len(b) for b in plan_batches(sizes, None, 0)[:-1]} == {BATCH_SIZE}


class Tokens:
    """A forward-pass batch function on word counts: records its batches."""

    by_tokens = True

    def __init__(self) -> None:
        self.batches: list[int] = []

    def encode(self, texts: list[str]) -> list[list[str]]:
        return [text.split() for text in texts]

    def __call__(self, batch: list[list[str]]) -> np.ndarray:
        self.batches.append(len(batch))
        return np.array([[len(words)] for words in batch], dtype=float)


def test_only_forward_pass_functions_get_token_budgets(sentences: list[str]) -> None:
    fn = Tokens()
    out = Runner(device="cpu", batch_tokens=100, progress=False).map("ns", sentences, fn)
    np.testing.assert_array_equal(out[:, 0], [len(t.split()) for t in sentences])
    assert len(set(fn.batches)) > 1  # counts follow the lengths
    counted = Tokens()
    counted.by_tokens = False
    Runner(batch_tokens=100, batch_size=8, progress=False).map("ns", sentences, counted)
    assert set(counted.batches[:-1]) == {8}
    old = Tokens()
    Runner(device="cpu", progress=False, **OLD).map("ns", sentences, old)
    assert old.batches == [len(set(sentences))]  # 50 texts < 64: one batch, as before


@pytest.mark.parametrize("budget", [4096, 96])
def test_fp32_predictions_equal_the_old_batching(tiny_classifier_dir: Path,
                                                 sentences: list[str], budget: int | None
                                                 ) -> None:
    """The stated tolerance: max |delta p| <= 1e-5, the same argmax, for probabilities and
    mean-pooled embeddings (4096: few batches, as on a GPU; 96: many small ones)."""
    model = HFClassifier(str(tiny_classifier_dir))
    old = Runner(device="cpu", progress=False, **OLD)
    new = Runner(device="cpu", progress=False, batch_tokens=budget)
    want, got = model.predict_proba(sentences, old), model.predict_proba(sentences, new)
    assert np.abs(got - want).max() <= 1e-5
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    assert np.abs(model.embed(sentences, new) - model.embed(sentences, old)).max() <= 1e-5
    assert new.stats["batches"] > old.stats["batches"]  # 50 texts: one batch of 64


def test_padding_matches_a_row_by_row_fill(tiny_classifier_dir: Path) -> None:
    from shiftbench.backbone import Backbone

    backbone = Backbone(str(tiny_classifier_dir), "AutoModelForSequenceClassification", 64)
    batch = [[5, 6, 7, 8], [9], [10, 11]]
    pad = backbone.tokenizer.pad_token_id
    for left in (False, True):
        ids, mask = backbone.batch_fn(Runner(device="cpu"), lambda m, i: i, left).padded(batch)
        want = np.full((3, 4), pad)
        for row, tokens in enumerate(batch):
            span = slice(4 - len(tokens), 4) if left else slice(0, len(tokens))
            want[row, span] = tokens
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(mask, (want != pad).astype(int))


def test_results_cached_by_the_old_batching_are_reused(tmp_path: Path, tiny_classifier_dir: Path,
                                                       sentences: list[str]) -> None:
    model = HFClassifier(str(tiny_classifier_dir))
    old = Runner(cache_dir=tmp_path, device="cpu", progress=False, **OLD)
    want = model.predict_proba(sentences, old)
    old.close()
    new = Runner(cache_dir=tmp_path, device="cpu", progress=False, batch_tokens=4096)
    got = model.predict_proba(sentences, new)
    assert new.stats["computed"] == 0 and new.stats["cache_hits"] == len(set(sentences))
    np.testing.assert_array_equal(got, want)


def test_batch_tokens_flag() -> None:
    parser = argparse.ArgumentParser()
    add_runtime_flags(parser)
    runtime = runtime_options(parser.parse_args(["--batch-tokens", "0", "--batch-size", "8"]))
    assert (runtime.batch_tokens, runtime.batch_size) == (0, 8)
    runner = runtime.runner()
    assert (runner.batch_tokens_, runner.batch_size) == (0, 8)
    default = runtime_options(parser.parse_args([])).runner()
    assert default.batch_size is None and default.batch_tokens is None
    assert Runner(device="cpu").batch_tokens_ == BATCH_TOKENS["cpu"] > 0  # budgets: faster on CPU
    with pytest.raises(ShiftbenchError, match="--batch-tokens must be 0 or a positive"):
        runtime_options(parser.parse_args(["--batch-tokens", "-1"]))


def test_overlapped_batches_give_the_same_results_in_order(tmp_path: Path,
                                                           sentences: list[str]) -> None:
    """The background thread computes one batch ahead: commits stay in plan order, out of
    memory still halves the batch, and an error still stops the run."""
    from test_runner import Recorder, expected

    class Words(Recorder):
        by_tokens = True

        def encode(self, texts: list[str]) -> list[str]:
            return texts

    fn = Words(max_batch=4)
    runner = Runner(cache_dir=tmp_path, device="cpu", batch_tokens=10**6, batch_size=16,
                    overlap=True, progress=False)
    np.testing.assert_array_equal(runner.map("ns", sentences, fn), expected(sentences))
    assert runner.stats["oom_retries"] == 2 and max(map(len, fn.batches)) == 4
    with pytest.raises(RuntimeError, match="simulated crash"):
        Runner(device="cpu", batch_tokens=10**6, batch_size=4, overlap=True,
               progress=False).map("other", sentences, Words(fail_after=2))
    assert Runner(device="cpu").overlap_ is False
