"""Label values -> class names, and class names -> column indices, the same way everywhere.

A class is a string. Numbers are compared as numbers, so ``1``, ``1.0``, ``"1"`` and
``"1.0"`` are all the class ``"1"``; booleans are ``"True"``/``"False"``; other strings
are themselves, without surrounding blanks. A column that mixes booleans, numbers and
strings is refused, never turned into phantom classes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    import numpy as np

_INTEGER = re.compile(r"[-+]?\d+")
_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_PLURAL = {"boolean": "booleans", "number": "numbers", "string": "strings"}


def is_missing(value: Any) -> bool:
    """None, NaN of any float type, pandas' NA, or a blank string."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)
    except (TypeError, ValueError):  # an array: present (and refused as a label below)
        return False


def _number_name(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def class_of(value: Any) -> tuple[str, str]:
    """(kind, class name) of one present label value; kind is boolean, number or string."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalar -> Python scalar
    if isinstance(value, bool):
        return "boolean", str(value)
    if isinstance(value, int):
        return "number", str(value)
    if isinstance(value, float) and math.isfinite(value):
        return "number", _number_name(value)
    text = str(value).strip()
    if _INTEGER.fullmatch(text):
        return "number", str(int(text))
    if _DECIMAL.fullmatch(text):
        return "number", _number_name(float(text))
    return "string", text


def class_names(values: Iterable[Any], rows: Sequence[object], ids: Sequence[str],
                where: str) -> list[str]:
    """Every value as a class name; a missing value or a mix of kinds is an error naming
    the rows (``rows`` and ``ids`` say where each value came from)."""
    names: list[str] = []
    first: dict[str, str] = {}  # kind -> "row 3, id x" of its first value
    for value, row, id_ in zip(values, rows, ids, strict=True):
        if is_missing(value):
            raise ShiftbenchError(f"{where}: row {row} (id {id_}): missing label")
        if isinstance(value, (list, tuple, dict)) or getattr(value, "ndim", 0):
            raise ShiftbenchError(f"{where}: row {row} (id {id_}): label {value!r} is not one "
                                  "value")
        kind, name = class_of(value)
        first.setdefault(kind, f"row {row}, id {id_}")
        names.append(name)
    if len(first) > 1:
        parts = [f"{_PLURAL[kind]} ({at})" for kind, at in first.items()]
        raise ShiftbenchError(f"{where}: labels mix {', '.join(parts[:-1])} and {parts[-1]}; "
                              "make them one type (or map them with the source's labels)")
    return names


def class_indices(labels: Sequence[str], classes: Sequence[str], ids: Sequence[str],
                  where: str) -> np.ndarray:
    """Labels as column indices of the model's probabilities; an unknown label is an error
    naming the example."""
    import numpy as np

    position = {c: i for i, c in enumerate(classes)}
    for id_, label in zip(ids, labels, strict=True):
        if label not in position:
            raise ShiftbenchError(f"{where}, id {id_!r}: label {label!r} is not one the model "
                                  f"knows ({', '.join(classes)})")
    return np.array([position[label] for label in labels], dtype=np.int64)
