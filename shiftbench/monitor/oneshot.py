"""The one-shot tests of ``monitor check`` on every window of a stream.

``monitor stream`` and ``monitor serve`` test each window with the online MMD, whose
threshold is calibrated for the expected run between false alarms; :class:`OneShot` adds
the detectors ``monitor check`` runs (MMD permutation test and KS on the embeddings,
BBSD on a classifier's probabilities, ...), built by the same
:func:`~shiftbench.monitor.check_setup.build_detectors`, fitted once on the reference and
saved (reused by a restart when fitted for the same reference, inputs and parameters, as
``check --detectors-dir`` reuses them). Each window's p-values are Holm-adjusted over
its one-shot tests by ``check``'s :func:`~shiftbench.monitor.verdict.verdict`, so a
window is flagged with family-wise error alpha however many tests run; a result's
``drifted`` is that adjusted decision. They are not calibrated against positive controls
(no ``calibration``): the permutation and KS p-values are valid without it.

Unlike the online MMD's alarms (one per --ert windows on average under no drift), a
one-shot test flags a fraction alpha of the windows of an unchanged stream: read it per
window, and alert on flags that persist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.check_setup import DEFAULT_DETECTORS, OUTPUTS, build_detectors

if TYPE_CHECKING:
    from shiftbench.detectors import Detector, DriftResult
    from shiftbench.monitor.check import Inputs

# texts and their embeddings -> the inputs of every detector (embeddings, model outputs)
InputsOf = Callable[[Sequence[str], np.ndarray], "Inputs"]
NONE = "none"  # --oneshot none: no one-shot test
MULTIPLICITY = "Holm over the window's one-shot tests"


def oneshot_names(asked: Sequence[str] | None, model_task: str | None) -> tuple[str, ...]:
    """The one-shot detectors of ``--oneshot`` (None: ``check``'s defaults, plus the test of
    the model's outputs when a model gives them; ``none``: no one-shot test)."""
    if asked is None:
        extra = {"classification": ("bbsd",), "generation": ("output_length",)}
        return DEFAULT_DETECTORS + extra.get(model_task or "", ())
    if NONE in asked:
        if len(asked) > 1:
            raise ShiftbenchError(f"--oneshot {NONE} runs no one-shot test: name no other")
        return ()
    return tuple(dict.fromkeys(asked))


class OneShot:
    """One-shot detectors (unfitted until :meth:`fit`) and how a window's inputs are made.

    ``inputs_of`` gives the inputs of detectors of model outputs (called only when one is
    asked); ``inputs``: what makes them (the embedder's description, the model's
    fingerprint), kept with each saved detector so that another embedder or model refits.
    """

    def __init__(self, detectors: Mapping[str, Detector], alpha: float,
                 inputs: Mapping[str, Any], inputs_of: InputsOf | None = None) -> None:
        self.detectors = dict(detectors)
        self.alpha = alpha
        self.inputs = dict(inputs)
        self.inputs_of = inputs_of

    @classmethod
    def build(cls, names: Sequence[str], *, alpha: float = 0.05, seed: int = 0,
              device: str = "auto", model_task: str | None = None,
              inputs: Mapping[str, Any] | None = None,
              inputs_of: InputsOf | None = None) -> OneShot | None:
        """The detectors ``names`` as ``check`` builds them; None when there is none."""
        if not names:
            return None
        from shiftbench.perplexity import BITS_PER_BYTE
        from shiftbench.registry import DETECTORS

        if not 0 < alpha < 1:
            raise ShiftbenchError(f"--alpha must be in (0, 1), got {alpha}")
        for name in names:
            needs = DETECTORS.load(name).input
            if needs == BITS_PER_BYTE:
                raise ShiftbenchError(f"--oneshot {name}: it tests bits per byte under a "
                                      "language model, which only `monitor check --lm` loads")
            if needs in OUTPUTS and inputs_of is None:
                raise ShiftbenchError(f"--oneshot {name}: it tests {OUTPUTS[needs][1]}, and no "
                                      "model runs on the windows: give `monitor serve` a "
                                      "--model (`monitor stream` has none)")
        detectors = build_detectors(tuple(names), alpha, seed, device, model_task)
        return cls(detectors, alpha, inputs or {}, inputs_of)

    @property
    def needs_outputs(self) -> bool:
        return any(d.input in OUTPUTS for d in self.detectors.values())

    def describe(self) -> dict[str, Any]:
        """The settings a stream keeps (a restart with others is refused)."""
        return {"alpha": self.alpha,
                "detectors": {name: {"detector": d.name, "params": d.get_params()}
                              for name, d in self.detectors.items()}}

    def check_window(self, window: int) -> None:
        """Fail before any work when a detector cannot test windows of ``window`` rows."""
        for name, det in self.detectors.items():
            if window < det.min_sample:
                raise ShiftbenchError(f"one-shot detector {name!r} needs windows of at least "
                                      f"{det.min_sample} rows, got {window}")

    def fit(self, texts: Sequence[str], embeddings: np.ndarray,
            directory: Path | None = None) -> OneShot:
        """Fit every detector on the reference (or reuse the one saved in
        ``directory/NAME`` when fitted for the same reference, inputs and parameters;
        any other is fitted again and saved over it)."""
        from shiftbench.detectors import reference_digest
        from shiftbench.monitor.check_setup import reuse_detector

        reference = self.window_inputs(texts, embeddings)
        for name, det in self.detectors.items():
            rows = reference.rows(det.input)
            context = {"inputs": self._inputs_for(det), "reference": reference_digest(rows),
                       "calibration": {"window": None, "repeats": 0, "controls": []}}
            folder = directory / name if directory is not None else None
            if folder is not None and folder.is_dir():
                try:
                    self.detectors[name] = reuse_detector(folder, det, context)
                    continue
                except ShiftbenchError:  # fitted for something else (or damaged): refit
                    pass
            det.fit(rows)
            if folder is not None:
                det.save(folder, context)
        return self

    def _inputs_for(self, det: Detector) -> Any:
        if det.input in OUTPUTS:
            return self.inputs.get("model")
        return self.inputs.get("embedder")

    def window_inputs(self, texts: Sequence[str], embeddings: np.ndarray) -> Inputs:
        from shiftbench.monitor.check import Inputs

        if self.needs_outputs:
            assert self.inputs_of is not None  # build_detectors wants a model for them
            return self.inputs_of(texts, embeddings)
        return Inputs(embeddings)

    def test(self, texts: Sequence[str], embeddings: np.ndarray) -> dict[str, DriftResult]:
        """Every detector's result on one window, ``drifted`` Holm-adjusted (see the
        module doc); ``details`` adds ``holm_p`` (None for a detector without a p-value,
        which keeps its own decision and is not counted in the adjustment)."""
        from shiftbench.monitor.verdict import verdict

        x = self.window_inputs(texts, embeddings)
        results = {name: det.test(x.rows(det.input)) for name, det in self.detectors.items()}
        records = [{"method": r.method, "p_value": r.p_value, "calibration": None}
                   for r in results.values()]
        verdict(records, self.alpha)
        return {name: replace(r, drifted=r.drifted if rec["holm_p"] is None
                              else bool(rec["holm_p"] < self.alpha),
                              details={**r.details, "holm_p": rec["holm_p"],
                                       "multiplicity": MULTIPLICITY, "test": "one-shot"})
                for (name, r), rec in zip(results.items(), records, strict=True)}
