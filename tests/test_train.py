"""The trainer and the training methods: gradient reversal, the ramp, resume equal to an
uninterrupted run, DANN's discriminator pushed toward chance, and the clear errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models import load_model
from shiftbench.runner import Runner
from shiftbench.split import Split
from shiftbench.train.mitigations import DANN, ERM, Mitigation, ramp
from shiftbench.train.nets import reverse_gradient
from shiftbench.train.trainer import (
    CHECKPOINT,
    LOG,
    TrainConfig,
    fit_features,
    print_epoch,
    train_head,
)


def two_domains(n: int = 200, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Source rows whose class is feature 0's sign, and unlabelled target rows moved 3 along
    feature 1: a head can drop feature 1, so domain invariance costs no accuracy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)) + np.outer(4 * y - 2, [1, 0, 0, 0])
    target = rng.normal(size=(n, 4)) + np.outer(4 * rng.integers(0, 2, n) - 2, [1, 0, 0, 0])
    target[:, 1] += 3
    return x, [["neg", "pos"][v] for v in y], target


IDS = [f"r{i}" for i in range(200)]
SMALL = TrainConfig(hidden=16, lr=3e-3, max_epochs=6, patience=6)


class Interrupt(Exception):
    pass


def stop_after(epoch: int):
    def callback(row: dict[str, float]) -> None:
        if row["epoch"] == epoch:
            raise Interrupt

    return callback


def test_reversal_flips_and_scales_the_gradient() -> None:
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    out = reverse_gradient(x, 0.7)
    assert torch.equal(out, x)
    (out * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)


def test_the_reversal_coefficient_ramps_from_lo_toward_hi() -> None:
    values = [ramp(i, 100, 0.1, 1.0, 10.0) for i in range(101)]
    assert values[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    # 2(hi-lo)/(1+e^-10) - (hi-lo) + lo at the end: within 1e-4 of hi
    assert values[-1] == pytest.approx(2 * 0.9 / (1 + math.exp(-10)) - 0.9 + 0.1)
    assert 1.0 - values[-1] < 1e-4
    assert ramp(250, 100, 0.1, 1.0, 10.0) == values[-1]  # after the ramp it stays put


def test_dann_ramps_over_ramp_epochs_whatever_max_epochs(tmp_path: Path) -> None:
    """lambda reaches ~hi after ramp_epochs (2 here) and stays there, and the first
    epochs' steps are the same whether training may run 4 epochs or 12: early stopping
    cannot leave the reversal weak."""
    x, y, target = two_domains()
    runs = [fit_features(x, y, IDS, tmp_path / str(n), DANN(ramp_epochs=2.0),
                         TrainConfig(hidden=16, lr=3e-3, max_epochs=n, patience=n), target)
            for n in (4, 12)]
    short, long = (run.steps for run in runs)
    assert long[:len(short)] == short
    steps_per_epoch = len(short) // 4
    lambdas = [row["lambda"] for row in long]
    assert lambdas[steps_per_epoch] < 0.99  # still ramping after one epoch
    assert all(1.0 - v < 1e-4 for v in lambdas[2 * steps_per_epoch:])


@pytest.mark.parametrize("method", [ERM(), DANN()], ids=["erm", "dann"])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(
        method: Mitigation, tmp_path: Path) -> None:
    x, y, target = two_domains()
    whole = fit_features(x, y, IDS, tmp_path / "whole", method, SMALL, target)
    with pytest.raises(Interrupt):
        fit_features(x, y, IDS, tmp_path / "cut", type(method)(), SMALL, target, stop_after(2))
    assert (tmp_path / "cut" / CHECKPOINT).is_file()
    assert not (tmp_path / "cut" / "head.json").exists()
    resumed = fit_features(x, y, IDS, tmp_path / "cut", type(method)(), SMALL, target)
    assert resumed.steps == whole.steps and resumed.epoch_log == whole.epoch_log
    for name in ("arrays.npz", LOG):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "whole" / LOG).read_text().splitlines()]
    assert len(rows) == len(whole.steps) + whole.epochs


def test_a_finished_training_resumes_to_nothing_and_other_settings_are_refused(
        tmp_path: Path) -> None:
    x, y, target = two_domains()
    first = fit_features(x, y, IDS, tmp_path, ERM(), SMALL)
    again = fit_features(x, y, IDS, tmp_path, ERM(), SMALL, on_epoch_end=stop_after(1))
    assert again.steps == first.steps  # no epoch ran (the callback would have raised)
    with pytest.raises(ShiftbenchError, match="checkpoint of another training"):
        fit_features(x, y, IDS, tmp_path, ERM(), TrainConfig(hidden=16, lr=1e-2, max_epochs=6))


def test_dann_pushes_the_discriminator_toward_chance(tmp_path: Path) -> None:
    """With reversal (hi=1) the discriminator's accuracy late in training is near 0.5; with
    the reversal off (hi=0) the same discriminator separates the domains (~0.9)."""
    x, y, target = two_domains()
    config = TrainConfig(hidden=16, lr=3e-3, max_epochs=40, patience=40)

    def late_accuracy(method: DANN, folder: Path) -> tuple[float, float]:
        result = fit_features(x, y, IDS, folder, method, config, target)
        accuracy = [row["domain_accuracy"] for row in result.steps]
        return float(np.mean(accuracy[-len(accuracy) // 5:])), result.epoch_log[-1]["val_accuracy"]

    off, _ = late_accuracy(DANN(hi=0.0), tmp_path / "off")
    on, val_accuracy = late_accuracy(DANN(), tmp_path / "on")
    assert off > 0.85
    assert on < 0.65 and off - on > 0.2
    assert val_accuracy > 0.95  # invariance cost no accuracy here


def test_dann_logs_lambda_and_discriminator_accuracy_every_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y, target = two_domains()
    result = fit_features(x, y, IDS, tmp_path, DANN(), SMALL, target, print_epoch)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == SMALL.max_epochs
    assert re.fullmatch(r"shiftbench: epoch 1: loss \S+, classification \S+, domain \S+, "
                        r"lambda \S+, domain_accuracy \S+, val_loss \S+, val_accuracy \S+",
                        lines[0])
    assert all({"loss", "classification", "domain", "lambda", "domain_accuracy"} <= set(row)
               for row in result.steps)
    lambdas = [row["lambda"] for row in result.steps]
    assert lambdas[0] == 0.0 and lambdas == sorted(lambdas)


@pytest.mark.parametrize(("method", "config", "target", "message"), [
    (DANN(), SMALL, False, "dann trains on unlabelled rows of the target domain; give a target"),
    (DANN(), TrainConfig(hidden=0), True, "dann: a linear head on frozen embeddings has no "
                                          "representation"),
    (ERM(), TrainConfig(lr=1e30, max_epochs=2), False, "lower the learning rate (lr=1e+30)"),
    (ERM(), TrainConfig(val_fraction=0.999), False, "leaves no validation or no training rows"),
    (DANN(dropout=1.0), SMALL, True, "dann: parameter dropout=1.0 is out of range"),
    (DANN(penalty=-1.0), SMALL, True, "dann: parameter penalty=-1.0 is out of range"),
    (DANN(ramp_epochs=0.0), SMALL, True, "dann: parameter ramp_epochs=0.0 is out of range"),
])
def test_bad_training_input_is_one_line(method: Mitigation, config: TrainConfig, target: bool,
                                        message: str, tmp_path: Path) -> None:
    x, y, target_x = two_domains()
    with pytest.raises(ShiftbenchError, match=r"^[^\n]*$") as info:
        fit_features(x, y, IDS, tmp_path, method, config, target_x if target else None)
    assert message in str(info.value)


def test_a_diverging_loss_names_its_step(tmp_path: Path) -> None:
    x, y, _ = two_domains()
    with pytest.raises(ShiftbenchError, match=r"training diverged: the loss is \S+ at step \d+"):
        fit_features(x, y, IDS, tmp_path, ERM(), TrainConfig(lr=1e30, max_epochs=2))


def test_out_of_range_parameters_are_refused() -> None:
    with pytest.raises(ShiftbenchError, match="training parameter lr=0"):
        TrainConfig(lr=0)


def test_precision_resolves_as_for_inference(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """auto is fp32 on CPU (recorded in the model folder); on CUDA bf16 where supported,
    else fp16; half precision on CPU and unknown names are one-line errors before any work."""
    from shiftbench.device import resolve_precision

    x, y, _ = two_domains()
    config = TrainConfig(hidden=16, max_epochs=1)
    assert config.precision == "auto"
    fit_features(x, y, IDS, tmp_path, ERM(), config)
    assert json.loads((tmp_path / "head.json").read_text())["training"]["precision"] == "fp32"
    for supported, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert resolve_precision("auto", "cuda") == expected
    for precision, message in (("fp16", "precision fp16: needs a CUDA device; device is cpu"),
                               ("bf16", "precision bf16: needs a CUDA device; device is cpu"),
                               ("fp8", "training parameter precision='fp8': use auto, fp32")):
        with pytest.raises(ShiftbenchError, match=r"^[^\n]*$") as info:
            TrainConfig(precision=precision)
        assert message in str(info.value)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_autocasts_keeps_fp32_weights_and_resumes_exactly(
        precision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path's mechanics, run on CPU (whose autocast takes bf16 and fp16) by
    resolving the precision to half: the forward pass is autocast (the losses differ from
    fp32's), the weights and the optimiser's state stay fp32, the loss falls, and with
    fp16 the GradScaler's state is checkpointed and restored, so an interrupted run
    resumes to the uninterrupted one (its growth tracker counting every step)."""
    import shiftbench.train.trainer as trainer

    x, y, target = two_domains()
    config = TrainConfig(hidden=16, lr=3e-3, max_epochs=4, patience=4)
    fp32 = fit_features(x, y, IDS, tmp_path / "fp32", DANN(), config, target)
    monkeypatch.setattr(trainer, "resolve_precision", lambda wanted, device: precision)
    whole = fit_features(x, y, IDS, tmp_path / "whole", DANN(), config, target)
    with pytest.raises(Interrupt):
        fit_features(x, y, IDS, tmp_path / "cut", DANN(), config, target, stop_after(2))
    resumed = fit_features(x, y, IDS, tmp_path / "cut", DANN(), config, target)
    assert resumed.steps == whole.steps and whole.steps != fp32.steps
    loss = [row["classification"] for row in whole.steps]
    assert np.mean(loss[-5:]) < np.mean(loss[:5]) - 0.1
    states = [torch.load(tmp_path / name / CHECKPOINT, weights_only=True)
              for name in ("whole", "cut")]
    assert states[0]["scaler"] == states[1]["scaler"]
    if precision == "fp16":
        assert states[0]["scaler"]["_growth_tracker"] == len(whole.steps)
    assert all(v.dtype == torch.float32 for v in states[0]["model"].values())
    moments = states[0]["optimizer"]["state"].values()
    assert all(m["exp_avg"].dtype == torch.float32 for m in moments)
    arrays = np.load(tmp_path / "whole" / "arrays.npz")
    assert all(arrays[name].dtype == np.float32 for name in arrays.files)


def test_a_trained_head_runs_as_a_model(tiny_encoder_dir: Path, train_split: Split,
                                        tmp_path: Path) -> None:
    """train_head embeds through the runner's cache and writes a model.yaml that loads as
    any model; its predictions are the trained head's."""
    runner = Runner(cache_dir=tmp_path / "cache", device="cpu", progress=False)
    try:
        result = train_head(train_split, tmp_path / "model", runner, ERM(),
                            TrainConfig(hidden=8, max_epochs=4, patience=4),
                            encoder=str(tiny_encoder_dir))
        computed = runner.stats["computed"]
        model = load_model(str(result.folder / "model.yaml"))
        proba = model.predict_proba(train_split.texts, runner)
        assert runner.stats["computed"] == computed  # the embeddings came from the cache
    finally:
        runner.close()
    assert model.classes_ == ["negative", "positive"]
    assert proba.shape == (len(train_split), 2)
    meta = json.loads((result.folder / "head.json").read_text())
    assert meta["method"] == {"method": "erm"} and meta["encoder"] == str(tiny_encoder_dir)
    assert meta["training"]["n_train"] + meta["training"]["n_validation"] == len(train_split)


def test_shiftbench_run_loads_the_trained_model_yaml(tiny_trained_dir: Path,
                                                     tmp_path: Path) -> None:
    import yaml

    from shiftbench.cli import main

    rows = [{"id": f"ex{i}", "text": f"the movie was {['awful', 'great'][i % 2]}",
             "label": ["negative", "positive"][i % 2], "topic": "a" if i < 30 else "b"}
            for i in range(40)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = {"name": "tiny", "data": {"kind": "jsonl", "path": "data.jsonl"},
             "reference": {"filters": [{"column": "topic", "equals": "a"}]},
             "shifts": [{"name": "b", "filters": [{"column": "topic", "equals": "b"}]}]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(suite))
    code = main(["run", str(tmp_path / "tiny.yaml"), "--model",
                 str(tiny_trained_dir / "model.yaml"), "--reports-dir", str(tmp_path / "reports"),
                 "--no-progress", "--no-movement"])
    assert code == 0
    (report,) = (tmp_path / "reports" / "tiny").glob("*/report.json")
    assert '"adapter": "trained"' in report.read_text()


def test_fine_tuning_resumes_to_the_same_weights_and_runs_as_an_hf_model(
        tiny_encoder_dir: Path, train_split: Split, tmp_path: Path) -> None:
    """End-to-end fine-tuning of a tiny BERT (DANN, the target: the train split's texts
    reversed word by word): interrupted after epoch 1 and resumed, it ends with the same
    weights as an uninterrupted run; its model.yaml loads as an hf model."""
    from shiftbench.train.finetune import fine_tune

    target = Split("target", train_split.ids,
                   [" ".join(t.split()[::-1]) for t in train_split.texts], None)
    config = TrainConfig(lr=1e-3, batch_size=32, max_epochs=2, patience=2)
    source = str(tiny_encoder_dir)
    whole = fine_tune(train_split, tmp_path / "whole", source, DANN(), config, target)
    with pytest.raises(Interrupt):
        fine_tune(train_split, tmp_path / "cut", source, DANN(), config, target,
                  on_epoch_end=stop_after(1))
    resumed = fine_tune(train_split, tmp_path / "cut", source, DANN(), config, target)
    assert resumed.steps == whole.steps and whole.epochs == 2
    assert all("domain_accuracy" in row for row in whole.steps)
    weights = "model/model.safetensors"
    assert (tmp_path / "cut" / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes()
    model = load_model(str(tmp_path / "whole" / "model.yaml"))
    runner = Runner(device="cpu", progress=False)
    try:
        proba = model.predict_proba(train_split.texts[:5], runner)
    finally:
        runner.close()
    assert model.classes_ == ["negative", "positive"] and proba.shape == (5, 2)


def test_fine_tuning_a_bare_encoder_logs_no_load_report_and_restores_logging(
        tiny_encoder_dir: Path, train_split: Split, tmp_path: Path) -> None:
    """The new head is expected (mitigate's report says the base has none): transformers'
    load report listing it is not logged for every seed, and its verbosity is restored."""
    import io
    import logging

    from transformers.utils import logging as hf_logging

    from shiftbench.train.finetune import fine_tune

    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    hf_logging.get_logger().addHandler(handler)  # transformers' root logger
    before = hf_logging.get_verbosity()
    try:
        fine_tune(train_split, tmp_path / "m", str(tiny_encoder_dir), ERM(),
                  TrainConfig(lr=1e-3, batch_size=32, max_epochs=1, patience=1))
    finally:
        hf_logging.get_logger().removeHandler(handler)
    assert "classifier.weight" not in logged.getvalue()
    assert hf_logging.get_verbosity() == before


def test_features_labels_and_ids_must_match(tmp_path: Path) -> None:
    x, y, _ = two_domains()
    with pytest.raises(ShiftbenchError, match="200 rows, 199 labels and 200 ids"):
        fit_features(x, y[:-1], IDS, tmp_path, ERM(), SMALL)


def test_an_edited_trained_head_is_refused(tiny_trained_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(tiny_trained_dir, folder)
    head = folder / "head.json"
    head.write_text(head.read_text().replace('"positive"', '"upbeat"'))
    model = load_model(f"trained:{folder}")
    with pytest.raises(ShiftbenchError, match="head.json: the content does not match its checksum"):
        model.fingerprint()
