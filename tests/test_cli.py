"""The command line end to end on a tiny suite: reports, determinism, resume, bad input."""

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shiftbench.cli import build_parser, main
from shiftbench.device import CACHE_ENV
from shiftbench.run import RUN_FLAGS
from shiftbench.runtime import FLAGS, Runtime, runtime_options

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
        ("sklearn:tfidf", {"detectors": [{"name": "mmd", "params": {"n_permutations": "5"}}]},
         "detectors.0.params: mmd: parameter 'n_permutations' must be integer, got '5'"),
        ("sklearn:tfidf", {"detectors": [{"name": "ks"}, {"name": "bbsd",
                                                          "params": {"alpha": 2}}]},
         "detectors.1.params: bbsd: alpha must be in (0, 1), got 2"),
        ("sklearn:tfidf", {"detectors": [{"name": "classifier", "params": {"n_folds": 1}}]},
         "detectors.0.params: classifier: n_folds must be >= 2, got 1"),
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


def test_too_few_rows_for_a_detector_fail_before_inference(tiny_suite: Path, capsys) -> None:
    """A small --limit leaves a detector too few rows in the half of the reference it fits
    on: one line saying so, checked once the splits exist (before the model's work)."""
    edit_suite(tiny_suite, detectors=[{"name": "classifier"}])  # 10 rows each side
    assert run(tiny_suite, "sklearn:tfidf", "--limit", "12") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("shiftbench: error: detector classifier: fits on half of the "
                          "reference's rows") and "fewer than the 10 it needs" in err
    assert "\n" not in err and not (tiny_suite.parent / "reports" / "tiny").exists()
    edit_suite(tiny_suite, detectors=[{"name": "mmd"}])  # 2 rows each side
    assert run(tiny_suite, "sklearn:tfidf", "--limit", "12") == 0


def test_ls_lists_every_kind_and_the_suites(capsys) -> None:
    from shiftbench.registry import REGISTRIES

    assert main(["ls", "--suites-dir", str(Path(__file__).parents[1] / "suites")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {f"{kind}s:" for kind in ("shift", "model adapter", "detector", "online detector",
                                     "translation engine", "data source", "metric",
                                     "gate rule")} <= set(lines)
    for registry in REGISTRIES:
        listed = lines[lines.index(f"{registry.kind}s:") + 1:]
        for name, line in zip(registry.names(), listed, strict=False):
            assert line.split()[0] == name and len(line.split()) > 1  # with its description
    assert any(line.endswith("(paired by id for perturbations, unpaired for other domains).")
               for line in lines)  # whole, on one line
    assert any("quickstart.yaml" in line for line in lines)
    assert any("amazon-domains.yaml" in line for line in lines)


@pytest.mark.parametrize("args", [["--help"], ["ls"]])
def test_cli_start_does_not_import_heavy_modules(args: list[str]) -> None:
    code = (f"import sys\nfrom shiftbench.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'nlpaug', 'evidently', 'sklearn',"
            " 'ray')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# --- names that become folders, and the report folder's faults


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("shiftbench: error:") and "\n" not in err, err
    return err


@pytest.mark.parametrize(("suite_name", "run_id", "field"), [
    ("tiny", "../../x", "--run-id"), ("tiny", "a/b", "--run-id"), ("tiny", "/tmp/x", "--run-id"),
    ("../../x", None, "name"), ("a/b", None, "name"), (".hidden", None, "name"),
])
def test_names_that_would_leave_the_reports_folder_are_refused(
        tiny_suite: Path, capsys, suite_name: str, run_id: str | None, field: str) -> None:
    edit_suite(tiny_suite, name=suite_name)
    before = set(tiny_suite.parent.iterdir())
    assert run(tiny_suite, "sklearn:tfidf", *(["--run-id", run_id] if run_id else [])) == 2
    err = one_line_error(capsys)
    assert field in err and "A-Z a-z 0-9 . _ -" in err
    assert set(tiny_suite.parent.iterdir()) == before  # nothing written anywhere


def test_ls_flags_what_run_rejects(tmp_path: Path, capsys) -> None:
    base = {"data": {"kind": "jsonl", "path": "d.jsonl"}}
    suites = {
        "bad-name.yaml": {"name": "../x"},
        "bad-shift.yaml": {"name": "s", "shifts": [{"shift": "telepathy"}]},
        "bad-params.yaml": {"name": "s", "shifts": [{"shift": "keyboard", "params": {"x": 1}}]},
        "bad-detector.yaml": {"name": "s", "detectors": [{"name": "psychic"}]},
        "bad-detector-params.yaml": {"name": "s", "detectors": [{"name": "mmd",
                                                                  "params": {"nope": 1}}]},
        "good.yaml": {"name": "s", "description": "First line\nof one paragraph, kept whole.\n\n"
                                                  "A second paragraph."},
    }
    for file, spec in suites.items():
        (tmp_path / file).write_text(yaml.safe_dump({**base, **spec}))
    assert main(["ls", "--suites-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
             if ".yaml" in line}
    expected = {"bad-name.yaml": "name: '../x' is not a safe folder name",
                "bad-shift.yaml": "shifts.0.shift: unknown shift 'telepathy'",
                "bad-params.yaml": "shifts.0.params: shift 'keyboard': unknown parameter 'x'",
                "bad-detector.yaml": "detectors.0.name: unknown detector 'psychic'",
                "bad-detector-params.yaml": "detectors.0.params:"}
    for file, reason in expected.items():
        assert "INVALID" in lines[file] and reason in lines[file], lines[file]
        assert main(["run", str(tmp_path / file), "--model", "sklearn:tfidf", "--reports-dir",
                     str(tmp_path / "reports"), "--no-progress"]) == 2
        assert reason in one_line_error(capsys)
    assert lines["good.yaml"].split(None, 1)[1] == "First line of one paragraph, kept whole."
    assert not (tmp_path / "reports").exists()


def test_a_suite_path_that_is_a_folder_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path), "--model", "sklearn:tfidf", "--no-progress"]) == 2
    assert f"{tmp_path}: is a folder; give the suite file" in one_line_error(capsys)


def fail(exc: BaseException):
    """A stand-in that raises ``exc`` whenever it is called."""
    def raising(*args, **kwargs):
        raise exc
    return raising


def test_unwritable_reports_folder_fails_before_any_work(tiny_suite: Path, capsys,
                                                         monkeypatch) -> None:
    import shiftbench.models

    monkeypatch.setattr(shiftbench.models, "load_model", fail(AssertionError("work started")))
    (tiny_suite.parent / "reports").write_text("a file, not a folder")
    assert run(tiny_suite, "sklearn:tfidf") == 2
    assert "reports: is not a folder" in one_line_error(capsys)

    (tiny_suite.parent / "reports").unlink()
    monkeypatch.setattr(tempfile, "mkstemp", fail(PermissionError(13, "Permission denied")))
    assert run(tiny_suite, "sklearn:tfidf") == 2
    assert "cannot write here (Permission denied)" in one_line_error(capsys)


def test_full_disk_while_writing_the_report_keeps_nothing_but_the_cache(
        tiny_suite: Path, capsys, monkeypatch) -> None:
    import shiftbench.report

    with monkeypatch.context() as patch:
        patch.setattr(shiftbench.report, "write_text",
                      fail(OSError(errno.ENOSPC, "No space left on device")))
        assert run(tiny_suite, "sklearn:tfidf", "--run-id", "full") == 2
    err = one_line_error(capsys)
    assert "reports/tiny/full: cannot write the report (No space left on device)" in err
    assert list((tiny_suite.parent / "reports" / "tiny").iterdir()) == []  # no partial folder
    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "full") == 0
    report = json.loads((only_run_dir(tiny_suite) / "report.json").read_text())
    assert report["runner"]["computed"] == 0 and report["runner"]["cache_hits"] > 0


def test_an_existing_run_id_is_refused_before_any_work(tiny_suite: Path, capsys,
                                                       monkeypatch) -> None:
    import shiftbench.models

    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "same") == 0
    capsys.readouterr()
    monkeypatch.setattr(shiftbench.models, "load_model", fail(AssertionError("work started")))
    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "same") == 2
    assert "reports/tiny/same: a run with this id already exists" in one_line_error(capsys)


def test_of_two_runs_finishing_together_with_one_id_one_wins(tiny_suite: Path, capsys,
                                                             monkeypatch) -> None:
    """The other run's complete folder appears between our check and our rename."""
    import shiftbench.run

    real_rename = os.rename
    winner = tiny_suite.parent / "winner"
    winner.mkdir()
    (winner / "report.json").write_text("{}")

    def rename_after_the_winner(src, dst):
        real_rename(winner, dst)
        real_rename(src, dst)

    monkeypatch.setattr(shiftbench.run.os, "rename", rename_after_the_winner)
    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "race") == 2
    assert "reports/tiny/race: a run with this id already exists" in one_line_error(capsys)
    assert [p.name for p in (tiny_suite.parent / "reports" / "tiny").iterdir()] == ["race"]
    assert [p.name for p in (tiny_suite.parent / "reports" / "tiny" / "race").iterdir()] == [
        "report.json"]  # the winner's folder, untouched


def test_two_processes_with_one_run_id(tiny_suite: Path) -> None:
    assert run(tiny_suite, "sklearn:tfidf", "--run-id", "warm") == 0  # both read one cache
    command = [sys.executable, "-m", "shiftbench", "run", str(tiny_suite), "--model",
               "sklearn:tfidf", "--reports-dir", str(tiny_suite.parent / "reports"),
               "--no-progress", "--no-movement", "--run-id", "twin"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[1]) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    assert results[1][1].strip().endswith("twin: a run with this id already exists")
    assert sorted(p.name for p in (tiny_suite.parent / "reports" / "tiny").iterdir()) == [
        "twin", "warm"]


def test_stream_names_that_would_leave_the_store_folder_are_refused(tmp_path: Path,
                                                                    capsys) -> None:
    data = tmp_path / "my traffic.jsonl"
    data.write_text('{"text": "a"}\n')
    store = ["--store", str(tmp_path / "store" / "history.sqlite")]
    for name in ("../../x", "a/b"):
        assert main(["monitor", "stream", str(data), str(data), "--name", name, *store]) == 2
        assert "--name: " in one_line_error(capsys)
    assert main(["monitor", "stream", str(data), str(data), *store]) == 2
    assert "stream name (SOURCE's file name; set --name): 'my traffic'" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my traffic.jsonl"]


def test_phase_lines_on_stderr_unless_no_progress(tiny_suite: Path, capsys) -> None:
    reports = str(tiny_suite.parent / "reports")
    assert main(["run", str(tiny_suite), "--model", "sklearn:tfidf", "--reports-dir", reports,
                 "--no-movement"]) == 0
    lines = [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()]
    assert lines == ["shiftbench: [1/6] reading data", "shiftbench: [2/6] shifting: keyboard@1",
                     "shiftbench: [2/6] shifting: keyboard@4",
                     "shiftbench: [2/6] shifting: word_delete@1",
                     "shiftbench: [3/6] fitting the model", "shiftbench: [4/6] inference",
                     "shiftbench: [5/6] metrics", "shiftbench: [6/6] writing the report"]
    assert run(tiny_suite, "sklearn:tfidf") == 0
    assert capsys.readouterr().err == ""


def test_headers_name_the_model_as_given(tiny_suite: Path, capsys) -> None:
    model = tiny_suite.parent / "seeded.yaml"
    model.write_text("adapter: sklearn\nsource: tfidf\ntrain_fraction: 0.9\nseed: 7\n")
    assert run(tiny_suite, str(model)) == 0
    report = json.loads((only_run_dir(tiny_suite) / "report.json").read_text())
    assert report["model"]["spec"] == str(model)
    fingerprint = report["model"]["fingerprint"]
    label = f"{model} (seed 7, train_fraction 0.9; sklearn-{fingerprint.split('-')[1][:8]})"
    assert (only_run_dir(tiny_suite) / "summary.md").read_text().startswith(
        f"# shiftbench: tiny — {label} on cpu")
    assert label in (only_run_dir(tiny_suite) / "report.html").read_text()
    assert label in capsys.readouterr().out


RUNTIME_COMMANDS = {  # a command line before the runtime flags -> the runtime fields it takes
    "run": (["run", "suite.yaml", "--model", "probe"], RUN_FLAGS),
    "gate": (["gate", "policy.yaml", "--baseline-model", "a", "--candidate-model", "b"],
             RUN_FLAGS),
    "monitor check": (["monitor", "check", "reference.jsonl", "current.jsonl"], tuple(FLAGS)),
    "monitor stream": (["monitor", "stream", "reference.jsonl", "logs"], tuple(FLAGS)),
}


@pytest.mark.parametrize("command", RUNTIME_COMMANDS)
def test_runtime_flags_mean_the_same_in_every_command(command: str, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    argv, names = RUNTIME_COMMANDS[command]
    parser = build_parser()
    assert runtime_options(parser.parse_args(argv)) == Runtime(cache_dir=Path("reports/.cache"))
    given = {"cache_dir": str(tmp_path), "device": "cpu", "precision": "fp32",
             "batch_size": "8", "batch_tokens": "0", "seed": "5", "progress": None,
             "executor": "ray:auto", "workers": "3"}
    flags = [part for name in names
             for part in (FLAGS[name][0], given[name]) if part is not None]
    expected = Runtime(cache_dir=tmp_path, device="cpu", precision="fp32", batch_size=8,
                       batch_tokens=0, seed=5 if "seed" in names else 0, progress=False,
                       executor="ray:auto", workers=3)
    assert runtime_options(parser.parse_args([*argv, *flags])) == expected


@pytest.mark.parametrize("command", ["run", "monitor check", "monitor stream"])
@pytest.mark.parametrize("flag", ["--batch-size", "--workers"])
def test_a_bad_count_is_refused_alike_before_any_work(command: str, flag: str, capsys) -> None:
    argv, _ = RUNTIME_COMMANDS[command]
    assert main([*argv, flag, "0"]) == 2
    assert one_line_error(capsys) == f"shiftbench: error: {flag} must be a positive number"
