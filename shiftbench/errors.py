"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class ShiftbenchError(Exception):
    """Bad input (file, field, row) that the user can fix; never a bug in shiftbench."""
