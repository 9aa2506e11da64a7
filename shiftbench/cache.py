"""On-disk cache of model outputs (float vectors or texts keyed by namespace + text) and
fitted heads.

Layout under ``cache_dir``:

* ``vectors.sqlite``: table ``vectors(namespace, key, value)``; ``key`` is the
  sha256 of the text (texts can be long; the digest is a fixed 32 bytes), ``value``
  the row as little-endian float32 bytes. Table ``texts(namespace, key, value)`` holds
  text outputs (translations) the same way. WAL mode lets a second process read while a
  run writes; each ``put`` is one transaction, so a crash or Ctrl-C loses at most the
  batch in flight and the next run resumes from what is committed.
* ``models/<name>.npz`` + ``models/<name>.json``: small fitted heads (arrays + metadata),
  loaded with ``allow_pickle=False``. Nothing in the cache is ever unpickled.

``Cache(None)`` keeps vectors in memory (dedup still works) and stores no heads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError

_SCHEMAS = tuple(
    f"""CREATE TABLE IF NOT EXISTS {table} (
    namespace TEXT NOT NULL,
    key BLOB NOT NULL,
    value {kind} NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID"""
    for table, kind in (("vectors", "BLOB"), ("texts", "TEXT"))
)
_CHUNK = 500  # keys per SELECT: well under SQLite's bound-parameter limit


def text_key(text: str) -> bytes:
    """The cache key of a text: its sha256 digest (same in every process)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Cache:
    """Float32 rows keyed by (namespace, text key), plus a folder of fitted heads."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is None:
            self._db = sqlite3.connect(":memory:")
            self._create_tables()
            return
        path = self.directory / "vectors.sqlite"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a crashed process never corrupts the file or loses a commit
            # (only a power cut can lose the last commits).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._create_tables()
        except (OSError, sqlite3.Error) as exc:
            raise ShiftbenchError(f"cache {path}: cannot open ({exc}); delete it or pick "
                                  "another --cache-dir") from None

    def _create_tables(self) -> None:
        with self._db:
            for schema in _SCHEMAS:
                self._db.execute(schema)

    def _select(self, table: str, namespace: str, keys: Sequence[bytes]) -> Iterator[tuple]:
        """(key, value) for the ``keys`` present in ``table``, in chunks of bound parameters."""
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start:start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT key, value FROM {table} WHERE namespace = ? AND key IN ({marks})",
                [namespace, *chunk],
            )

    def get_many(self, namespace: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The rows present for ``keys`` (missing keys are simply absent)."""
        return {key: np.frombuffer(value, dtype="<f4")
                for key, value in self._select("vectors", namespace, keys)}

    def put_many(self, namespace: str, keys: Sequence[bytes], rows: np.ndarray) -> None:
        """Store one row per key in a single transaction (committed on return)."""
        data = np.ascontiguousarray(rows, dtype="<f4")
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors (namespace, key, value) VALUES (?, ?, ?)",
                [(namespace, key, row.tobytes()) for key, row in zip(keys, data, strict=True)],
            )

    def get_texts(self, namespace: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        """The texts present for ``keys`` (missing keys are simply absent)."""
        return dict(self._select("texts", namespace, keys))

    def put_texts(self, namespace: str, keys: Sequence[bytes], values: Sequence[str]) -> None:
        """Store one text per key in a single transaction (committed on return)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO texts (namespace, key, value) VALUES (?, ?, ?)",
                [(namespace, key, value) for key, value in zip(keys, values, strict=True)],
            )

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        query = "SELECT COUNT(*) FROM vectors WHERE namespace = ?"
        return self._db.execute(query, [namespace]).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    # -- fitted heads -------------------------------------------------------------------

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Store a small fitted model as npz + JSON (no-op for an in-memory cache)."""
        if self.directory is None:
            return
        folder = self.directory / "models"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic(folder / f"{name}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        with atomic(folder / f"{name}.json") as tmp:
            tmp.write_text(json.dumps(meta, sort_keys=True, indent=1), encoding="utf-8")

    def load_arrays(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """A head saved by :meth:`save_arrays`, or None when absent or unreadable."""
        if self.directory is None:
            return None
        folder = self.directory / "models"
        npz, meta = folder / f"{name}.npz", folder / f"{name}.json"
        if not (npz.is_file() and meta.is_file()):
            return None
        try:
            with np.load(npz, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            return arrays, json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a damaged entry is refit and overwritten, never trusted


def write_saved(folder: Path, json_name: str, meta: dict[str, Any],
                arrays: dict[str, np.ndarray]) -> Path:
    """Save fitted state as ``<json_name>`` (metadata) + ``arrays.npz``, each file atomically:
    the no-pickle format of every saved detector."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic(folder / "arrays.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    with atomic(folder / json_name) as tmp:
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def read_saved(folder: Path, json_name: str, array_names: Sequence[str], what: str
               ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what :func:`write_saved` wrote (``allow_pickle=False``); a missing or damaged
    file is a one-line error naming it and ``what`` was expected there."""
    meta_path, arrays_path = folder / json_name, folder / "arrays.npz"
    for path in (meta_path, arrays_path):
        if not path.is_file():
            raise ShiftbenchError(f"{path}: missing; not a saved {what} folder")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in array_names}
    except (OSError, ValueError, KeyError) as exc:
        raise ShiftbenchError(f"{folder}: unreadable saved {what} ({exc})") from None
    if not isinstance(meta, dict):
        raise ShiftbenchError(f"{meta_path}: not a saved {what}")
    return meta, arrays


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
