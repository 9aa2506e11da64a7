"""Registries: did-you-mean for unknown names, refusal of targets of the wrong kind (one
line naming them), and plug-ins found through each registry's entry-point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import shiftbench.registry
from shiftbench.errors import ShiftbenchError
from shiftbench.registry import REGISTRIES, SHIFTS, SOURCES, Registry


def shift_registry(**targets: str) -> Registry:
    return Registry("shift", "shiftbench.test_shifts", "shiftbench.shifts:Shift",
                    {"casing": "shiftbench.shifts.noise:Casing", **targets})


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_unknown_name_gets_a_close_match_or_the_known_names() -> None:
    with pytest.raises(ShiftbenchError) as info:
        SHIFTS.load("keybord")
    assert one_line(info) == "unknown shift 'keybord' (did you mean 'keyboard'?)"
    with pytest.raises(ShiftbenchError, match=r"unknown data source 'sql' \(known: bbcnews, "):
        SOURCES.load("sql")


@pytest.mark.parametrize(("target", "message"), [
    ("shiftbench.detectors.mmd:MMDDetector",
     "shift 'odd': shiftbench.detectors.mmd:MMDDetector is not a subclass of "
     "shiftbench.shifts.Shift"),
    ("shiftbench.shifts:example_seed", "is not a subclass of shiftbench.shifts.Shift"),
    ("shiftbench.shifts.noise:Nope", "shift 'odd': cannot load 'shiftbench.shifts.noise:Nope'"),
    ("no_such_package.module:Thing", "cannot load 'no_such_package.module:Thing' (No module"),
])
def test_a_target_of_the_wrong_kind_is_refused(target: str, message: str) -> None:
    registry = shift_registry(odd=target)
    assert registry.load("casing").name == "casing"
    with pytest.raises(ShiftbenchError) as info:
        registry.load("odd")
    assert message in one_line(info)


def test_a_function_kind_refuses_what_cannot_be_called() -> None:
    registry = Registry("metric", "shiftbench.test_metrics", None,
                        {"level": "shiftbench.metrics:LEVEL",
                         "wilson": "shiftbench.metrics:wilson"})
    assert callable(registry.load("wilson"))
    with pytest.raises(ShiftbenchError, match="metric 'level': shiftbench.metrics:LEVEL is not a "
                                              "function"):
        registry.load("level")


def test_plugins_come_from_the_entry_point_group_and_builtins_win(monkeypatch) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        assert group == "shiftbench.test_shifts"
        return [EntryPoint("shout", "shiftbench.shifts.noise:Casing", group),
                EntryPoint("casing", "shiftbench.shifts.noise:Punctuation", group)]

    monkeypatch.setattr(shiftbench.registry, "entry_points", entry_points)
    registry = shift_registry()
    assert registry.names() == ["casing", "shout"]
    assert registry.load("casing").name == "casing"  # the built-in, not the plug-in's


def test_every_kind_has_its_own_entry_point_group() -> None:
    groups = [registry.group for registry in REGISTRIES]
    assert len(set(groups)) == len(groups) and all(g.startswith("shiftbench.") for g in groups)
    assert {"shiftbench.shifts", "shiftbench.models", "shiftbench.detectors",
            "shiftbench.online_detectors", "shiftbench.translation_engines",
            "shiftbench.sources", "shiftbench.metrics", "shiftbench.gate_rules",
            "shiftbench.mitigations"} == set(groups)
