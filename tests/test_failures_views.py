"""The failure browser in mitigate's report and behind the gate's failed rules: one view,
paired by example id."""

import json
from pathlib import Path

import numpy as np
from test_mitigate_report import SCORED, make_report

from shiftbench.evaluate import ScoredSplit
from shiftbench.mitigate.report import FAILURES_FILE, failure_groups, write_report
from shiftbench.report.failure_view import failure_view


def _scored(ids: list[str], labels: list[int], proba: list[list[float]]) -> ScoredSplit:
    return ScoredSplit("typo", "perturbation", ids, np.array(labels), np.array(proba),
                       [f"text {i}" for i in ids])


def test_mitigate_pairs_models_by_id_and_by_class_name() -> None:
    """The base orders its classes the other way and lists the examples in another order:
    x the method broke against the base, y it fixed, z all predict the same class."""
    # labels: x neg, y pos, z neg; the base's class indices are pos 0, neg 1
    base = _scored(["z", "y", "x"], [1, 0, 1], [[0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    erm = _scored(["x", "y", "z"], [0, 1, 0], [[0.6, 0.4], [0.8, 0.2], [0.9, 0.1]])
    method = _scored(["x", "y", "z"], [0, 1, 0], [[0.3, 0.7], [0.1, 0.9], [0.7, 0.3]])
    scored = {"base": [[base]], "erm": [[erm]], "method": [[method]]}
    classes = {"base": ["pos", "neg"], "erm": ["neg", "pos"], "method": ["neg", "pos"]}
    versus_base, versus_erm = failure_groups(scored, classes, "dann")
    assert (versus_base.key, versus_erm.key) == ("typo: dann vs base", "typo: dann vs ERM")
    assert [(e.id, e.direction) for e in versus_base.examples] == [("x", "broke"),
                                                                    ("y", "fixed")]
    x = versus_base.examples[0]
    assert (x.label, x.before.output, x.before.confidence, x.after.output, x.after.confidence) == \
        ("neg", "neg", 0.9, "pos", 0.7)
    assert [(e.id, e.direction) for e in versus_erm.examples] == [("x", "broke"),
                                                                   ("y", "fixed")]
    html = failure_view([versus_base], FAILURES_FILE, ("baseline", "dann")).html
    assert "same text" in html  # two models, one input: the text once


def test_mitigate_html_embeds_the_browser_and_a_sidecar_for_the_rest(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    classes = dict.fromkeys(SCORED, ["neg", "pos"])
    groups = failure_groups(SCORED, classes, "dann")
    assert [g.key for g in groups] == ["reference: dann vs base", "reference: dann vs ERM",
                                       "typo@1: dann vs base", "typo@1: dann vs ERM"]
    out = tmp_path / "out"
    (out).mkdir()
    (out / FAILURES_FILE).write_text("stale")
    write_report(out, report, groups)
    html = (out / "mitigate.html").read_text()
    assert "Examples the method fixed or broke" in html and 'id="fb-table"' in html
    assert "://" not in html and html.count("<script") == 1
    total = sum(len(g.examples) for g in groups)
    assert html.count('<tr class="fb-row') == total  # 40 examples: all fit in the page
    assert not (out / FAILURES_FILE).exists()  # the stale sidecar is gone
    saved = json.loads((out / "mitigate.json").read_text())["failures"]
    assert saved["typo@1: dann vs ERM"]["n"] == 40


def _split(name: str, kind: str, ids: list[str], y: np.ndarray,
           right: np.ndarray) -> ScoredSplit:
    pred = np.where(right, y, 1 - y)
    proba = np.where(pred[:, None] == np.arange(2), 0.8, 0.2)
    return ScoredSplit(name, kind, ids, y, proba, [f"{name} text of {i}" for i in ids])


def test_the_gate_links_each_failed_check_to_the_examples_behind_it(tmp_path: Path) -> None:
    from shiftbench.gate import example_groups
    from shiftbench.gate.outputs import EXAMPLES_HTML, markdown, write_outputs
    from shiftbench.gate.policy import Policy
    from shiftbench.gate.rules import evaluate_gate
    from shiftbench.gate.runs import Run

    n = 60
    ids = [f"e{i}" for i in range(n)]
    y = np.arange(n) % 2
    everything = np.ones(n, dtype=bool)
    broken = np.arange(n) >= 30  # the candidate gets e0..e29 wrong under typos

    def run(label: str, typo_right: np.ndarray, order: list[int]) -> Run:
        splits = [_split("reference", "reference", ids, y, everything),
                  _split("typo", "perturbation", [ids[k] for k in order], y[order],
                         typo_right[order]),
                  _split("news", "domain", ids, y, np.arange(n) % 3 > 0)]
        return Run(label, "sim", "h0", {"adapter": "sim", "classes": ["neg", "pos"]},
                   {s.name: s for s in splits}, label)

    baseline = run("baseline", everything, list(range(n)))
    candidate = run("candidate", broken, list(range(n))[::-1])  # other order: pair by id
    policy = Policy.model_validate({"rules": [
        {"name": "no worse", "kind": "non_inferiority", "split": "typo"},
        {"name": "typo drop", "kind": "robustness", "split": "typo", "max_drop": 0.05},
        {"name": "news floor", "kind": "absolute", "split": "news", "min": 0.9},
        {"name": "ok", "kind": "absolute", "split": "reference", "min": 0.5}]})
    result = evaluate_gate(policy, baseline, candidate)
    assert [v.status for v in result.verdicts] == ["fail", "fail", "fail", "pass"]
    groups = example_groups(policy, result, baseline, candidate)
    assert [g.key for g in groups] == ["no worse [typo]", "typo drop [typo]",
                                       "news floor [news]"]
    worse, drop, floor = groups
    assert sorted(e.id for e in worse.examples) == sorted(ids[:30])
    assert {e.direction for e in worse.examples} == {"broke"}
    assert all(e.before.text == e.after.text == f"typo text of {e.id}" for e in worse.examples)
    assert sorted(e.id for e in drop.examples) == sorted(ids[:30])
    assert drop.examples[0].before.text.startswith("reference text")
    assert len(floor.examples) == 20 and {e.direction for e in floor.examples} == {"error"}

    paths = write_outputs(result, tmp_path, groups)
    md = markdown(result, groups)
    assert f"- [no worse [typo]]({EXAMPLES_HTML}#no%20worse%20%5Btypo%5D): 30 right → wrong" in md
    assert "[news floor [news]](examples.html#news%20floor%20%5Bnews%5D): 20 wrong" in md
    page = paths["examples"].read_text()
    assert page.count('<tr class="fb-row') == 80 and "<script" in page
    few = write_outputs(result, tmp_path / "few", groups, inline=4)["examples"].read_text()
    assert few.count('<tr class="fb-row') == 12 and 'id="fb-more" data-src="examples.js"' in few
    assert (tmp_path / "few" / "examples.js").read_text().count('class=\\"fb-row') == 80
    write_outputs(result, tmp_path, [])  # a later gate with nothing behind it
    assert not (tmp_path / EXAMPLES_HTML).exists()
