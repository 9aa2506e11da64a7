"""Gate policy files: pydantic models (unknown keys are errors) and a loader with clear errors.

A policy names rules over a suite's splits, never models: the same policy gates any
baseline/candidate pair run on that suite. Thresholds are fractions (0.02 = 2 points).

Each rule kind is a :class:`RuleBase` subclass registered in
:data:`shiftbench.registry.GATE_RULES` (built-ins in :mod:`shiftbench.gate.kinds`,
plug-ins through the ``shiftbench.gate_rules`` entry-point group): its fields are the
policy's YAML keys, and its methods say which splits it checks, what it compares, how it
tests that and what a failure means. The gate engine (:mod:`shiftbench.gate.rules`)
knows rules only through these methods.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PlainValidator, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shiftbench.config import Strict, load_yaml_model
from shiftbench.errors import did_you_mean

if TYPE_CHECKING:
    import numpy as np

    from shiftbench.evaluate import ScoredSplit
    from shiftbench.gate.runs import Run
    from shiftbench.gate.stats import Evidence


@dataclass(frozen=True)
class Setup:
    """What a check compares: the quantity, its unit (see
    :mod:`shiftbench.report.numbers`), and the threshold with ``op`` saying when the rule
    holds (``">="``: the estimate is at least the threshold). ``op`` None: the check has
    no threshold and its point decision is the evidence's own ``flagged``."""

    quantity: str
    unit: str
    op: str | None
    threshold: float | None


@dataclass(frozen=True)
class Trial:
    """Everything one check's test reads: the runs, the split, its set-up, the gate's
    error and power settings (``a``: the level the power promise is made at, None for a
    point decision) and the check's own seeded rng."""

    baseline: Run
    candidate: Run
    split: str
    setup: Setup
    alpha: float
    a: float | None
    power: float
    n_boot: int
    rng: np.random.Generator


class RuleBase(Strict):
    """What every rule has: a name, a severity, how it decides, and the splits it covers.

    ``split`` is a split name or a glob pattern (``keyboard@*``), or a list of them; a
    rule expands into one check per matching split. ``decide: test`` fails only on
    significant evidence (Holm across the gate); ``decide: point`` fails whenever the
    point estimate crosses the threshold, with no error control.

    A rule kind declares ``kind: Literal["<its registry name>"]`` and implements
    :meth:`setup`, :meth:`evidence` and :meth:`violation`; it may narrow the splits it
    checks (:meth:`ineligible`) and the runs it accepts (:meth:`check_run`).
    """

    kind: str
    name: str | None = None
    severity: Literal["fail", "warn"] = "fail"
    decide: Literal["test", "point"] = "test"
    split: str | list[str] = "*"

    @field_validator("split")
    @classmethod
    def _nonempty(cls, v: str | list[str]) -> str | list[str]:
        if not v or (isinstance(v, list) and not all(v)):
            raise ValueError("split is a name or pattern, or a non-empty list of them")
        return v

    @property
    def patterns(self) -> list[str]:
        return self.split if isinstance(self.split, list) else [self.split]

    @property
    def metric_name(self) -> str:
        """What the verdicts list as the rule's metric (its kind, for rules without one)."""
        return self.kind

    @property
    def auto_name(self) -> str:
        """The rule's name when the policy gives none, e.g. 'absolute accuracy'."""
        return f"{self.kind} {self.metric_name}"

    def check_run(self, candidate: Run, where: str) -> None:
        """Raise ShiftbenchError (naming ``where``) if the candidate run cannot be checked
        by this rule at all (e.g. it has no drift results)."""

    def ineligible(self, split: ScoredSplit, candidate: Run) -> str | None:
        """Why this rule cannot check ``split``, or None when it can: a pattern skips such
        splits, a split named outright is an error."""
        return None

    @abstractmethod
    def setup(self, split: str, candidate: Run, where: str) -> Setup:
        """What the check of ``split`` compares; raise ShiftbenchError (naming ``where``)
        when the runs lack what it needs."""

    @abstractmethod
    def evidence(self, trial: Trial) -> Evidence:
        """The estimate, its interval and the one-sided p-value of H0 "the rule holds"
        (see :mod:`shiftbench.gate.stats`)."""

    @abstractmethod
    def violation(self, split: str, setup: Setup) -> str:
        """What a failure of the check of ``split`` means, in words."""

    def examples(self, baseline: Run, candidate: Run, split: str) -> Compared | None:
        """The scorings of ``split`` whose differences are the examples behind a failed
        check (shown in the gate's examples page), or None for a rule with no examples
        behind it (e.g. a drift test of embeddings)."""
        return None


@dataclass(frozen=True)
class Compared:
    """What a check compares, example by example: ``before`` and ``after`` paired by id
    (the examples whose prediction changed), or ``before`` None (the after side's most
    confident errors); ``names`` say what each side is."""

    before: ScoredSplit | None
    after: ScoredSplit
    names: tuple[str, str]


def _rule(entry: Any) -> RuleBase:
    """A policy's rule entry as the rule kind its ``kind`` names (a registry lookup, so
    plug-in kinds validate like built-ins)."""
    from shiftbench.registry import GATE_RULES

    if isinstance(entry, RuleBase):
        return entry
    kind = entry.get("kind") if isinstance(entry, dict) else None
    kinds = GATE_RULES.names()
    if kind not in kinds:
        hint = did_you_mean(kind, kinds) if isinstance(kind, str) else ""
        raise PydanticCustomError("rule_kind", "each rule needs a kind: {kinds}{hint}",
                                  {"kinds": " | ".join(kinds), "hint": hint})
    return GATE_RULES.load(kind).model_validate(entry)


Rule = Annotated[RuleBase, PlainValidator(_rule)]


class Policy(Strict):
    """alpha bounds the chance that a release satisfying every fail rule is failed (Holm
    over the fail rules' checks; warn rules are a second family at the same alpha)."""

    description: str = ""
    suite: str | None = Field(default=None, description="suite file, relative to the policy")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    n_boot: int = Field(default=5000, ge=200)
    seed: int = 0
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [r.name for r in self.rules if r.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        return self

    def rule_names(self) -> list[str]:
        """Each rule's name, or its :attr:`RuleBase.auto_name` (numbered when that repeats)."""
        auto = [r.auto_name for r in self.rules]
        return [r.name or (f"{a} #{i}" if auto.count(a) > 1 else a)
                for i, (r, a) in enumerate(zip(self.rules, auto, strict=True))]


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file."""
    return load_yaml_model(path, Policy, "policy")
