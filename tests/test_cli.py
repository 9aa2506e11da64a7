"""The command line end to end on a tiny suite: reports, determinism, resume, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shiftbench.cli import main

WORDS = {"positive": ["great", "lovely", "excellent", "enjoyed"],
         "negative": ["awful", "boring", "terrible", "hated"]}


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    rows = []
    for i in range(120):
        label = "positive" if i % 2 else "negative"
        word = WORDS[label][i % 4]
        rows.append({"id": f"ex{i}", "text": f"the film number {i} was {word} and the cast too",
                     "label": label, "topic": "film" if i < 90 else "food"})
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = {
        "name": "tiny", "seed": 3, "limit": 30,
        "data": {"kind": "jsonl", "path": "data.jsonl"},
        "train": {"filters": [{"column": "topic", "equals": "film"}], "portion": [0, 0.6]},
        "reference": {"filters": [{"column": "topic", "equals": "film"}], "portion": [0.6, 1]},
        "shifts": [{"shift": "keyboard", "severity": [1, 4]}, {"shift": "word_delete", "limit": 12},
                   {"name": "food", "filters": [{"column": "topic", "equals": "food"}]}],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def run(suite: Path, model: str, *extra: str, movement: bool = False) -> int:
    reports = suite.parent / "reports"
    return main(["run", str(suite), "--model", model, "--reports-dir", str(reports),
                 "--no-progress", *([] if movement else ["--no-movement"]), *extra])


def only_run_dir(suite: Path) -> Path:
    (run_dir,) = (suite.parent / "reports" / "tiny").iterdir()
    return run_dir


def test_run_writes_a_complete_report(tiny_suite: Path, tiny_classifier_dir: Path, capsys) -> None:
    edit_suite(tiny_suite, detectors=[{"name": "mmd", "params": {"n_permutations": 200}},
                                      {"name": "bbsd"}])
    assert run(tiny_suite, f"hf:{tiny_classifier_dir}", "--run-id", "a", movement=True) == 0
    out = capsys.readouterr().out
    run_dir = tiny_suite.parent / "reports" / "tiny" / "a"
    assert {p.name for p in run_dir.iterdir()} == {
        "report.json", "predictions.parquet", "summary.md", "report.html"}
    report = json.loads((run_dir / "report.json").read_text())
    names = [s["name"] for s in report["splits"]]
    assert names == ["reference", "keyboard@1", "keyboard@4", "word_delete@1", "food"]
    assert [s["n"] for s in report["splits"]] == [30, 30, 30, 12, 30]
    assert report["model"]["adapter"] == "hf" and report["environment"]["device"] == "cpu"
    for split in report["splits"][1:]:
        assert split["delta"]["accuracy"]["low"] <= split["delta"]["accuracy"]["high"]
    movement = report["movement"]
    assert set(movement) == set(names[1:]) and "movement_s" in report["timings"]
    assert movement["food"]["basis"] == "nearest reference"
    assert movement["keyboard@1"]["basis"] == "original"
    assert movement["keyboard@4"]["chrf"]["mean"] < movement["keyboard@1"]["chrf"]["mean"]
    for name in names:
        assert name in out
        assert name in report["drift"] or name == "reference"
    for name, results in report["drift"].items():
        assert [r["method"] for r in results] == ["mmd", "bbsd"]
        assert all(0 < r["p_value"] <= 1 for r in results)
        # perturbations are tested on the half of the reference the detector did not see
        assert results[0]["n_sample"] < 30 if name != "food" else results[0]["n_sample"] == 30
    assert "mmd p" in out and "bbsd p" in out
    assert f"report: {run_dir / 'report.html'}" in out
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    reference = predictions[predictions["split"] == "reference"].set_index("id")
    shifted = predictions[predictions["split"] == "keyboard@4"].set_index("id")
    assert set(shifted.index) == set(reference.index)
    assert (shifted["text"] != reference.loc[shifted.index, "text"]).mean() > 0.5


def test_same_suite_twice_gives_identical_texts_and_metrics(tiny_suite: Path) -> None:
    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "one") == 0
    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "two") == 0
    reports = tiny_suite.parent / "reports" / "tiny"
    first, second = (json.loads((reports / r / "report.json").read_text()) for r in ("one", "two"))
    assert first["splits"] == second["splits"]
    texts = [pd.read_parquet(reports / r / "predictions.parquet")["text"] for r in ("one", "two")]
    assert texts[0].equals(texts[1])
    assert second["runner"]["computed"] == 0


def test_interrupted_run_leaves_no_report_and_resumes(tiny_suite: Path, monkeypatch) -> None:
    import shiftbench.evaluate

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(shiftbench.evaluate, "evaluate", interrupt)
        assert run(tiny_suite, "sklearn:tfidf") == 130
    assert not (tiny_suite.parent / "reports" / "tiny").exists()
    assert run(tiny_suite, "sklearn:tfidf") == 0
    report = json.loads((only_run_dir(tiny_suite) / "report.json").read_text())
    assert report["runner"]["computed"] == 0 and report["runner"]["cache_hits"] > 0


def test_report_command_rerenders(tiny_suite: Path, capsys) -> None:
    assert run(tiny_suite, "sklearn:tfidf") == 0
    run_dir = only_run_dir(tiny_suite)
    (run_dir / "summary.md").unlink()
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "summary.md").exists() and (run_dir / "report.html").exists()


def edit_suite(path: Path, **change) -> None:
    spec = yaml.safe_load(path.read_text())
    spec.update(change)
    path.write_text(yaml.safe_dump(spec))


@pytest.mark.parametrize(
    ("model", "suite_change", "expected"),
    [
        ("nosuch:x", {}, "unknown model adapter 'nosuch'"),
        ("sklearn:tfidf", {"shifts": [{"shift": "telepathy"}]}, "shifts.0.shift: unknown shift"),
        ("hf:TINY", {"data": {"kind": "jsonl", "path": "data.jsonl", "label": "topic"}},
         "label 'film' is not one the model knows (negative, positive)"),
        ("sklearn:tfidf", {"limt": 3}, "limt: unknown field"),
        ("sklearn:tfidf", {"detectors": [{"name": "psychic"}]},
         "detectors.0.name: unknown detector 'psychic'"),
        ("hf:/no/such/model/dir", {}, "/no/such/model/dir"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_suite: Path, tiny_classifier_dir: Path, capsys,
                                           model: str, suite_change: dict, expected: str) -> None:
    edit_suite(tiny_suite, **suite_change)
    model = model.replace("TINY", str(tiny_classifier_dir))
    assert run(tiny_suite, model) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("shiftbench: error:") and expected in err and "\n" not in err
    assert not (tiny_suite.parent / "reports" / "tiny").exists()


def test_ls_lists_shifts_adapters_and_suites(capsys) -> None:
    assert main(["ls", "--suites-dir", str(Path(__file__).parents[1] / "suites")]) == 0
    out = capsys.readouterr().out
    for name in ("keyboard", "spelling", "word_delete", "probe", "hf", "sklearn",
                 "quickstart.yaml", "amazon-domains.yaml"):
        assert name in out


@pytest.mark.parametrize("args", [["--help"], ["ls"]])
def test_cli_start_does_not_import_heavy_modules(args: list[str]) -> None:
    code = (f"import sys\nfrom shiftbench.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'nlpaug', 'evidently', 'sklearn')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
