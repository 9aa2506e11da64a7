"""Everything ``shiftbench mitigate`` checks before any work, and which rows it trains on:
the base model and its encoder, and the unlabelled target taken from the domain splits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.config import Domain
from shiftbench.errors import ShiftbenchError
from shiftbench.mitigate.options import MitigateOptions, parse_params
from shiftbench.paths import check_writable
from shiftbench.run import check_limit
from shiftbench.split import Split, unit_hash
from shiftbench.suite_splits import SuiteSplits, load_valid_suite

if TYPE_CHECKING:
    from shiftbench.config import Suite
    from shiftbench.models import ModelAdapter
    from shiftbench.train.mitigations import Mitigation

TARGET_SHARE = 0.5  # of each domain split's rows, by id hash, used as the unlabelled target


def base_encoder(spec: str) -> tuple[ModelAdapter, str | None]:
    """The base model and its encoder: only a probe (frozen encoder + head) can be
    retrained here."""
    from shiftbench.models import load_model
    from shiftbench.models.probe import EncoderProbe

    model = load_model(spec)
    if not isinstance(model, EncoderProbe):
        raise ShiftbenchError(f"--model {spec!r}: a {model.adapter} model cannot be retrained by "
                              "mitigate, which trains heads on a frozen encoder's embeddings; "
                              "use probe or probe:<encoder>")
    return model, model.source


def split_domains(splits: SuiteSplits) -> tuple[list[Split], Split | None]:
    """The evaluated splits (each domain split keeps only its evaluated half) and the
    target (the other halves, joined; None without domain splits)."""
    evaluated, target_parts = [splits.reference], []
    for split in splits.shifted:
        if split.info.get("kind") != "domain":
            evaluated.append(split)
            continue
        held = [unit_hash("mitigate-target", i) < TARGET_SHARE for i in split.ids]
        target_parts.append(split.subset([k for k, h in enumerate(held) if h]))
        evaluated.append(split.subset([k for k, h in enumerate(held) if not h]))
    if not target_parts:
        return evaluated, None
    target = Split("target", [i for p in target_parts for i in p.ids],
                   [t for p in target_parts for t in p.texts])
    return evaluated, target


def checked_setup(suite_path: Path, base_spec: str, options: MitigateOptions
                  ) -> tuple[Suite, Mitigation, dict[str, Any], ModelAdapter, str | None]:
    """Everything that can be refused before any work: the suite, the method and its
    parameters, the trainer's settings, seeds, limit, base model, output folder, policy.
    Returns (suite, method, trainer parameters, base model, encoder)."""
    from shiftbench.registry import MITIGATIONS
    from shiftbench.train.trainer import TrainConfig

    suite = load_valid_suite(suite_path)
    method_cls = MITIGATIONS.load(options.method)
    method_params, train_params = parse_params(method_cls, options.params)
    if options.seeds < 1:
        raise ShiftbenchError("--seeds must be at least 1")
    check_limit(options.limit)
    base, encoder = base_encoder(base_spec)
    check_writable(options.out)
    if options.policy is not None:
        from shiftbench.gate.policy import load_policy

        load_policy(options.policy)
    if method_cls.uses_target and not any(isinstance(e, Domain) for e in suite.shifts):
        raise ShiftbenchError(f"{suite_path}: {options.method} trains on an unlabelled target, "
                              "taken from the suite's domain splits; this suite has none")
    mitigation = method_cls(**method_params)
    TrainConfig(**train_params)  # out-of-range values fail before any work
    return suite, mitigation, train_params, base, encoder
