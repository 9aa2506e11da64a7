"""`shiftbench monitor check`: has the current sample drifted from the reference, how sure
is that, and is the model likely to be hurt?

Steps: read both files (:mod:`~shiftbench.monitor.inputs`); prepare the model
(:mod:`~shiftbench.monitor.model`); embed their texts (or take precomputed vectors);
fit each detector on the reference and test the current sample; measure each detector's
false-alarm rate on random halves of the reference and its power against positive
controls (:mod:`~shiftbench.monitor.check_setup`); decide
(:mod:`~shiftbench.monitor.verdict`); estimate the current accuracy without labels (ATC,
DoC) when a model and reference labels are given. Fitted, calibrated detectors are
saved beside the report (or in ``detectors_dir``), ready to be loaded by
:func:`shiftbench.detectors.load_detector`, each with what it was fitted for: a digest of
the reference rows it tests, the embedder or model, the calibration settings. A later
check given the same ``detectors_dir`` reuses them instead of fitting and calibrating
again, and refuses them when any of that (or a detector parameter) differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor.check_setup import (
    DEFAULT_DETECTORS,
    OUTPUTS,
    build_detectors,
    calibration_window,
    check_sizes,
    control_label,
    parse_controls,
    reuse_detector,
)
from shiftbench.monitor.inputs import Sample, read_sample
from shiftbench.monitor.model import accuracy_estimates, prepare_model
from shiftbench.monitor.verdict import verdict
from shiftbench.perplexity import BITS_PER_BYTE
from shiftbench.progress import Phases
from shiftbench.runtime import Runtime

if TYPE_CHECKING:
    from shiftbench.detectors import Detector
    from shiftbench.models import ModelAdapter
    from shiftbench.models.embed import TextEmbedder
    from shiftbench.models.rolling import RollingLM
    from shiftbench.runner import Runner
    from shiftbench.split import Split

SCHEMA_VERSION = 1
INPUT_NAMES = {"probabilities": "model probabilities", "output_words": "output words",
               BITS_PER_BYTE: "bits per byte"}


@dataclass
class CheckOptions:
    """What ``shiftbench monitor check`` was asked; ``controls`` None = the default."""

    text_column: str = "text"
    label_column: str | None = None
    embedding_column: str | None = None
    model: str | None = None
    lm: str | None = None
    encoder: str | None = None
    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    alpha: float = 0.05
    window: int | None = None
    calibrate_repeats: int = 50
    controls: tuple[str, ...] | None = None
    evidently_report: bool = False
    detectors_dir: Path | None = None
    runtime: Runtime = field(default_factory=Runtime)


@dataclass
class Inputs:
    """What the detectors test: embeddings, the model's outputs when a model is given
    (a classifier's probabilities, or a generator's output lengths in words), and each
    text's bits per byte under the LM when one is given."""

    embeddings: np.ndarray
    probabilities: np.ndarray | None = None
    output_words: np.ndarray | None = None
    bits_per_byte: np.ndarray | None = None

    def rows(self, kind: str) -> np.ndarray:
        """The rows a detector of input ``kind`` tests."""
        rows = {"probabilities": self.probabilities, "output_words": self.output_words,
                BITS_PER_BYTE: self.bits_per_byte}.get(kind, self.embeddings)
        assert rows is not None  # build_detectors wants a model or LM that gives them
        return rows


def model_inputs(vectors: np.ndarray, texts: Sequence[str], model: ModelAdapter | None,
                 runner: Runner, bits_per_byte: np.ndarray | None = None) -> Inputs:
    """The inputs of ``texts`` (embedded as ``vectors``) with the model's outputs when a
    model is given: a classifier's probabilities, a generator's outputs' word counts."""
    from shiftbench.text_metrics import output_words

    if model is None:
        return Inputs(vectors, bits_per_byte=bits_per_byte)
    if model.task == "generation":
        generated = model.generate(list(texts), runner)
        return Inputs(vectors, output_words=output_words(generated)[:, None],
                      bits_per_byte=bits_per_byte)
    return Inputs(vectors, model.predict_proba(list(texts), runner),
                  bits_per_byte=bits_per_byte)


def check_options(options: CheckOptions) -> None:
    """Refuse settings that contradict each other or are out of range, before any work."""
    if not 0 < options.alpha < 1:
        raise ShiftbenchError(f"--alpha must be in (0, 1), got {options.alpha}")
    if options.calibrate_repeats < 0:
        raise ShiftbenchError("--calibrate-repeats must be 0 (skip) or more")
    if options.embedding_column and options.encoder:
        raise ShiftbenchError("--embedding-column gives precomputed vectors; drop --encoder")
    if options.embedding_column and options.controls:
        raise ShiftbenchError("positive controls shift the texts and embed them, which "
                              "precomputed vectors (--embedding-column) cannot do: drop --control")


def run_check(reference_path: Path, current_path: Path, options: CheckOptions,
              out_dir: Path) -> dict[str, Any]:
    """Run the one-shot check; save fitted detectors under ``out_dir/detectors``; return
    the JSON-ready result (rendered by :mod:`shiftbench.monitor.report`)."""
    opts = options
    check_options(opts)
    detectors = build_detectors(opts.detectors, opts.alpha, opts.runtime.seed,
                                opts.runtime.device, model_task(opts.model),
                                has_lm=opts.lm is not None)
    lm = checked_lm(opts.lm)
    controls = parse_controls(opts.controls, precomputed=bool(opts.embedding_column))
    phases = Phases(check_steps(opts, detectors, has_controls=bool(controls)),
                    enabled=opts.runtime.progress is not False)

    with phases.phase("read_s"):
        reference = read_sample(reference_path, "reference", opts.text_column,
                                opts.label_column, opts.embedding_column,
                                need_labels=opts.label_column is not None)
        current = read_sample(current_path, "current", opts.text_column, opts.label_column,
                              opts.embedding_column, need_labels=False)
    runner = opts.runtime.runner()
    try:
        result = _Check(opts, runner, out_dir, phases, lm).run(reference, current, detectors,
                                                                 controls)
    finally:
        runner.close()
    result["timings"]["total_s"] = phases.elapsed()
    return result


def model_task(spec: str | None) -> str | None:
    """What the model asked for does (classification or generation), read from its spec
    before any work (no weights load); None without a model."""
    from shiftbench.models import load_model

    return load_model(spec).task if spec is not None else None


def checked_lm(spec: str | None) -> RollingLM | None:
    """The LM of ``--lm`` (parsed as `run --lm` is), checked to be a causal LM before any
    work (reads its config only); None without one."""
    from shiftbench.perplexity import perplexity_lm

    lm = perplexity_lm(None, spec)
    return lm.check() if lm is not None else None


def check_steps(options: CheckOptions, detectors: dict[str, Detector],
                has_controls: bool) -> dict[str, str]:
    """The phases of one check (timing key -> what the phase line says), in order."""
    calibrating = options.calibrate_repeats > 0
    steps = {"read_s": "reading data"}
    if options.model is not None:
        steps["fit_model_s"] = "preparing the model"
    steps["embed_s"] = "embedding" + (" and predicting" if options.model is not None else "") + (
        " and scoring with the LM" if options.lm is not None else "")
    if calibrating and has_controls:
        steps["controls_s"] = "positive controls"
    for name in detectors:
        steps[f"detector_{name}_s"] = f"detector {name}: test" + (
            f" and {options.calibrate_repeats} calibration repeats" if calibrating else "")
    if options.evidently_report:
        steps["evidently_report_s"] = "Evidently report"
    return {**steps, "accuracy_s": "accuracy estimates"}


class _Check:
    """One check as it runs: the runner, model and embedder, notes and timings."""

    def __init__(self, options: CheckOptions, runner: Runner, out_dir: Path,
                 phases: Phases, lm: RollingLM | None = None) -> None:
        self.options = options
        self.lm = lm
        self.runner = runner
        self.out_dir = out_dir
        self.phases = phases
        self.model: ModelAdapter | None = None
        self.embedder: TextEmbedder | None = None
        self.notes: list[str] = []

    def run(self, reference: Sample, current: Sample, detectors: dict[str, Detector],
            controls: list[tuple[str, int]]) -> dict[str, Any]:
        """Every step after reading the files; the JSON-ready result."""
        from shiftbench import __version__

        opts = self.options
        ref_split, ref_vectors = self.fit_model(reference)
        window = self.window(len(ref_split), len(current.split))
        check_sizes(detectors, len(ref_split), len(current.split), window,
                    (reference.path, current.path))
        ref_in, cur_in = self.embed(ref_split, ref_vectors, current)
        labels = [control_label(*control) for control in controls] if window is not None else []
        positives = self.positives(detectors, controls, ref_split, window)
        ref_in, cur_in, positives = self.drop_unscored(ref_in, cur_in, positives)
        records = [self.run_detector(name, det, ref_in, cur_in, positives, window, labels)
                   for name, det in detectors.items()]
        decision = verdict(records, opts.alpha)
        if opts.evidently_report:
            self.evidently_report(ref_in, cur_in)
        with self.phases.phase("accuracy_s"):
            accuracy = accuracy_estimates(self.model, ref_split, current.split,
                                          ref_in.probabilities, cur_in.probabilities,
                                          opts.runtime.seed)
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "monitor-check",
            "shiftbench_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "reference": _describe_sample(reference, ref_split),
            "current": _describe_sample(current, current.split),
            "embeddings": {**self.describe_embeddings(),
                           "dim": int(ref_in.embeddings.shape[1])},
            "model": self._describe_model(),
            "lm": {**self.lm.describe(), "spec": opts.lm} if self.lm is not None else None,
            "settings": {"alpha": opts.alpha, "seed": opts.runtime.seed, "window": window,
                         "calibrate_repeats": opts.calibrate_repeats,
                         "controls": labels, "detectors": list(detectors)},
            "verdict": decision,
            "detectors": records,
            "accuracy": accuracy,
            "notes": self.notes,
            "timings": self.phases.seconds,
            "runner": dict(self.runner.stats),
        }

    def fit_model(self, reference: Sample) -> tuple[Split, np.ndarray | None]:
        """Load the model, when one is asked, and train it if it needs training; the
        reference left to monitor with, and its precomputed vectors (if any) row-aligned."""
        opts = self.options
        if opts.model is None:
            return reference.split, reference.vectors
        with self.phases.phase("fit_model_s", opts.model):
            self.model, split = prepare_model(opts.model, reference.split, self.runner,
                                              self.notes)
        if reference.vectors is None:
            return split, None
        position = {id_: k for k, id_ in enumerate(reference.split.ids)}
        return split, reference.vectors[[position[i] for i in split.ids]]

    def window(self, n_reference: int, n_current: int) -> int | None:
        """The calibration window, None when calibration is skipped."""
        if self.options.calibrate_repeats > 0:
            return calibration_window(self.options.window, n_reference, n_current, self.notes)
        self.notes.append("calibration skipped (--calibrate-repeats 0): false-alarm rates "
                          "and power were not measured")
        return None

    def embed(self, ref_split: Split, ref_vectors: np.ndarray | None,
              current: Sample) -> tuple[Inputs, Inputs]:
        """The reference's and the current sample's inputs, embedded with the embedder
        asked for unless the vectors are given; both of one dimension."""
        from shiftbench.models.embed import text_embedder

        if ref_vectors is None:
            self.embedder = text_embedder(self.options.encoder, self.model)
        with self.phases.phase("embed_s", "reference"):
            ref_in = self.inputs(ref_split, ref_vectors, "reference")
        with self.phases.phase("embed_s", "current"):
            cur_in = self.inputs(current.split, current.vectors, "current")
        if ref_in.embeddings.shape[1] != cur_in.embeddings.shape[1]:
            raise ShiftbenchError(f"{current.path}: embeddings have "
                                  f"{cur_in.embeddings.shape[1]} dimensions, the reference's "
                                  f"have {ref_in.embeddings.shape[1]}")
        return ref_in, cur_in

    def positives(self, detectors: dict[str, Detector], controls: list[tuple[str, int]],
                  reference: Split, window: int | None) -> dict[str, Inputs]:
        """The positive controls' inputs, when a detector is calibrated here (reused ones
        were calibrated by the check that saved them)."""
        to_fit = [det for name, det in detectors.items() if not self.reusable(name)]
        positives: dict[str, Inputs] = {}
        if window is not None and to_fit:
            on_outputs = any(d.input in OUTPUTS for d in to_fit)
            positives = self.controls(controls, reference, on_outputs)
        if len(to_fit) < len(detectors):
            self.notes.append(f"detectors {', '.join(n for n in detectors if self.reusable(n))} "
                              f"reused from {self.options.detectors_dir}: fitted and calibrated "
                              "by an earlier check of the same reference, inputs and settings")
        return positives

    def drop_unscored(self, ref: Inputs, cur: Inputs, positives: dict[str, Inputs]
                      ) -> tuple[Inputs, Inputs, dict[str, Inputs]]:
        """Leave out of the bits per byte the texts the LM cannot score (empty ones have
        none): the reference's rows with their shifted copies, so that positive controls
        stay row-aligned, and the current sample's own; a note counts them."""
        if ref.bits_per_byte is None or cur.bits_per_byte is None:
            return ref, cur, positives
        shifted = [p.bits_per_byte for p in positives.values() if p.bits_per_byte is not None]
        keep = np.isfinite(np.hstack([ref.bits_per_byte, *shifted])).all(axis=1)
        keep_current = np.isfinite(cur.bits_per_byte[:, 0])
        dropped = {"reference": int((~keep).sum()), "current": int((~keep_current).sum())}
        if any(dropped.values()):
            self.notes.append("bits per byte leaves out texts the LM cannot score (empty): "
                              + ", ".join(f"{n} of the {where}" for where, n in dropped.items())
                              + (" (rows of the reference, or of its shifted copies)"
                                 if shifted else ""))

        def kept(x: Inputs, rows: np.ndarray) -> Inputs:
            assert x.bits_per_byte is not None
            return replace(x, bits_per_byte=x.bits_per_byte[rows])

        return (kept(ref, keep), kept(cur, keep_current),
                {k: kept(p, keep) if p.bits_per_byte is not None else p
                 for k, p in positives.items()})

    def evidently_report(self, ref: Inputs, cur: Inputs) -> None:
        """Evidently's own HTML report beside the check's, as an extra (uncalibrated) view."""
        from shiftbench.detectors.evidently import html_report

        with self.phases.phase("evidently_report_s"):
            path = html_report(ref.embeddings, cur.embeddings, self.out_dir / "evidently.html",
                               seed=self.options.runtime.seed)
        self.notes.append(f"Evidently's embedding drift report (uncalibrated; rows sampled "
                          f"for its t-SNE plot): {path}")

    def inputs(self, split: Split, vectors: np.ndarray | None, name: str,
               outputs: bool = True) -> Inputs:
        """Embeddings (computed unless given), each text's bits per byte when there is an
        LM and, when ``outputs`` and there is a model, its probabilities (a generator: its
        outputs' word counts)."""
        from shiftbench.perplexity import per_text_bpb

        if vectors is None:
            assert self.embedder is not None  # set whenever vectors are not precomputed
            vectors = self.embedder(split.texts, self.runner, name)
        bpb = per_text_bpb(self.lm.score(split.texts, self.runner)) if self.lm is not None else None
        return model_inputs(vectors, split.texts, self.model if outputs else None, self.runner,
                            bpb)

    def controls(self, controls: list[tuple[str, int]], reference: Split,
                 outputs: bool) -> dict[str, Inputs]:
        """Each positive control: the reference texts under a shift (row-aligned), embedded
        (and run through the model, when ``outputs``)."""
        from shiftbench.registry import SHIFTS
        from shiftbench.shifts import apply_shift

        out = {}
        for name, severity in controls:
            label = control_label(name, severity)
            with self.phases.phase("controls_s", label):
                shift = SHIFTS.load(name)(severity=severity)
                shifted = apply_shift(shift, reference, self.options.runtime.seed, label,
                                      self.runner)
                out[label] = self.inputs(shifted, None, f"control {label}", outputs)
        return out

    def saved_folder(self, name: str) -> Path:
        return (self.options.detectors_dir or self.out_dir / "detectors") / name

    def reusable(self, name: str) -> bool:
        """Whether detector ``name`` is loaded from ``detectors_dir`` instead of fitted."""
        return self.options.detectors_dir is not None and self.saved_folder(name).exists()

    def describe_embeddings(self) -> dict[str, Any]:
        if self.embedder is not None:
            return self.embedder.describe()
        return {"source": f"column {self.options.embedding_column!r} of the input files"}

    def fitted_for(self, det: Detector, rows: np.ndarray, window: int | None,
                   labels: list[str]) -> dict[str, Any]:
        """What a saved detector was fitted and calibrated for; reuse needs all of it (the
        inputs first: another embedder, model or LM changes the rows too, and is the cause)."""
        from shiftbench.detectors import reference_digest

        if det.input == BITS_PER_BYTE and self.lm is not None:
            inputs = {"lm": self.lm.fingerprint()}
        elif det.input in OUTPUTS and self.model is not None:
            inputs = {"model": self.model.fingerprint()}
        else:
            inputs = self.describe_embeddings()
        repeats = self.options.calibrate_repeats if window is not None else 0
        return {"inputs": inputs, "reference": reference_digest(rows),
                "calibration": {"window": window, "repeats": repeats, "controls": labels,
                                "seed": self.options.runtime.seed}}

    def run_detector(self, name: str, det: Detector, ref: Inputs, cur: Inputs,
                     positives: dict[str, Inputs], window: int | None,
                     labels: list[str]) -> dict[str, Any]:
        """Fit, test, calibrate and save one detector (or load it, fitted and calibrated,
        from ``detectors_dir``); its JSON record."""
        def pick(x: Inputs) -> np.ndarray:
            return x.rows(det.input)

        folder = self.saved_folder(name)
        context = self.fitted_for(det, pick(ref), window, labels)
        reused = self.reusable(name)
        with self.phases.phase(f"detector_{name}_s"):
            if reused:
                det = reuse_detector(folder, det, context)
                result = det.test(pick(cur))
            else:
                result = det.fit(pick(ref)).test(pick(cur))
                if window is not None:
                    det.calibrate(window, {k: pick(v) for k, v in positives.items()},
                                  self.options.calibrate_repeats, self.options.runtime.seed,
                                  call_each=self.runner.call_each)
        if not reused:
            det.save(folder, context)
        calibration = det.calibration_
        return {**result.to_dict(), "detector": name,
                "input": INPUT_NAMES.get(det.input, "embeddings"),
                "params": det.get_params(),
                "calibration": calibration.to_dict() if calibration is not None else None,
                "saved": str(folder), "reused": reused}

    def _describe_model(self) -> dict[str, Any] | None:
        if self.model is None:
            return None
        return {**self.model.describe(), "spec": self.options.model,
                "fingerprint": self.model.fingerprint(),
                "classes": list(self.model.classes_), "trained_here": self.model.needs_training}


def _describe_sample(sample: Sample, used: Split) -> dict[str, Any]:
    return {"path": str(sample.path), "n": len(sample.split), "n_used": len(used),
            "labelled": used.labels is not None}
