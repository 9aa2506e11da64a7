"""The monitor service's engine in process: records stored before the reply, resent ids
not counted twice, each record in exactly one window, a failed window leaving its
records to be claimed again, backpressure, time windows, and bad records refused whole.

Embeddings are fake and seeded (as in test_stream): "n 17" is a N(0, I) vector drawn
with the text's hash, "s 17" the same kind of vector shifted in its first two coordinates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from postgres import postgres_server
from test_stream import fake_embed as stream_embed

from shiftbench.errors import ShiftbenchError
from shiftbench.monitor import Monitor
from shiftbench.monitor.oneshot import OneShot
from shiftbench.monitor.service.accuracy import WindowAccuracy, accuracy_values
from shiftbench.monitor.service.monitor import InvalidInput, UnknownStream, Windowing
from shiftbench.monitor.service.records import Pending, QueueFull, RecordStore, StreamConflict
from shiftbench.monitor.store import history

WINDOW = 20


def fake_embed(texts: list[str]) -> np.ndarray:
    return stream_embed(texts, shift=1.5)


def make_monitor(store: Path | str, embed=fake_embed, **options) -> Monitor:
    reference = [f"n ref {i}" for i in range(400)]
    return Monitor.from_reference(reference, embed, store=store, window=WINDOW, ert=20,
                                  backend="numpy", **options)


def records(n: int, start: int = 0, kind: str = "n") -> list[dict]:
    return [{"id": f"r{i}", "text": f"{kind} {i}"} for i in range(start, start + n)]


def make_oneshot(names: tuple[str, ...] = ("mmd", "ks")) -> OneShot:
    oneshot = OneShot.build(names, alpha=0.05, device="cpu", inputs={"embedder": "fake"})
    assert oneshot is not None
    return oneshot


def check_exactly_once(store: RecordStore, stream: str, sent: set[str]) -> dict[str, int | None]:
    """Every sent id stored once; processed ones in exactly one window; windows numbered
    0..k-1 without gaps, each holding WINDOW records, rows contiguous, and one row of
    each detector (the online one's, and the one-shot tests' when there are)."""
    placed = store.record_windows(stream)
    assert set(placed) == sent
    rows = store.records(stream)
    detectors = sorted({r.detector for r in rows})
    assert sorted((r.window, r.detector) for r in rows) == \
        sorted({(r.window, d) for r in rows for d in detectors})
    windows = [r for r in rows if r.detector == "online_mmd"]
    indices = [r.window for r in windows]
    assert indices == list(range(len(indices)))
    counts = np.bincount([w for w in placed.values() if w is not None],
                         minlength=len(indices))
    assert list(counts) == [WINDOW] * len(indices)
    assert [(r.start_row, r.end_row) for r in windows] == \
        [(k * WINDOW, (k + 1) * WINDOW) for k in range(len(windows))]
    assert sum(w is None for w in placed.values()) < WINDOW  # only an unfilled window waits
    return placed


def test_records_are_windowed_once_and_resends_are_duplicates(tmp_path: Path) -> None:
    monitor = make_monitor(tmp_path / "h.sqlite")
    first = monitor.send("prod", records(50))
    again = monitor.send("prod", records(30, start=40))  # 10 resent, 20 new
    assert (first.accepted, first.duplicates, first.pending) == (50, 0, 50)
    assert (again.accepted, again.duplicates, again.pending) == (20, 10, 70)
    assert monitor.process_ready() == 3
    assert monitor.process_ready() == 0
    check_exactly_once(monitor.store, "prod", {f"r{i}" for i in range(70)})
    assert monitor.backlog()["prod"].pending == 10
    windows = monitor.windows("prod")
    assert [w.extra["records"] for w in windows] == [WINDOW] * 3
    assert windows[0].source == "records r0..r19"
    monitor.close()
    # the same history as `monitor history` reads it
    assert [r.window for r in history(tmp_path / "h.sqlite", "prod")] == [0, 1, 2]


def test_a_window_that_fails_leaves_its_records_to_be_claimed_again(tmp_path: Path) -> None:
    """A failure between claim and commit (a crash, an embedder error) writes nothing;
    the next run takes exactly the same records."""
    calls = {"n": 0}

    def flaky(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        if len(texts) == WINDOW and calls["n"] == 3:  # the second window's first try
            raise ShiftbenchError("embedder down")
        return fake_embed(texts)

    monitor = make_monitor(tmp_path / "h.sqlite", embed=flaky)
    monitor.send("prod", records(60))
    with pytest.raises(ShiftbenchError, match="embedder down"):
        monitor.process_ready()
    assert [r.window for r in monitor.store.records("prod")] == [0]
    assert monitor.backlog()["prod"].pending == 40
    assert monitor.process_ready() == 2
    placed = check_exactly_once(monitor.store, "prod", {f"r{i}" for i in range(60)})
    assert [placed[f"r{i}"] for i in (0, 19, 20, 39, 40, 59)] == [0, 0, 1, 1, 2, 2]


def wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_worker_thread_tests_windows_and_flags_a_shift(tmp_path: Path) -> None:
    with make_monitor(tmp_path / "h.sqlite", poll_interval=0.05) as monitor:
        monitor.send("prod", records(2 * WINDOW))
        monitor.send("prod", records(WINDOW, start=100, kind="s"))
        wait_for(lambda: len(monitor.store.records("prod")) == 3)
        assert monitor.running
    drifted = [r.drifted for r in history(tmp_path / "h.sqlite", "prod")]
    assert drifted[2] is True and drifted[:2] == [False, False]


def test_one_shot_tests_flag_a_shifted_window_not_a_reference_one(tmp_path: Path) -> None:
    """Windows drawn like the reference pass the MMD permutation and KS tests at alpha
    0.05 (seeded); a shifted one flags, Holm-adjusted, and each window's one-shot rows are
    written with it (fitted detectors are saved, and reused by the next start)."""
    folder = tmp_path / "detector"
    monitor = make_monitor(tmp_path / "h.sqlite", oneshot=make_oneshot(), detector_dir=folder)
    monitor.send("prod", records(2 * WINDOW) + records(WINDOW, start=100, kind="s"))
    assert monitor.process_ready() == 3
    check_exactly_once(monitor.store, "prod", {f"r{i}" for i in range(2 * WINDOW)}
                       | {f"r{i}" for i in range(100, 100 + WINDOW)})
    rows = {(r.window, r.detector): r for r in monitor.store.records("prod")}
    for window in (0, 1):
        assert not rows[window, "mmd"].drifted and not rows[window, "ks"].drifted
        assert rows[window, "mmd"].p_value >= 0.05
    shifted = rows[2, "mmd"]
    assert shifted.drifted and shifted.extra["holm_p"] < 0.05
    assert shifted.extra["holm_p"] >= shifted.p_value  # Holm never lowers a p-value
    assert shifted.threshold is None and shifted.alpha == 0.05
    saved = {p.name: (p / "detector.json").stat().st_mtime_ns
             for p in (folder / "oneshot").iterdir()}
    assert set(saved) == {"mmd", "ks"}
    make_monitor(tmp_path / "h.sqlite", oneshot=make_oneshot(), detector_dir=folder)
    assert {p.name: (p / "detector.json").stat().st_mtime_ns
            for p in (folder / "oneshot").iterdir()} == saved  # reused, not fitted again
    make_monitor(tmp_path / "h2.sqlite", oneshot=make_oneshot(), detector_dir=folder,
                 embed=lambda texts: fake_embed(texts) * 2)
    assert (folder / "oneshot" / "mmd" / "detector.json").stat().st_mtime_ns \
        != saved["mmd"]  # another reference: fitted again


def test_one_shot_settings_are_kept_and_checked(tmp_path: Path) -> None:
    monitor = make_monitor(tmp_path / "h.sqlite", oneshot=make_oneshot())
    monitor.send("prod", records(3))
    other = make_monitor(tmp_path / "h.sqlite", oneshot=make_oneshot(("mmd",)))
    with pytest.raises(StreamConflict):
        other.send("prod", records(1, start=10))
    with pytest.raises(ShiftbenchError, match="--oneshot bbsd: it tests a classifier's .* "
                                              "give `monitor serve` a --model"):
        make_oneshot(("bbsd",))


def test_a_failing_stream_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """The worker reports a window it cannot test (healthz shows it) and goes on with the
    other streams; the failed window's records wait, unprocessed, for a later try."""
    def embed(texts: list[str]) -> np.ndarray:
        if any(text.startswith("bad") for text in texts):
            raise ShiftbenchError("cannot embed")
        return fake_embed(texts)

    with make_monitor(tmp_path / "h.sqlite", embed=embed, poll_interval=0.05) as monitor:
        monitor.send("a-first", [{"id": str(i), "text": f"bad {i}"} for i in range(WINDOW)])
        monitor.send("b-second", records(WINDOW))
        wait_for(lambda: monitor.store.records("b-second"))
        assert monitor.running and monitor.errors >= 1
        assert monitor.last_error == "stream 'a-first': cannot embed"
        assert monitor.backlog()["a-first"].pending == WINDOW


def test_backpressure_refuses_the_whole_batch(tmp_path: Path) -> None:
    monitor = make_monitor(tmp_path / "h.sqlite", max_queue=50)
    monitor.send("prod", records(45))
    with pytest.raises(QueueFull, match="45 unprocessed records; 10 more would pass the "
                                        "limit of 50"):
        monitor.send("prod", records(10, start=45))
    assert len(monitor.store.record_windows("prod")) == 45
    assert monitor.send("prod", records(5)).duplicates == 5  # resends cost no room
    monitor.process_ready()
    assert monitor.send("prod", records(10, start=45)).accepted == 10


@pytest.mark.parametrize(("batch", "reason"), [
    ([{"id": "a", "text": "n 1"}, {"id": "b", "text": 7}], r"records\[1\]\.text: Input should "
                                                          "be a valid string"),
    ([{"text": "n 1", "probabilities": [0.2, 1.5]}], r"records\[0\]\.probabilities: "
                                                    r"probabilities must be .*in \[0, 1\]$"),
    ([{"text": "n 1"}, {"text": " \n\t"}], r"records\[1\]\.text: empty or blank text$"),
    ([{"text": "n 1", "label": [1, 2]}], r"records\[0\]\.label: a class is text or a whole "
                                         r"number, got list$"),
    ([{"text": "n 1", "prediction": True}], r"records\[0\]\.prediction: a class is text or a "
                                            r"whole number, got bool$"),
    ([{"text": "n 1", "colour": "red"}], r"records\[0\]\.colour: Extra inputs"),
    ([{"id": "a", "text": "n 1"}, {"id": "a", "text": "n 2"}], r"records\[1\]\.id: 'a' "
                                                              r"repeats records\[0\]\.id"),
    ([{"id": "", "text": "n 1"}], r"records\[0\]\.id: String should have at least 1"),
    ([], "the batch is empty"),
])
def test_a_bad_record_refuses_its_batch(tmp_path: Path, batch: list, reason: str) -> None:
    monitor = make_monitor(tmp_path / "h.sqlite")
    with pytest.raises(InvalidInput, match=reason):
        monitor.send("prod", batch)
    assert monitor.store.record_windows("prod") == {}


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 129, "a b", "é"])
def test_stream_names_are_plain(tmp_path: Path, name: str) -> None:
    monitor = make_monitor(tmp_path / "h.sqlite")
    with pytest.raises(InvalidInput, match="stream name"):
        monitor.send(name, records(1))


def test_only_listed_streams_are_served_and_settings_are_kept(tmp_path: Path) -> None:
    monitor = make_monitor(tmp_path / "h.sqlite", streams=["prod"])
    with pytest.raises(UnknownStream, match="'dev' is not served here"):
        monitor.send("dev", records(1))
    with pytest.raises(UnknownStream, match="no stream 'other'"):
        monitor.windows("other")
    monitor.send("prod", records(1))
    monitor.close()
    other = Monitor.from_reference([f"n ref {i}" for i in range(400)], fake_embed,
                                   store=tmp_path / "h.sqlite", window=40, ert=20,
                                   backend="numpy")
    with pytest.raises(StreamConflict, match="stream 'prod' was started with window = 20, "
                                             "not 40"):
        other.send("prod", records(1, start=1))


def pending(seconds: list[float]) -> list[Pending]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [Pending(k, f"r{k}", f"n {k}", None, None, start + timedelta(seconds=s))
            for k, s in enumerate(seconds)]


def test_time_windows_take_a_period_and_test_a_fixed_sample() -> None:
    windowing = Windowing(window=3, seconds=10)
    waiting = pending([0, 1, 2, 4, 9.5, 10.5, 12])
    start = waiting[0].received_at
    assert windowing.cut(waiting, start + timedelta(seconds=9)) is None  # period open
    taken = windowing.cut(waiting, start + timedelta(seconds=11))
    assert [p.seq for p in taken] == [0, 1, 2, 3, 4]  # 10.5 s is past the period
    texts = windowing.texts(taken, "prod", 0)
    assert len(texts) == 3 and texts == windowing.texts(taken, "prod", 0)
    # too few records in the period: it stays open until the window is full
    sparse = pending([0, 30])
    assert windowing.cut(sparse, start + timedelta(seconds=60)) is None
    late = pending([0, 30, 50])
    assert [p.seq for p in windowing.cut(late, start + timedelta(seconds=60))] == [0, 1, 2]
    assert windowing.closes(late) == late[2].received_at


def test_count_windows_close_on_their_last_record() -> None:
    windowing = Windowing(window=3)
    waiting = pending([0, 1, 5, 6])
    assert windowing.closes(waiting) == waiting[2].received_at
    assert [p.seq for p in windowing.cut(waiting, waiting[3].received_at)] == [0, 1, 2]
    assert windowing.cut(waiting[:2], waiting[3].received_at) is None


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ShiftbenchError, match="--max-queue 10 is below the window"):
        make_monitor(tmp_path / "h.sqlite", max_queue=10)
    with pytest.raises(ShiftbenchError, match="--window-seconds must be > 0"):
        Windowing(window=20, seconds=0)


def hashed_accuracy() -> WindowAccuracy:
    """Accuracy estimates of the harness's hashed-words model (positive iff "great") on a
    reference it gets half right."""
    from serve_harness import HashedWords

    from shiftbench.runtime import Runtime
    from shiftbench.split import Split

    texts = [f"n ref {i} {'great' if i % 2 else 'bad'}" for i in range(400)]
    labels = ["positive" if i % 3 else "negative" for i in range(400)]  # 2/3 positive
    reference = Split("reference", [str(i) for i in range(400)], texts, labels)
    return WindowAccuracy(HashedWords(), reference, Runtime().runner())


def test_windows_carry_label_free_accuracy_and_the_measured_one(tmp_path: Path) -> None:
    """With a model and a labelled reference each window gets ATC/DoC estimates; the
    measured accuracy only when every record of the window came with a label."""
    accuracy = hashed_accuracy()
    monitor = make_monitor(tmp_path / "h.sqlite", accuracy=accuracy)
    # "great" (positive) on odd rows; positive labels on rows not divisible by 3: the
    # model is right on 1/2 of the reference (odd & not 3k, or even & 3k: 1/3 + 1/6)
    assert accuracy_values(accuracy(["x"], None))["reference"] == pytest.approx(0.5, abs=0.01)
    labelled = [{"id": f"l{i}", "text": f"n {i} great", "label": "positive"}
                for i in range(WINDOW)]
    monitor.send("prod", labelled)
    monitor.send("prod", [{**r, "label": None, "id": f"u{k}"} for k, r in enumerate(labelled)])
    assert monitor.process_ready() == 2
    first, second = (accuracy_values(w.extra["accuracy"]) for w in monitor.windows("prod"))
    assert first["actual"] == 1.0 and "actual" not in second
    assert set(second) == {"reference", "atc", "doc"}
    assert 0 <= second["atc"] <= 1 and 0 <= second["doc"] <= 1


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "h.sqlite")
        return
    with postgres_server() as url:
        yield url


def test_concurrent_batches_never_pass_the_queue_limit(store_url: str) -> None:
    """8 threads race to fill a queue of 100: exactly 100 records get in (each batch whole
    or not at all), and the accepted counts add up to what is stored."""
    monitor = make_monitor(store_url, max_queue=100)
    monitor.send("prod", records(1))
    accepted: list[int] = []
    refused: list[int] = []

    def sender(k: int) -> None:
        for b in range(6):
            batch = [{"id": f"t{k}-{b}-{i}", "text": f"n {k} {b} {i}"} for i in range(3)]
            try:
                accepted.append(monitor.send("prod", batch).accepted)
            except QueueFull:
                refused.append(len(batch))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = len(monitor.store.record_windows("prod"))
    assert stored == 1 + sum(accepted) == 100  # 33 batches of 3 fit after the first record
    assert len(refused) == 8 * 6 - 33
    monitor.close()
