"""The ``augment`` method: per-example, per-epoch draws; UDA's consistency loss; each loss
falling on a tiny problem; resume through ``train_head`` equal to an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.runner import Runner
from shiftbench.split import Split
from shiftbench.train.mitigations import Augment, Batch, consistency_loss
from shiftbench.train.nets import HeadNet
from shiftbench.train.trainer import LOG, TrainConfig, fit_features, train_head

TEXTS = [f"the quick brown fox number {i} jumps over the lazy dog" for i in range(40)]
IDS = [f"id{i}" for i in range(40)]


class Interrupt(Exception):
    pass


def test_draws_repeat_per_seed_epoch_and_id_and_differ_between_epochs() -> None:
    method = Augment(shift="keyboard", severity=3, rate=1.0)
    first = method.draw(TEXTS, IDS, 0, 0)
    assert first == method.draw(TEXTS, IDS, 0, 0)
    # an example's copy depends on its id, not on its position or the other rows
    assert method.draw(TEXTS[::-1], IDS[::-1], 0, 0) == first[::-1]
    assert method.draw(TEXTS[:5], IDS[:5], 0, 0) == first[:5]
    later = method.draw(TEXTS, IDS, 0, 1)
    other_seed = method.draw(TEXTS, IDS, 1, 0)
    assert sum(a != b for a, b in zip(first, later, strict=True)) > 30
    assert sum(a != b for a, b in zip(first, other_seed, strict=True)) > 30
    assert sum(a != t for a, t in zip(first, TEXTS, strict=True)) > 30


def test_several_shifts_share_the_rows_per_example_and_epoch() -> None:
    """shift=keyboard,ocr,spelling: every copy (rate 1) is exactly the copy its one shift
    alone would have drawn for that row and epoch (a perturbation is seeded by its own
    shift), each shift takes some rows, the draw repeats, and the shares change by epoch."""
    names = ["keyboard", "ocr", "spelling"]
    mixed = Augment(shift=" keyboard, ocr,spelling", severity=3, rate=1.0)

    def owners(epoch: int) -> list[str]:
        copies = mixed.draw(TEXTS, IDS, 0, epoch)
        assert copies == mixed.draw(TEXTS, IDS, 0, epoch)
        assert mixed.draw(TEXTS[::-1], IDS[::-1], 0, epoch) == copies[::-1]
        alone = {name: Augment(shift=name, severity=3, rate=1.0).draw(TEXTS, IDS, 0, epoch)
                 for name in names}
        found = [[name for name in names if alone[name][k] == copy]
                 for k, copy in enumerate(copies)]
        assert all(found)  # each copy is one of the shifts' own
        return [match[0] for match in found if len(match) == 1]

    first, second = owners(0), owners(1)
    assert all(first.count(name) >= 5 for name in names)
    assert first != second


@pytest.mark.parametrize(("shift", "message"), [
    ("keyboard,ocrr", "augment: shift='keyboard,ocrr': unknown shift 'ocrr' (did you mean 'ocr'?)"),
    ("keyboard,,ocr", "augment: shift='keyboard,,ocr' must name one or more registered shifts"),
    ("ocr,ocr", "augment: shift='ocr,ocr' must name one or more registered shifts, "
                "comma-separated, each once"),
    ("", "augment: shift='' must name one or more"),
])
def test_bad_shift_lists_are_one_line_errors(shift: str, message: str) -> None:
    with pytest.raises(ShiftbenchError) as info:
        Augment(shift=shift).setup(HeadNet(3, 2), steps_per_epoch=1)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_suite_shift_name_draws_with_that_entrys_params() -> None:
    """shift=all-words names a suite entry (keyboard with word_rate 1.0): its copies are
    that shift's, not plain keyboard's at the same severity, and a bad name lists the
    suite's shifts."""
    named = Augment(shift="all-words", severity=1, rate=1.0)
    named.suite_shifts = {"all-words": ("keyboard", {"word_rate": 1.0})}
    plain = Augment(shift="keyboard", severity=1, rate=1.0).draw(TEXTS, IDS, 0, 0)
    heavy = named.draw(TEXTS, IDS, 0, 0)

    def words_changed(copies: list[str]) -> int:
        return sum(a != b for text, copy in zip(TEXTS, copies, strict=True)
                   for a, b in zip(text.split(), copy.split(), strict=False))

    assert words_changed(heavy) > 2 * words_changed(plain)
    named.shift = "keyboard,all-word"
    with pytest.raises(ShiftbenchError, match=r"unknown shift 'all-word'.*\(the suite's "
                                              r"shifts: all-words\)$"):
        named.shifts()
    named.shift, named.severity = "all-words", 7  # the suite's shifts only for a bad name
    with pytest.raises(ShiftbenchError, match=r"severity must be an integer 1-5, got 7$"):
        named.shifts()


def test_rate_sets_the_share_of_perturbed_copies() -> None:
    assert Augment(rate=0.0).draw(TEXTS, IDS, 0, 0) == TEXTS
    half = Augment(rate=0.5, severity=3)
    changed = [sum(a != t for a, t in zip(half.draw(TEXTS, IDS, 0, e), TEXTS, strict=True))
               for e in range(5)]
    assert 0.3 * len(TEXTS) < np.mean(changed) < 0.7 * len(TEXTS)


def test_consistency_is_zero_when_clean_and_copy_agree_and_needs_no_clean_gradient() -> None:
    clean = torch.tensor([[2.0, -1.0], [0.1, 0.0], [-3.0, 1.0]], requires_grad=True)
    same, kept = consistency_loss(clean, clean.detach().clone(), 0.0, 1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-7) and kept == 1.0
    copy = torch.zeros(3, 2, requires_grad=True)
    loss, _ = consistency_loss(clean, copy, 0.0, 0.4)
    assert float(loss.detach()) > 0
    loss.backward()
    assert clean.grad is None and copy.grad is not None
    # the confidence mask: only the first and last rows are above 0.8
    masked, kept = consistency_loss(clean, copy, 0.8, 1.0)
    unmasked, _ = consistency_loss(clean, copy, 0.0, 1.0)
    assert kept == pytest.approx(2 / 3) and 0 < float(masked.detach()) < float(unmasked.detach())


@pytest.mark.parametrize("name", ["classification", "augmented", "consistency", "contrastive"])
def test_each_loss_falls_in_a_few_steps(name: str) -> None:
    """Each named loss, minimised alone on a tiny problem (copies: the rows plus noise),
    falls (the objective of all of them together: the conformance check). Unsharpened
    (temperature 1): a sharpened clean target moves as the model grows confident."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.normal(size=(64, 4)) + np.outer(4 * y - 2, [1, 0, 0, 0])
    copies = x + rng.normal(scale=1.0, size=x.shape)
    batch = Batch(torch.tensor(x, dtype=torch.float32), torch.tensor(y),
                  torch.tensor(copies, dtype=torch.float32))
    torch.manual_seed(0)
    model = HeadNet(4, 2, hidden=8)
    method = Augment(threshold=0.0, temperature=1.0, contrastive=1.0).setup(
        model, steps_per_epoch=1)
    optimizer = torch.optim.AdamW([*model.parameters()], lr=1e-2)
    values = []
    for step in range(20):
        loss = method.process_batch(model, batch, None, step).losses[name]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        values.append(float(loss.detach()))
    assert np.mean(values[-5:]) < np.mean(values[:5])


def test_augment_refuses_missing_copies_and_bad_parameters(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(20, 3))
    y = ["a", "b"] * 10
    with pytest.raises(ShiftbenchError, match="augmented copies of the training rows"):
        fit_features(x, y, IDS[:20], tmp_path, Augment(), TrainConfig(hidden=4))
    with pytest.raises(ShiftbenchError, match="unknown shift 'keybord'"):
        Augment(shift="keybord").setup(HeadNet(3, 2), steps_per_epoch=1)
    with pytest.raises(ShiftbenchError, match="augment: parameter rate=2"):
        Augment(rate=2).setup(HeadNet(3, 2), steps_per_epoch=1)
    with pytest.raises(ShiftbenchError, match="augmented copies: 5 rows for 20"):
        fit_features(x, y, IDS[:20], tmp_path / "short", Augment(), TrainConfig(hidden=4),
                     augmented=lambda epoch: x[:5])


def test_train_head_with_augment_resumes_to_the_same_result_from_the_cache(
        tiny_encoder_dir: Path, train_split: Split, tmp_path: Path) -> None:
    """Each epoch's copies are embedded through the runner's cache: the interrupted and
    resumed run ends as the uninterrupted one, and embeds nothing new."""
    config = TrainConfig(hidden=8, max_epochs=3, patience=3)
    method = Augment(shift="keyboard", severity=3, rate=0.5, threshold=0.0, contrastive=0.5)
    runner = Runner(cache_dir=tmp_path / "cache", device="cpu", progress=False)

    def stop_after_1(row: dict[str, float]) -> None:
        if row["epoch"] == 1:
            raise Interrupt

    try:
        whole = train_head(train_split, tmp_path / "whole", runner, method, config,
                           encoder=str(tiny_encoder_dir))
        computed = runner.stats["computed"]
        with pytest.raises(Interrupt):
            train_head(train_split, tmp_path / "cut", runner, Augment(**method.get_params()),
                       config, encoder=str(tiny_encoder_dir), on_epoch_end=stop_after_1)
        resumed = train_head(train_split, tmp_path / "cut", runner,
                             Augment(**method.get_params()), config,
                             encoder=str(tiny_encoder_dir))
        assert runner.stats["computed"] == computed  # every copy came from the cache
    finally:
        runner.close()
    assert resumed.steps == whole.steps and whole.epochs == 3
    for name in ("arrays.npz", LOG):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert all({"augmented", "consistency", "contrastive", "consistency_mask"} <= set(row)
               for row in whole.steps)
    meta = json.loads((tmp_path / "whole" / "head.json").read_text())
    assert meta["method"]["method"] == "augment" and meta["method"]["shift"] == "keyboard"


def test_fine_tuning_with_augment_trains_on_tokenized_copies(
        tiny_encoder_dir: Path, train_split: Split, tmp_path: Path) -> None:
    from shiftbench.train.finetune import fine_tune

    config = TrainConfig(lr=1e-3, batch_size=32, max_epochs=1, patience=1)
    result = fine_tune(train_split, tmp_path, str(tiny_encoder_dir),
                       Augment(severity=3, rate=1.0, threshold=0.0), config)
    assert result.epochs == 1
    assert all(row["augmented"] > 0 and "consistency" in row for row in result.steps)
    assert (tmp_path / "model.yaml").is_file()
