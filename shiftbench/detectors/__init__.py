"""Drift detectors: fit on a reference, test a sample -> statistic, p-value, decision.

Follows scikit-learn and Alibi Detect: ``__init__`` only stores parameters, ``fit``
returns self and sets learned state ending in ``_``; the shared logic (input checks, the
decision ``p_value < alpha``, the result record, save/load) lives here once, and each
detector implements only ``_score`` (its statistic and p-value, per backend).

Saved detectors are a folder with ``detector.json`` (registry name, parameters, measured
false-alarm rate and power, what it was fitted for) and ``arrays.npz`` (the reference),
in the checksummed saved-folder format of :mod:`shiftbench.cache`: loading checks every
field, parameter, shape and checksum and refuses a folder that fails, naming the field.
Nothing is ever unpickled.
"""

from __future__ import annotations

import inspect
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from shiftbench.arrays import check_matrix
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.detectors.calibration import Calibration, CallEach

BACKENDS = ("auto", "numpy", "torch")
SAVED_FIELDS = {"detector": str, "params": dict, "n_reference": int, "n_features_in": int,
                "calibration": (dict, type(None)), "context": (dict, type(None))}


@dataclass(frozen=True)
class DriftResult:
    """One test of a sample against the reference.

    ``p_value`` is None only for uncalibrated methods (Evidently's thresholds), whose
    ``drifted`` is their own decision; otherwise ``drifted`` is ``p_value < alpha``.
    """

    method: str
    statistic: float
    p_value: float | None
    alpha: float
    drifted: bool
    n_reference: int
    n_sample: int
    calibrated: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Score:
    """What a detector's ``_score`` returns; ``decision`` only when ``p_value`` is None."""

    statistic: float
    p_value: float | None
    details: dict[str, Any]
    decision: bool | None = None


def _annotated_kinds(hint: Any) -> tuple[type, ...] | None:
    """The types an annotation accepts (``float | None`` -> (float, NoneType)); None when
    it cannot be checked with ``isinstance`` (``Any``, ``Literal``, ...)."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    kinds = tuple(typing.get_origin(h) or h for h in (typing.get_args(hint) if union else [hint]))
    return kinds if all(isinstance(k, type) for k in kinds) else None


def check_backend(backend: str) -> None:
    """A backend name alone (resolving it to a device waits for ``fit``)."""
    if backend not in BACKENDS:
        raise ShiftbenchError(f"backend {backend!r}: use {', '.join(BACKENDS)}")


def resolve_backend(backend: str, device: str) -> tuple[str, str]:
    """(numpy, cpu) or (torch, device). ``auto`` is torch on a CUDA GPU when torch sees
    one, else numpy: torch on CPU gives the same answers and is no faster."""
    check_backend(backend)
    if backend == "numpy":
        return "numpy", "cpu"
    from shiftbench.device import resolve_device

    resolved = resolve_device(device)
    if backend == "auto" and not resolved.startswith("cuda"):
        return "numpy", "cpu"
    return "torch", resolved


def reference_digest(reference: np.ndarray) -> str:
    """Checksum of a reference's shape and values (as float64): says whether a saved
    detector was fitted on this reference."""
    from shiftbench.cache import array_checksum

    return array_checksum(np.asarray(reference, dtype=np.float64))


class Params:
    """scikit-learn's idiom: ``__init__`` stores its arguments under their own names, so
    parameters, clones and repr come from the signature, never from a list kept by hand."""

    @classmethod
    def param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters, read back from the attributes of the same name."""
        return {p: getattr(self, p) for p in self.param_names()}

    @classmethod
    def check_params(cls, params: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Saved parameters checked against the constructor: exactly its names, each value
        of its annotated type; a one-line error names ``where`` and the parameter."""
        from shiftbench.cache import has_kind, kind_names

        names = cls.param_names()
        for name in params:
            if name not in names:
                raise ShiftbenchError(f"{where}: unknown parameter {name!r} (known: "
                                      f"{', '.join(names)})")
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # a plugin's annotations may not resolve: no type check then
            hints = {}
        for name in names:
            if name not in params:
                raise ShiftbenchError(f"{where}: parameter {name!r} is missing")
            kinds = _annotated_kinds(hints.get(name, Any))
            if kinds is not None and not has_kind(params[name], kinds):
                raise ShiftbenchError(f"{where}: parameter {name!r} must be "
                                      f"{kind_names(kinds)}, got {params[name]!r}")
        return dict(params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class Detector(Params, ABC):
    """The detector contract: subclasses set ``name`` and implement ``_score``.

    ``input`` says what rows the detector tests: ``"embeddings"`` (text vectors),
    ``"probabilities"`` (a model's predicted class probabilities, e.g. BBSD),
    ``"bits_per_byte"`` (per text, under a causal LM) or ``"output_words"`` (a generator's
    output lengths).
    """

    name: ClassVar[str]
    input: ClassVar[str] = "embeddings"
    calibrated: ClassVar[bool] = True

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def clone(self, **overrides: Any) -> Detector:
        """An unfitted copy with the same parameters, except ``overrides``."""
        return type(self)(**{**self.get_params(), **overrides})

    @property
    def method_name(self) -> str:
        """The method named in each result."""
        return self.name

    @property
    def min_reference(self) -> int:
        return 2

    @property
    def min_sample(self) -> int:
        return 2

    # -- fit / test ---------------------------------------------------------------------------

    def validate(self) -> Detector:
        """Check the parameters alone, each of its annotated type and then their values,
        so a suite or command with a bad one fails before any work (``fit`` calls it)."""
        type(self).check_params(self.get_params(), self.name)
        if not 0 < self.alpha < 1:
            raise ShiftbenchError(f"{self.name}: alpha must be in (0, 1), got {self.alpha}")
        self._validate()
        return self

    def fit(self, reference: Any) -> Detector:
        """Validate and keep the reference; subclasses extend ``_fit`` for more state."""
        self.validate()
        ref = self._check(reference, "reference", self.min_reference)
        self._fit(ref)
        self.reference_ = ref
        self.n_features_in_ = ref.shape[1]
        self.calibration_: Calibration | None = None
        self.context_: dict[str, Any] | None = None
        return self

    def test(self, sample: Any) -> DriftResult:
        """Test a sample (rows x features, like the reference) for drift."""
        if not hasattr(self, "reference_"):
            raise ShiftbenchError(f"{self.name}: call fit(reference) before test(sample)")
        x = self._check(sample, "sample", self.min_sample)
        if x.shape[1] != self.n_features_in_:
            raise ShiftbenchError(f"sample has {x.shape[1]} features, the reference has "
                                  f"{self.n_features_in_}")
        score = self._score(x)
        if score.p_value is None:
            drifted = bool(score.decision)
        else:
            drifted = bool(score.p_value < self.alpha)
        return DriftResult(self.method_name, float(score.statistic), score.p_value, self.alpha,
                           drifted, len(self.reference_), len(x), self.calibrated, score.details)

    def _check(self, x: Any, name: str, min_rows: int) -> np.ndarray:
        arr = check_matrix(x, name)
        if len(arr) < min_rows:
            raise ShiftbenchError(f"{name}: {len(arr)} rows, fewer than the {min_rows} the "
                                  f"{self.name} detector needs")
        return arr

    def _validate(self) -> None:
        """Hook: checks of the parameters' values that need no data."""

    def _fit(self, reference: np.ndarray) -> None:
        """Hook for learned state beyond the reference (backend resolution)."""

    @abstractmethod
    def _score(self, sample: np.ndarray) -> Score:
        """The statistic and p-value (or own decision) of a checked sample vs ``reference_``."""

    # -- measured false-alarm rate and power --------------------------------------------------

    def calibrate(self, window: int, positives: Mapping[str, np.ndarray] | None = None,
                  n_repeats: int = 100, seed: int = 0, paired: bool = True,
                  call_each: CallEach | None = None) -> Calibration:
        """Measure this fitted detector's false-alarm rate (and power against
        ``positives``) at ``window`` rows; stored as ``calibration_`` and saved with it.
        ``call_each`` runs the repeats' jobs (e.g. a runner's, to spread them over Ray).
        See :func:`shiftbench.detectors.calibration.calibrate`."""
        from shiftbench.detectors.calibration import calibrate

        if not hasattr(self, "reference_"):
            raise ShiftbenchError(f"{self.name}: call fit(reference) before calibrate()")
        self.calibration_ = calibrate(self, self.reference_, window, positives, n_repeats,
                                      seed, paired, call_each)
        return self.calibration_

    # -- save / load ----------------------------------------------------------------------------

    def save(self, directory: str | Path, context: Mapping[str, Any] | None = None) -> Path:
        """Write ``detector.json`` + ``arrays.npz`` into ``directory`` (created if needed).
        ``context``: what it was fitted for (e.g. a check's reference digest and embedder),
        JSON-ready, kept for whoever loads it (``context_``)."""
        from shiftbench.cache import write_saved

        if not hasattr(self, "reference_"):
            raise ShiftbenchError(f"{self.name}: only a fitted detector can be saved")
        self.context_ = dict(context) if context is not None else None
        calibration = self.calibration_.to_dict() if self.calibration_ is not None else None
        meta = {"detector": self.name, "params": self.get_params(),
                "n_reference": len(self.reference_), "n_features_in": self.n_features_in_,
                "calibration": calibration, "context": self.context_}
        return write_saved(Path(directory), "detector.json", meta,
                           {"reference": self.reference_})


def make_detector(name: str, **params: Any) -> Detector:
    """A detector by registry name (mmd, ks, classifier, bbsd, evidently or a plugin)."""
    from shiftbench.registry import DETECTORS

    return DETECTORS.load(name)(**params)


def load_detector(directory: str | Path) -> Detector:
    """Rebuild a detector written by :meth:`Detector.save`, fitted and calibrated as saved;
    a folder that fails a check (field, parameter, shape, checksum) is refused."""
    from shiftbench.cache import read_saved
    from shiftbench.detectors.calibration import Calibration
    from shiftbench.registry import DETECTORS

    folder = Path(directory)
    where = folder / "detector.json"
    meta, arrays = read_saved(folder, "detector.json", "detector", SAVED_FIELDS,
                              {"reference": 2})
    try:
        cls = DETECTORS.load(meta["detector"])
        params = cls.check_params(meta["params"], "field 'params'")
        reference = arrays["reference"]
        if reference.shape != (meta["n_reference"], meta["n_features_in"]):
            raise ShiftbenchError(f"array 'reference' has shape {reference.shape}; fields "
                                  f"'n_reference' and 'n_features_in' say "
                                  f"({meta['n_reference']}, {meta['n_features_in']})")
        detector = cls(**params).fit(reference)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{where}: {exc}") from None
    if meta["calibration"] is not None:
        try:
            detector.calibration_ = Calibration.from_dict(meta["calibration"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ShiftbenchError(f"{where}: field 'calibration' is malformed ({exc!r})") \
                from None
    detector.context_ = meta["context"]
    return detector
