"""Model adapters: one interface over HF classifiers, encoder + probe, sklearn pipelines,
and generators (:class:`Generator`, e.g. ``hf-seq2seq``).

A model is named on the command line, never in a suite: ``probe``, ``probe:<encoder>``,
``hf:<dir or hub id>``, ``sklearn:tfidf``, ``sklearn:<file.skops>``,
``hf-seq2seq:<dir or hub id>``, or a YAML model file ``{adapter: NAME, ...params}``.

An adapter's ``__init__`` signature is its parameter schema: :func:`adapter_params` checks
names, strict types and the ranges of the annotations below (``C: Positive``) before the
adapter is built, for built-in and plug-in adapters alike.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, get_type_hints

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from shiftbench.config import read_yaml, validate
from shiftbench.errors import ShiftbenchError
from shiftbench.labels import class_of
from shiftbench.registry import MODELS
from shiftbench.split import unit_hash

if TYPE_CHECKING:
    from shiftbench.runner import Runner
    from shiftbench.split import Split


def _class_names(values: list[str | int]) -> list[str]:
    """Names as labels are read (``0`` -> ``"0"``), so they match the data's; distinct."""
    names = [class_of(v)[1] for v in values]
    if len(set(names)) != len(names):
        raise ValueError("class names must be distinct")
    return names


Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]
ClassNames = Annotated[list[str | int], Field(min_length=1), AfterValidator(_class_names)]


class ModelAdapter(ABC):
    """predict -> class probabilities (columns in ``classes_`` order); embed -> vectors.

    ``__init__`` only stores parameters; ``fit`` (for adapters that train on the
    suite's train split) returns self; learned state ends in ``_``. ``classes_`` is set
    by ``fit`` in adapters that train, and read from the model's own files
    (:meth:`_read_classes`) in the others.
    """

    adapter: ClassVar[str]
    task: ClassVar[str] = "classification"  # what it does: the suite's task must match

    @property
    def needs_training(self) -> bool:
        """True when ``fit`` must see the suite's train split before predicting."""
        return False

    @property
    def classes_(self) -> list[str]:
        """Class names, in the column order of :meth:`predict_proba`."""
        if "_classes" not in vars(self):
            self._classes = self._read_classes()
        return self._classes

    @classes_.setter
    def classes_(self, classes: Sequence[str]) -> None:
        self._classes = [str(c) for c in classes]

    def _read_classes(self) -> list[str]:
        """The classes of a model trained elsewhere; adapters that train set them in fit."""
        raise ShiftbenchError(f"model {self.adapter!r}: not trained; it needs fit() on a "
                              "labelled train split before its classes are known")

    @classmethod
    def for_params(cls, params: dict[str, Any], where: str) -> type[ModelAdapter]:
        """The class that builds a model file's ``params``: this one, or the variant a
        parameter chooses (``llm``'s ``mode``); a one-line error naming ``where``."""
        return cls

    def use_suite_seed(self, seed: int) -> None:
        """The suite's seed, given before ``fit``: an adapter may draw with it when its own
        parameters set no seed (``llm``'s shots); most ignore it."""
        self.suite_seed_ = seed

    def fit(self, train: Split, runner: Runner) -> ModelAdapter:
        return self

    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the exact model (weights, params, training data): the cache key."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        """(n, len(classes_)) probabilities."""

    @abstractmethod
    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        """(n, d) float32 vectors: the model's own representation, for drift work."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Adapter name and parameters, for the report (JSON-serialisable)."""

    def diagnostics(self, texts: Sequence[str], runner: Runner) -> dict[str, Diagnostic]:
        """Per-text numbers about how the model reached its outputs, which the report
        summarises per split (``llm``: the probability mass of its verbalizers); most
        adapters have none."""
        return {}


@dataclass(frozen=True)
class Diagnostic:
    """One per-text diagnostic: what it means, and its values (one per text)."""

    meaning: str
    values: np.ndarray


class Generator(ModelAdapter):
    """generate -> one text per input (a title, a summary, a translation); embed -> vectors.

    Generation is deterministic (greedy by default) and goes through the runner, so
    outputs are deduplicated, cached under the fingerprint and the decoding settings, and
    do not depend on the batch size. A generator has no classes and no probabilities.
    """

    task = "generation"

    @abstractmethod
    def generate(self, texts: Sequence[str], runner: Runner) -> list[str]:
        """One generated text per input, in order."""

    def _read_classes(self) -> list[str]:
        return []

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        raise ShiftbenchError(f"model {self.adapter!r} generates text; it has no class "
                              "probabilities (run it on a suite with task: generation)")


def digest(adapter: str, payload: dict[str, Any]) -> str:
    """A fingerprint: the adapter name + sha256 of the canonical JSON that defines the model."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{adapter}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def data_hash(texts: Sequence[str], labels: Sequence[str]) -> str:
    """sha256 of a training set (texts and labels, in order): part of a trained fingerprint."""
    blob = json.dumps([list(texts), list(labels)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def train_subset(train: Split, fraction: float, seed: int) -> Split:
    """A seeded share of the train split, chosen by a stable hash of each id.

    Models that train deterministically (logistic regression) have no seed of their own:
    retraining one "with another seed" means fitting it on another sample of its data.
    """
    if not 0 < fraction <= 1:
        raise ShiftbenchError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return train
    keep = [i for i, ex_id in enumerate(train.ids)
            if unit_hash("train-subsample", seed, ex_id) < fraction]
    return train.subset(keep)


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any], str]:
    """Turn a command-line model spec into (adapter name, parameters, where they came from:
    the model file, or the spec itself)."""
    if Path(spec).suffix in {".yaml", ".yml"}:
        data = read_yaml(spec, "model")
        if not isinstance(data, dict) or not isinstance(data.get("adapter"), str):
            raise ShiftbenchError(f"{spec}: a model file is a mapping with an 'adapter' field "
                                  "(a name: probe, hf, sklearn, ...)")
        params = dict(data)
        return params.pop("adapter"), params, spec
    name, _, arg = spec.partition(":")
    return name, ({"source": arg} if arg else {}), f"model {spec!r}"


@cache
def _params_model(cls: type) -> type[BaseModel]:
    """A strict pydantic model of ``cls.__init__``'s keyword parameters (annotations as
    types, defaults as defaults; a ``**kwargs`` adapter also takes unknown names)."""
    try:
        hints = get_type_hints(cls.__init__, include_extras=True)
    except (NameError, TypeError):  # annotations that do not resolve: check names only
        hints = {}
    fields: dict[str, Any] = {}
    extra = "forbid"
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
        elif param.kind is not param.VAR_POSITIONAL:
            default = ... if param.default is param.empty else param.default
            fields[name] = (hints.get(name, Any), default)
    config = ConfigDict(extra=extra, strict=True, protected_namespaces=())
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def adapter_params(cls: type, params: dict[str, Any], where: str) -> dict[str, Any]:
    """``params`` checked against the adapter's ``__init__``: an unknown name, a wrong type
    (strict: "1" is not a number) or a value out of range is one line naming it."""
    checked = validate(_params_model(cls), params, where)
    return {name: getattr(checked, name) for name in params}


def load_model(spec: str) -> ModelAdapter:
    """Build the adapter a spec names (no weights are loaded until first use)."""
    name, params, where = parse_model_spec(spec)
    try:
        cls = MODELS.load(name)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{where}: {exc}") from None
    cls = cls.for_params(params, where)
    return cls(**adapter_params(cls, params, where))
