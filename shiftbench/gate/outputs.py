"""A gate's result for people and CI: terminal table, gate.json, JUnit XML, Markdown,
and examples.html: the examples behind each failing check, linked from gate.md.

Every view prints each check on one line with the same cells (:func:`cells`): status,
rule, split, estimate with interval, threshold, p-value, Holm-adjusted p and the reason.
JUnit has one test case per check (a rule over several splits is one per split), so any
CI system lists them; warnings pass and carry their reason in ``system-out``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path
from urllib.parse import quote

from shiftbench.gate.rules import GateResult, Verdict, fmt_p
from shiftbench.report import jsonable, write_text
from shiftbench.report.failure_view import INLINE, FailureView, failure_view, save_sidecar
from shiftbench.report.failures import DIRECTIONS, Group
from shiftbench.report.html import CSS
from shiftbench.report.markdown import model_label
from shiftbench.report.numbers import distance, number, with_interval

GATE_JSON, JUNIT_XML, GATE_MD = "gate.json", "junit.xml", "gate.md"
EXAMPLES_HTML, EXAMPLES_JS = "examples.html", "examples.js"
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


def example_links(groups: list[Group]) -> list[str]:
    """gate.md's links to the examples behind each failing or warning check."""
    if not groups:
        return []
    lines = [f"Examples behind the checks above ({EXAMPLES_HTML}):", ""]
    for group in groups:
        found = ", ".join(f"{group.count(d)} {DIRECTIONS[d]}" for d in group.directions)
        lines.append(f"- [{_md(group.key)}]({EXAMPLES_HTML}#{quote(group.key)}): {found} "
                     f"of {group.n}")
    return [*lines, ""]


def markdown(result: GateResult, groups: list[Group] | None = None) -> str:
    """A pull-request comment: the verdict, failing and warning checks in a table (with
    links to the examples behind them, ``groups``), the passing ones folded away."""
    flagged = [v for v in result.verdicts if v.status == "fail"]
    flagged += [v for v in result.verdicts if v.status == "warn"]
    passed = [v for v in result.verdicts if v.status == "pass"]
    lines = [f"## {MARKS[result.status]} shiftbench {headline(result)}", ""]
    warnings = warning_lines(result)
    if warnings:
        lines += [f"{MARKS['warn']} **Warnings:**", "", *(f"- {_md(w)}" for w in warnings), ""]
    if flagged:
        lines += [*_md_table(flagged), "", *example_links(groups or [])]
    if passed:
        lines += [f"<details><summary>{len(passed)} checks pass</summary>", "",
                  *_md_table(passed), "", "</details>", ""]
    lines += [f"Baseline: `{result.baseline['run']}`  ",
              f"Candidate: `{result.candidate['run']}`", "", method_note(result), ""]
    return "\n".join(lines)


def examples_html(result: GateResult, view: FailureView) -> str:
    """The examples page: the failure browser over the failing and warning checks."""
    title = f"shiftbench {headline(result)}"
    note = ("Per failing or warning check, the examples behind it, as its rule compares "
            "them: a robustness or flip-rate check, the candidate's predictions that changed "
            "from the clean reference to the perturbed copy (same id; a domain split: its "
            "most confident errors); a non-inferiority check, the examples whose prediction "
            "changed from the baseline to the candidate; an absolute check, the candidate's "
            "most confident errors. Drift checks have no examples behind them.")
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1><p class=\"note\">{escape(note)}</p>", view.html,
        "</body></html>\n"])


def write_outputs(result: GateResult, out_dir: Path, groups: list[Group] | None = None,
                  inline: int | None = None) -> dict[str, Path]:
    """gate.json, junit.xml and gate.md in ``out_dir`` (each written atomically), and
    examples.html (+ its sidecar) when checks with examples behind them fail or warn
    (``inline`` examples per check in the page; default :data:`INLINE`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / GATE_JSON, "junit": out_dir / JUNIT_XML,
             "markdown": out_dir / GATE_MD}
    write_text(paths["json"], gate_json(result))
    write_text(paths["junit"], junit_xml(result))
    write_text(paths["markdown"], markdown(result, groups))
    view = failure_view(groups, EXAMPLES_JS, ("before", "after"), inline or INLINE) \
        if groups else None
    save_sidecar(view or FailureView("", None), out_dir / EXAMPLES_JS)
    if view is None:
        (out_dir / EXAMPLES_HTML).unlink(missing_ok=True)
        return paths
    paths["examples"] = out_dir / EXAMPLES_HTML
    write_text(paths["examples"], examples_html(result, view))
    return paths
