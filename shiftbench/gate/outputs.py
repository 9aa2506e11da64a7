"""A gate's result for people and CI: terminal table, gate.json, JUnit XML, Markdown.

Every view prints each check on one line with the same cells (:func:`cells`): status,
rule, split, estimate with interval, threshold, p-value, Holm-adjusted p and the reason.
JUnit has one test case per check (a rule over several splits is one per split), so any
CI system lists them; warnings pass and carry their reason in ``system-out``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from shiftbench.gate.rules import GateResult, Verdict, fmt_p
from shiftbench.report import jsonable, write_text
from shiftbench.report.markdown import model_label
from shiftbench.report.numbers import distance, number, with_interval

GATE_JSON, JUNIT_XML, GATE_MD = "gate.json", "junit.xml", "gate.md"
SCHEMA_VERSION = 1
HEADER = ("status", "rule", "split", "estimate [CI]", "threshold", "p", "Holm p", "reason")
MARKS = {"pass": "✅", "warn": "⚠️", "fail": "❌"}


def cells(v: Verdict) -> list[str]:
    threshold = "no drift" if v.op is None else f"{v.op} {number(v.threshold, v.unit)}"
    return [v.status.upper(), v.rule, v.split, with_interval(v.estimate, v.low, v.high, v.unit),
            threshold, fmt_p(v.p_value), fmt_p(v.p_adjusted), v.reason]


def headline(result: GateResult) -> str:
    n = len(result.verdicts)
    fails, warns = result.count("fail"), result.count("warn")
    verdict = "FAIL" if result.status == "fail" else "PASS"
    return (f"gate {verdict}: {fails} of {n} checks fail, {warns} warn "
            f"({result.suite['name']}: candidate {_model(result.candidate)} vs baseline "
            f"{_model(result.baseline)})")


def _model(side: dict) -> str:
    return model_label(side["model"])


def warning_lines(result: GateResult) -> list[str]:
    """What each side's predictions warn about (e.g. one class predicted), one per line."""
    return [f"{side} {split}: {warning}"
            for side, run in (("candidate", result.candidate), ("baseline", result.baseline))
            for split, warnings in (run.get("warnings") or {}).items() for warning in warnings]


def method_note(result: GateResult) -> str:
    """How to read the numbers: the error controlled, the interval level, the tests."""
    level = 1 - 2 * result.alpha
    return (f"Each check tests H0 \"the rule holds\"; a fail-severity check fails when its "
            f"Holm-adjusted p ≤ α = {result.alpha:g} (Holm over the fail checks; warn checks "
            f"are a second family), so a release that meets every rule is failed with "
            f"probability at most {result.alpha:g}. Intervals are {level:.0%} two-sided: each "
            f"bound is one-sided {1 - result.alpha:.0%}. Comparisons with the baseline pair "
            "examples by id (accuracy: exact McNemar at margin 0, else Tango's paired score "
            "test; ECE: worst-case bias bounds; other metrics: paired bootstrap); "
            "floors on accuracy and flip rates use exact binomial tests (Clopper-Pearson "
            "intervals). Rules with decide: point fail whenever the estimate crosses the "
            "threshold, with no error control. 'detects' is the violation beyond the threshold "
            f"that a check catches with {result.power:.0%} power (at level α/m).")


def table(result: GateResult) -> str:
    """Fixed-width text for a terminal: headline, one line per check, the method note."""
    rows = [list(HEADER)] + [cells(v) for v in result.verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
             for r in rows]
    warnings = [f"warning: {line}" for line in warning_lines(result)]
    return "\n".join([headline(result), *warnings, "", *lines, "", method_note(result)])


def gate_json(result: GateResult) -> str:
    return json.dumps(jsonable({"schema_version": SCHEMA_VERSION, **result.to_dict()}),
                      indent=2, ensure_ascii=False) + "\n"


def junit_xml(result: GateResult) -> str:
    """JUnit XML (the Ant/Surefire dialect CI systems read): one testcase per check."""
    fails = result.count("fail")
    suites = ET.Element("testsuites", name="shiftbench gate", tests=str(len(result.verdicts)),
                        failures=str(fails), errors="0", skipped="0", time="0")
    suite = ET.SubElement(suites, "testsuite", name=f"shiftbench gate {result.suite['name']}",
                          tests=str(len(result.verdicts)), failures=str(fails), errors="0",
                          skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    for key, value in (("policy", result.policy), ("alpha", f"{result.alpha:g}"),
                       ("suite_hash", result.suite["hash"]),
                       ("baseline", result.baseline["run"]),
                       ("candidate", result.candidate["run"])):
        ET.SubElement(props, "property", name=key, value=str(value))
    for v in result.verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"shiftbench.gate.{v.kind}",
                             name=f"{v.rule} [{v.split}]", time="0")
        line = " | ".join(cells(v))
        if v.status == "fail":
            failure = ET.SubElement(case, "failure", message=v.reason, type="GateRuleFailed")
            failure.text = line
        else:
            ET.SubElement(case, "system-out").text = line
    warnings = warning_lines(result)
    if warnings:
        ET.SubElement(suite, "system-out").text = "\n".join(f"warning: {w}" for w in warnings)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(verdicts: list[Verdict]) -> list[str]:
    header = ["", *HEADER[1:-1], "detects", "reason"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in verdicts:
        row = cells(v)
        row[0] = MARKS[v.status]
        row.insert(-1, distance(v.detectable, v.unit))
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    return lines


def markdown(result: GateResult) -> str:
    """A pull-request comment: the verdict, failing and warning checks in a table, the
    passing ones folded away."""
    flagged = [v for v in result.verdicts if v.status == "fail"]
    flagged += [v for v in result.verdicts if v.status == "warn"]
    passed = [v for v in result.verdicts if v.status == "pass"]
    lines = [f"## {MARKS[result.status]} shiftbench {headline(result)}", ""]
    warnings = warning_lines(result)
    if warnings:
        lines += [f"{MARKS['warn']} **Warnings:**", "", *(f"- {_md(w)}" for w in warnings), ""]
    if flagged:
        lines += [*_md_table(flagged), ""]
    if passed:
        lines += [f"<details><summary>{len(passed)} checks pass</summary>", "",
                  *_md_table(passed), "", "</details>", ""]
    lines += [f"Baseline: `{result.baseline['run']}`  ",
              f"Candidate: `{result.candidate['run']}`", "", method_note(result), ""]
    return "\n".join(lines)


def write_outputs(result: GateResult, out_dir: Path) -> dict[str, Path]:
    """gate.json, junit.xml and gate.md in ``out_dir`` (each written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / GATE_JSON, "junit": out_dir / JUNIT_XML,
             "markdown": out_dir / GATE_MD}
    write_text(paths["json"], gate_json(result))
    write_text(paths["junit"], junit_xml(result))
    write_text(paths["markdown"], markdown(result))
    return paths
