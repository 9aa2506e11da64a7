"""Streaming monitor: the online detector's expected run time (ERT) on simulated streams,
detection delay after a known shift, window readers (file, growing file, directory),
resuming from the store, and bad input that must stop before anything is written.

Embeddings are fake and seeded: a text "n 17" embeds as a N(0, I) vector drawn with the
text's hash, "s 17" as the same kind of vector shifted in its first two coordinates.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import resave, write_data_file

from shiftbench.detectors.online import OnlineMMD
from shiftbench.errors import ShiftbenchError
from shiftbench.file_formats import FILE_FORMATS
from shiftbench.metrics import wilson
from shiftbench.monitor.rows import read_texts
from shiftbench.monitor.store import HistoryStore, history
from shiftbench.monitor.stream import fitted_online, monitor_stream, run_stream
from shiftbench.monitor.windows import WindowReader

DIM = 6
SHIFT = 1.0


def fake_embed(texts: list[str], shift: float = SHIFT) -> np.ndarray:
    """A seeded row per text; texts starting "s " are moved by ``shift``, "nan " ones get a NaN."""
    rows = []
    for text in texts:
        row = np.random.default_rng(zlib.crc32(text.encode())).normal(size=DIM)
        if text.startswith("s "):
            row[:2] += shift
        if text.startswith("nan "):
            row[0] = np.nan
        rows.append(row)
    return np.array(rows)


def write_jsonl(path: Path, texts: list[str], mode: str = "w") -> Path:
    with open(path, mode, encoding="utf-8") as fh:
        fh.writelines(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts))
    return path


def log_texts(n: int, start: int = 0, kind: str = "n") -> list[str]:
    return [f"{kind} {i}" for i in range(start, start + n)]


def detector(window: int = 20, ert: float = 50, seed: int = 0, n: int = 600) -> OnlineMMD:
    reference = np.random.default_rng(1000 + seed).normal(size=(n, DIM))
    return OnlineMMD(ert=ert, window=window, backend="numpy", seed=seed).fit(reference)


# -- the online detector ----------------------------------------------------------------------


def test_false_alarms_come_every_ert_windows_on_null_streams() -> None:
    """Streams with no drift, until their first alarm: the mean run length is ERT (50)
    within sampling error, and the per-window false-alarm rate is 1/ERT.

    The rate holds on average over reference samples (for one reference it scatters
    around 1/ERT), so 8 references with 20 streams each, and standard errors from the
    spread between references. Measured here: mean run length 57.1 (SE 5.3), false-alarm
    rate 0.0184 (SE 0.0014) over 9,129 windows.
    """
    ert, window, n_refs = 50, 20, 8
    run_lengths, rates = [], []
    for seed in range(n_refs):
        online = detector(window, ert, seed, n=1000)
        rng = np.random.default_rng(seed)
        lengths = []
        for _ in range(20):
            # P(no alarm in 1,000 windows) ~ 2e-9
            lengths.append(next(i for i in range(1, 20 * ert)
                                if online.test(rng.normal(size=(window, DIM))).drifted))
        run_lengths.append(np.mean(lengths))
        rates.append(len(lengths) / sum(lengths))
    mean, se = np.mean(run_lengths), np.std(run_lengths, ddof=1) / np.sqrt(n_refs)
    assert abs(mean - ert) < 3 * se, f"mean run length {mean:.1f} (SE {se:.1f}), ERT {ert}"
    rate, rate_se = np.mean(rates), np.std(rates, ddof=1) / np.sqrt(n_refs)
    assert abs(rate - 1 / ert) < 3 * rate_se, \
        f"false-alarm rate {rate:.4f} (SE {rate_se:.4f}), 1/ERT {1 / ert}"
    print(f"\nERT {ert}: mean run length {mean:.1f} (SE {se:.1f}); false-alarm rate "
          f"{rate:.4f} (SE {rate_se:.4f}); windows {sum(n * 20 for n in run_lengths):.0f}")


def test_a_shift_is_detected_within_a_few_windows() -> None:
    """100 null windows, then a mean shift of 0.5 sd in 2 of 6 coordinates (a window of
    20 rows exceeds the threshold ~40% of the time): the delay to the first alarm is a
    few windows, and false alarms before the shift are as rare as the ERT says.
    Measured: delays [3, 0, 0, 0, 0, 1, 2, 0, 1, 5] (mean 1.2), 13 false alarms in 1,000
    null windows (ERT 50 expects 20)."""
    online = detector(window=20, ert=50)
    rng = np.random.default_rng(7)
    delays, false_alarms = [], 0
    for _ in range(10):
        false_alarms += sum(online.test(rng.normal(size=(20, DIM))).drifted for _ in range(100))
        shifted = (online.test(rng.normal(size=(20, DIM)) + [0.5, 0.5, 0, 0, 0, 0])
                   for _ in range(100))
        delays.append(next(i for i, r in enumerate(shifted) if r.drifted))
    print(f"\ndelays {delays}; {false_alarms} false alarms in 1,000 null windows")
    assert np.mean(delays) <= 3 and max(delays) <= 10, f"delays {delays}"
    assert wilson(false_alarms, 1000).low < 1 / 50, f"{false_alarms} false alarms in 1,000"


def test_alarm_threshold_and_p_value_agree() -> None:
    online = detector(window=20, ert=50)
    b = len(online.null_)
    assert b == 2499 and online.k_ == 50 and online.alpha_ == pytest.approx(1 / 50)
    assert online.threshold_ == np.sort(online.null_)[-50]
    rng = np.random.default_rng(3)
    for shift in np.linspace(0, 0.8, 40):
        result = online.test(rng.normal(size=(20, DIM)) + shift)
        assert result.drifted == (result.statistic > online.threshold_)
        assert result.drifted == (result.p_value <= result.alpha)
        assert 1 / (b + 1) <= result.p_value <= 1
        assert result.details["threshold"] == online.threshold_


def test_fit_is_seeded_and_round_trips_through_its_folder(tmp_path: Path) -> None:
    a, b = detector(seed=0), detector(seed=0)
    assert a.threshold_ == b.threshold_
    c = OnlineMMD(ert=50, window=20, backend="numpy", seed=1).fit(
        np.random.default_rng(1000).normal(size=(600, DIM)))
    assert c.threshold_ != a.threshold_  # another seed: other simulations

    a.save(tmp_path / "det")
    with np.load(tmp_path / "det" / "arrays.npz", allow_pickle=False) as arrays:
        assert set(arrays.files) == {"comparison", "center", "null"}
    meta = json.loads((tmp_path / "det" / "online.json").read_text())
    assert meta["threshold"] == a.threshold_ and meta["params"]["ert"] == 50
    loaded = OnlineMMD.load(tmp_path / "det")
    window = np.random.default_rng(5).normal(size=(20, DIM)) + 0.3
    assert loaded.test(window) == a.test(window)


def test_a_saved_detector_is_reused_only_for_the_same_reference(tmp_path: Path,
                                                                  monkeypatch) -> None:
    reference = np.random.default_rng(0).normal(size=(600, DIM))
    first = fitted_online(reference, OnlineMMD(ert=50, window=20, backend="numpy"), tmp_path)

    def no_simulation(*args):
        raise AssertionError("simulated again")

    monkeypatch.setattr(OnlineMMD, "_simulate", no_simulation)
    again = fitted_online(reference, OnlineMMD(ert=50, window=20, backend="numpy"), tmp_path)
    assert again.threshold_ == first.threshold_
    with pytest.raises(AssertionError, match="simulated again"):  # other reference: refit
        fitted_online(reference[:500], OnlineMMD(ert=50, window=20, backend="numpy"), tmp_path)
    with pytest.raises(AssertionError, match="simulated again"):  # other ERT: refit
        fitted_online(reference, OnlineMMD(ert=60, window=20, backend="numpy"), tmp_path)


def saved_online(folder: Path) -> Path:
    detector(n=200).save(folder)
    return folder


def edit_null(change):
    def edit(folder: Path) -> None:
        with np.load(folder / "arrays.npz") as data:
            arrays = {name: data[name] for name in data.files}
        arrays["null"] = change(arrays["null"])
        np.savez(folder / "arrays.npz", **arrays)
    return edit


def edit_json(change):
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "online.json").read_text())
        change(meta)
        (folder / "online.json").write_text(json.dumps(meta))
    return edit


@pytest.mark.parametrize("damage, message", [
    (edit_null(np.zeros_like), "array 'null' does not match its checksum"),
    (edit_null(lambda null: null[:100]), "array 'null' does not match its checksum"),
    (edit_json(lambda m: m.update(threshold=0.0)), "online.json: the content does not match"),
    (edit_json(lambda m: m.pop("bandwidth")), "field 'bandwidth' is missing"),
    (edit_json(lambda m: m.update(k="50")), "field 'k' must be integer"),
    (edit_json(lambda m: m.update(spare=1)), "unknown field 'spare'"),
])
def test_a_damaged_saved_online_detector_is_refused(tmp_path: Path, damage,
                                                    message: str) -> None:
    damage(saved_online(tmp_path))
    with pytest.raises(ShiftbenchError, match=message) as err:
        OnlineMMD.load(tmp_path)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("change, message", [
    (lambda m, a: m["params"].update(windows=20), "field 'params': unknown parameter 'windows'"),
    (lambda m, a: m["params"].pop("ert"), "parameter 'ert' is missing"),
    (lambda m, a: m["params"].update(window="20"), "parameter 'window' must be integer"),
    (lambda m, a: m["params"].update(window=1), "window must be at least 2"),
    (lambda m, a: a.update(null=a["null"][:100]), "array 'null' must hold the 2499"),
    (lambda m, a: a.update(null=a["null"][::-1].copy()), "in increasing order"),
    (lambda m, a: a.update(null=np.zeros_like(a["null"])), "'threshold', 'k' and 'alpha'"),
    (lambda m, a: a.update(center=a["center"][:3]), "n_features_in = 6 columns"),
    (lambda m, a: a.update(comparison=a["comparison"][:, :3]), "n_features_in = 6 columns"),
    (lambda m, a: m.update(bandwidth=0.0), "field 'bandwidth' must be > 0"),
    (lambda m, a: m.update(detector="mmd"), "field 'detector' is 'mmd'"),
])
def test_a_hand_made_online_detector_is_checked_beyond_its_checksum(tmp_path: Path, change,
                                                                    message: str) -> None:
    resave(saved_online(tmp_path), "online.json", change)
    with pytest.raises(ShiftbenchError, match=message) as err:
        OnlineMMD.load(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "online.json"))


def test_a_stream_refuses_its_damaged_detector_folder(tmp_path: Path) -> None:
    reference = np.random.default_rng(0).normal(size=(200, DIM))
    fitted_online(reference, OnlineMMD(ert=50, window=20, backend="numpy"), tmp_path)
    edit_null(np.zeros_like)(tmp_path)
    with pytest.raises(ShiftbenchError, match=f"'null'.*remove {tmp_path} to fit"):
        fitted_online(reference, OnlineMMD(ert=50, window=20, backend="numpy"), tmp_path)


@pytest.mark.parametrize("params, rows, message", [
    ({"window": 1}, 100, "window must be at least 2"),
    ({"ert": 1}, 100, "ert must be > 1"),
    ({"window": 60}, 100, "at least 120"),
    ({"ert": 500, "n_simulations": 99}, 100, "cannot set a threshold"),
])
def test_bad_online_settings(params: dict, rows: int, message: str) -> None:
    reference = np.random.default_rng(0).normal(size=(rows, DIM))
    with pytest.raises(ShiftbenchError, match=message):
        OnlineMMD(**{"window": 20, "backend": "numpy", **params}).fit(reference)


def test_windows_of_another_size_or_with_nan_are_refused() -> None:
    online = detector(window=20)
    with pytest.raises(ShiftbenchError, match="calibrated for 20 rows x 6 features"):
        online.test(np.zeros((19, DIM)))
    bad = np.zeros((20, DIM))
    bad[4, 2] = np.nan
    with pytest.raises(ShiftbenchError, match="1 NaN or infinite values"):
        online.test(bad)


# -- window readers ----------------------------------------------------------------------------


def test_a_file_is_read_in_windows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "log.jsonl", log_texts(105))
    reader = WindowReader(path, window=20)
    windows = list(reader.windows())
    assert [w.index for w in windows] == [0, 1, 2, 3, 4]
    assert [t for w in windows for t in w.texts] == log_texts(100)
    assert (windows[1].start_row, windows[1].end.row) == (20, 40)
    assert reader.leftover == 5  # not a whole window: read again after a restart
    resumed = list(WindowReader(path, window=20).windows(windows[2].end, 3))
    assert [w.index for w in resumed] == [3, 4] and resumed[0].texts == log_texts(20, 60)


@pytest.mark.parametrize("suffix", FILE_FORMATS)
def test_every_file_format_is_read_in_windows(tmp_path: Path, suffix: str) -> None:
    """Each suffix `monitor check` reads, a stream reads too (one table), and resumes mid-file."""
    import pandas as pd

    texts = ['plain', 'with, comma', 'a "quoted"\nline break', 'a\ttab', 'last']
    path = write_data_file(pd.DataFrame({"id": range(5), "body": texts}), tmp_path / f"log{suffix}")
    windows = list(WindowReader(path, text_column="body", window=2).windows())
    assert [w.texts for w in windows] == [texts[:2], texts[2:4]]
    rest = list(WindowReader(path, text_column="body", window=1).windows(windows[0].end, 2))
    assert [w.texts for w in rest] == [[text] for text in texts[2:]]  # resumed mid-file
    assert read_texts(path, "body") == texts


def test_a_directory_is_one_stream_in_name_order(tmp_path: Path) -> None:
    for day, start in (("2026-03-02", 30), ("2026-03-01", 0), ("2026-03-03", 60)):
        write_jsonl(tmp_path / f"{day}.jsonl", log_texts(30, start))
    (tmp_path / "notes.txt").write_text("ignored")
    windows = list(WindowReader(tmp_path, window=25).windows())
    assert [t for w in windows for t in w.texts] == log_texts(75)
    assert windows[1].source == "2026-03-01.jsonl..2026-03-02.jsonl"
    end = windows[2].end
    assert (end.file, end.row) == ("2026-03-03.jsonl", 75) and len(end.digest) == 32


def test_a_directory_of_daily_files_gives_one_window_per_file(tmp_path: Path) -> None:
    for day, n in (("01", 40), ("02", 25), ("03", 60)):
        write_jsonl(tmp_path / f"day-{day}.jsonl", log_texts(n, 100 * int(day)))
    reader = WindowReader(tmp_path, window=25, per_file=True, seed=3)
    windows = list(reader.windows())
    assert [w.source for w in windows] == ["day-01.jsonl", "day-02.jsonl", "day-03.jsonl"]
    assert all(len(w.texts) == 25 for w in windows)
    assert set(windows[0].texts) < set(log_texts(40, 100))  # drawn from that day only
    assert windows[1].texts == log_texts(25, 200)  # all of a 25-row day
    assert [(w.start_row, w.end.row) for w in windows] == [(0, 40), (40, 65), (65, 125)]
    assert [w.texts for w in WindowReader(tmp_path, window=25, per_file=True, seed=3)
            .windows()] == [w.texts for w in windows]  # seeded
    assert [w.source for w in reader.windows(windows[0].end, 1)] == ["day-02.jsonl",
                                                                       "day-03.jsonl"]
    write_jsonl(tmp_path / "day-04.jsonl", log_texts(10))
    with pytest.raises(ShiftbenchError, match=r"day-04.jsonl: 10 rows, fewer than the window"):
        list(WindowReader(tmp_path, window=25, per_file=True).windows(windows[2].end, 3))


def test_a_growing_file_is_followed_until_it_goes_quiet(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "live.jsonl", log_texts(15))
    reader = WindowReader(path, window=10, follow=True, poll_interval=0.01, idle_timeout=1.0)
    windows = reader.windows()
    assert next(windows).texts == log_texts(10)

    def append() -> None:  # rows 15-24 and the first half of row 25
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps({"text": t}) + "\n" for t in log_texts(10, 15)))
            fh.write('{"text": "n 2')

    timer = threading.Timer(0.2, append)
    started = time.monotonic()
    timer.start()
    second = next(windows)  # rows 10-14 are there; 15-19 come while it polls
    timer.join()
    assert second.texts == log_texts(10, 10) and time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert next(windows, None) is None  # rows 20-24, then half a line: quiet for 1 s
    assert 1.0 <= time.monotonic() - started < 10
    assert reader.leftover == 5
    with open(path, "a", encoding="utf-8") as fh:  # row 25 completed, rows 26-29 added
        fh.write('5"}\n' + "".join(json.dumps({"text": t}) + "\n" for t in log_texts(4, 26)))
    resumed = WindowReader(path, window=10, follow=True, poll_interval=0.01, idle_timeout=0.1)
    assert next(resumed.windows(second.end, 2)).texts == log_texts(10, 20)


def test_a_truncated_file_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "log.jsonl", log_texts(40))
    end = list(WindowReader(path, window=20).windows())[-1].end
    write_jsonl(path, log_texts(5))  # rotated: shorter than where the stream stopped
    with pytest.raises(ShiftbenchError, match="truncated or rotated"):
        list(WindowReader(path, window=20).windows(end, 2))


def test_a_file_replaced_since_the_stream_stopped_is_an_error(tmp_path: Path) -> None:
    """A rotated log with the old name and more bytes than were read: resuming at the old
    offset would test its middle rows as if they were new. The store keeps the fingerprint,
    and an appended file still resumes."""
    path = write_jsonl(tmp_path / "log.jsonl", log_texts(45))
    with HistoryStore(tmp_path / "h.sqlite") as store:
        monitor_stream(WindowReader(path, window=20), {"mmd": detector()}, fake_embed, store,
                       "prod")
        write_jsonl(path, log_texts(20, 45), mode="a")
        again = monitor_stream(WindowReader(path, window=20), {"mmd": detector()}, fake_embed,
                               store, "prod")
        assert (again.first_window, again.windows) == (2, 1)
        write_jsonl(path, log_texts(200, 1000, kind="s"))  # rotated: a new, longer file
        with pytest.raises(ShiftbenchError) as err:
            monitor_stream(WindowReader(path, window=20), {"mmd": detector()}, fake_embed,
                           store, "prod")
        rows = store.records("prod")
    assert [r.window for r in rows] == [0, 1, 2]
    assert str(err.value) == (f"{path}: its first {rows[-1].end_offset} bytes, which the stream "
                              "has read, changed since; was it replaced or rotated? Use a new "
                              "stream name")


@pytest.mark.parametrize("content, message", [
    ('{"text": "n 1"}\n{"text": \n', r"line 2: invalid JSON \(Expecting value at column 10\)"),
    ('{"text": "n 1"}\n\n["n 2"]\n', r"line 3: expected a JSON object"),
    ('{"text": "n 1"}\n{"body": "n 2"}\n', r"line 2: empty or missing text in 'text'"),
    ('{"text": "n 1"}\n{"text": "  "}\n', r"line 2: empty or missing text"),
])
def test_bad_rows_are_named_by_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(content)
    with pytest.raises(ShiftbenchError, match=message):
        list(WindowReader(path, window=1).windows())


def test_bad_csv_and_sources(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("id,text\n1,n 1\n2,n 2,extra\n")
    with pytest.raises(ShiftbenchError, match="line 3: 3 fields, the header has 2"):
        list(WindowReader(tmp_path / "log.csv", window=1).windows())
    with pytest.raises(ShiftbenchError, match="no column 'body'"):
        list(WindowReader(tmp_path / "log.csv", text_column="body", window=1).windows())
    with pytest.raises(ShiftbenchError, match="no such file or directory"):
        WindowReader(tmp_path / "missing.jsonl")
    (tmp_path / "log.txt").write_text("x")
    with pytest.raises(ShiftbenchError, match="unknown file type"):
        list(WindowReader(tmp_path / "log.txt").windows())
    with pytest.raises(ShiftbenchError, match="needs a directory"):
        WindowReader(tmp_path / "log.csv", per_file=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ShiftbenchError, match="no .jsonl"):
        WindowReader(empty)


# -- the loop and the store ----------------------------------------------------------------


def test_monitor_resumes_where_the_stored_stream_stopped(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "log.jsonl", log_texts(130))
    online = detector(window=20)
    seen: list[int] = []
    with HistoryStore(tmp_path / "h.sqlite") as store:
        first = monitor_stream(WindowReader(path, window=20), {"mmd": online}, fake_embed,
                               store, "prod", max_windows=3,
                               on_window=lambda w, results: seen.append(w.index))
        assert (first.first_window, first.windows, first.next_row) == (0, 3, 60)
        assert not first.resumed
        write_jsonl(path, log_texts(30, 130), mode="a")
        again = monitor_stream(WindowReader(path, window=20), {"mmd": online}, fake_embed,
                               store, "prod")
        assert again.resumed and (again.first_window, again.windows) == (3, 5)
        assert (again.next_row, again.leftover_rows) == (160, 0)
        assert seen == [0, 1, 2]
        rows = store.records("prod")
    assert [r.window for r in rows] == list(range(8))
    assert [(r.start_row, r.end_row) for r in rows] == [(20 * i, 20 * i + 20) for i in range(8)]
    with HistoryStore(tmp_path / "h.sqlite") as store, \
            pytest.raises(ShiftbenchError, match="started with window = 20, not 25"):
        monitor_stream(WindowReader(path, window=25), {"mmd": detector(window=25)},
                       fake_embed, store, "prod")


def test_bad_input_stops_before_its_window_is_written(tmp_path: Path) -> None:
    texts = log_texts(40) + ["nan 1"] + log_texts(19, 41)
    path = write_jsonl(tmp_path / "log.jsonl", texts)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        with pytest.raises(ShiftbenchError, match=r"window 2 \(rows 40-60\): 1 NaN"):
            monitor_stream(WindowReader(path, window=20), {"mmd": detector(window=20)},
                           fake_embed, store, "prod")
        assert [r.window for r in store.records()] == [0, 1]  # the windows before it stay
        with pytest.raises(ShiftbenchError, match=r"windows of 10 rows, but the mmd detector "
                                                  r"is calibrated for windows of 20"):
            monitor_stream(WindowReader(path, window=10), {"mmd": detector(window=20)},
                           fake_embed, store, "small")

        def short(texts: list[str]) -> np.ndarray:
            return fake_embed(texts)[:-1]

        with pytest.raises(ShiftbenchError, match="19 rows for 20 texts"):
            monitor_stream(WindowReader(path, window=20), {"mmd": detector(window=20)}, short,
                           store, "other")
        assert {r.stream for r in store.records()} == {"prod"}
        assert store.stream_names() == ["prod"]


def test_simulated_production_log_with_a_shift_at_a_known_window(tmp_path: Path) -> None:
    """The whole path (reference texts, JSONL log, embed, SQLite history): a log of 100
    windows of 20 rows whose traffic shifts by 1 sd in 2 of 6 coordinates from window 70
    on. Measured: alarm at window 70 (delay 0), every window after it alarmed, no false
    alarm in the 70 windows before it (ERT 50 expects 1.4)."""
    shift_at, window = 70, 20
    log = log_texts(shift_at * window) + log_texts((100 - shift_at) * window, 10**6, "s")
    write_jsonl(tmp_path / "log.jsonl", log)
    reference = log_texts(1000, 10**7)
    store = f"sqlite:///{tmp_path / 'h.sqlite'}"
    summary = run_stream(reference, tmp_path / "log.jsonl", fake_embed, store=store,
                         stream="prod", window=window, ert=50, backend="numpy",
                         detector_dir=tmp_path / "detector")
    assert (summary.windows, summary.next_row, summary.leftover_rows) == (100, 2000, 0)
    rows = history(store, "prod")
    false_alarms = [r.window for r in rows if r.drifted and r.window < shift_at]
    delay = next(r.window for r in rows if r.drifted and r.window >= shift_at) - shift_at
    after = np.mean([r.drifted for r in rows if r.window >= shift_at])
    print(f"\ndelay {delay} windows; false alarms before the shift: {false_alarms}; alarm "
          f"rate after it {after:.2f}")
    assert delay <= 1, f"detection delay {delay} windows"
    assert len(false_alarms) <= 5, f"false alarms before the shift: {false_alarms}"
    assert after > 0.9, f"alarm rate after the shift {after:.2f}"
    assert summary.alarms == [r.window for r in rows if r.drifted]
    assert (tmp_path / "detector" / "online.json").is_file()
    with pytest.raises(ShiftbenchError, match="started with settings.encoder"):
        run_stream(reference, tmp_path / "log.jsonl", fake_embed, store=store, stream="prod",
                   window=window, ert=50, backend="numpy", settings={"encoder": "other"})
    assert rows[0].extra["ert"] == 50 and rows[0].threshold == rows[0].extra["threshold"]
    write_jsonl(tmp_path / "log.jsonl", log_texts(3000, 10**8))  # rotated: new and longer

    def embedding_not_needed(texts: list[str]) -> np.ndarray:
        raise AssertionError("the reference was embedded before the replaced file was seen")

    with pytest.raises(ShiftbenchError, match="changed since; was it replaced or rotated"):
        run_stream(reference, tmp_path / "log.jsonl", embedding_not_needed, store=store,
                   stream="prod", window=window, ert=50, backend="numpy")
