"""Gate policy files: pydantic models (unknown keys are errors) and a loader with clear errors.

A policy names rules over a suite's splits, never models: the same policy gates any
baseline/candidate pair run on that suite. Thresholds are fractions (0.02 = 2 points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from shiftbench.config import Strict, load_yaml_model

Metric = Literal["accuracy", "macro_f1", "ece", "nll"]
HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "ece": False, "nll": False}
PROPORTIONS = ("accuracy", "macro_f1")
KINDS = ("absolute", "robustness", "non_inferiority", "flip_rate", "drift")


class RuleBase(Strict):
    """What every rule has: a name, a severity, how it decides, and the splits it covers.

    ``split`` is a split name or a glob pattern (``keyboard@*``), or a list of them; a
    rule expands into one check per matching split. ``decide: test`` fails only on
    significant evidence (Holm across the gate); ``decide: point`` fails whenever the
    point estimate crosses the threshold, with no error control.
    """

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
        return getattr(self, "metric", self.kind)  # type: ignore[attr-defined]


class Absolute(RuleBase):
    """The candidate's metric on a split is at least ``min`` (or at most ``max``)."""

    kind: Literal["absolute"]
    metric: Metric = "accuracy"
    split: str | list[str] = "reference"
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Absolute:
        if (self.min is None) == (self.max is None):
            raise ValueError("an absolute rule takes exactly one of min, max")
        bound = self.min if self.min is not None else self.max
        if self.metric in PROPORTIONS and not 0 < bound < 1:
            raise ValueError(f"a bound on {self.metric} is a fraction strictly between 0 and 1")
        if bound < 0:
            raise ValueError(f"{self.metric} is never negative")
        return self


class Robustness(RuleBase):
    """The candidate's metric worsens by at most ``max_drop`` from the reference to each
    shifted split (paired by id for perturbations, unpaired for other domains)."""

    kind: Literal["robustness"]
    metric: Metric = "accuracy"
    max_drop: float = Field(ge=0)
    method: Literal["auto", "mcnemar", "bootstrap"] = "auto"

    @model_validator(mode="after")
    def _mcnemar_fits(self) -> Robustness:
        if self.method == "mcnemar" and (self.metric != "accuracy" or self.max_drop != 0):
            raise ValueError("method mcnemar tests accuracy with max_drop 0; use bootstrap")
        return self


class NonInferiority(RuleBase):
    """The candidate's metric on a split is worse than the baseline's by at most ``margin``
    (paired by example id)."""

    kind: Literal["non_inferiority"]
    metric: Metric = "accuracy"
    margin: float = Field(default=0.0, ge=0)
    method: Literal["auto", "mcnemar", "bootstrap"] = "auto"

    @model_validator(mode="after")
    def _mcnemar_fits(self) -> NonInferiority:
        if self.method == "mcnemar" and (self.metric != "accuracy" or self.margin != 0):
            raise ValueError("method mcnemar tests accuracy with margin 0; use bootstrap")
        return self


class FlipRate(RuleBase):
    """At most ``max`` of the candidate's predictions change under a perturbation."""

    kind: Literal["flip_rate"]
    max: float = Field(gt=0, lt=1)


class Drift(RuleBase):
    """A drift detector of the suite must not flag the split (e.g. shifts the model is
    meant to be invariant to); needs a candidate run with drift results."""

    kind: Literal["drift"]
    detector: str


def _rule_kind(entry: Any) -> str | None:
    return entry.get("kind") if isinstance(entry, dict) else getattr(entry, "kind", None)


Rule = Annotated[
    Annotated[Absolute, Tag("absolute")]
    | Annotated[Robustness, Tag("robustness")]
    | Annotated[NonInferiority, Tag("non_inferiority")]
    | Annotated[FlipRate, Tag("flip_rate")]
    | Annotated[Drift, Tag("drift")],
    Discriminator(_rule_kind, custom_error_type="rule_kind",
                  custom_error_message=f"each rule needs a kind: {' | '.join(KINDS)}"),
]


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
        """Each rule's name, or ``<kind> <metric>`` (numbered when that repeats)."""
        auto = [f"{r.kind} {r.metric_name}" if r.kind != "drift" else f"drift {r.detector}"
                for r in self.rules]
        return [r.name or (f"{a} #{i}" if auto.count(a) > 1 else a)
                for i, (r, a) in enumerate(zip(self.rules, auto, strict=True))]


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file."""
    return load_yaml_model(path, Policy, "policy")
