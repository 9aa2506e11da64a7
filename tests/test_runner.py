"""Runner and cache: dedup, order, cache hits, resume, OOM halving, length order, readers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shiftbench.cache import Cache, text_key
from shiftbench.errors import ShiftbenchError
from shiftbench.runner import TEXTS, Runner, new_stats


def features(text: str) -> list[float]:
    """A row that identifies its text, so order and values can be checked exactly."""
    return [float(len(text)), float(ord(text[0])), float(text.count(" "))]


class Recorder:
    """A batch function that records each batch it sees and can fail on demand."""

    def __init__(self, fail_after: int | None = None, max_batch: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_after = fail_after
        self.max_batch = max_batch

    def __call__(self, batch: list[str]) -> np.ndarray:
        if self.max_batch is not None and len(batch) > self.max_batch:
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        if self.fail_after is not None and len(self.batches) == self.fail_after:
            raise RuntimeError("simulated crash")
        self.batches.append(list(batch))
        return np.array([features(t) for t in batch])

    @property
    def seen(self) -> list[str]:
        return [t for batch in self.batches for t in batch]


def expected(texts: list[str]) -> np.ndarray:
    return np.array([features(t) for t in texts], dtype=np.float32)


def test_dedup_and_caller_order(sentences: list[str]) -> None:
    texts = sentences + sentences[::-1]  # every text at least twice, in two orders
    fn = Recorder()
    runner = Runner(batch_size=8, progress=False)
    out = runner.map("ns", texts, fn)
    assert sorted(fn.seen) == sorted(set(texts))  # each unique text computed exactly once
    np.testing.assert_array_equal(out, expected(texts))
    assert out.dtype == np.float32
    assert runner.stats["requested"] == len(texts)
    assert runner.stats["unique"] == runner.stats["computed"] == len(set(texts))


def test_second_run_is_served_from_disk(tmp_path: Path, sentences: list[str]) -> None:
    first = Runner(cache_dir=tmp_path, batch_size=8, progress=False)
    want = first.map("ns", sentences, Recorder())
    first.close()
    fn = Recorder()
    second = Runner(cache_dir=tmp_path, batch_size=8, progress=False)
    got = second.map("ns", sentences, fn)
    assert fn.batches == []
    np.testing.assert_array_equal(got, want)
    assert second.stats["cache_hits"] == len(set(sentences))
    assert second.stats["computed"] == 0
    other = Recorder()
    second.map("other-namespace", sentences[:3], other)  # namespaces never share rows
    assert sorted(other.seen) == sorted(set(sentences[:3]))


def test_resume_after_crash_computes_only_the_rest(tmp_path: Path, sentences: list[str]) -> None:
    unique = list(dict.fromkeys(sentences))
    crashing = Recorder(fail_after=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Runner(cache_dir=tmp_path, batch_size=5, progress=False).map("ns", sentences, crashing)
    done = crashing.seen
    assert len(done) == 15
    assert Cache(tmp_path).count("ns") == 15  # the three finished batches were committed

    fn = Recorder()
    runner = Runner(cache_dir=tmp_path, batch_size=5, progress=False)
    out = runner.map("ns", sentences, fn)
    assert sorted(fn.seen) == sorted(set(unique) - set(done))
    assert runner.stats["cache_hits"] == 15
    np.testing.assert_array_equal(out, expected(sentences))


def test_oom_halves_the_batch_and_goes_on(sentences: list[str]) -> None:
    fn = Recorder(max_batch=4)
    runner = Runner(batch_size=16, progress=False)
    out = runner.map("ns", sentences, fn)
    np.testing.assert_array_equal(out, expected(sentences))
    assert runner.stats["oom_retries"] == 2  # 16 -> 8 -> 4
    assert max(len(b) for b in fn.batches) == 4
    with pytest.raises(ShiftbenchError, match="batch size 1"):
        Runner(batch_size=4, progress=False).map("ns", sentences, Recorder(max_batch=0))


def test_other_errors_are_not_retried(sentences: list[str]) -> None:
    fn = Recorder(fail_after=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Runner(batch_size=16, progress=False).map("ns", sentences, fn)


def test_batches_go_longest_first(sentences: list[str]) -> None:
    fn = Recorder()
    Runner(batch_size=7, progress=False).map("ns", sentences, fn)
    lengths = [len(t) for t in fn.seen]
    assert lengths == sorted(lengths, reverse=True)
    assert len(set(lengths)) > 5  # the fixture really mixes lengths


class WordFn(Recorder):
    """A batch function that encodes texts to word lists: sorting must use word counts."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[list[str]] = []

    def encode(self, texts: list[str]) -> list[list[str]]:
        self.encoded.append(list(texts))
        return [t.split() + ["<end>"] for t in texts]

    def __call__(self, batch: list[list[str]]) -> np.ndarray:
        return super().__call__([" ".join(words[:-1]) for words in batch])


def test_encode_once_and_sort_by_encoded_length() -> None:
    # characters and words disagree: the longest text by characters has the fewest words
    texts = ["a b c d e f", "abcdefghijklmnopqrstuvwxyz", "a b c", "a b c d e f"]
    fn = WordFn()
    out = Runner(batch_size=2, progress=False).map("ns", texts, fn)
    assert fn.encoded == [["a b c d e f", "abcdefghijklmnopqrstuvwxyz", "a b c"]]
    assert fn.seen == ["a b c d e f", "a b c", "abcdefghijklmnopqrstuvwxyz"]
    np.testing.assert_array_equal(out, expected(texts))


def test_readers_see_each_batch_as_soon_as_it_is_done(tmp_path: Path,
                                                      sentences: list[str]) -> None:
    reader = Cache(tmp_path)
    visible: list[int] = []

    def fn(batch: list[str]) -> np.ndarray:
        visible.append(reader.count("ns"))  # a second connection, while the run writes
        return expected(batch)

    runner = Runner(cache_dir=tmp_path, batch_size=10, progress=False)
    runner.map("ns", sentences, fn)
    assert visible == list(range(0, len(set(sentences)), 10))
    script = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
              "print(db.execute('SELECT COUNT(*) FROM vectors').fetchone()[0])")
    db_path = tmp_path / "vectors.sqlite"
    result = subprocess.run([sys.executable, "-c", script, str(db_path)], capture_output=True,
                            text=True, check=True)  # another process, writer still open
    assert int(result.stdout) == len(set(sentences))
    mode = sqlite3.connect(db_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    key = text_key(sentences[0])
    np.testing.assert_array_equal(reader.get_many("ns", [key])[key], expected(sentences[:1])[0])


def test_empty_input_calls_nothing() -> None:
    fn = Recorder()
    out = Runner(progress=False).map("ns", [], fn)
    assert out.shape == (0, 0)
    assert fn.batches == []


def test_a_bad_batch_function_is_caught() -> None:
    with pytest.raises(ValueError, match="expected"):
        Runner(progress=False).map("ns", ["a", "b"], lambda batch: np.zeros(len(batch)))


def test_quiet_without_progress(capsys: pytest.CaptureFixture[str], sentences: list[str]) -> None:
    Runner(progress=False).map("ns", sentences, Recorder())
    assert capsys.readouterr().err == ""


class Upper(Recorder):
    """A batch function whose output is a text per text: what translation gives."""

    def __call__(self, batch: list[str]) -> list[str]:
        super().__call__(batch)
        return [text.upper() for text in batch]


def test_texts_go_through_the_same_pass(tmp_path: Path, sentences: list[str]) -> None:
    """Dedup, longest first, OOM halving, per-batch commit and resume: the loop that makes
    float rows makes texts too, stored in the cache's text table."""
    crashing = Upper(fail_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Runner(cache_dir=tmp_path, batch_size=5, progress=False).map(
            "ns", sentences, crashing, codec=TEXTS)
    assert len(crashing.seen) == 10
    fn = Upper(max_batch=4)
    stats = new_stats()
    runner = Runner(cache_dir=tmp_path, batch_size=16, progress=False)
    out = runner.map("ns", sentences, fn, codec=TEXTS, stats=stats)
    assert out == [text.upper() for text in sentences]
    assert sorted(fn.seen) == sorted(set(sentences) - set(crashing.seen))
    lengths = [len(t) for t in fn.seen]
    assert lengths == sorted(lengths, reverse=True) and max(map(len, fn.batches)) == 4
    assert (stats["cache_hits"], stats["computed"], stats["oom_retries"]) == (10, 40, 2)
    assert stats["compute_seconds"] > 0
    assert runner.stats == new_stats()  # the counts went where they were asked to
    assert Cache(tmp_path).count("ns") == 0  # texts never land in the vectors table
    again = Upper()
    cached = Runner(cache_dir=tmp_path, progress=False).map("ns", sentences, again, codec=TEXTS)
    assert cached == out and again.batches == []
    assert Runner(progress=False).map("ns", [], again, codec=TEXTS) == []


def test_a_bad_text_batch_function_is_caught() -> None:
    with pytest.raises(ValueError, match="expected 2 texts"):
        Runner(progress=False).map("ns", ["a", "b"], lambda batch: ["A"], codec=TEXTS)
    with pytest.raises(ValueError, match="expected 2 texts"):
        Runner(progress=False).map("ns", ["a", "b"], lambda batch: [1.0, 2.0], codec=TEXTS)


def test_batch_size_per_call(sentences: list[str]) -> None:
    fn = Recorder()
    Runner(batch_size=64, progress=False).map("ns", sentences, fn, batch_size=7)
    assert max(len(b) for b in fn.batches) == 7


def test_device_and_precision_resolution() -> None:
    runner = Runner(device="cpu")
    assert (runner.device_, runner.precision_) == ("cpu", "fp32")
    with pytest.raises(ShiftbenchError, match="needs a CUDA device"):
        _ = Runner(device="cpu", precision="bf16").precision_
    with pytest.raises(ShiftbenchError, match="precision 'fp64'"):
        _ = Runner(device="cpu", precision="fp64").precision_
    with pytest.raises(ShiftbenchError, match="device 'tpu'"):
        _ = Runner(device="tpu").device_


def test_cuda_request_without_gpu_is_a_clear_error() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert Runner().device_ == "cpu"
    with pytest.raises(ShiftbenchError, match="no CUDA GPU"):
        _ = Runner(device="cuda").device_


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from shiftbench.device import resolve_cache_dir

    monkeypatch.delenv("SHIFTBENCH_CACHE_DIR", raising=False)
    assert resolve_cache_dir(None) == Path("reports/.cache")
    assert resolve_cache_dir(None, tmp_path) == tmp_path / ".cache"
    monkeypatch.setenv("SHIFTBENCH_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(None, tmp_path) == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "flag", tmp_path) == tmp_path / "flag"
