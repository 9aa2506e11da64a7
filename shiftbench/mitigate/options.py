"""What ``shiftbench mitigate`` was asked: its options and ``--param name=value`` pairs,
converted strictly to the types the method and the trainer annotate."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError, did_you_mean

if TYPE_CHECKING:
    from shiftbench.runtime import Runtime

NOT_TUNABLE = ("seed", "device")  # set by --seeds and --device
TRUTHS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

@dataclass
class MitigateOptions:
    """What ``shiftbench mitigate`` was asked, besides the suite and the base model."""

    method: str
    params: list[str]  # "k=v", for the method or the trainer (TrainConfig)
    seeds: int
    out: Path
    runtime: Runtime
    data_dir: Path | None = None
    limit: int | None = None
    policy: Path | None = None  # a gate policy: its verdict on each seed's model vs the base
    targets: list[str] = field(default_factory=list)  # splits giving the target; []: domains


def parse_params(method_cls: type, pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``k=v`` strings -> (the method's parameters, the trainer's), each value converted
    strictly to the type its ``__init__`` (or :class:`TrainConfig` field) annotates."""
    from shiftbench.train.trainer import TrainConfig

    method_types = typing.get_type_hints(method_cls.__init__)
    train_types = {f.name: f.type for f in fields(TrainConfig) if f.name not in NOT_TUNABLE}
    train_types = {name: {"int": int, "float": float, "str": str}.get(str(kind), kind)
                   for name, kind in train_types.items()}
    known = [*method_cls.param_names(), *train_types]
    method_params: dict[str, Any] = {}
    train_params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ShiftbenchError(f"--param {pair!r}: write name=value")
        if name not in known:
            raise ShiftbenchError(f"--param {name!r}: not a parameter of {method_cls.name} or "
                                  f"the trainer" + did_you_mean(name, known))
        is_method = name in method_cls.param_names()
        kind = method_types.get(name, str) if is_method else train_types[name]
        target = method_params if is_method else train_params
        if name in target:
            raise ShiftbenchError(f"--param {name!r} is given twice")
        target[name] = convert(name, text, kind)
    return method_params, train_params


def convert(name: str, text: str, kind: Any) -> Any:
    """One parameter's value as ``kind`` (bool, int, float or str); anything else is an
    error naming the parameter."""
    import math

    try:
        if kind is bool:
            return TRUTHS[text.lower()]
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except (KeyError, ValueError):
        what = {bool: "true or false", int: "an integer", float: "a finite number"}[kind]
        raise ShiftbenchError(f"--param {name}={text!r}: must be {what}") from None
    return text
