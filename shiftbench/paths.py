"""Names that become folder names: one safe path component each, checked before any write.

A suite name, run id or stream name is joined onto a folder the user chose; ``../x``,
``a/b`` or an absolute path would write elsewhere, so such names are refused, not
cleaned up (a cleaned name would surprise whoever looks for the folder later).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from shiftbench.errors import ShiftbenchError

MAX_LENGTH = 100
ALLOWED = (f"use 1-{MAX_LENGTH} characters from A-Z a-z 0-9 . _ -, starting with a letter "
           "or digit")
_SAFE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LENGTH - 1}}}")


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be one folder name, or None when it can."""
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        return f"{value!r} is not a safe folder name; {ALLOWED}"
    return None


def safe_component(value: str, what: str) -> str:
    """``value`` unchanged when it is one safe folder name, else a ShiftbenchError
    naming ``what`` (the flag or field it came from)."""
    problem = name_problem(value)
    if problem:
        raise ShiftbenchError(f"{what}: {problem}")
    return value


def inside(parent: Path, *names: str) -> Path:
    """``parent / name / ...`` after checking it resolves inside ``parent`` (a symlinked
    folder on the way could point elsewhere)."""
    child = parent.joinpath(*names)
    root = parent.resolve()
    if not child.resolve().is_relative_to(root):
        raise ShiftbenchError(f"{child}: resolves to {child.resolve()}, outside {root}")
    return child


def check_writable(folder: Path) -> None:
    """Fail now, before any work, when files cannot be created in ``folder`` (or, if it
    does not exist yet, in the nearest existing folder above it)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ShiftbenchError(f"{existing}: is not a folder; cannot create {folder}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".shiftbench-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ShiftbenchError(f"{existing}: cannot write here ({exc.strerror}); "
                              f"choose another folder for {folder}") from None
