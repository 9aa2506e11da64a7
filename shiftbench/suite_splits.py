"""A suite's splits: the suite checked whole before any work (every shift and detector it
names is built once), then its data read once per source and every split made from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench.config import DetectorSpec, Domain, Perturbation, Suite, load_suite
from shiftbench.data import check_train_overlap, read_source, select, to_split, with_metadata
from shiftbench.errors import ShiftbenchError
from shiftbench.progress import Phases
from shiftbench.registry import SHIFTS
from shiftbench.split import Split, sample_indices

if TYPE_CHECKING:
    import pandas as pd

    from shiftbench.runner import Runner
    from shiftbench.shifts import Shift


@dataclass
class SuiteSplits:
    train: Split | None
    reference: Split
    shifted: list[Split]
    shift_stats: dict[str, dict] = field(default_factory=dict)


def data_base_dir(suite: Suite, suite_path: Path, data_dir: Path | None) -> Path:
    """Relative data paths resolve against --data-dir, else suite.data_dir, else its folder."""
    if data_dir is not None:
        return data_dir
    if suite.data_dir is not None:
        return (suite_path.parent / suite.data_dir).resolve()
    return suite_path.parent


def build_splits(suite: Suite, suite_path: Path, data_dir: Path | None, limit: int | None,
                 need_train: bool, runner: Runner, phases: Phases) -> SuiteSplits:
    """Read the data once per source and make every split the suite names; ``data_dir``
    and ``limit`` (per evaluated split) override the suite's.

    Shifts that batch (back-translation) use ``runner`` for its cache and device, and
    leave throughput figures in ``stats_``; those go to ``shift_stats`` by split name.
    """
    base = data_base_dir(suite, suite_path, data_dir)
    frames: dict[str, pd.DataFrame] = {}

    labelled = suite.task == "classification"

    def rows(selection, limit):
        source = selection.source or suite.data
        if not labelled:  # a generation suite scores targets: labels are not read
            source = source.model_copy(update={"label": None, "labels": None})
        key = source.model_dump_json()
        if key not in frames:
            frames[key] = read_source(source, base)
            if selection.source is not None and not source.metadata and suite.data.metadata:
                frames[key] = with_metadata(frames[key], suite.data.metadata)
        return select(frames[key], selection, suite.seed, limit)

    limit = limit or suite.limit
    train = None
    with phases.phase("load_data_s"):
        if need_train:
            if suite.train is None:
                raise ShiftbenchError(f"{suite_path}: train: the model needs a train split; "
                                      "add one")
            train = to_split(rows(suite.train, suite.train.limit), "train", labelled,
                             kind="train")
        reference = to_split(rows(suite.reference, _min(suite.reference.limit, limit)),
                             "reference", labelled, kind="reference")
        domains = {index: to_split(rows(entry, _min(entry.limit, limit)), entry.name, labelled,
                                   kind="domain")
                   for index, entry in enumerate(suite.shifts) if isinstance(entry, Domain)}
        reference, *checked = check_train_overlap(train, [reference, *domains.values()],
                                                  suite.allow_train_overlap, suite_path)
        domains = dict(zip(domains, checked, strict=True))
    from shiftbench.shifts import apply_shift

    shifted, shift_stats = [], {}
    for index, entry in enumerate(suite.shifts):
        if index in domains:
            shifted.append(domains[index])
            continue
        source = reference
        if entry.limit is not None:
            source = reference.subset(sample_indices(reference.ids, suite.seed, entry.limit))
        for severity in entry.severities:
            name = f"{entry.name or entry.shift}@{severity}"
            shift = make_shift(entry, severity, index, suite_path)
            with phases.phase("shifts_s", name):
                shifted.append(apply_shift(shift, source, suite.seed, name, runner))
            if getattr(shift, "stats_", None):
                shift_stats[name] = shift.stats_
    return SuiteSplits(train, reference, shifted, shift_stats)


def _min(a: int | None, b: int | None) -> int | None:
    return min(x for x in (a, b) if x is not None) if a is not None or b is not None else None


def make_shift(entry: Perturbation, severity: int, index: int, suite_path: Path) -> Shift:
    """The shift a suite entry names, at one severity; errors name the suite field."""
    try:
        shift_cls = SHIFTS.load(entry.shift)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{suite_path}: shifts.{index}.shift: {exc}") from None
    try:
        return shift_cls(severity=severity, **entry.params)
    except (ShiftbenchError, TypeError, ValueError) as exc:
        raise ShiftbenchError(f"{suite_path}: shifts.{index}.params: {exc}") from None


def check_detector(spec: DetectorSpec, index: int, suite_path: Path,
                   task: str = "classification") -> None:
    """A detector the suite names must exist and accept its parameters, each of its type and
    in its range (and have inputs a run of the suite's task makes: a generator has no class
    probabilities, a classifier no output texts)."""
    from shiftbench.detectors import make_detector
    from shiftbench.registry import DETECTORS

    try:
        DETECTORS.target(spec.name)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{suite_path}: detectors.{index}.name: {exc}") from None
    try:
        detector = make_detector(spec.name, **spec.params).validate()
    except (ShiftbenchError, TypeError, ValueError) as exc:
        raise ShiftbenchError(f"{suite_path}: detectors.{index}.params: {exc}") from None
    if task == "generation" and detector.input == "probabilities":
        raise ShiftbenchError(f"{suite_path}: detectors.{index}.name: {spec.name} tests a "
                              "classifier's probabilities; a generation suite has none (use a "
                              "detector of embeddings, e.g. mmd)")
    if task != "generation" and detector.input == "output_words":
        raise ShiftbenchError(f"{suite_path}: detectors.{index}.name: {spec.name} tests a "
                              "generator's output lengths; only a suite with task: generation "
                              "has outputs")


def load_valid_suite(path: Path) -> Suite:
    """Load a suite and build each shift and detector it names, so what `run` would reject
    fails before any work. `ls` calls this too: a suite it lists as valid, `run` accepts."""
    suite = load_suite(path)
    for index, entry in enumerate(suite.shifts):
        if isinstance(entry, Perturbation):
            for severity in entry.severities:
                make_shift(entry, severity, index, path)
    for index, spec in enumerate(suite.detectors):
        check_detector(spec, index, path, suite.task)
    return suite
