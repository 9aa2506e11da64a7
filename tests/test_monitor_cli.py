"""`shiftbench monitor stream` and `monitor history` end to end on a tiny encoder."""

import json
import random
from pathlib import Path

from shiftbench.cli import main

CALM = ["the flight was on time", "good service at the gate", "the crew was friendly",
        "my bag arrived with me", "a smooth landing today", "the seat was comfortable"]
LOUD = ["ERROR 500 DATABASE TIMEOUT", "segfault in module xyz", "404 page not found",
        "kernel panic not syncing", "stack overflow in parser", "disk quota exceeded"]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    return path


def sample(pool: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(pool)} {rng.randint(0, 99)}" for _ in range(n)]


def test_stream_alarms_after_the_shift_and_history_exports(tmp_path: Path, tiny_encoder_dir,
                                                           capsys) -> None:
    reference = write_jsonl(tmp_path / "ref.jsonl", sample(CALM, 400, 0))
    log = write_jsonl(tmp_path / "log.jsonl", sample(CALM, 120, 1) + sample(LOUD, 60, 2))
    store = tmp_path / "history.sqlite"
    common = ["--store", str(store), "--encoder", str(tiny_encoder_dir), "--cache-dir",
              str(tmp_path / "cache"), "--no-progress"]
    code = main(["monitor", "stream", str(reference), str(log), "--window", "30", "--ert", "20",
                 *common])
    out = capsys.readouterr().out
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("window ")]
    assert len(lines) == 6
    assert all("DRIFT" in line for line in lines[4:])  # windows 4-5 hold the loud rows
    assert all("one-shot flags: mmd, ks" in line for line in lines[4:])
    assert "6 windows" in out

    # a restart resumes after the last stored window: nothing new to read
    assert main(["monitor", "stream", str(reference), str(log), "--window", "30", "--ert", "20",
                 *common]) == 0
    assert "0 windows (resumed at window 6)" in capsys.readouterr().out

    plot, prom = tmp_path / "history.html", tmp_path / "drift.prom"
    assert main(["monitor", "history", "--store", str(store), "--plot", str(plot),
                 "--prometheus", str(prom)]) == 0
    out = capsys.readouterr().out
    # each window: the online MMD and the one-shot tests of `monitor check` (mmd, ks)
    assert out.count("log ") == 18 and "DRIFT" in out
    mmd = [line.split() for line in out.splitlines() if line.split()[4:5] == ["mmd"]]
    assert [row[1] for row in mmd] == ["0", "1", "2", "3", "4", "5"]
    assert all(row[-1] == "DRIFT" and float(row[-2]) < 0.05 for row in mmd[4:])
    assert all(row[-1] == "-" and float(row[-2]) >= 0.05 for row in mmd[:4])
    assert "<svg" in plot.read_text()
    exported = prom.read_text()
    assert 'shiftbench_drift_window{' in exported
    assert 'shiftbench_drift_holm_p_value{stream="log",detector="mmd"}' in exported
    assert 'shiftbench_drift_holm_p_value{stream="log",detector="online_mmd"}' not in exported


def test_history_of_a_missing_store_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["monitor", "history", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert capsys.readouterr().err.startswith("shiftbench: error:")


def test_stream_refuses_a_one_shot_test_of_model_outputs(tmp_path: Path, capsys) -> None:
    reference = write_jsonl(tmp_path / "ref.jsonl", sample(CALM, 40, 0))
    store = tmp_path / "history.sqlite"
    assert main(["monitor", "stream", str(reference), str(reference), "--oneshot", "bbsd",
                 "--store", str(store), "--encoder", "minilm", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--oneshot bbsd" in err[0] and "`monitor stream` has none" in err[0]
    assert not store.exists()
