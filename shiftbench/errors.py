"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class ShiftbenchError(Exception):
    """Bad input (file, field, row) that the user can fix; never a bug in shiftbench."""


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """' (did you mean X?)' for a close choice, else the choices."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(choices)})" if choices else ""


def check_ranges(what: str, owner: object, checks: dict[str, bool]) -> None:
    """Refuse the first of ``owner``'s attributes whose check failed, in one line:
    ``{what} {name}={value!r} is out of range``."""
    for name, ok in checks.items():
        if not ok:
            raise ShiftbenchError(f"{what} {name}={getattr(owner, name)!r} is out of range")
