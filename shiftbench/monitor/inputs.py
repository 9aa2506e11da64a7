"""The input files of ``shiftbench monitor check``: texts, labels when present, and
precomputed embeddings when asked, read with one-line errors naming the file and row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.split import Split


@dataclass
class Sample:
    """One input file: its examples, and its precomputed vectors when given."""

    path: Path
    split: Split
    vectors: np.ndarray | None = None


def read_sample(path: Path, role: str, text_column: str, label_column: str | None,
                embedding_column: str | None, need_labels: bool) -> Sample:
    """Read a data file (any of :data:`~shiftbench.file_formats.FILE_FORMATS`) of texts
    (+ labels, + vectors) with one-line errors.

    With ``need_labels`` the label column must exist and be filled; otherwise labels are
    kept when the file has the column filled in every row (current data may carry them).
    """
    from shiftbench.data import read_file, to_split

    if not path.is_file():
        raise ShiftbenchError(f"{path}: {role} file not found")
    if path.stat().st_size == 0:
        raise ShiftbenchError(f"{path}: empty file; the {role} has no rows")
    try:
        frame = read_file(path, text_column, label_column)
        labelled = label_column is not None and (need_labels or _filled(frame["label"]))
    except ShiftbenchError:
        if need_labels or label_column is None:
            raise
        frame = read_file(path, text_column, None)
        labelled = False  # the file has no label column (any other error recurs above)
    split = to_split(frame, role, labelled, kind=role)
    vectors = _vectors(frame, embedding_column, path) if embedding_column else None
    return Sample(path, split, vectors)


def _filled(column: Any) -> bool:
    return bool(column.map(lambda v: v is not None and v == v and str(v).strip() != "").all())


def _vectors(frame: Any, column: str, path: Path) -> np.ndarray:
    """Precomputed embeddings: a list of numbers per row (JSON text in CSV files)."""
    if column not in frame.columns:
        columns = ", ".join(c for c in map(str, frame.columns) if not c.startswith("__"))
        raise ShiftbenchError(f"{path}: no column {column!r} for the embeddings (columns: "
                              f"{columns})")
    rows: list[np.ndarray] = []
    for row, id_, value in zip(frame["__row"], frame["id"], frame[column], strict=True):
        where = f"{path}: row {row} (id {id_}): embedding"
        try:
            vector = np.asarray(json.loads(value) if isinstance(value, str) else value,
                                dtype=np.float64)
        except (ValueError, TypeError):
            raise ShiftbenchError(f"{where} is not a list of numbers") from None
        if vector.ndim != 1 or len(vector) == 0:
            raise ShiftbenchError(f"{where} is not a non-empty list of numbers")
        if rows and len(vector) != len(rows[0]):
            raise ShiftbenchError(f"{where} has {len(vector)} numbers, the first row has "
                                  f"{len(rows[0])}")
        if not np.isfinite(vector).all():
            raise ShiftbenchError(f"{where} holds NaN or infinite values")
        rows.append(vector)
    return np.stack(rows)

