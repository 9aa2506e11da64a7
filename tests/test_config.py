"""Suite files: valid ones load, and every mistake is one line naming file and field."""

from pathlib import Path

import pytest
import yaml

from shiftbench.config import Domain, Perturbation, UniqueKeyLoader, load_suite, split_names
from shiftbench.errors import ShiftbenchError

SUITES = Path(__file__).parents[1] / "suites"
MINIMAL = {"name": "t", "data": {"kind": "jsonl", "path": "d.jsonl"}}


def write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(path: Path) -> None:
    if path.name.endswith(".gate.yaml"):
        pytest.skip("policy file")
    suite = load_suite(path)
    assert suite.name and suite.shifts


def test_shifted_splits_route_by_their_keys_and_expand_severities(tmp_path: Path) -> None:
    spec = {**MINIMAL, "shifts": [{"shift": "keyboard", "severity": [1, 3]},
                                  {"name": "ood", "filters": [{"column": "d", "equals": "x"}]}]}
    suite = load_suite(write(tmp_path, spec))
    assert isinstance(suite.shifts[0], Perturbation) and isinstance(suite.shifts[1], Domain)
    assert split_names(suite) == ["keyboard@1", "keyboard@3", "ood"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seeed": 1}, "seeed: unknown field"),
        ({"limit": "many"}, "limit: Input should be a valid integer"),
        ({"shifts": [{"shift": "keyboard", "severity": 9}]}, "shifts.0.severity: severity is an"),
        ({"shifts": [{"shift": "keyboard", "sevrity": 2}]}, "shifts.0.sevrity: unknown field"),
        ({"shifts": [{"name": "x", "filters": [{"column": "t", "matches": "("}]}]},
         "shifts.0.filters.0.matches: invalid regex"),
        ({"shifts": [{"name": "x", "filters": [{"column": "t"}]}]}, "exactly one of"),
        ({"data": {"kind": "csv"}}, "data: a csv source needs a path"),
        ({"data": {"kind": "sql", "path": "x"}}, "data.kind: unknown data source 'sql' (known: "),
        ({"data": {"kind": "jsnl", "path": "x"}},
         "data.kind: unknown data source 'jsnl' (did you mean 'jsonl'?)"),
        ({"reference": {"portion": [0.5, 0.2]}}, "reference.portion: portion is [start, end)"),
        ({"shifts": [{"shift": "ocr"}, {"shift": "ocr"}]}, "repeated: ocr@1"),
        ({"metrics": ["accuracy", "auc"]}, "metrics.1: unknown metric 'auc' (known: "),
        ({"metrics": []}, "metrics: name at least one metric, or leave metrics out for the "
                          "task's (accuracy, macro_f1, ece, nll)"),
        ({"metrics": ["ece", "ece"]}, "metrics: a metric is named twice: ece, ece"),
        # strict types: no string-to-number, no bool-to-int
        ({"limit": "100"}, "limit: Input should be a valid integer (got '100')"),
        ({"seed": True}, "seed: Input should be a valid integer (got True)"),
        ({"shifts": [{"shift": "keyboard", "severity": True}]},
         "shifts.0.severity: Input should be a valid integer (got True)"),
        ({"reference": {"portion": ["0", 0.5]}}, "reference.portion.0: Input should be a valid"),
        ({"allow_train_overlap": "yes"}, "allow_train_overlap: Input should be a valid boolean"),
        # an unknown key comes first, with the key it may have meant
        ({"reference": {"limt": 3, "portion": [0.5, 0.2]}},
         "reference.limt: unknown field (did you mean 'limit'?) (+1 more)"),
        ({"shifts": [{"name": "x", "flters": []}]}, "did you mean 'filters'?"),
        # data file layout and label mapping
        ({"data": {"kind": "csv", "path": "d.csv", "sep": "\\t"}}, "data: sep is one character"),
        ({"data": {**MINIMAL["data"], "encoding": "klingon"}},
         "data.encoding: unknown encoding 'klingon'"),
        ({"shifts": [{"name": "", "source": {"kind": "jsonl", "path": "x"}}]},
         "shifts.0.name: a split name is 1-100 visible characters"),
        ({"shifts": [{"name": "typo\nsplit", "shift": "keyboard"}]},
         "shifts.0.name: a split name is 1-100 visible characters"),
        ({"shifts": [{"name": " other", "source": {"kind": "jsonl", "path": "x"}}]},
         "without space around them"),
        # a shift that is not a mapping, a field of the other kind of shifted split
        ({"shifts": ["keyboard"]}, "shifts.0: Input should be a valid dictionary or instance of "
                                   "Perturbation (got 'keyboard')"),
        ({"shifts": [{"shift": "keyboard", "source": {"kind": "jsonl", "path": "x"}}]},
         "shifts.0.source: unknown field for a perturbation (another kind of entry takes it)"),
        ({"data": {"kind": "jsonl", "path": "d", "sep": ";"}}, "sep: only csv and tsv sources"),
        ({"data": {"kind": "csv", "path": "d", "header": False}}, "header: false needs columns"),
        ({"data": {"kind": "tsv", "path": "d", "columns": ["a"]}}, "columns are only for files"),
        ({"data": {"kind": "csv", "path": "d", "header": False, "columns": ["a", "a"]}},
         "columns are non-empty, distinct names"),
        ({"data": {**MINIMAL["data"], "labels": {"map": {1: "n", "1.0": "p"}}}},
         "data.labels: map keys 1 and '1.0' are the same label"),
        ({"data": {**MINIMAL["data"], "labels": {}}}, "exactly one of map, ranges"),
        ({"data": {**MINIMAL["data"], "labels": {"ranges": {"n": {"max": 4}, "p": {"min": 4}}}}},
         "the ranges of 'n' and 'p' overlap"),
        ({"data": {**MINIMAL["data"], "labels": {"ranges": {"n": {"max": "4"}}}}},
         "data.labels.ranges.n.max: Input should be a valid number (got '4')"),
        ({"data": {**MINIMAL["data"], "labels": {"ranges": {"n": {}}}}}, "min, max or both"),
        ({"data": {**MINIMAL["data"], "label": None, "labels": {"map": {1: "a"}}}},
         "name it with label"),
    ],
)
def test_mistakes_name_file_and_field(tmp_path: Path, change: dict, expected: str) -> None:
    path = write(tmp_path, {**MINIMAL, **change})
    with pytest.raises(ShiftbenchError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nshifts: [unclosed\n")
    with pytest.raises(ShiftbenchError, match=r"bad.yaml: not valid YAML: line \d+: ") as info:
        load_suite(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ShiftbenchError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(ShiftbenchError, match="is a folder; give the suite file"):
        load_suite(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\nseed: 1\nname: b\n", "line 3: duplicate key 'name' (first at line 1)"),
        ("name: a\ndata:\n  kind: jsonl\n  path: x\n  kind: csv\n",
         "line 5: duplicate key 'kind' (first at line 3)"),
        ("name: a\nshifts:\n  - {shift: ocr, severity: 1, severity: 2}\n",
         "line 3: duplicate key 'severity' (first at line 3)"),
    ],
)
def test_duplicate_keys_at_any_depth_name_key_and_line(tmp_path: Path, text: str,
                                                       expected: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(ShiftbenchError) as info:
        load_suite(path)
    assert str(info.value) == f"{path}: {expected}"


def test_yaml_merge_keys_may_override_and_exponents_are_numbers() -> None:
    data = yaml.load("base: &b {x: 1, y: 2}\nover: {<<: *b, y: 3}\nrate: 1e-3\nbig: 2E+5\n",
                     Loader=UniqueKeyLoader)
    assert data["over"] == {"x": 1, "y": 3}
    assert data["rate"] == 0.001 and data["big"] == 200000.0
    assert yaml.safe_load("rate: 1e-3")["rate"] == "1e-3"  # PyYAML's own loader is unchanged


def test_lists_load_as_pairs_and_ints_as_floats(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, {**MINIMAL, "train": {"portion": [0, 1]},
                                        "reference": {"portion": [0.5, 1]}}))
    assert suite.train is not None and suite.train.portion == (0.0, 1.0)
    assert suite.reference.portion == (0.5, 1.0)


def test_yaml_tags_cannot_execute_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ShiftbenchError, match="not valid YAML"):
        load_suite(path)


def test_spec_hash_changes_with_the_spec_only(tmp_path: Path) -> None:
    a = load_suite(write(tmp_path, MINIMAL)).spec_hash()
    assert a == load_suite(write(tmp_path, MINIMAL)).spec_hash()
    assert a != load_suite(write(tmp_path, {**MINIMAL, "seed": 1})).spec_hash()
