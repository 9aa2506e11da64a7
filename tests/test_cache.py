"""Cache and saved folders are never taken on trust: checksums, old files, damaged files,
a full disk, processes that open one cache together, and the checked saved-folder format."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shiftbench import cache as cache_module
from shiftbench.cache import Cache, read_saved, text_key, write_saved
from shiftbench.errors import ShiftbenchError
from shiftbench.runner import Runner


def rows_of(texts: list[str], width: int = 3) -> np.ndarray:
    """A row per text that identifies it, so a wrong value shows."""
    return np.array([[len(t) + k for k in range(width)] for t in texts], dtype=np.float32)


class Counting:
    """A batch function that records the texts it computes."""

    def __init__(self, width: int = 3) -> None:
        self.seen: list[str] = []
        self.width = width

    def __call__(self, batch: list[str]) -> np.ndarray:
        self.seen += batch
        return rows_of(batch, self.width)


def filled(tmp_path: Path, texts: list[str]) -> Path:
    runner = Runner(cache_dir=tmp_path, progress=False)
    runner.map("ns", texts, Counting())
    runner.close()
    return tmp_path / "vectors.sqlite"


def sql(path: Path, statement: str, params: tuple = ()) -> None:
    with sqlite3.connect(path) as db:
        db.execute(statement, params)
    db.close()


TEXTS = [f"text {i} " + "x" * i for i in range(20)]


# -- cached rows ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    rows_of(["other"])[0].tobytes(),      # other values, same length
    b"\x00" * 12,                         # zeroed
    b"\x00\x00\x80\x3f" * 2,              # a row of the wrong length (2 floats for 3)
    b"\x01\x02\x03",                      # not even whole float32 values
])
def test_an_edited_row_is_recomputed(tmp_path: Path, value: bytes) -> None:
    db = filled(tmp_path, TEXTS)
    sql(db, "UPDATE vectors SET value = ? WHERE key = ?", (value, text_key(TEXTS[4])))
    fn = Counting()
    runner = Runner(cache_dir=tmp_path, progress=False)
    out = runner.map("ns", TEXTS, fn)
    np.testing.assert_array_equal(out, rows_of(TEXTS))
    assert fn.seen == [TEXTS[4]]
    assert runner.stats["cache_rejected"] == 1 and runner.stats["cache_hits"] == len(TEXTS) - 1
    again = Counting()
    Runner(cache_dir=tmp_path, progress=False).map("ns", TEXTS, again)
    assert again.seen == []  # the recomputed row was stored with a good checksum


def test_a_row_moved_to_another_key_or_namespace_is_recomputed(tmp_path: Path) -> None:
    db = filled(tmp_path, TEXTS)
    sql(db, "UPDATE vectors SET namespace = 'other' WHERE key = ?", (text_key(TEXTS[2]),))
    sql(db, "DELETE FROM vectors WHERE key = ?", (text_key(TEXTS[3]),))
    sql(db, "UPDATE vectors SET key = ? WHERE key = ?", (text_key(TEXTS[3]), text_key(TEXTS[5])))
    fn = Counting()
    Runner(cache_dir=tmp_path, progress=False).map("other", [TEXTS[2]], fn)
    Runner(cache_dir=tmp_path, progress=False).map("ns", TEXTS, fn)
    assert sorted(fn.seen) == sorted([TEXTS[2], TEXTS[2], TEXTS[3], TEXTS[5]])


def test_cached_rows_of_another_width_than_the_model_are_recomputed(tmp_path: Path) -> None:
    cache = Cache(tmp_path)  # rows with good checksums but of width 5, for a model of width 3
    cache.put_many("ns", [text_key(t) for t in TEXTS[:3]], np.ones((3, 5)))
    cache.close()
    fn = Counting()
    runner = Runner(cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(runner.map("ns", TEXTS, fn), rows_of(TEXTS))
    assert sorted(fn.seen) == sorted(TEXTS)
    assert runner.stats["cache_rejected"] == 3
    # all texts cached, most of one width: the odd one out is stale
    Cache(tmp_path).put_many("ns", [text_key(TEXTS[7])], np.ones((1, 5)))
    fn = Counting()
    np.testing.assert_array_equal(Runner(cache_dir=tmp_path, progress=False).map(
        "ns", TEXTS, fn), rows_of(TEXTS))
    assert fn.seen == [TEXTS[7]]


def test_an_edited_translation_is_treated_as_missing(tmp_path: Path) -> None:
    keys = [text_key(t) for t in ("a", "b")]
    cache = Cache(tmp_path)
    cache.put_texts("ns", keys, ["uma", "duas"])
    sql(tmp_path / "vectors.sqlite", "UPDATE texts SET value = 'três' WHERE key = ?", (keys[1],))
    assert Cache(tmp_path).get_texts("ns", keys) == {keys[0]: "uma"}


def test_a_cache_written_before_checksums_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "vectors.sqlite"
    with sqlite3.connect(db) as old:
        for table, kind in (("vectors", "BLOB"), ("texts", "TEXT")):
            old.execute(f"CREATE TABLE {table} (namespace TEXT NOT NULL, key BLOB NOT NULL, "
                        f"value {kind} NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID")
        old.executemany("INSERT INTO vectors VALUES ('ns', ?, ?)",
                        [(text_key(t), b"\x00" * 12) for t in TEXTS])  # wrong values
    old.close()
    fn = Counting()
    out = Runner(cache_dir=tmp_path, progress=False).map("ns", TEXTS, fn)
    np.testing.assert_array_equal(out, rows_of(TEXTS))
    assert sorted(fn.seen) == sorted(TEXTS)  # rows without a checksum are recomputed
    again = Counting()
    Runner(cache_dir=tmp_path, progress=False).map("ns", TEXTS, again)
    assert again.seen == []


# -- damaged file, full disk, busy file -------------------------------------------------------


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "vectors.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ShiftbenchError, match=r"vectors.sqlite.*damaged.*--cache-dir"):
        Cache(tmp_path)


def test_a_damaged_page_is_a_clear_error_when_read(tmp_path: Path) -> None:
    texts = [f"row {i}" for i in range(3000)]
    db = filled(tmp_path, texts)
    page = 4096  # SQLite's default page size
    assert db.stat().st_size > 20 * page and not Path(f"{db}-wal").exists()  # all in the file
    with open(db, "r+b") as fh:  # a page in the middle of the table
        fh.seek(10 * page)
        fh.write(b"\xff" * page)
    cache = Cache(tmp_path)  # the header and schema are intact: it opens
    with pytest.raises(ShiftbenchError) as err:
        cache.get_many("ns", [text_key(t) for t in texts])
    message = str(err.value)
    assert str(db) in message and "malformed" in message and "damaged" in message
    assert "\n" not in message


def test_a_full_disk_is_a_clear_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    keys = [text_key(f"t{i}") for i in range(2000)]
    cache.put_many("ns", keys[:10], np.ones((10, 64)))
    cache._db.execute("PRAGMA max_page_count = 8")  # the file may not grow: SQLITE_FULL
    with pytest.raises(ShiftbenchError, match=r"vectors.sqlite.*full.*kept") as err:
        cache.put_many("ns", keys, np.ones((2000, 64)))
    assert "\n" not in str(err.value)
    assert len(Cache(tmp_path).get_many("ns", keys)) == 10


def test_a_busy_cache_makes_others_wait_and_never_says_delete(tmp_path: Path,
                                                              monkeypatch) -> None:
    Cache(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "vectors.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    monkeypatch.setattr(cache_module, "BUSY_SECONDS", 0.3)
    started = time.monotonic()
    with pytest.raises(ShiftbenchError) as err:
        Cache(tmp_path).put_many("ns", [b"k"], np.ones((1, 2)))
    assert time.monotonic() - started >= 0.3  # it waited
    message = str(err.value)
    assert "vectors.sqlite" in message and "busy" in message and "delete" not in message
    holder.execute("COMMIT")


def test_opening_while_another_process_creates_the_cache_waits(tmp_path: Path) -> None:
    # A connection mid-transaction on a fresh file makes SQLite answer the WAL switch with
    # "database is locked" at once, busy timeout or not: the cache must wait it out.
    creator = sqlite3.connect(tmp_path / "vectors.sqlite", isolation_level=None,
                              check_same_thread=False)
    creator.execute("BEGIN IMMEDIATE")
    creator.execute("CREATE TABLE other (x)")
    threading.Timer(0.5, creator.execute, ["COMMIT"]).start()
    started = time.monotonic()
    cache = Cache(tmp_path)
    assert time.monotonic() - started >= 0.4
    cache.put_many("ns", [b"k"], np.ones((1, 2)))
    assert cache.count("ns") == 1


OPEN_TOGETHER = r"""
import sys, time
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
import numpy as np
from shiftbench.cache import Cache, text_key
cache = Cache(sys.argv[1])
keys = [text_key(f"{sys.argv[3]}-{i}") for i in range(50)]
cache.put_many("ns", keys, np.ones((50, 4)))
assert len(cache.get_many("ns", keys)) == 50
print("ok")
"""


def test_processes_opening_a_fresh_cache_together_all_succeed(tmp_path: Path) -> None:
    # before the fix, 4 processes on a fresh file failed in about half of the tries
    start = time.time() + 1.5  # after every interpreter has started
    folders = [tmp_path / f"cache{k}" for k in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_TOGETHER, str(folder), str(start),
                               str(k)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for folder in folders for k in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["ok"] * len(procs), outputs
    assert [Cache(folder).count("ns") for folder in folders] == [200] * 3


# -- saved folders and cached heads ------------------------------------------------------------


FIELDS = {"classes": list, "C": float, "n": int, "note": (str, type(None))}
ARRAYS = {"coef": 2, "intercept": 1}


def saved(folder: Path) -> Path:
    return write_saved(folder, "head.json", {"classes": ["a", "b"], "C": 1.0, "n": 3,
                                             "note": None},
                       {"coef": np.arange(6.0).reshape(2, 3), "intercept": np.zeros(2)})


def edit_json(folder: Path, change) -> None:
    path = folder / "head.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_saved_folder_round_trip_without_pickle(tmp_path: Path) -> None:
    meta, arrays = read_saved(saved(tmp_path), "head.json", "head", FIELDS, ARRAYS)
    assert meta == {"classes": ["a", "b"], "C": 1.0, "n": 3, "note": None}
    np.testing.assert_array_equal(arrays["coef"], np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("classes"), "field 'classes' is missing"),
    (lambda m: m.update(extra=1), "unknown field 'extra'"),
    (lambda m: m.update(n=True), "field 'n' must be integer"),
    (lambda m: m.update(C="1.0"), "field 'C' must be number"),
    (lambda m: m.update(n=2.5), "field 'n' must be integer"),
    (lambda m: m.update(classes=["b", "a"]), "does not match its checksum"),
    (lambda m: m.update(C=2.0), "does not match its checksum"),
    (lambda m: m.pop("checksum"), "field 'checksum' is missing"),
    (lambda m: m.update(format=1), "not a saved head of format 2"),
])
def test_an_edited_saved_json_is_refused_naming_the_field(tmp_path: Path, change,
                                                          message: str) -> None:
    edit_json(saved(tmp_path), change)
    with pytest.raises(ShiftbenchError, match=message) as err:
        read_saved(tmp_path, "head.json", "head", FIELDS, ARRAYS)
    assert str(tmp_path / "head.json") in str(err.value)


@pytest.mark.parametrize("arrays, message", [
    ({"coef": np.zeros((2, 3)), "intercept": np.zeros(2)}, "array 'coef' does not match"),
    ({"coef": np.arange(6.0).reshape(2, 3)[:1], "intercept": np.zeros(2)}, "'coef' does not"),
    ({"coef": np.arange(6.0), "intercept": np.zeros(2)}, "'coef' must be 2-D numbers"),
    ({"coef": np.arange(6.0).reshape(2, 3)}, "array 'intercept' is missing"),
    ({"coef": np.arange(6.0).reshape(2, 3), "intercept": np.zeros(2), "x": np.zeros(1)},
     "unknown array 'x'"),
    ({"coef": np.full((2, 3), np.nan), "intercept": np.zeros(2)}, "NaN"),
    ({"coef": np.array([["a", "b", "c"]] * 2), "intercept": np.zeros(2)}, "numbers"),
])
def test_edited_saved_arrays_are_refused_naming_the_array(tmp_path: Path, arrays: dict,
                                                          message: str) -> None:
    saved(tmp_path)
    np.savez(tmp_path / "arrays.npz", **arrays)
    with pytest.raises(ShiftbenchError, match=message) as err:
        read_saved(tmp_path, "head.json", "head", FIELDS, ARRAYS)
    assert str(tmp_path) in str(err.value)


def test_unreadable_saved_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ShiftbenchError, match="head.json: missing"):
        read_saved(tmp_path, "head.json", "head", FIELDS, ARRAYS)
    saved(tmp_path)
    (tmp_path / "arrays.npz").write_bytes((tmp_path / "arrays.npz").read_bytes()[:100])
    with pytest.raises(ShiftbenchError, match="unreadable saved head"):
        read_saved(tmp_path, "head.json", "head", FIELDS, ARRAYS)
    # an object array would need pickle to load: refused, never unpickled
    np.savez(tmp_path / "arrays.npz", coef=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ShiftbenchError, match="unreadable saved head"):
        read_saved(tmp_path, "head.json", "head", FIELDS, ARRAYS)


def test_saving_where_nothing_can_be_written_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ShiftbenchError, match="cannot save"):
        write_saved(tmp_path / "file" / "folder", "head.json", {}, {})


def test_cached_heads_that_fail_a_check_are_absent(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.save_head("h", {"classes": ["a", "b"], "C": 1.0, "n": 3, "note": None},
                    {"coef": np.ones((1, 3)), "intercept": np.zeros(1)})
    assert cache.load_head("h", FIELDS, ARRAYS)[0]["classes"] == ["a", "b"]
    assert cache.load_head("absent", FIELDS, ARRAYS) is None
    assert Cache(None).load_head("h", FIELDS, ARRAYS) is None
    edit_json(tmp_path / "models" / "h", lambda m: m.update(classes=["b", "a"]))
    assert cache.load_head("h", FIELDS, ARRAYS) is None
