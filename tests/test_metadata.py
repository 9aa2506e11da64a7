"""A suite's metadata columns ride on every split, aligned with its rows."""

import json
from pathlib import Path

import pytest
import yaml

from shiftbench.config import load_suite
from shiftbench.data import read_source, select, to_split
from shiftbench.errors import ShiftbenchError
from shiftbench.split import Split


def test_metadata_stays_aligned_through_subset_and_derive() -> None:
    split = Split("s", ["a", "b", "c"], ["x", "y", "z"], ["0", "1", "0"],
                  metadata={"topic": ["t1", None, "t3"]})
    assert split.subset([2, 0]).metadata == {"topic": ["t3", "t1"]}
    assert split.derive("s@1", ["X", "Y", "Z"]).metadata == split.metadata
    with pytest.raises(ValueError, match="2 values of 'topic' for 3 ids"):
        Split("s", ["a", "b", "c"], ["x", "y", "z"], metadata={"topic": ["t1", "t2"]})


def test_a_source_keeps_its_metadata_columns_as_strings(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "one", "label": "p", "year": 2001, "topic": "news"},
            {"id": "b", "text": "two", "label": "n", "year": None, "topic": "sport"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = {"name": "m", "data": {"kind": "jsonl", "path": "d.jsonl",
                                  "metadata": ["year", "topic"]}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(spec))
    suite = load_suite(tmp_path / "m.yaml")
    frame = select(read_source(suite.data, tmp_path), suite.reference, 0, None)
    split = to_split(frame, "reference", True)
    assert split.metadata == {"year": ["2001", None], "topic": ["news", "sport"]}


def test_an_empty_metadata_list_leaves_the_suite_hash_alone(tmp_path: Path) -> None:
    spec = {"name": "m", "data": {"kind": "jsonl", "path": "d.jsonl"}}
    hashes = []
    for metadata in (None, [], ["topic"]):
        data = spec["data"] if metadata is None else {**spec["data"], "metadata": metadata}
        (tmp_path / "m.yaml").write_text(yaml.safe_dump({**spec, "data": data}))
        hashes.append(load_suite(tmp_path / "m.yaml").spec_hash())
    assert hashes[0] == hashes[1] != hashes[2]


def test_repeated_metadata_columns_are_refused(tmp_path: Path) -> None:
    spec = {"name": "m", "data": {"kind": "jsonl", "path": "d.jsonl",
                                  "metadata": ["topic", "topic"]}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ShiftbenchError, match="data.metadata: metadata names distinct"):
        load_suite(tmp_path / "m.yaml")
