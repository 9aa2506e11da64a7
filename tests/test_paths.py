"""Folder names, containment, writability checks and phase lines."""

import os
import tempfile
from pathlib import Path

import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.paths import check_writable, inside, name_problem, safe_component
from shiftbench.progress import Phases, bar


@pytest.mark.parametrize("name", ["quickstart", "amazon-domains", "run_1.b", "20240501-1200", "A"])
def test_safe_names_pass_unchanged(name: str) -> None:
    assert name_problem(name) is None and safe_component(name, "--run-id") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "../../x", "a/b", "/tmp/x", "a\\b",
                                  ".hidden", "-rf", "a b", "tab\there", "é", "x" * 101, "a\0b",
                                  None, 3])
def test_unsafe_names_are_refused_saying_what_is_allowed(name) -> None:
    with pytest.raises(ShiftbenchError) as err:
        safe_component(name, "--run-id")
    message = str(err.value)
    assert message.startswith("--run-id: ") and "A-Z a-z 0-9 . _ -" in message
    assert "\n" not in message


def test_inside_refuses_a_symlink_that_leads_out(tmp_path: Path) -> None:
    parent, elsewhere = tmp_path / "reports", tmp_path / "elsewhere"
    parent.mkdir()
    elsewhere.mkdir()
    assert inside(parent, "suite", "run") == parent / "suite" / "run"
    (parent / "suite").symlink_to(elsewhere)
    with pytest.raises(ShiftbenchError, match="outside"):
        inside(parent, "suite", "run")


def test_check_writable_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    check_writable(target)
    assert list(tmp_path.iterdir()) == []


def test_check_writable_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ShiftbenchError, match="is not a folder"):
        check_writable(tmp_path / "file" / "reports")


def test_check_writable_refuses_a_folder_it_cannot_write(tmp_path: Path, monkeypatch) -> None:
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(ShiftbenchError) as err:
        check_writable(tmp_path / "reports")
    assert str(err.value).startswith(f"{tmp_path}: cannot write here (Permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_writable_refuses_a_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ShiftbenchError, match="cannot write here"):
            check_writable(tmp_path / "reports")
    finally:
        tmp_path.chmod(0o700)


def test_phase_lines_are_numbered_and_timed(capsys) -> None:
    phases = Phases({"read_s": "reading data", "shift_s": "shifting"})
    with phases.phase("read_s"):
        pass
    for name in ("keyboard@1", "ocr@2"):
        with phases.phase("shift_s", name):
            pass
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "shiftbench: [1/2] reading data", "shiftbench: [2/2] shifting: keyboard@1",
        "shiftbench: [2/2] shifting: ocr@2"]
    assert all(line.endswith(" s elapsed)") for line in lines)
    assert set(phases.seconds) == {"read_s", "shift_s"}


def test_phases_when_disabled_print_nothing_but_still_time(capsys) -> None:
    phases = Phases({"read_s": "reading data"}, enabled=False)
    with pytest.raises(KeyError), phases.phase("read_s"):
        raise KeyError("boom")
    assert capsys.readouterr().err == "" and phases.seconds["read_s"] >= 0


def test_bar_passes_items_through_and_is_off_when_disabled() -> None:
    items = ["a", "b", "c"]
    assert bar(items, 3, "shift", enabled=False) is items
    assert list(bar(iter(items), 3, "shift", enabled=True)) == items
