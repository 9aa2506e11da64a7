"""Suite files: valid ones load, and every mistake is one line naming file and field."""

from pathlib import Path

import pytest
import yaml

from shiftbench.config import Domain, Perturbation, load_suite, split_names
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
        ({"data": {"kind": "sql", "path": "x"}}, "data.kind: Input should be"),
        ({"reference": {"portion": [0.5, 0.2]}}, "reference.portion: portion is [start, end)"),
        ({"shifts": [{"shift": "ocr"}, {"shift": "ocr"}]}, "repeated: ocr@1"),
        ({"metrics": ["accuracy", "auc"]}, "metrics.1: Input should be"),
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
    bad.write_text("name: [unclosed")
    with pytest.raises(ShiftbenchError, match="not valid YAML"):
        load_suite(bad)
    with pytest.raises(ShiftbenchError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_yaml_tags_cannot_execute_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ShiftbenchError, match="not valid YAML"):
        load_suite(path)


def test_spec_hash_changes_with_the_spec_only(tmp_path: Path) -> None:
    a = load_suite(write(tmp_path, MINIMAL)).spec_hash()
    assert a == load_suite(write(tmp_path, MINIMAL)).spec_hash()
    assert a != load_suite(write(tmp_path, {**MINIMAL, "seed": 1})).spec_hash()
