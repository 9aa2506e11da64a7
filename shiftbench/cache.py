"""On-disk cache of model outputs (float vectors or texts keyed by namespace + text) and
fitted heads, and the saved-folder format of fitted state. Nothing read back is taken
on trust: every cached row and every saved file carries a checksum (:func:`checksum`).

Layout under ``cache_dir``:

* ``vectors.sqlite``: table ``vectors(namespace, key, value, checksum)``; ``key`` is the
  sha256 of the text (texts can be long; the digest is a fixed 32 bytes), ``value`` the
  row as little-endian float32 bytes, ``checksum`` covers namespace, key and value. Table
  ``texts`` holds text outputs (translations) the same way. A row whose checksum does not
  match (edited, damaged, or written before checksums existed) is treated as missing, so
  it is recomputed and overwritten. WAL mode lets a second process read while a run
  writes; each ``put`` is one transaction, so a crash or Ctrl-C loses at most the batch in
  flight and the next run resumes from what is committed. Processes that open the same
  file together wait for each other (up to ``BUSY_SECONDS``) instead of failing.
* ``models/<name>/``: small fitted heads in the saved-folder format below; a head that
  fails its checks is refit and overwritten.

Saved folders (:func:`write_saved`, :func:`read_saved`; heads and detectors): a JSON file
of metadata + ``arrays.npz``, read back with ``allow_pickle=False``. The JSON's
``format`` is ``SAVED_FORMAT``; its ``checksum`` holds the sha256 of the rest of the JSON
and of each array (dtype, shape and bytes); reading checks the fields, their types, the
arrays and the checksums, and a mismatch is an error naming the file and the field.
Nothing is ever unpickled.

``Cache(None)`` keeps vectors in memory (dedup still works) and stores no heads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError

SAVED_FORMAT = 2  # saved folders: 1 had no checksums
BUSY_SECONDS = 120.0  # how long a process waits for another one holding the cache file
_TABLES = {"vectors": "BLOB", "texts": "TEXT"}
_CHUNK = 500  # keys per SELECT: well under SQLite's bound-parameter limit

Kinds = type | tuple[type, ...]  # what a saved field may hold (int never accepts a bool)


def checksum(*parts: bytes) -> bytes:
    """sha256 over length-prefixed ``parts``: the one integrity check of cached rows and
    saved files (the length prefix keeps ``(ab, c)`` and ``(a, bc)`` apart)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.digest()


def array_checksum(array: np.ndarray) -> str:
    """Hex checksum of an array's dtype, shape and bytes."""
    arr = np.ascontiguousarray(array)
    return checksum(arr.dtype.str.encode(), str(arr.shape).encode(), arr.tobytes()).hex()


def text_key(text: str) -> bytes:
    """The cache key of a text: its sha256 digest (same in every process)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Cache:
    """Float32 rows keyed by (namespace, text key), plus a folder of fitted heads.

    ``rejected`` counts rows read back whose checksum or length did not match: they were
    treated as missing (and recomputed by the caller).
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.rejected = 0
        if self.directory is None:
            self.path = ":memory:"
            self._db = self._connect()
            return
        self.path = str(self.directory / "vectors.sqlite")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ShiftbenchError(f"cache {self.directory}: cannot create the folder "
                                  f"({exc.strerror}); pick another --cache-dir") from None
        with self._errors("open"):
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        """Open, switch to WAL and create or migrate the tables. Two processes that do this
        at once on a fresh file can make SQLite report "locked" at once, without waiting
        (it breaks a lock deadlock that way): then start over until ``BUSY_SECONDS``."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS)
            try:
                if self.directory is not None:
                    db.execute("PRAGMA journal_mode=WAL")
                    # WAL + NORMAL: a crashed process never corrupts the file or loses a
                    # commit (only a power cut can lose the last commits).
                    db.execute("PRAGMA synchronous=NORMAL")
                _create_tables(db)
                return db
            except BaseException as exc:
                db.close()
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.01, 0.1))

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """SQLite errors as one line naming the cache file and what the user can do."""
        try:
            yield
        except sqlite3.Error as exc:
            text = str(exc)
            if _is_busy(exc):
                advice = (f"another process kept it busy for over {BUSY_SECONDS:g} s; let it "
                          "finish or pick another --cache-dir")
            elif "full" in text:
                advice = ("the rows committed so far are kept: free some space and run "
                          "again (it resumes), or pick another --cache-dir")
            elif "malformed" in text or "not a database" in text:
                advice = ("the file is damaged; once no shiftbench run uses it, move it (and its "
                          "-wal and -shm files) aside, or pick another --cache-dir")
            else:
                advice = "pick another --cache-dir"
            raise ShiftbenchError(f"cache {self.path}: cannot {doing} ({text}); {advice}") \
                from None

    def _select(self, table: str, namespace: str, keys: Sequence[bytes]) -> Iterator[tuple]:
        """(key, value, checksum) for the ``keys`` present in ``table``, in chunks."""
        with self._errors("read"):
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start:start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                yield from self._db.execute(
                    f"SELECT key, value, checksum FROM {table} "
                    f"WHERE namespace = ? AND key IN ({marks})", [namespace, *chunk]).fetchall()

    def _put(self, table: str, rows: list[tuple[str, bytes, Any, bytes]]) -> None:
        with self._errors("write"), self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {table} "
                                 "(namespace, key, value, checksum) VALUES (?, ?, ?, ?)", rows)

    def get_many(self, namespace: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The valid rows present for ``keys`` (missing or invalid keys are absent)."""
        prefix = namespace.encode()
        rows = {}
        for key, value, check in self._select("vectors", namespace, keys):
            if (isinstance(value, bytes) and len(value) % 4 == 0
                    and check == checksum(prefix, key, value)):
                rows[key] = np.frombuffer(value, dtype="<f4")
            else:
                self.rejected += 1
        return rows

    def put_many(self, namespace: str, keys: Sequence[bytes], rows: np.ndarray) -> None:
        """Store one row per key in a single transaction (committed on return)."""
        data = np.ascontiguousarray(rows, dtype="<f4")
        prefix = namespace.encode()
        values = [row.tobytes() for row in data]
        self._put("vectors", [(namespace, key, value, checksum(prefix, key, value))
                              for key, value in zip(keys, values, strict=True)])

    def get_texts(self, namespace: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        """The valid texts present for ``keys`` (missing or invalid keys are absent)."""
        prefix = namespace.encode()
        texts = {}
        for key, value, check in self._select("texts", namespace, keys):
            if isinstance(value, str) and check == checksum(
                    prefix, key, value.encode("utf-8", "surrogatepass")):
                texts[key] = value
            else:
                self.rejected += 1
        return texts

    def put_texts(self, namespace: str, keys: Sequence[bytes], values: Sequence[str]) -> None:
        """Store one text per key in a single transaction (committed on return)."""
        prefix = namespace.encode()
        self._put("texts", [
            (namespace, key, value,
             checksum(prefix, key, value.encode("utf-8", "surrogatepass")))
            for key, value in zip(keys, values, strict=True)])

    def count(self, namespace: str | None = None) -> int:
        """Rows stored (valid or not), in one namespace or all."""
        with self._errors("read"):
            if namespace is None:
                return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            query = "SELECT COUNT(*) FROM vectors WHERE namespace = ?"
            return self._db.execute(query, [namespace]).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    # -- fitted heads -------------------------------------------------------------------

    def save_head(self, name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Store a small fitted model as a saved folder (no-op for an in-memory cache)."""
        if self.directory is not None:
            write_saved(self.directory / "models" / name, "head.json", meta, arrays)

    def load_head(self, name: str, fields: Mapping[str, Kinds], arrays: Mapping[str, int]
                  ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """A head saved by :meth:`save_head` with these fields and arrays (see
        :func:`read_saved`), or None when absent or failing a check: a cache entry is
        refit and overwritten, never trusted."""
        if self.directory is None:
            return None
        folder = self.directory / "models" / name
        if not folder.is_dir():
            return None
        try:
            return read_saved(folder, "head.json", "head", fields, arrays)
        except ShiftbenchError:
            return None


def _create_tables(db: sqlite3.Connection) -> None:
    """Create the tables, or add the checksum column to a file written before it existed
    (its rows then have none and are recomputed); one transaction, so a concurrent
    creator waits rather than races."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, kind in _TABLES.items():
            db.execute(f"""CREATE TABLE IF NOT EXISTS {table} (
                namespace TEXT NOT NULL,
                key BLOB NOT NULL,
                value {kind} NOT NULL,
                checksum BLOB,
                PRIMARY KEY (namespace, key)
            ) WITHOUT ROWID""")
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if "checksum" not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN checksum BLOB")
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" (or "busy"): another connection holds the lock."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc)
                                                          or "busy" in str(exc))


# -- saved folders ---------------------------------------------------------------------------


def write_saved(folder: Path, json_name: str, meta: dict[str, Any],
                arrays: dict[str, np.ndarray]) -> Path:
    """Save fitted state as ``<json_name>`` (metadata + checksums) + ``arrays.npz``, each
    file atomically: the no-pickle format of every saved head and detector."""
    sums = {"meta": _meta_checksum(meta),
            "arrays": {name: array_checksum(arr) for name, arr in arrays.items()}}
    text = json.dumps({"format": SAVED_FORMAT, **meta, "checksum": sums}, indent=1)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic(folder / "arrays.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        with atomic(folder / json_name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ShiftbenchError(f"{folder}: cannot save ({exc.strerror or exc})") from None
    return folder


def read_saved(folder: Path, json_name: str, what: str, fields: Mapping[str, Kinds],
               arrays: Mapping[str, int]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what :func:`write_saved` wrote, checked: the JSON is of ``SAVED_FORMAT`` and
    holds exactly ``fields`` (name -> accepted types), ``arrays.npz`` exactly ``arrays``
    (name -> number of dimensions, finite numbers), and both match their checksums. Any
    failure is a one-line error naming the file and the field. Returns (meta less format
    and checksum, arrays)."""
    meta_path, arrays_path = folder / json_name, folder / "arrays.npz"
    for path in (meta_path, arrays_path):
        if not path.is_file():
            raise ShiftbenchError(f"{path}: missing; not a saved {what} folder")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(arrays_path, allow_pickle=False) as data:
            loaded = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ShiftbenchError(f"{folder}: unreadable saved {what} ({exc})") from None
    if not isinstance(meta, dict):
        raise ShiftbenchError(f"{meta_path}: not a saved {what}")
    if meta.pop("format", None) != SAVED_FORMAT:
        raise ShiftbenchError(f"{meta_path}: not a saved {what} of format {SAVED_FORMAT} (the "
                              "format of this shiftbench version)")
    sums = meta.pop("checksum", None)
    _check_fields(meta_path, meta, fields)
    _check_arrays(arrays_path, loaded, arrays)
    if not (isinstance(sums, dict) and isinstance(sums.get("arrays"), dict)):
        raise ShiftbenchError(f"{meta_path}: field 'checksum' is missing or malformed")
    if sums.get("meta") != _meta_checksum(meta):
        raise ShiftbenchError(f"{meta_path}: the content does not match its checksum (edited "
                              "or damaged)")
    for name, arr in loaded.items():
        if sums["arrays"].get(name) != array_checksum(arr):
            raise ShiftbenchError(f"{arrays_path}: array {name!r} does not match its checksum "
                                  "(edited or damaged)")
    return meta, loaded


def has_kind(value: Any, kinds: Kinds) -> bool:
    """``isinstance`` for JSON values: an int is a float too, a bool is never a number."""
    accepted = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool):
        return bool in accepted
    if isinstance(value, int) and float in accepted:
        return True
    return isinstance(value, accepted)


def kind_names(kinds: Kinds) -> str:
    accepted = kinds if isinstance(kinds, tuple) else (kinds,)
    names = {dict: "object", list: "list", str: "string", float: "number", int: "integer",
             bool: "true/false", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in accepted)


def _check_fields(path: Path, meta: dict[str, Any], fields: Mapping[str, Kinds]) -> None:
    for name in meta:
        if name not in fields:
            raise ShiftbenchError(f"{path}: unknown field {name!r}")
    for name, kinds in fields.items():
        if name not in meta:
            raise ShiftbenchError(f"{path}: field {name!r} is missing")
        if not has_kind(meta[name], kinds):
            raise ShiftbenchError(f"{path}: field {name!r} must be {kind_names(kinds)}, got "
                                  f"{json.dumps(meta[name])[:60]}")


def _check_arrays(path: Path, loaded: dict[str, np.ndarray], arrays: Mapping[str, int]) -> None:
    for name in loaded:
        if name not in arrays:
            raise ShiftbenchError(f"{path}: unknown array {name!r}")
    for name, ndim in arrays.items():
        if name not in loaded:
            raise ShiftbenchError(f"{path}: array {name!r} is missing")
        arr = loaded[name]
        if arr.ndim != ndim or arr.dtype.kind not in "biuf":
            raise ShiftbenchError(f"{path}: array {name!r} must be {ndim}-D numbers, got "
                                  f"{arr.ndim}-D {arr.dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ShiftbenchError(f"{path}: array {name!r} holds NaN or infinite values")


def _meta_checksum(meta: Mapping[str, Any]) -> str:
    return checksum(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()).hex()


@contextlib.contextmanager
def atomic(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; rename it into place only if the block succeeds."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
