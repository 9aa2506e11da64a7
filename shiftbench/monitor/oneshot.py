"""`shiftbench monitor check`: has the current sample drifted from the reference, how sure
is that, and is the model likely to be hurt?

Steps: read both files; embed their texts (or read precomputed vectors); fit each
detector on the reference and test the current sample; measure each detector's
false-alarm rate on random halves of the reference and its power against positive
controls (the reference texts under shiftbench's own shifts, row-aligned, so each
control window is the null window shifted); estimate the current accuracy without labels
(ATC, DoC) when a model and reference labels are given. Fitted, calibrated detectors are
saved beside the report (or in ``detectors_dir``), ready to be loaded by
:func:`shiftbench.detectors.load_detector`, each with what it was fitted for: a digest of
the reference rows it tests, the embedder or model, the calibration settings. A later
check given the same ``detectors_dir`` reuses them instead of fitting and calibrating
again, and refuses them when any of that (or a detector parameter) differs.

The verdict (the exit code) is stated once, in ``RULE``: only detectors that are tests
(they give a p-value) and whose measured false-alarm rate is not flagged decide, and
their p-values are Holm-adjusted, so the verdict's own false-alarm rate stays at alpha
however many detectors are asked.

When the model needs training (``probe``, ``sklearn:tfidf``) it is fitted on a stable
half of the labelled reference (by id hash); the other half is the reference for
everything else, so no detector or estimate ever compares training rows with new ones.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.labels import class_indices
from shiftbench.progress import Phases

if TYPE_CHECKING:
    from shiftbench.detectors import Detector
    from shiftbench.models import ModelAdapter
    from shiftbench.models.embed import TextEmbedder
    from shiftbench.runner import Runner
    from shiftbench.split import Split

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_DETECTORS = ("mmd", "ks")
DEFAULT_CONTROLS = ("keyboard:2",)
DEFAULT_SEVERITY = 2
SCHEMA_VERSION = 1
EXIT_CODES = {"no drift": 0, "drift": 1, "undecided": 2}  # the CLI's exit code per verdict
RULE = ("drift when any deciding detector has a Holm-adjusted p-value below alpha; deciding "
        "detectors are tests with a p-value whose measured false-alarm rate is not flagged "
        "(uncalibrated and flagged detectors are shown, not counted)")


@dataclass
class CheckOptions:
    """What ``shiftbench monitor check`` was asked; ``controls`` None = the default."""

    text_column: str = "text"
    label_column: str | None = None
    embedding_column: str | None = None
    model: str | None = None
    encoder: str | None = None
    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    alpha: float = 0.05
    window: int | None = None
    calibrate_repeats: int = 50
    controls: tuple[str, ...] | None = None
    cache_dir: Path | None = None
    device: str = "auto"
    batch_size: int = 64
    seed: int = 0
    progress: bool | None = None
    evidently_report: bool = False
    detectors_dir: Path | None = None


@dataclass
class Sample:
    """One input file: its examples, and its precomputed vectors when given."""

    path: Path
    split: Split
    vectors: np.ndarray | None = None


@dataclass
class Inputs:
    """What the detectors test: embeddings, and probabilities when a model is given."""

    embeddings: np.ndarray
    probabilities: np.ndarray | None = None


# -- reading ------------------------------------------------------------------------------


def read_sample(path: Path, role: str, text_column: str, label_column: str | None,
                embedding_column: str | None, need_labels: bool) -> Sample:
    """Read a JSONL/CSV/Parquet file of texts (+ labels, + vectors) with one-line errors.

    With ``need_labels`` the label column must exist and be filled; otherwise labels are
    kept when the file has the column filled in every row (current data may carry them).
    """
    from shiftbench.config import Source
    from shiftbench.data import read_source, to_split

    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ShiftbenchError(f"{path}: unknown file type {path.suffix!r}; use "
                              f"{', '.join(sorted(set(FORMATS)))}")
    if not path.is_file():
        raise ShiftbenchError(f"{path}: {role} file not found")
    if path.stat().st_size == 0:
        raise ShiftbenchError(f"{path}: empty file; the {role} has no rows")
    source = Source(kind=kind, path=str(path), text=text_column, label=label_column)
    try:
        frame = read_source(source, Path.cwd())
        labelled = label_column is not None and (need_labels or _filled(frame["label"]))
    except ShiftbenchError:
        if need_labels or label_column is None:
            raise
        frame = read_source(source.model_copy(update={"label": None}), Path.cwd())
        labelled = False  # the file has no label column (any other error recurs above)
    split = to_split(frame, role, labelled, kind=role)
    vectors = _vectors(frame, embedding_column, path) if embedding_column else None
    return Sample(path, split, vectors)


def _filled(column: Any) -> bool:
    return bool(column.map(lambda v: v is not None and v == v and str(v).strip() != "").all())


def _vectors(frame: Any, column: str, path: Path) -> np.ndarray:
    """Precomputed embeddings: a list of numbers per row (JSON text in CSV files)."""
    if column not in frame.columns:
        columns = ", ".join(c for c in map(str, frame.columns) if not c.startswith("__"))
        raise ShiftbenchError(f"{path}: no column {column!r} for the embeddings (columns: "
                              f"{columns})")
    rows: list[np.ndarray] = []
    for row, id_, value in zip(frame["__row"], frame["id"], frame[column], strict=True):
        where = f"{path}: row {row} (id {id_}): embedding"
        try:
            vector = np.asarray(json.loads(value) if isinstance(value, str) else value,
                                dtype=np.float64)
        except (ValueError, TypeError):
            raise ShiftbenchError(f"{where} is not a list of numbers") from None
        if vector.ndim != 1 or len(vector) == 0:
            raise ShiftbenchError(f"{where} is not a non-empty list of numbers")
        if rows and len(vector) != len(rows[0]):
            raise ShiftbenchError(f"{where} has {len(vector)} numbers, the first row has "
                                  f"{len(rows[0])}")
        if not np.isfinite(vector).all():
            raise ShiftbenchError(f"{where} holds NaN or infinite values")
        rows.append(vector)
    return np.stack(rows)


# -- detectors, controls, sizes -------------------------------------------------------------


def build_detectors(names: tuple[str, ...], alpha: float, seed: int, device: str,
                    has_model: bool) -> dict[str, Detector]:
    """Unfitted detectors by registry name; seed and device go to those that take them.
    Each is saved in a folder of its name, so the name must be a safe folder name."""
    from shiftbench.paths import safe_component
    from shiftbench.registry import DETECTORS

    if not names:
        raise ShiftbenchError("no detector: name at least one with --detector")
    detectors: dict[str, Detector] = {}
    for name in dict.fromkeys(names):
        cls = DETECTORS.load(name)
        safe_component(name, "--detector")
        if cls.input == "probabilities" and not has_model:
            raise ShiftbenchError(f"detector {name!r} tests the model's probabilities: "
                                  "give --model")
        accepted = inspect.signature(cls).parameters
        extra = {k: v for k, v in (("seed", seed), ("device", device)) if k in accepted}
        detectors[name] = cls(alpha=alpha, **extra)
    return detectors


def control_label(name: str, severity: int) -> str:
    """How a positive control is named in results, e.g. ``keyboard@2``."""
    return f"{name}@{severity}"


def parse_control(spec: str) -> tuple[str, int]:
    """``NAME[:SEVERITY]`` (severity 1-5, default 2) -> (registry name, severity)."""
    from shiftbench.registry import SHIFTS

    name, _, severity = spec.partition(":")
    SHIFTS.target(name)
    if not severity:
        return name, DEFAULT_SEVERITY
    if not severity.isdigit() or not 1 <= int(severity) <= 5:
        raise ShiftbenchError(f"--control {spec!r}: severity must be 1-5, as in keyboard:2")
    return name, int(severity)


def calibration_window(options: CheckOptions, n_reference: int, n_current: int,
                       notes: list[str]) -> int:
    """The window the false-alarm rate and power are measured at (default: the current
    sample's size, capped at the held-out half of the reference)."""
    held = n_reference - n_reference // 2
    if options.window is not None:
        if not 1 <= options.window <= held:
            raise ShiftbenchError(f"--window {options.window}: calibration tests windows drawn "
                                  f"from the held-out half of the reference; use 1 to {held}")
        return options.window
    if n_current > held:
        notes.append(f"calibration window capped at {held} rows (half the reference); the "
                     f"test on the current sample uses all {n_current} rows")
        return held
    return n_current


def check_sizes(detectors: dict[str, Detector], n_reference: int, n_current: int,
                window: int | None) -> None:
    """Fail before any embedding when a detector cannot work at these sizes."""
    for name, det in detectors.items():
        checks = [(n_reference, det.min_reference, "the reference has"),
                  (n_current, det.min_sample, "the current sample has")]
        if window is not None:
            checks += [(n_reference // 2, det.min_reference,
                        "calibration fits on half the reference:"),
                       (window, det.min_sample, "the calibration window is")]
        for have, need, what in checks:
            if have < need:
                raise ShiftbenchError(f"detector {name!r} needs at least {need} rows; {what} "
                                      f"{have}")


REUSE_DIFFERENCES = {"detector": "another detector", "params": "other detector parameters",
                     "reference": "another reference (its rows differ)",
                     "inputs": "another embedder or model",
                     "calibration": "other calibration settings"}


def reuse_detector(folder: Path, detector: Detector, context: dict[str, Any]) -> Detector:
    """The detector an earlier check saved in ``folder``, fitted and calibrated; refused
    with a one-line error naming what differs unless it is ``detector`` (same parameters)
    fitted for the same ``context`` (reference digest, inputs, calibration settings)."""
    from shiftbench.detectors import load_detector

    saved = load_detector(folder)
    found = json.loads(json.dumps({"detector": saved.name, "params": saved.get_params(),
                                   **(saved.context_ or {})}))
    wanted = json.loads(json.dumps({"detector": detector.name, "params": detector.get_params(),
                                    **context}))
    for key, value in wanted.items():
        if found.get(key) != value:
            values = "" if key == "reference" else (f" ({json.dumps(found.get(key))[:80]} "
                                                    f"saved, {json.dumps(value)[:80]} now)")
            raise ShiftbenchError(f"{folder}: saved by a check with {REUSE_DIFFERENCES[key]}"
                                  f"{values}; give another --detectors-dir")
    return saved


def verdict(records: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """The overall decision (see ``RULE``); sets each record's ``decides`` and ``holm_p``."""
    from shiftbench.metrics import holm

    deciding = [r for r in records
                if r["p_value"] is not None and not (r["calibration"] or {}).get("flagged")]
    for record in records:
        record["decides"] = any(record is r for r in deciding)
        record["holm_p"] = None
    for record, adjusted in zip(deciding, holm([r["p_value"] for r in deciding]), strict=True):
        record["holm_p"] = adjusted
    if not deciding:
        return {"status": "undecided", "exit_code": EXIT_CODES["undecided"], "drifted": None,
                "rule": RULE, "alpha": alpha, "deciding": [],
                "reason": "no deciding detector: every one asked is uncalibrated (no p-value) "
                          "or flagged for false alarms; add mmd, ks or classifier"}
    status = "drift" if any(r["holm_p"] < alpha for r in deciding) else "no drift"
    return {"status": status, "exit_code": EXIT_CODES[status], "drifted": status == "drift",
            "rule": RULE, "alpha": alpha, "deciding": [r["method"] for r in deciding]}


# -- the model: training, probabilities, accuracy -----------------------------------------


def prepare_model(spec: str, reference: Split, runner: Runner,
                  notes: list[str]) -> tuple[ModelAdapter, Split]:
    """Load the model; one that needs training is fitted on a stable half of the labelled
    reference. Returns the model and the reference to monitor with (the other half)."""
    from shiftbench.models import load_model
    from shiftbench.split import unit_hash

    model = load_model(spec)
    if not model.needs_training:
        return model, reference
    if reference.labels is None:
        raise ShiftbenchError(f"--model {spec} trains on the labelled reference: give "
                              "--label-column")
    in_train = [unit_hash("monitor-train", i) < 0.5 for i in reference.ids]
    train = reference.subset([k for k, t in enumerate(in_train) if t])
    held = reference.subset([k for k, t in enumerate(in_train) if not t])
    if len(train) == 0 or len(held) == 0:
        raise ShiftbenchError(f"--model {spec} trains on half the reference; "
                              f"{len(reference)} rows are too few to split")
    model.fit(train, runner)
    notes.append(f"--model {spec} was trained on {len(train)} rows of the labelled reference "
                 f"(a stable half by id); the other {len(held)} rows are the reference for "
                 "the detectors and the accuracy estimates")
    return model, held


def accuracy_estimates(model: ModelAdapter | None, reference: Split, current: Split,
                       ref_proba: np.ndarray | None, cur_proba: np.ndarray | None,
                       seed: int) -> dict[str, Any]:
    """Reference accuracy, ATC and DoC estimates of the current accuracy, and the actual
    current accuracy when the current file has labels."""
    from shiftbench.label_free import CAVEAT, atc, doc
    from shiftbench.metrics import accuracy_ci

    if model is None or ref_proba is None or cur_proba is None:
        return {"available": False, "reason": "no model (--model): the estimates need the "
                                              "model's probabilities"}
    if reference.labels is None:
        return {"available": False, "reason": "the reference has no labels (--label-column): "
                                              "ATC and DoC start from the reference accuracy"}
    y_ref = class_indices(reference.labels, model.classes_, reference.ids,
                          str(reference.info.get("source")))
    correct = ref_proba.argmax(axis=1) == y_ref
    ref_acc = accuracy_ci(y_ref, ref_proba.argmax(axis=1))
    atc_est = atc(ref_proba, correct, cur_proba, seed=seed)
    doc_est = doc(ref_proba, correct, cur_proba, seed=seed)
    actual, why_not = None, "the current file has no labels"
    if current.labels is not None:
        try:  # labels on current data are a bonus: a class the model lacks is a finding
            y_cur = class_indices(current.labels, model.classes_, current.ids,
                                  str(current.info.get("source")))
            actual = accuracy_ci(y_cur, cur_proba.argmax(axis=1)).to_dict()
        except ShiftbenchError as exc:
            why_not = str(exc)
    return {"available": True, "reference": ref_acc.to_dict(), "atc": atc_est.to_dict(),
            "doc": doc_est.to_dict(), "actual": actual,
            "actual_unavailable": None if actual else why_not,
            "estimated_change": {"atc": atc_est.estimate.value - ref_acc.value,
                                 "doc": doc_est.value - ref_acc.value},
            "atc_score": "negative entropy of the predicted probabilities",
            "doc_confidence": "max predicted probability", "caveat": CAVEAT}


# -- the check ----------------------------------------------------------------------------


def run_check(reference_path: Path, current_path: Path, options: CheckOptions,
              out_dir: Path) -> dict[str, Any]:
    """Run the one-shot check; save fitted detectors under ``out_dir/detectors``; return
    the JSON-ready result (rendered by :mod:`shiftbench.monitor.report`)."""
    from shiftbench.runner import Runner

    opts = options
    if not 0 < opts.alpha < 1:
        raise ShiftbenchError(f"--alpha must be in (0, 1), got {opts.alpha}")
    if opts.calibrate_repeats < 0:
        raise ShiftbenchError("--calibrate-repeats must be 0 (skip) or more")
    if opts.embedding_column and opts.encoder:
        raise ShiftbenchError("--embedding-column gives precomputed vectors; drop --encoder")
    if opts.embedding_column and opts.controls:
        raise ShiftbenchError("positive controls shift the texts and embed them, which "
                              "precomputed vectors (--embedding-column) cannot do: drop --control")
    detectors = build_detectors(opts.detectors, opts.alpha, opts.seed, opts.device,
                                opts.model is not None)
    default_controls = () if opts.embedding_column else DEFAULT_CONTROLS
    specs = opts.controls if opts.controls is not None else default_controls
    controls = [parse_control(spec) for spec in dict.fromkeys(specs)]
    phases = Phases(check_steps(opts, detectors, has_controls=bool(controls)),
                    enabled=opts.progress is not False)

    with phases.phase("read_s"):
        reference = read_sample(reference_path, "reference", opts.text_column,
                                opts.label_column, opts.embedding_column,
                                need_labels=opts.label_column is not None)
        current = read_sample(current_path, "current", opts.text_column, opts.label_column,
                              opts.embedding_column, need_labels=False)
    runner = Runner(cache_dir=opts.cache_dir, device=opts.device, batch_size=opts.batch_size,
                    progress=opts.progress)
    try:
        result = _Check(opts, runner, out_dir, phases).run(reference, current, detectors,
                                                             controls)
    finally:
        runner.close()
    result["timings"]["total_s"] = phases.elapsed()
    return result


def check_steps(options: CheckOptions, detectors: dict[str, Detector],
                has_controls: bool) -> dict[str, str]:
    """The phases of one check (timing key -> what the phase line says), in order."""
    calibrating = options.calibrate_repeats > 0
    steps = {"read_s": "reading data"}
    if options.model is not None:
        steps["fit_model_s"] = "preparing the model"
    steps["embed_s"] = "embedding" + (" and predicting" if options.model is not None else "")
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
                 phases: Phases) -> None:
        self.options = options
        self.runner = runner
        self.out_dir = out_dir
        self.phases = phases
        self.model: ModelAdapter | None = None
        self.embedder: TextEmbedder | None = None
        self.notes: list[str] = []

    def run(self, reference: Sample, current: Sample, detectors: dict[str, Detector],
            controls: list[tuple[str, int]]) -> dict[str, Any]:
        from shiftbench import __version__
        from shiftbench.models.embed import text_embedder

        opts = self.options
        ref_split, ref_vectors = reference.split, reference.vectors
        if opts.model is not None:
            with self.phases.phase("fit_model_s", opts.model):
                self.model, ref_split = prepare_model(opts.model, ref_split, self.runner,
                                                      self.notes)
            if ref_vectors is not None:
                position = {id_: k for k, id_ in enumerate(reference.split.ids)}
                ref_vectors = ref_vectors[[position[i] for i in ref_split.ids]]
        window = None
        if opts.calibrate_repeats > 0:
            window = calibration_window(opts, len(ref_split), len(current.split), self.notes)
        else:
            self.notes.append("calibration skipped (--calibrate-repeats 0): false-alarm rates "
                              "and power were not measured")
        check_sizes(detectors, len(ref_split), len(current.split), window)
        if ref_vectors is None:
            self.embedder = text_embedder(opts.encoder, self.model)

        with self.phases.phase("embed_s", "reference"):
            ref_in = self.inputs(ref_split, ref_vectors, "reference")
        with self.phases.phase("embed_s", "current"):
            cur_in = self.inputs(current.split, current.vectors, "current")
        if ref_in.embeddings.shape[1] != cur_in.embeddings.shape[1]:
            raise ShiftbenchError(f"{current.path}: embeddings have "
                                  f"{cur_in.embeddings.shape[1]} dimensions, the reference's "
                                  f"have {ref_in.embeddings.shape[1]}")
        labels = [control_label(*control) for control in controls] if window is not None else []
        to_fit = [det for name, det in detectors.items() if not self.reusable(name)]
        positives: dict[str, Inputs] = {}
        if window is not None and to_fit:
            on_proba = any(d.input == "probabilities" for d in to_fit)
            positives = self.controls(controls, ref_split, on_proba)
        if len(to_fit) < len(detectors):
            self.notes.append(f"detectors {', '.join(n for n in detectors if self.reusable(n))} "
                              f"reused from {opts.detectors_dir}: fitted and calibrated by an "
                              "earlier check of the same reference, inputs and settings")
        records = [self.run_detector(name, det, ref_in, cur_in, positives, window, labels)
                   for name, det in detectors.items()]
        decision = verdict(records, opts.alpha)
        if opts.evidently_report:
            from shiftbench.detectors.evidently import html_report

            with self.phases.phase("evidently_report_s"):
                path = html_report(ref_in.embeddings, cur_in.embeddings,
                                   self.out_dir / "evidently.html", seed=opts.seed)
            self.notes.append(f"Evidently's embedding drift report (uncalibrated; rows sampled "
                              f"for its t-SNE plot): {path}")

        with self.phases.phase("accuracy_s"):
            accuracy = accuracy_estimates(self.model, ref_split, current.split,
                                          ref_in.probabilities, cur_in.probabilities, opts.seed)
        embeddings = self.describe_embeddings()
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "monitor-check",
            "shiftbench_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "reference": _describe_sample(reference, ref_split),
            "current": _describe_sample(current, current.split),
            "embeddings": {**embeddings, "dim": int(ref_in.embeddings.shape[1])},
            "model": self._describe_model(),
            "settings": {"alpha": opts.alpha, "seed": opts.seed, "window": window,
                         "calibrate_repeats": opts.calibrate_repeats,
                         "controls": labels, "detectors": list(detectors)},
            "verdict": decision,
            "detectors": records,
            "accuracy": accuracy,
            "notes": self.notes,
            "timings": self.phases.seconds,
            "runner": dict(self.runner.stats),
        }

    def inputs(self, split: Split, vectors: np.ndarray | None, name: str,
               proba: bool = True) -> Inputs:
        """Embeddings (computed unless given) and, when ``proba`` and there is a model, its
        probabilities."""
        if vectors is None:
            assert self.embedder is not None  # set whenever vectors are not precomputed
            vectors = self.embedder(split.texts, self.runner, name)
        if self.model is None or not proba:
            return Inputs(vectors)
        return Inputs(vectors, self.model.predict_proba(split.texts, self.runner))

    def controls(self, controls: list[tuple[str, int]], reference: Split,
                 proba: bool) -> dict[str, Inputs]:
        """Each positive control: the reference texts under a shift (row-aligned), embedded
        (and predicted, when ``proba``)."""
        from shiftbench.registry import SHIFTS
        from shiftbench.shifts import apply_shift

        out = {}
        for name, severity in controls:
            label = control_label(name, severity)
            with self.phases.phase("controls_s", label):
                shift = SHIFTS.load(name)(severity=severity)
                shifted = apply_shift(shift, reference, self.options.seed, label, self.runner)
                out[label] = self.inputs(shifted, None, f"control {label}", proba)
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
        """What a saved detector was fitted and calibrated for; reuse needs all of it."""
        from shiftbench.detectors import reference_digest

        inputs = ({"model": self.model.fingerprint()} if det.input == "probabilities"
                  and self.model is not None else self.describe_embeddings())
        repeats = self.options.calibrate_repeats if window is not None else 0
        return {"reference": reference_digest(rows), "inputs": inputs,
                "calibration": {"window": window, "repeats": repeats, "controls": labels,
                                "seed": self.options.seed}}

    def run_detector(self, name: str, det: Detector, ref: Inputs, cur: Inputs,
                     positives: dict[str, Inputs], window: int | None,
                     labels: list[str]) -> dict[str, Any]:
        """Fit, test, calibrate and save one detector (or load it, fitted and calibrated,
        from ``detectors_dir``); its JSON record."""
        use_proba = det.input == "probabilities"

        def pick(x: Inputs) -> np.ndarray:
            data = x.probabilities if use_proba else x.embeddings
            assert data is not None  # build_detectors wants a model for probability detectors
            return data

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
                                  self.options.calibrate_repeats, self.options.seed)
        if not reused:
            det.save(folder, context)
        calibration = det.calibration_
        return {**result.to_dict(), "detector": name,
                "input": "model probabilities" if use_proba else "embeddings",
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
