"""What ``shiftbench mitigate`` was asked: its options and ``--param name=value`` pairs,
converted strictly to the types the method and the trainer annotate."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError, did_you_mean

if TYPE_CHECKING:
    from shiftbench.runtime import Runtime

NOT_TUNABLE = ("seed", "device", "precision")  # set by --seeds, --device, --precision
NOT_SEARCHABLE = ("val_fraction",)  # it picks the held-out rows selection compares on
GRID_CAP = 64  # combinations per seed
SELECTIONS = ("source", "dev")
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
    grid: list[str] = field(default_factory=list)  # "k=v1,v2,...", searched per seed
    select: str | None = None  # how a grid's combination is chosen: source (default) or dev
    failures_inline: int | None = None  # examples per group in the page (default: INLINE)


def parse_params(method_cls: type, pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``k=v`` strings -> (the method's parameters, the trainer's), each value converted
    strictly to the type its ``__init__`` (or :class:`TrainConfig` field) annotates."""
    from shiftbench.train.trainer import TrainConfig

    method_types = typing.get_type_hints(method_cls.__init__)
    train_types = {f.name: f.type for f in fields(TrainConfig) if f.name not in NOT_TUNABLE}
    train_types = {name: {"int": int, "float": float, "str": str}.get(str(kind), kind)
                   for name, kind in train_types.items()}
    known = list(dict.fromkeys([*method_cls.param_names(), *train_types]))  # no name twice
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


def parse_grid(method_cls: type, pairs: list[str], fixed: list[str]
               ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``name=v1,v2,...`` strings -> every combination of their values (the product, at
    most :data:`GRID_CAP`), each as (the method's parameters, the trainer's); values are
    converted as ``--param`` converts them. ``fixed``: the ``--param`` pairs, which a grid
    may not name again."""
    import itertools

    given = {pair.partition("=")[0] for pair in fixed}
    axes = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name or not text:
            raise ShiftbenchError(f"--grid {pair!r}: write name=value1,value2,...")
        if name in given or any(name == axis[0][0] for axis in axes):
            raise ShiftbenchError(f"--grid {name!r}: the parameter is given twice (--param or "
                                  "--grid)")
        if name in NOT_SEARCHABLE:
            raise ShiftbenchError(f"--grid {name!r}: cannot be searched; it chooses the "
                                  "held-out rows that selection compares on")
        values = text.split(",")
        if len(set(values)) < len(values):
            raise ShiftbenchError(f"--grid {name!r}: a value is repeated in {text!r}")
        try:
            axes.append([(name, *parse_params(method_cls, [f"{name}={v}"])) for v in values])
        except ShiftbenchError as exc:
            raise ShiftbenchError(str(exc).replace("--param", "--grid", 1)) from None
    count = math.prod(len(axis) for axis in axes)
    if count > GRID_CAP:
        raise ShiftbenchError(f"--grid: {count} combinations; at most {GRID_CAP} are trained "
                              "per seed (use fewer values)")
    return [({k: v for _, m, _ in combo for k, v in m.items()},
             {k: v for _, _, t in combo for k, v in t.items()})
            for combo in itertools.product(*axes)]


def convert(name: str, text: str, kind: Any) -> Any:
    """One parameter's value as ``kind`` (bool, int, float or str); anything else is an
    error naming the parameter."""
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
