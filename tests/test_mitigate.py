"""`shiftbench mitigate` end to end on a tiny suite and the tiny encoder: the report pairs by
id, a re-run trains nothing, bad input is one line and exit 2."""

import json
from pathlib import Path

import pytest
import yaml

from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.mitigate import parse_params
from shiftbench.train.mitigations import DANN

WORDS = {"positive": ["great", "lovely", "excellent", "enjoyed"],
         "negative": ["awful", "boring", "terrible", "hated"]}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path)


def write_suite(folder: Path) -> Path:
    """A tiny suite (film rows for training, food rows as a domain split) in ``folder``."""
    rows = []
    for i in range(160):
        label = "positive" if i % 2 else "negative"
        topic = "film" if i < 110 else "food"
        rows.append({"id": f"ex{i}", "label": label, "topic": topic, "genre": "abc"[i % 3],
                     "text": f"the {topic} number {i} was {WORDS[label][i % 4]} and fine"})
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    film = [{"column": "topic", "equals": "film"}]
    spec = {"name": "tiny", "seed": 3, "data": {"kind": "jsonl", "path": "data.jsonl"},
            "train": {"filters": film, "portion": [0, 0.7]},
            "reference": {"filters": film, "portion": [0.7, 1]},
            "shifts": [{"shift": "keyboard", "severity": [2]},
                       {"name": "food", "filters": [{"column": "topic", "equals": "food"}]}],
            "detectors": [{"name": "bbsd"}]}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def mitigate(suite: Path, model: str, *extra: str) -> int:
    return main(["mitigate", str(suite), "--model", model, "--out", str(suite.parent / "out"),
                 "--cache-dir", str(suite.parent / "cache"), "--device", "cpu",
                 "--seeds", "2", "--param", "max_epochs=3", "--param", "hidden=8", *extra])


def test_mitigate_end_to_end_pairs_by_id_and_a_rerun_trains_nothing(
        suite: Path, tiny_encoder_dir: Path, capsys) -> None:
    model = f"probe:{tiny_encoder_dir}"
    policy = suite.parent / "tiny.gate.yaml"
    policy.write_text(yaml.safe_dump({"suite": "tiny.yaml", "rules": [
        {"name": "clean floor", "kind": "absolute", "split": "reference", "min": 0.01,
         "decide": "point"},
        {"name": "no output drift", "kind": "drift", "detector": "bbsd", "split": "keyboard@2",
         "severity": "warn"}]}))
    assert mitigate(suite, model, "--method", "dann", "--param", "penalty=0.5",
                    "--policy", str(policy)) == 0
    first = capsys.readouterr()
    assert "shiftbench: epoch 1:" in first.err
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert report["method"]["penalty"] == 0.5 and report["training"]["max_epochs"] == 3
    names = [s["name"] for s in report["splits"]]
    assert names == ["reference", "keyboard@2", "food"]
    # the food rows split by id hash into target-train and evaluated halves, disjoint
    food = next(s for s in report["splits"] if s["name"] == "food")
    assert report["target"]["n_target_train"] + food["n"] == 50
    assert report["target"]["n_evaluated"] == {"food": food["n"]}
    for split in report["splits"]:
        delta = split["delta"]["method_vs_base"]
        assert len(delta["seeds"]) == 2 and delta["pooled"]["n"] == split["n"]
        seeds = split["accuracy"]["method"]["seeds"]
        base = split["accuracy"]["base"]["mean"]
        for seed, estimate in zip(seeds, delta["seeds"], strict=True):  # paired = acc diff
            assert estimate["value"] == pytest.approx(seed - base)
        assert delta["pooled"]["value"] == pytest.approx(sum(seeds) / 2 - base)
    assert [v["status"] for v in report["gate"]] == ["pass", "pass"]  # warn rules never fail
    assert all(len(v["result"]["verdicts"]) == 2 for v in report["gate"])
    assert "Cost on the clean reference" in (suite.parent / "out" / "mitigate.md").read_text()
    html = (suite.parent / "out" / "mitigate.html").read_text()  # the trainer's real logs
    assert html.count("<svg ") == 3 + 1 + 3 + 4 and "dann: domain_accuracy per step" in html
    assert html.count('class="mark"') == 3 * 2 * 2 and "<h2>Gate</h2>" in html
    assert all(set(s["metrics"][m]) == {"accuracy", "macro_f1", "ece", "nll"}
               for s in report["splits"] for m in ("base", "erm", "method"))

    assert mitigate(suite, model, "--method", "dann", "--param", "penalty=0.5") == 0
    again = capsys.readouterr()
    assert "shiftbench: epoch" not in again.err
    assert json.loads((suite.parent / "out" / "mitigate.json").read_text())["splits"] == \
        report["splits"]


def test_parameters_are_parsed_strictly() -> None:
    assert parse_params(DANN, ["penalty=2", "hidden=16", "lr=0.01"]) == (
        {"penalty": 2.0, "hidden": 16}, {"lr": 0.01})
    for pair, message in [("penalty=a,b", "must be a finite number"),
                          ("hidden=1.5", "must be an integer"),
                          ("penalti=1", "did you mean 'penalty'"), ("penalty", "name=value"),
                          ("seed=1", "not a parameter")]:
        with pytest.raises(ShiftbenchError, match=message):
            parse_params(DANN, [pair])
    with pytest.raises(ShiftbenchError) as err:  # DANN and the trainer both take hidden
        parse_params(DANN, ["zzz=1"])
    known = str(err.value).split("(known: ")[1].rstrip(")").split(", ")
    assert "hidden" in known and len(known) == len(set(known))


@pytest.mark.parametrize("model, extra, message", [
    ("sklearn:tfidf", ["--method", "erm"], "cannot be retrained by mitigate; it retrains probe"),
    ("probe:ENC", ["--method", "dan"], "did you mean 'dann'"),
    ("probe:ENC", ["--method", "erm", "--param", "lr=fast"], "--param lr='fast'"),
    ("probe:ENC", ["--method", "erm", "--seeds", "0"], "--seeds"),
])
def test_bad_input_is_one_line_and_exit_2(suite: Path, tiny_encoder_dir: Path, capsys,
                                          model: str, extra: list[str], message: str) -> None:
    assert mitigate(suite, model.replace("ENC", str(tiny_encoder_dir)), *extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_a_method_needing_a_target_without_domain_splits_is_refused(
        suite: Path, tiny_encoder_dir: Path, capsys) -> None:
    spec = yaml.safe_load(suite.read_text())
    spec["shifts"] = spec["shifts"][:1]
    suite.write_text(yaml.safe_dump(spec))
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "dann") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has none" in err
    assert not (suite.parent / "out" / "models").exists()


@pytest.mark.parametrize("method", ["augment", "multitask"])
def test_every_registered_method_runs_end_to_end(suite: Path, tiny_encoder_dir: Path, capsys,
                                                 method: str) -> None:
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", method) == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert [s["name"] for s in report["splits"]] == ["reference", "keyboard@2", "food"]
    for split in report["splits"]:
        assert len(split["accuracy"]["method"]["seeds"]) == 2
        assert split["delta"]["method_vs_erm"]["pooled"]["n"] == split["n"]


def test_target_names_the_splits_giving_the_target(suite: Path, tiny_encoder_dir: Path) -> None:
    spec = yaml.safe_load(suite.read_text())
    spec["shifts"].append({"name": "food2", "filters": [{"column": "topic", "equals": "food"}]})
    suite.write_text(yaml.safe_dump(spec))
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "dann", "--seeds", "1",
                    "--target", "food2") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    sizes = {s["name"]: s["n"] for s in report["splits"]}
    assert report["target"]["splits"] == ["food2"]
    assert sizes["food"] == 50  # not a target: evaluated whole
    assert report["target"]["n_target_train"] + sizes["food2"] == 50
    assert report["target"]["n_evaluated"] == {"food2": sizes["food2"]}
    assert "rows from food2" in (suite.parent / "out" / "mitigate.md").read_text()


def test_augment_draws_with_a_suite_shift_entrys_params_and_refuses_an_unknown_name_first(
        suite: Path, tiny_encoder_dir: Path, capsys) -> None:
    spec = yaml.safe_load(suite.read_text())
    spec["shifts"].append({"name": "all-words", "shift": "keyboard", "severity": [1],
                           "params": {"word_rate": 1.0}})
    suite.write_text(yaml.safe_dump(spec))
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "augment",
                    "--param", "shift=all-word") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "augment: shift='all-word': unknown shift " in err
    assert "(the suite's shifts: keyboard, all-words)" in err
    assert not (suite.parent / "out").exists()  # refused before any work
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "augment", "--seeds", "1",
                    "--param", "shift=all-words", "--param", "severity=1") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert report["method"]["shift"] == "all-words"


def test_domain_splits_sharing_rows_give_one_target_and_a_method_without_one_splits_none(
        suite: Path, tiny_encoder_dir: Path) -> None:
    spec = yaml.safe_load(suite.read_text())
    spec["shifts"].append({"name": "food2", "filters": [{"column": "topic", "equals": "food"}]})
    suite.write_text(yaml.safe_dump(spec))
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "dann", "--seeds", "1") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert report["target"]["splits"] == ["food", "food2"]  # the same 50 rows in both
    assert report["target"]["n_target_train"] == 2 * (50 - report["target"]["n_evaluated"]["food"])
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "augment", "--seeds",
                    "1") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert report["target"]["n_target_train"] == 0
    assert {s["name"]: s["n"] for s in report["splits"]}["food"] == 50  # evaluated whole


@pytest.mark.parametrize("change, extra, message", [
    (None, ["--target", "fod"], "did you mean 'food'"),
    (None, ["--target", "keyboard@2"], "cannot be a target"),
    (None, ["--method", "erm", "--target", "food"], "erm does not train on a target"),
    ({"allow_train_overlap": True, "shifts": [{"name": "all", "filters": []}]}, [],
     "--target 'all': "),
    ({"shifts": [{"name": "one", "filters": [{"column": "id", "equals": "ex150"}]}]}, [],
     "--target 'one': its 1 row(s) leave"),
])
def test_bad_targets_are_refused_before_training(suite: Path, tiny_encoder_dir: Path, capsys,
                                                 change: dict | None, extra: list[str],
                                                 message: str) -> None:
    if change:
        suite.write_text(yaml.safe_dump({**yaml.safe_load(suite.read_text()), **change}))
    args = [*(extra if "--method" in extra else ["--method", "dann", *extra]), "--no-progress"]
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", *args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert not (suite.parent / "out" / "models").exists()


def test_an_hf_base_is_fine_tuned_end_to_end_and_a_rerun_trains_nothing(
        suite: Path, tiny_classifier_dir: Path, tiny_encoder_dir: Path, capsys) -> None:
    model = suite.parent / "tiny-hf.yaml"
    model.write_text(yaml.safe_dump({"adapter": "hf", "source": str(tiny_classifier_dir),
                                     "max_length": 16}))
    args = ["mitigate", str(suite), "--model", str(model), "--out", str(suite.parent / "out"),
            "--cache-dir", str(suite.parent / "cache"), "--device", "cpu", "--seeds", "1",
            "--method", "dann", "--param", "max_epochs=1", "--param", "batch_size=32"]
    assert main(args) == 0
    assert capsys.readouterr().err.count("shiftbench: epoch 1:") == 2  # ERM and DANN
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert report["training"]["lr"] == 2e-5  # fine-tuning's defaults, then --param
    assert report["training"]["batch_size"] == 32
    for path in [*report["models"]["erm"], *report["models"]["method"]]:
        saved = yaml.safe_load((Path(path) / "model.yaml").read_text())
        assert saved["adapter"] == "hf" and saved["max_length"] == 16
    assert [s["name"] for s in report["splits"]] == ["reference", "keyboard@2", "food"]

    assert main(args) == 0
    assert "shiftbench: epoch" not in capsys.readouterr().err
    assert json.loads((suite.parent / "out" / "mitigate.json").read_text())["splits"] == \
        report["splits"]
    erm = [("erm" if arg == "dann" else arg) for arg in args]
    assert main([*erm, "--param", "hidden=8"]) == 2  # for dann, hidden is the discriminator's
    assert "hidden, dropout size a probe's head" in capsys.readouterr().err


def test_a_bare_encoder_base_is_compared_with_erm_only(suite: Path, tiny_encoder_dir: Path,
                                                       capsys) -> None:
    out = suite.parent / "out"
    args = ["mitigate", str(suite), "--model", f"hf:{tiny_encoder_dir}", "--out", str(out),
            "--cache-dir", str(suite.parent / "cache"), "--device", "cpu", "--seeds", "2",
            "--method", "augment", "--param", "shift=keyboard", "--param", "max_epochs=1",
            "--param", "batch_size=32", "--no-progress"]
    assert main(args) == 0  # no head for the suite's labels: nothing to evaluate as it is
    capsys.readouterr()
    report = json.loads((out / "mitigate.json").read_text())
    assert report["baseline"] == "erm"
    for split in report["splits"]:
        assert set(split["accuracy"]) == set(split["metrics"]) == {"erm", "method"}
        assert set(split["delta"]) == {"method_vs_erm"}
        erm, method = split["accuracy"]["erm"]["seeds"], split["accuracy"]["method"]["seeds"]
        for k, estimate in enumerate(split["delta"]["method_vs_erm"]["seeds"]):  # seed k: k
            assert estimate["value"] == pytest.approx(method[k] - erm[k])
    [keyboard] = [s for s in report["splits"] if "drop" in s]
    drop = keyboard["drop"]
    assert set(drop) == {"n", "drop", "method_vs_erm"} and set(drop["drop"]) == {"erm", "method"}
    assert drop["method_vs_erm"]["value"] == pytest.approx(
        drop["drop"]["method"] - drop["drop"]["erm"])
    text = (out / "mitigate.md").read_text()
    assert "an encoder without a classifier for these labels; ERM is the baseline" in text
    assert "| augment − ERM (drop change) |" in text and "− base" not in text
    assert "ERM is the baseline" in (out / "mitigate.html").read_text()

    policy = suite.parent / "tiny.gate.yaml"
    policy.write_text(yaml.safe_dump({"suite": "tiny.yaml", "rules": [
        {"name": "clean floor", "kind": "absolute", "split": "reference", "min": 0.01}]}))
    assert main([*args, "--policy", str(policy)]) == 2  # the gate needs a base
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--policy" in err and "without a classifier" in err


def kept(candidates: list[dict]) -> list[int]:
    """Each seed's kept candidate (exactly one per seed)."""
    seeds = len(candidates[0]["chosen"])
    picks = [[k for k, c in enumerate(candidates) if c["chosen"][s]] for s in range(seeds)]
    assert all(len(p) == 1 for p in picks)
    return [p[0] for p in picks]


def test_a_grid_keeps_per_seed_the_lowest_source_validation_loss(
        suite: Path, tiny_encoder_dir: Path) -> None:
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "augment", "--no-progress",
                    "--grid", "lr=0.001,0.05", "--grid", "rate=0,1") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    grid = report["grid"]
    assert grid["select"] == "source" and grid["grid"] == {"lr": [0.001, 0.05], "rate": [0, 1]}
    assert "no target labels" in report["selection"]
    assert len(grid["method"]) == 4 and len(grid["erm"]) == 2  # ERM: the trainer's lr only
    assert grid["erm"][1]["values"] == {"lr": 0.05}
    for name in ("method", "erm"):
        for seed, pick in enumerate(kept(grid[name])):
            scores = [c["scores"][seed] for c in grid[name]]
            assert scores[pick] == min(scores)
    # a kept model is the one the report evaluated: its log's best val_loss is its score
    for seed, pick in enumerate(kept(grid["method"])):
        log = Path(report["models"]["method"][seed]) / "log.jsonl"
        losses = [row["val_loss"] for row in map(json.loads, log.read_text().splitlines())
                  if "val_loss" in row]
        assert min(losses) == pytest.approx(grid["method"][pick]["scores"][seed])
    assert "Grid search (source)" in (suite.parent / "out" / "mitigate.md").read_text()


def test_select_dev_scores_each_candidate_with_deep_embedded_validation(
        suite: Path, tiny_encoder_dir: Path) -> None:
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "dann", "--no-progress",
                    "--seeds", "1", "--grid", "penalty=0.1,1", "--select", "dev") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    grid = report["grid"]
    assert grid["select"] == "dev" and "Deep Embedded Validation" in report["selection"]
    assert grid["erm"] == [{"values": {}, "scores": [None], "chosen": [True]}]  # nothing to pick
    scores = [c["scores"][0] for c in grid["method"]]
    assert all(s > 0 for s in scores) and scores[kept(grid["method"])[0]] == min(scores)


@pytest.mark.parametrize("extra, message", [
    (["--select", "dev"], "--select chooses among the combinations of --grid"),
    (["--grid", "lr=0.01,0.1", "--select", "oracle"], "use source or dev"),
])
def test_bad_selection_is_refused(suite: Path, tiny_encoder_dir: Path, capsys,
                                  extra: list[str], message: str) -> None:
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "erm", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_select_dev_needs_a_target(suite: Path, tiny_encoder_dir: Path, capsys) -> None:
    spec = yaml.safe_load(suite.read_text())
    spec["shifts"] = spec["shifts"][:1]
    suite.write_text(yaml.safe_dump(spec))
    assert mitigate(suite, f"probe:{tiny_encoder_dir}", "--method", "erm", "--grid",
                    "lr=0.01,0.1", "--select", "dev") == 2
    assert "--select dev needs an unlabelled target" in capsys.readouterr().err


def test_multitask_trains_on_a_metadata_column_of_the_suite(suite: Path, tiny_encoder_dir: Path,
                                                           capsys) -> None:
    spec = yaml.safe_load(suite.read_text())
    spec["data"]["metadata"] = ["genre", "topic"]
    suite.write_text(yaml.safe_dump(spec))
    model = f"probe:{tiny_encoder_dir}"
    assert mitigate(suite, model, "--method", "multitask", "--param", "tasks=genre",
                    "--seeds", "1", "--no-progress") == 0
    report = json.loads((suite.parent / "out" / "mitigate.json").read_text())
    assert report["method"]["tasks"] == "genre"
    log = (Path(report["models"]["method"][0]) / "log.jsonl").read_text().splitlines()
    assert all("task_genre" in json.loads(row) for row in log if '"step"' in row)

    assert mitigate(suite, model, "--method", "multitask", "--param", "tasks=mood") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "task 'mood'" in err and "(metadata columns: genre, topic;" in err
    spec["data"]["metadata"] = ["mood"]
    suite.write_text(yaml.safe_dump(spec))
    assert mitigate(suite, model, "--method", "erm", "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "data.jsonl: no column 'mood' for the metadata" in err


def test_a_generation_suite_is_refused(suite: Path, tiny_encoder_dir: Path, capsys) -> None:
    rows = [{"id": f"r{i}", "text": f"review {i}", "title": f"title {i}"} for i in range(20)]
    (suite.parent / "titles.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    titles = suite.parent / "titles.yaml"
    titles.write_text(yaml.safe_dump({"name": "titles", "task": "generation", "data": {
        "kind": "jsonl", "path": "titles.jsonl", "target": "title"}}))
    assert mitigate(titles, f"probe:{tiny_encoder_dir}", "--method", "erm") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "titles.yaml: task: generation; mitigate retrains classifiers" in err
