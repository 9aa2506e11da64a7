"""``--executor ray`` on a real local Ray cluster (2 CPUs): the same numbers as a local run,
results by batch index whatever order they finish in, a dead worker retried, and the
cluster's faults as one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import shiftbench
from shiftbench.cache import Cache
from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.executors import RayExecutor, Work
from shiftbench.runner import ROWS, Runner


@pytest.fixture(scope="session")
def ray_cluster() -> None:
    """A 2-CPU local cluster whose workers import this checkout and this folder's
    batch functions; shut down at the end of the session."""
    import ray

    paths = [str(Path(shiftbench.__file__).parents[1]), str(Path(__file__).parent)]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}})
    yield
    ray.shutdown()


def row(text: str) -> list[float]:
    """A row that identifies its text."""
    return [float(len(text)), float(ord(text[-1]))]


class SlowOnLongest:
    """Sleeps on the batch that holds the longest text (the plan's first), so it
    finishes after the others."""

    def __init__(self, longest: str) -> None:
        self.longest = longest

    def __call__(self, batch: list[str]) -> np.ndarray:
        if self.longest in batch:
            time.sleep(1.5)
        return np.array([row(text) for text in batch])


class DiesOnce:
    """Kills its worker process on its first batch (marked by a file), then computes."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, batch: list[str]) -> np.ndarray:
        if not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return np.array([row(text) for text in batch])


def dies_once(marker: Path, value: int) -> int:
    """A whole job that kills its worker the first time (marked by a file)."""
    if not marker.exists():
        marker.touch()
        os._exit(1)
    return value


TEXTS = [f"text {i} " + "word " * (i % 7) for i in range(40)]


def test_batches_finish_out_of_order_and_are_committed_by_index(ray_cluster, tmp_path: Path
                                                                 ) -> None:
    longest = max(TEXTS, key=len)
    executor = RayExecutor(workers=2)
    batches = [TEXTS[i:i + 4] for i in range(0, 12, 4)]
    batches[0] = [longest, *batches[0][1:]]
    work = Work("ns", SlowOnLongest(longest), ROWS, "slow", 4)
    arrived = [done.index for done in executor.run(work, batches)]
    executor.close()
    assert sorted(arrived) == [0, 1, 2] and arrived[-1] == 0  # the slow first batch last

    runner = Runner(cache_dir=tmp_path, batch_size=4, progress=False, executor="ray",
                    workers=2)
    out = runner.map("ns", TEXTS, SlowOnLongest(longest))
    runner.close()
    np.testing.assert_array_equal(out, np.array([row(t) for t in TEXTS], dtype=np.float32))
    assert Cache(tmp_path).count("ns") == len(TEXTS)


def test_a_worker_killed_mid_run_is_retried_with_the_same_numbers(ray_cluster, tmp_path: Path
                                                                   ) -> None:
    marker = tmp_path / "died"
    runner = Runner(cache_dir=tmp_path, batch_size=8, progress=False, executor="ray",
                    workers=2)
    out = runner.map("ns", TEXTS, DiesOnce(marker))
    runner.close()
    assert marker.exists()  # a worker did die
    np.testing.assert_array_equal(out, np.array([row(t) for t in TEXTS], dtype=np.float32))
    assert runner.stats["computed"] == len(TEXTS)


def test_a_whole_job_whose_worker_dies_is_retried(ray_cluster, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    calls = [(marker, value) for value in range(3)]
    assert RayExecutor().call_each(dies_once, calls, "jobs") == [0, 1, 2]
    assert marker.exists()


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    words = {"positive": ["great", "lovely"], "negative": ["awful", "boring"]}
    rows = [{"id": f"ex{i}", "text": f"the film {i} was {words[label][i % 2]}" + " ok" * (i % 5),
             "label": label}
            for i, label in enumerate(["negative", "positive"] * 20)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = {"name": "tiny", "seed": 3, "data": {"kind": "jsonl", "path": "data.jsonl"},
            "reference": {"portion": [0, 1]},
            "shifts": [{"shift": "keyboard", "severity": [1, 3]}],
            "detectors": [{"name": "mmd", "params": {"n_permutations": 50}}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(suite: Path, model: str, name: str, *extra: str) -> dict:
    reports = suite.parent / "reports"
    assert main(["run", str(suite), "--model", model, "--reports-dir", str(reports),
                 "--cache-dir", str(suite.parent / f"cache-{name}"), "--run-id", name,
                 "--no-progress", "--no-movement", "--device", "cpu", "--precision", "fp32",
                 "--batch-size", "8", *extra]) == 0
    return json.loads((reports / "tiny" / name / "report.json").read_text())


def test_a_ray_run_reports_the_numbers_of_a_local_run(ray_cluster, suite: Path,
                                                      tiny_classifier_dir: Path,
                                                      monkeypatch) -> None:
    model = f"hf:{tiny_classifier_dir}"
    local = run(suite, model, "local")
    from shiftbench.executors import LocalExecutor

    monkeypatch.setattr(LocalExecutor, "run", None)  # nothing may run in this process
    on_ray = run(suite, model, "ray", "--executor", "ray", "--workers", "2")
    assert on_ray["runner"]["computed"] == local["runner"]["computed"] > 0
    assert on_ray["splits"] == local["splits"]
    assert on_ray["drift"] == local["drift"]


def test_a_ray_run_interrupted_in_the_driver_resumes_from_the_cache(
        ray_cluster, suite: Path, tiny_classifier_dir: Path, monkeypatch) -> None:
    """Ctrl-C in the driver after two batches are committed: the next run computes only
    the rest, and reports the numbers of an uninterrupted local run."""
    from shiftbench.cli import EXIT_INTERRUPTED
    from shiftbench.runner import _Job

    model = f"hf:{tiny_classifier_dir}"
    local = run(suite, model, "local")
    committed: list[int] = []
    commit = _Job._commit

    def interrupting(job: _Job, keys: list[bytes], done) -> None:
        if len(committed) == 2:
            raise KeyboardInterrupt
        commit(job, keys, done)
        committed.append(len(keys))

    with monkeypatch.context() as patch:
        patch.setattr(_Job, "_commit", interrupting)
        assert main(["run", str(suite), "--model", model, "--reports-dir",
                     str(suite.parent / "reports"), "--cache-dir", str(suite.parent / "cache-ray"),
                     "--run-id", "interrupted", "--no-progress", "--no-movement", "--device",
                     "cpu", "--precision", "fp32", "--batch-size", "8", "--executor", "ray",
                     "--workers", "2"]) == EXIT_INTERRUPTED
    assert len(committed) == 2
    resumed = run(suite, model, "ray", "--executor", "ray", "--workers", "2")
    assert resumed["runner"]["computed"] == local["runner"]["computed"] - sum(committed)
    assert resumed["runner"]["cache_hits"] == local["runner"]["cache_hits"] + sum(committed)
    assert resumed["splits"] == local["splits"]
    assert resumed["drift"] == local["drift"]


def test_mitigate_on_ray_trains_the_models_of_a_local_run(ray_cluster, tmp_path: Path,
                                                          tiny_encoder_dir: Path,
                                                          monkeypatch) -> None:
    """One Ray task per seed and grid candidate (ERM 2, dann 2 x 2), each with its own
    uncached runner: the same report numbers as training in this process."""
    from test_mitigate import write_suite

    from shiftbench.executors import LocalExecutor

    suite = write_suite(tmp_path)

    def mitigate(name: str, *extra: str) -> dict:
        out = tmp_path / name
        assert main(["mitigate", str(suite), "--model", f"probe:{tiny_encoder_dir}",
                     "--out", str(out), "--cache-dir", str(tmp_path / f"cache-{name}"),
                     "--device", "cpu", "--precision", "fp32", "--no-progress",
                     "--method", "dann", "--seeds", "2", "--grid", "penalty=0.1,1",
                     "--param", "max_epochs=2", "--param", "hidden=8", *extra]) == 0
        return json.loads((out / "mitigate.json").read_text())

    local = mitigate("local")
    monkeypatch.setattr(LocalExecutor, "call_each", None)  # nothing may train in this process
    monkeypatch.setattr(LocalExecutor, "run", None)
    on_ray = mitigate("ray", "--executor", "ray", "--workers", "2")
    assert on_ray["splits"] == local["splits"]
    assert on_ray["grid"] == local["grid"]
    assert [Path(m).relative_to(tmp_path / "ray") for m in on_ray["models"]["method"]] == \
        [Path(m).relative_to(tmp_path / "local") for m in local["models"]["method"]]


def test_monitor_calibration_on_ray_measures_the_rates_of_a_local_check(
        ray_cluster, tmp_path: Path, tiny_encoder_dir: Path, monkeypatch) -> None:
    """The repeats run as Ray tasks (in jobs of ten), their draws made in the driver: the
    same false-alarm rates and power as calibrating in this process."""
    from conftest import make_labelled

    from shiftbench.executors import LocalExecutor

    def rows(n: int, seed: int) -> Path:
        texts, _ = make_labelled(n, seed)
        path = tmp_path / f"{seed}.jsonl"
        path.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n"
                                for i, t in enumerate(texts)))
        return path

    reference, current = rows(120, seed=1), rows(40, seed=2)

    def check(name: str, *extra: str) -> list[dict]:
        out = tmp_path / name
        assert main(["monitor", "check", str(reference), str(current), "--out", str(out),
                     "--encoder", str(tiny_encoder_dir), "--control", "keyboard:4",
                     "--detector", "mmd", "--detector", "ks", "--calibrate-repeats", "20",
                     "--cache-dir", str(tmp_path / f"cache-{name}"), "--device", "cpu",
                     "--no-progress", *extra]) in (0, 1)
        return [r["calibration"] for r in
                json.loads((out / "monitor.json").read_text())["detectors"]]

    local = check("local")
    monkeypatch.setattr(LocalExecutor, "call_each", None)  # nothing may run in this process
    monkeypatch.setattr(LocalExecutor, "run", None)
    on_ray = check("ray", "--executor", "ray", "--workers", "2")
    assert on_ray == local
    assert [set(cal["power"]) for cal in local] == [{"keyboard@4"}] * 2
    assert any(cal["power"]["keyboard@4"]["value"] > 0 for cal in local)


def test_an_unreachable_cluster_is_one_line_and_fast(suite: Path, tiny_classifier_dir: Path
                                                     ) -> None:
    """In a fresh process: this one is connected to the test cluster."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "shiftbench", "run", str(suite), "--model",
         f"hf:{tiny_classifier_dir}", "--reports-dir", str(suite.parent / "reports"),
         "--no-movement", "--no-progress", "--executor", "ray:10.255.255.1:6379"],
        capture_output=True, text=True, cwd=Path(shiftbench.__file__).parents[1], timeout=120)
    assert time.perf_counter() - began < 60
    err = done.stderr.strip()
    assert done.returncode == 2 and "\n" not in err, err
    assert err.startswith("shiftbench: error: --executor ray: cannot connect to the Ray cluster "
                          "at 10.255.255.1:6379")


@pytest.mark.parametrize(("executor", "message"), [
    ("dask", "use local, ray or ray:ADDRESS"), ("ray:nowhere", "the address is HOST:PORT")])
def test_a_bad_executor_is_one_line(executor: str, message: str) -> None:
    with pytest.raises(ShiftbenchError, match=message):
        Runner(executor=executor).executor_  # noqa: B018


def test_a_gpu_asked_of_a_cluster_without_one_is_one_line(ray_cluster) -> None:
    with pytest.raises(ShiftbenchError, match="device 'cuda': the Ray cluster has no GPU"):
        Runner(device="cuda", executor="ray").device_  # noqa: B018
