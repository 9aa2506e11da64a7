"""Slices: accuracy per class, clean-text length and metadata value under each shift."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from shiftbench.cli import main
from shiftbench.evaluate import evaluate
from shiftbench.report import scored_splits
from shiftbench.report.markdown import slice_findings, slice_tables
from shiftbench.report.slices import MIN_N, length_bins, slice_rows
from shiftbench.split import Split

CLASSES = ["neg", "pos"]


def _tiny(n: int = 80) -> tuple[list, object]:
    """A reference of ``n`` examples with 1..n words, a perturbation that cuts every text
    to one word (but keeps ids, labels, metadata), and a small domain split."""
    ids = [f"e{i}" for i in range(n)]
    texts = [" ".join(["w"] * (i + 1)) for i in range(n)]
    labels = [CLASSES[i % 2] for i in range(n)]
    topic = ["air" if i < 50 else "rail" if i < 75 else None for i in range(n)]
    ref = Split("reference", ids, texts, labels, {"kind": "reference"}, {"topic": topic})
    cut = ref.derive("cut", ["w"] * n, kind="perturbation", shift="cut", severity=1)
    domain = Split("cars", ["c1", "c2", "c3"], ["a b", "c", "d e f"], ["neg", "pos", "pos"],
                   {"kind": "domain"}, {"topic": ["car", "car", None]})
    y = np.array([i % 2 for i in range(n)])
    right = np.eye(2)[y] * 0.8 + 0.1
    # the perturbation breaks every 'pos' example of the first 40
    broken = right.copy()
    broken[(y == 1) & (np.arange(n) < 40)] = [0.9, 0.1]
    records, frame = evaluate(ref, right, [(cut, broken), (domain, np.full((3, 2), 0.5))],
                              CLASSES, ["accuracy"], seed=0, n_boot=50)
    report = {"splits": records, "predictions_file": "p.parquet", "model": {"classes": CLASSES},
              "task": "classification"}
    return records, frame, report


@pytest.fixture(scope="module")
def section() -> dict:
    _, frame, report = _tiny()
    return slice_rows(scored_splits(frame, report, Path("p")), frame, CLASSES, 0)


def test_slice_counts_add_up_to_each_split(section) -> None:
    sizes = {"reference": 80, "cut": 80, "cars": 3}
    dimensions = [d["name"] for d in section["dimensions"]]
    assert dimensions == ["class", "length", "topic"]
    for split, n in sizes.items():
        for dimension in dimensions:
            rows = [r for r in section["rows"]
                    if r["split"] == split and r["dimension"] == dimension]
            assert sum(r["n"] for r in rows) == n, (split, dimension)


def test_a_perturbed_copy_stays_in_its_originals_length_bin(section) -> None:
    """Every text of 'cut' has one word, but its slices are its originals' lengths."""
    by = {(r["split"], r["slice"]): r["n"] for r in section["rows"] if r["dimension"] == "length"}
    (lengths,) = [d["slices"] for d in section["dimensions"] if d["name"] == "length"]
    assert [by[("cut", s)] for s in lengths] == [by[("reference", s)] for s in lengths]
    assert len(lengths) == 4


def test_slice_drops_pair_by_id_and_match_a_hand_count(section) -> None:
    row = {(r["split"], r["dimension"], r["slice"]): r for r in section["rows"]}
    pos = row[("cut", "class", "pos")]
    assert pos["n"] == 40 and pos["accuracy"]["value"] == pytest.approx(20 / 40)
    assert pos["delta"]["value"] == pytest.approx(-20 / 40)  # 20 of 40 broke, none fixed
    assert pos["delta"]["method"] == "tango_score" and not pos["too_few"]
    assert row[("cut", "class", "neg")]["delta"]["value"] == 0
    assert row[("reference", "class", "pos")]["delta"] is None


def test_small_slices_are_marked_too_few(section) -> None:
    row = {(r["split"], r["dimension"], r["slice"]): r for r in section["rows"]}
    rail = row[("cut", "topic", "rail")]  # 25 examples
    assert rail["n"] == 25 < MIN_N and rail["too_few"]
    assert row[("cut", "topic", "air")]["too_few"] is False  # 50 examples
    assert row[("cut", "topic", "(missing)")]["n"] == 5
    assert row[("cars", "topic", "car")]["too_few"]  # no reference slice to compare with
    kinds = {"reference": "reference", "cut": "perturbation", "cars": "domain"}
    report = {"splits": [{"name": n, "kind": k} for n, k in kinds.items()], "slices": section}
    (topic,) = [t for t in slice_tables(report) if t[0] == "Accuracy by topic"]
    cells = dict(zip(topic[1], next(r for r in topic[2] if r[0] == "cut"), strict=True))
    assert cells["rail"] == "too few (n=25)"
    # air: ids 0..49, of which the 20 odd ones below 40 broke: 30 of 50 right
    assert cells["air"].startswith("60.0% [") and "(n=50); Δ -40.0 pp [" in cells["air"]
    assert all("topic rail" not in line for line in slice_findings(report))
    assert any(line.startswith("cut, class pos: Δ -50.0 pp") for line in slice_findings(report))


def test_length_bins_at_the_quartiles() -> None:
    cuts, labels = length_bins(list(range(1, 101)))
    assert cuts == [25, 50, 75]
    assert labels == ["≤ 25 words", "26–50 words", "51–75 words", "> 75 words"]
    assert length_bins([7] * 10) == ([7], ["≤ 7 words", "> 7 words"])


@pytest.fixture
def meta_suite(tmp_path: Path) -> Path:
    rows = [{"id": f"ex{i}", "text": f"the film {i} was {'great' if i % 2 else 'awful'} "
                                      + "and long " * (i % 5),
             "label": "positive" if i % 2 else "negative", "source": f"s{i % 3}",
             "topic": "film" if i < 90 else "food"} for i in range(120)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = {"name": "meta", "seed": 1,
             "data": {"kind": "jsonl", "path": "data.jsonl", "metadata": ["source"]},
             "train": {"filters": [{"column": "topic", "equals": "film"}], "portion": [0, 0.6]},
             "reference": {"filters": [{"column": "topic", "equals": "film"}],
                           "portion": [0.6, 1]},
             "shifts": [{"shift": "keyboard", "severity": [3]},
                        {"name": "food", "filters": [{"column": "topic", "equals": "food"}]}]}
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path / "meta.yaml"


def test_a_run_reports_slices_and_failures_in_every_view(meta_suite: Path, capsys) -> None:
    reports = meta_suite.parent / "reports"
    assert main(["run", str(meta_suite), "--model", "sklearn:tfidf", "--reports-dir",
                 str(reports), "--no-progress", "--no-movement", "--failures-inline", "1"]) == 0
    (run_dir,) = (reports / "meta").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert [d["name"] for d in report["slices"]["dimensions"]] == ["class", "length", "source"]
    sizes = {r["name"]: r["n"] for r in report["splits"]}
    for split, n in sizes.items():
        source = [r["n"] for r in report["slices"]["rows"]
                  if r["split"] == split and r["dimension"] == "source"]
        assert sum(source) == n
    assert report["failures"]["inline"] == 1
    assert set(report["failures"]["groups"]) == {"keyboard@3", "food"}
    assert set(report["failures"]["groups"]["food"]) == {"n", "error"}
    summary = (run_dir / "summary.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert "## Accuracy by source" in summary and "<h3>Accuracy by source</h3>" in html
    assert 'id="fb-table"' in html
    changed = sum(v for k, v in report["failures"]["groups"]["keyboard@3"].items() if k != "n")
    errors = report["failures"]["groups"]["food"]["error"]
    assert html.count('<tr class="fb-row') == min(changed, 1) + min(errors, 1)
    if changed + errors > html.count('<tr class="fb-row'):
        js = (run_dir / "failures.js").read_text()
        assert js.count('fb-row fb-') == changed + errors
    assert main(["report", str(run_dir), "--failures-inline", "1000"]) == 0
    assert not (run_dir / "failures.js").exists()
    assert main(["report", str(run_dir), "--failures-inline", "0"]) == 2
    assert "--failures-inline must be a positive number" in capsys.readouterr().err


def _written(tmp_path: Path) -> Path:
    from shiftbench.report import SCHEMA_VERSION, write_run

    records, frame, _ = _tiny()
    report = {"schema_version": SCHEMA_VERSION, "shiftbench_version": "0", "run_id": "r",
              "created": "2026-01-01T00:00:00+00:00", "suite": {"name": "t"},
              "model": {"classes": CLASSES}, "environment": {}, "seed": 0, "timings": {},
              "runner": {}, "splits": records, "predictions_file": "predictions.parquet"}
    write_run(tmp_path, report, frame)
    return tmp_path


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s, r: s["rows"][0].update(n=s["rows"][0]["n"] + 1),
     "slices: the class slices of split 'reference' hold 81 examples, the split 80"),
    (lambda s, r: s["rows"][3]["accuracy"].update(high=-0.5),
     "does not contain its estimate"),
    (lambda s, r: s["rows"][2].pop("too_few"), "slices.rows[2] lacks too_few"),
    (lambda s, r: s.update(rows={}), "'slices' must be an object with lists"),
    (lambda s, r: r["failures"].update(inline="all"), "'failures' must be an object with a"),
    (lambda s, r: r["failures"]["groups"]["cut"].pop("n"), "failures.groups.cut: counts"),
])
def test_an_edited_slices_section_is_refused_in_one_line(tmp_path: Path, edit,
                                                         expected: str) -> None:
    from shiftbench.errors import ShiftbenchError
    from shiftbench.report import render

    run_dir = _written(tmp_path)
    path = run_dir / "report.json"
    report = json.loads(path.read_text())
    edit(report["slices"], report)
    path.write_text(json.dumps(report))
    with pytest.raises(ShiftbenchError, match=expected.replace("[", r"\[")) as caught:
        render(run_dir)
    assert "\n" not in str(caught.value)


def test_a_domain_with_its_own_source_keeps_the_suites_metadata(meta_suite: Path) -> None:
    """data.metadata holds for every split: a domain read from its own file takes the
    column from that file, or has it missing when the file lacks it."""
    folder = meta_suite.parent
    rows = [{"id": f"k{i}", "text": f"the kettle {i} was {'great' if i % 2 else 'awful'}",
             "label": "positive" if i % 2 else "negative", "source": f"s{i % 2}"}
            for i in range(40)]
    (folder / "kitchen.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    bare = [{k: v for k, v in r.items() if k != "source"} for r in rows]
    (folder / "bare.jsonl").write_text("\n".join(json.dumps(r) for r in bare))
    suite = yaml.safe_load(meta_suite.read_text())
    suite["shifts"] = [{"name": name, "source": {"kind": "jsonl", "path": f"{name}.jsonl"}}
                       for name in ("kitchen", "bare")]
    meta_suite.write_text(yaml.safe_dump(suite))
    assert main(["run", str(meta_suite), "--model", "sklearn:tfidf", "--reports-dir",
                 str(folder / "reports"), "--no-progress", "--no-movement"]) == 0
    (run_dir,) = (folder / "reports" / "meta").iterdir()
    slices = json.loads((run_dir / "report.json").read_text())["slices"]["rows"]
    by_source = {(r["split"], r["slice"]): r["n"] for r in slices if r["dimension"] == "source"}
    assert {k: v for k, v in by_source.items() if k[0] != "reference"} == {
        ("kitchen", "s0"): 20, ("kitchen", "s1"): 20, ("bare", "(missing)"): 40}


def test_a_slice_short_only_in_the_reference_says_so() -> None:
    section = {"min_n": 30, "dimensions": [{"name": "topic", "about": "t", "slices": ["car"]}],
               "rows": [{"split": "cars", "dimension": "topic", "slice": "car", "n": 40,
                         "too_few": True}, {"split": "bus", "dimension": "topic",
                                            "slice": "car", "n": 12, "too_few": True}]}
    report = {"splits": [{"name": "cars"}, {"name": "bus"}], "slices": section}
    (table,) = slice_tables(report)
    assert table[2] == [["cars", "n=40; too few in the reference to compare"],
                        ["bus", "too few (n=12)"]]
