"""Everything ``shiftbench mitigate`` checks before any work, and which rows it trains on:
the base model and how it is retrained, and the unlabelled target taken from the domain
splits."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.config import Domain, Perturbation, split_names
from shiftbench.data import check_train_overlap
from shiftbench.errors import ShiftbenchError, did_you_mean
from shiftbench.mitigate.options import SELECTIONS, MitigateOptions, parse_grid, parse_params
from shiftbench.mitigate.retrain import Retrainer, retrainer
from shiftbench.paths import check_writable
from shiftbench.run import check_limit
from shiftbench.split import Split, unit_hash
from shiftbench.suite_splits import SuiteSplits, load_valid_suite

if TYPE_CHECKING:
    from shiftbench.config import Suite
    from shiftbench.models import ModelAdapter
    from shiftbench.train.mitigations import Mitigation
    from shiftbench.train.trainer import TrainConfig

TARGET_SHARE = 0.5  # of each target split's rows, by id hash, used as the unlabelled target


def base_model(spec: str) -> tuple[ModelAdapter, Retrainer]:
    """The base model and how it is retrained (a probe's head, or an hf model end to end)."""
    from shiftbench.models import load_model

    model = load_model(spec)
    return model, retrainer(model, spec)


def evaluable_base(base: ModelAdapter, splits: list[Split]) -> bool:
    """Whether the base as it is classifies the suite's labels: a bare encoder (no head,
    or a head for other labels) has no as-is accuracy, and ERM is the baseline."""
    labels = {label for split in splits for label in split.labels or []}
    return labels <= set(base.classes_)


def check_policy_base(options: MitigateOptions, base_spec: str, evaluable: bool) -> None:
    """The gate judges each mitigated model against the base, so it needs one."""
    if options.policy is not None and not evaluable:
        raise ShiftbenchError(f"--policy: the gate compares each mitigated model with the base, "
                              f"and --model {base_spec!r} is an encoder without a classifier "
                              "for the suite's labels; leave out --policy or give a base "
                              "trained for them")


def target_names(suite: Suite, requested: list[str], suite_path: Path) -> list[str]:
    """The splits that give the unlabelled target: those ``--target`` names (each a domain
    split of the suite), or every domain split."""
    domains = [entry.name for entry in suite.shifts if isinstance(entry, Domain)]
    for name in requested:
        if name in domains:
            continue
        if name in ["reference", *split_names(suite)]:
            raise ShiftbenchError(f"--target {name!r}: rows of the reference (or a perturbation "
                                  "of it) cannot be a target; name a domain split of "
                                  f"{suite_path} ({', '.join(domains) or 'it has none'})")
        raise ShiftbenchError(f"--target {name!r}: {suite_path} has no such domain split"
                              + did_you_mean(name, domains))
    return list(dict.fromkeys(requested)) or domains


def split_targets(splits: SuiteSplits, names: list[str]) -> tuple[list[Split], Split | None]:
    """The evaluated splits (each target split keeps only its evaluated half) and the
    target (the other halves, joined, each id prefixed by its split's name, since two
    domain splits may hold the same row or reuse an id; None without target splits). A
    target half that is empty, leaves nothing to evaluate, or shares rows with the train
    split is an error."""
    evaluated, target_parts = [splits.reference], []
    for split in splits.shifted:
        if split.name not in names:
            evaluated.append(split)
            continue
        held = [unit_hash("mitigate-target", i) < TARGET_SHARE for i in split.ids]
        part = checked_target(split.subset([k for k, h in enumerate(held) if h]), split,
                              splits.train)
        target_parts.append(part)
        evaluated.append(split.subset([k for k, h in enumerate(held) if not h]))
    if not target_parts:
        return evaluated, None
    target = Split("target", [f"{p.name}:{i}" for p in target_parts for i in p.ids],
                   [t for p in target_parts for t in p.texts],
                   info={"kind": "target", "splits": names})
    return evaluated, target


def checked_target(part: Split, split: Split, train: Split | None) -> Split:
    """A split's target half, refused when it (or the evaluated half) is empty or when it
    shares rows (same source and id) with the train split."""
    if not len(part) or len(part) == len(split):
        raise ShiftbenchError(f"--target {split.name!r}: its {len(split)} row(s) leave "
                              f"{'no target' if not len(part) else 'no evaluated'} rows when "
                              "halved by id; a target split needs more rows")
    [checked] = check_train_overlap(train, [part], True, "")
    shared = checked.info.get("train_overlap", 0)
    if shared:
        raise ShiftbenchError(f"--target {split.name!r}: {shared} of its {len(part)} target "
                              "rows are training rows (same source and id); a target must not "
                              "overlap the train split: make the suite's filters or portions "
                              "disjoint")
    return part


@dataclass(frozen=True)
class Candidate:
    """One combination of the grid (the only one without ``--grid``): the method, the
    trainer's settings (seed 0) and the grid's values."""

    method: Mitigation
    config: TrainConfig
    values: dict[str, Any]


@dataclass
class Setup:
    """What ``shiftbench mitigate`` runs, checked: the suite, the method and the trainer's
    settings with the ``--param`` values, the grid's candidates for the method and for ERM
    (ERM's vary the grid's trainer parameters only), how one is selected, the base model,
    how it is retrained, and the splits giving the target."""

    suite: Suite
    mitigation: Mitigation
    config: TrainConfig  # the trainer's defaults for the base, with --param (seed 0)
    candidates: list[Candidate]
    erm_candidates: list[Candidate]
    select: str  # source or dev (see shiftbench.mitigate.selection)
    base: ModelAdapter
    retrainer: Retrainer
    targets: list[str]


def checked_setup(suite_path: Path, base_spec: str, options: MitigateOptions) -> Setup:
    """Everything that can be refused before any work: the suite, the method and its
    parameters, the trainer's settings, the grid, seeds, limit, base model, output folder,
    policy, target splits."""
    from shiftbench.registry import MITIGATIONS
    from shiftbench.train.mitigations import ERM

    suite = load_valid_suite(suite_path)
    if suite.task == "generation":
        raise ShiftbenchError(f"{suite_path}: task: generation; mitigate retrains classifiers "
                              "(a probe's head or an hf classifier), so it needs a "
                              "classification suite")
    method_cls = MITIGATIONS.load(options.method)
    method_params, train_params = parse_params(method_cls, options.params)
    grid = parse_grid(method_cls, options.grid, options.params)
    if options.seeds < 1:
        raise ShiftbenchError("--seeds must be at least 1")
    check_limit(options.limit)
    base, retrain = base_model(base_spec)
    ignored = [name for name in [*train_params, *grid[0][1]] if name in retrain.unused]
    if ignored:
        raise ShiftbenchError(f"{ignored[0]}: fine-tuning {base_spec!r} end to end uses its "
                              f"own classification head; {', '.join(retrain.unused)} size a "
                              "probe's head")
    check_writable(options.out)
    if options.policy is not None:
        from shiftbench.gate.policy import load_policy

        load_policy(options.policy)
    targets = target_names(suite, options.targets, suite_path)
    config = replace(retrain.defaults(), **train_params, device=options.runtime.device,
                     precision=options.runtime.precision)
    candidates = [Candidate(method_cls(**method_params, **m), replace(config, **t), {**m, **t})
                  for m, t in grid]
    erm = list({json.dumps(t, sort_keys=True): Candidate(ERM(), replace(config, **t), t)
                for _, t in grid}.values())
    select = checked_selection(options, candidates, targets, suite_path)
    if select != "dev" and not any(c.method.uses_target for c in candidates):
        targets = []  # no target: every domain split is evaluated whole
    for candidate in candidates:
        check_task_columns(candidate.method, suite, suite_path)
        bind_suite_shifts(candidate.method, suite)
    return Setup(suite, bind_suite_shifts(method_cls(**method_params), suite), config,
                 candidates, erm, select, base, retrain, targets)


def task_columns(method: Mitigation) -> list[str]:
    """The metadata columns a method trains on as auxiliary labels (``multitask``'s tasks
    other than ``domain``)."""
    from shiftbench.train.mitigations import MultiTask

    if not isinstance(method, MultiTask):
        return []
    return [name for name in method.task_names() if name != "domain"]


def check_task_columns(method: Mitigation, suite: Suite, suite_path: Path) -> None:
    """Every auxiliary task must be a metadata column of the train split's data."""
    source = (suite.train.source if suite.train else None) or suite.data
    for name in task_columns(method):
        if name not in source.metadata:
            raise ShiftbenchError(f"{method.name}: task {name!r} is not a label column of the "
                                  f"train split (metadata columns: "
                                  f"{', '.join(source.metadata) or 'none'}; name them in "
                                  f"{suite_path}'s data.metadata)")


def bind_suite_shifts(method: Mitigation, suite: Suite) -> Mitigation:
    """``augment`` may name the suite's own shift entries (``--param
    shift=backtranslate-es``: that entry's engine and pivot); its shifts are checked here,
    before any work."""
    from shiftbench.train.mitigations import Augment

    if isinstance(method, Augment):
        method.suite_shifts = {entry.name or entry.shift: (entry.shift, dict(entry.params))
                               for entry in suite.shifts if isinstance(entry, Perturbation)}
        method.shifts()
    return method


def checked_selection(options: MitigateOptions, candidates: list[Candidate],
                      targets: list[str], suite_path: Path) -> str:
    """How a grid's combination is selected (``source`` unless ``--select`` says), checked
    against the targets the methods and the selection need."""
    select = options.select or "source"
    if select not in SELECTIONS:
        raise ShiftbenchError(f"--select {select!r}: use " + " or ".join(SELECTIONS))
    if options.select is not None and not options.grid:
        raise ShiftbenchError("--select chooses among the combinations of --grid; give --grid")
    uses_target = any(c.method.uses_target for c in candidates)
    if (uses_target or select == "dev") and not targets:
        needs = options.method if uses_target else "--select dev"
        raise ShiftbenchError(f"{suite_path}: {needs} needs an unlabelled target, taken from "
                              "the suite's domain splits; this suite has none")
    if options.targets and not uses_target and select != "dev":
        raise ShiftbenchError(f"--target: {options.method} does not train on a target (dann "
                              "and multitask with tasks=domain do, and --select dev uses one)")
    return select
