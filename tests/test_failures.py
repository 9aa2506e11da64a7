"""The failure browser: which examples changed, in which order, how they are shown."""

import re

import numpy as np
import pytest

from shiftbench.evaluate import ScoredSplit
from shiftbench.report.failure_view import SIDECAR_CALLBACK, diff_html, failure_view
from shiftbench.report.failures import changed, generation_groups, run_groups

CLASSES = ["neg", "pos", "neu"]


def _scored(name: str, kind: str, ids: list[str], labels: list[int], proba: list[list[float]],
            texts: list[str] | None = None) -> ScoredSplit:
    return ScoredSplit(name, kind, ids, np.array(labels), np.array(proba, dtype=float),
                       texts or [f"text {i}" for i in ids])


def _marked(html: str, tag: str) -> list[str]:
    """The text inside each <tag> of ``html``, inner tags removed."""
    return [re.sub(r"<[^>]+>", "", m) for m in re.findall(f"<{tag}>(.*?)</{tag}>", html)]


def test_the_diff_marks_exactly_the_changed_words() -> None:
    before, after = diff_html("the flight was late again", "the flihgt was very late again")
    assert _marked(before, "del") == ["flight"]
    assert _marked(after, "ins") == ["flihgt", "very"]
    # the characters that differ inside a changed word, and only those, are in <b>
    assert "".join(_marked(before, "b")) in {"gh", "g", "h"}
    assert re.sub(r"<[^>]+>", "", before) == "the flight was late again"
    assert re.sub(r"<[^>]+>", "", after) == "the flihgt was very late again"


def test_the_diff_of_a_deleted_word_and_of_equal_texts() -> None:
    before, after = diff_html("not a good day", "a good day")
    assert _marked(before, "del") == ["not"] and _marked(after, "ins") == []
    assert diff_html("same words", "same words") == ("same words", "same words")
    # a word replaced by an unlike one is marked whole, without character marks
    assert diff_html("a cat sat", "a dog sat") == ("a <del>cat</del> sat", "a <ins>dog</ins> sat")


def test_texts_are_escaped_in_the_diff_and_the_view() -> None:
    evil = "<script>alert(1)</script> & <b>x</b>"
    before, after = diff_html(evil, evil + " more")
    assert "<script>" not in before + after and "&lt;script&gt;" in before
    ref = _scored("reference", "reference", ["<i>1</i>"], [0], [[0.9, 0.05, 0.05]], [evil])
    shifted = _scored("<b>typo</b>", "perturbation", ["<i>1</i>"], [0], [[0.1, 0.8, 0.1]],
                      [evil + " more"])
    html = failure_view(run_groups([ref, shifted], CLASSES), "f.js", ("a", "b")).html
    assert html.count("<script") == 1  # the browser's own, and no text's
    assert "<b>typo</b>" not in html and "&lt;b&gt;typo&lt;/b&gt;" in html
    assert 'data-group="&lt;b&gt;typo&lt;/b&gt;"' in html and "<i>1</i>" not in html


@pytest.fixture()
def pair() -> tuple[ScoredSplit, ScoredSplit]:
    """A hand-made table: a right -> wrong, b wrong -> right, c wrong -> other wrong,
    d right both times, e wrong both times (same class), f right -> wrong with a
    smaller drop than a; the shifted split lists them in another order, without g."""
    ref = _scored("reference", "reference", list("abcdefg"), [0, 1, 0, 0, 1, 1, 0], [
        [0.9, 0.05, 0.05],  # a right (p label .9)
        [0.6, 0.3, 0.1],  # b wrong
        [0.2, 0.7, 0.1],  # c wrong (pos)
        [0.8, 0.1, 0.1],  # d right
        [0.7, 0.2, 0.1],  # e wrong
        [0.3, 0.6, 0.1],  # f right (p label .6)
        [0.9, 0.05, 0.05]])
    shifted = _scored("typo", "perturbation", list("fedcba"), [1, 1, 0, 0, 1, 0], [
        [0.5, 0.4, 0.1],  # f wrong: drop .2
        [0.8, 0.1, 0.1],  # e still wrong, same class
        [0.7, 0.2, 0.1],  # d still right
        [0.1, 0.1, 0.8],  # c wrong, now neu
        [0.2, 0.7, 0.1],  # b right: gain .4
        [0.2, 0.7, 0.1]])  # a wrong: drop .7
    return ref, shifted


def test_changes_are_classified_and_ordered_by_drop(pair) -> None:
    group = changed("typo", *pair, CLASSES, ("original", "typo"))
    assert [(e.id, e.direction) for e in group.examples] == [
        ("a", "broke"), ("f", "broke"), ("b", "fixed"), ("c", "flipped")]
    assert [round(e.drop, 6) for e in group.examples] == [0.7, 0.2, -0.4, 0.1]
    assert group.n == 6  # g is not in the shifted split
    a = group.examples[0]
    assert (a.before.output, a.before.confidence, a.after.output, a.after.confidence) == \
        ("neg", 0.9, "pos", 0.7)
    assert a.label == "neg" and a.before.text == "text a"


def test_fixed_examples_come_largest_gain_first() -> None:
    ref = _scored("reference", "reference", ["x", "y"], [0, 0], [[0.4, 0.6, 0], [0.1, 0.9, 0]])
    shifted = _scored("s", "perturbation", ["x", "y"], [0, 0], [[0.6, 0.4, 0], [0.9, 0.1, 0]])
    group = changed("s", ref, shifted, CLASSES, ("original", "s"))
    assert [e.id for e in group.examples] == ["y", "x"]  # gains .8 then .2


def test_a_domain_split_lists_its_most_confident_errors(pair) -> None:
    ref, _ = pair
    domain = _scored("apple", "domain", ["p", "q", "r"], [0, 0, 1],
                     [[0.3, 0.6, 0.1], [0.9, 0.05, 0.05], [0.05, 0.05, 0.9]])
    (group,) = run_groups([ref, domain], CLASSES)
    assert [(e.id, e.direction, e.after.confidence) for e in group.examples] == [
        ("r", "error", 0.9), ("p", "error", 0.6)]
    assert group.directions == ["error"] and group.examples[0].before is None


def test_the_page_holds_the_first_n_per_group_and_the_sidecar_all(pair) -> None:
    groups = run_groups(list(pair), CLASSES)
    view = failure_view(groups, "failures.js", ("original", "shifted"), inline=2)
    assert view.html.count('class="fb-row') == 2
    assert 'id="fb-more" data-src="failures.js"' in view.html
    assert view.sidecar.startswith(f"{SIDECAR_CALLBACK}(") and view.sidecar.count("fb-row") == 4
    whole = failure_view(groups, "failures.js", ("original", "shifted"), inline=4)
    assert whole.sidecar is None and 'id="fb-more"' not in whole.html


def test_rows_carry_what_the_filters_read(pair) -> None:
    view = failure_view(run_groups(list(pair), CLASSES), "f.js", ("original", "shifted"))
    rows = re.findall(r'<tr class="fb-row fb-(\w+)" data-group="([^"]+)" '
                      r'data-direction="(\w+)" data-class="(\w+)"', view.html)
    assert rows == [("broke", "typo", "broke", "neg"), ("broke", "typo", "broke", "pos"),
                    ("fixed", "typo", "fixed", "pos"), ("flipped", "typo", "flipped", "neg")]
    for control in ("fb-group", "fb-direction", "fb-class", "fb-shown", "fb-table"):
        assert f'id="{control}"' in view.html
    assert '<option value="flipped">' in view.html and '<option value="error">' not in view.html



def _generated(name: str, kind: str, ids: list[str], outputs: list[str]) -> ScoredSplit:
    return ScoredSplit(name, kind, ids, np.array([f"target {i}" for i in ids], dtype=object),
                       np.array(outputs, dtype=object), [f"input {i}" for i in ids])


def test_generation_groups_order_by_the_change_of_score() -> None:
    """A perturbation lists the examples whose score changed (largest fall, then largest
    rise; unchanged ones left out); a domain split those below the reference's mean score
    (0.5 here), lowest first."""
    ref = _generated("reference", "reference", list("abcd"), ["A", "B", "C", "D"])
    typo = _generated("typo", "perturbation", list("dcba"), ["D", "c", "b!", "a?"])
    other = _generated("other", "domain", list("xyz"), ["X", "Y", "Z"])
    scores = {"reference": np.array([0.9, 0.5, 0.2, 0.4]),
              "typo": np.array([0.4, 0.6, 0.1, 0.3]),  # d same, c +.4, b -.4, a -.6
              "other": np.array([0.1, 0.7, 0.45])}
    typo_group, other_group = generation_groups([ref, typo, other], scores, "chrf")
    assert [(e.id, e.direction, round(e.drop, 6)) for e in typo_group.examples] == [
        ("a", "worse", 0.6), ("b", "worse", 0.4), ("c", "better", -0.4)]
    assert typo_group.n == 4 and typo_group.directions == ["worse", "better"]
    a = typo_group.examples[0]
    assert (a.label, a.before.output, a.after.output, a.before.score, a.after.score) == \
        ("target a", "A", "a?", 0.9, 0.3)
    assert a.after.confidence is None and a.after.text == "input a"
    assert [(e.id, e.direction, e.after.score) for e in other_group.examples] == [
        ("x", "low", 0.1), ("z", "low", 0.45)]
    assert other_group.directions == ["low"] and other_group.metric == "chrf"


def test_a_generation_view_diffs_the_outputs_and_has_no_class_filter() -> None:
    ref = _generated("reference", "reference", ["a"], ["the <b>flight</b> was late"])
    typo = _generated("typo", "perturbation", ["a"], ["the flight was very late"])
    groups = generation_groups([ref, typo], {"reference": np.array([0.8]),
                                             "typo": np.array([0.5])}, "rougeL")
    html = failure_view(groups, "f.js", ("original", "shifted")).html
    assert 'id="fb-class"' not in html and 'id="fb-direction"' in html
    assert "<th>drop of ROUGE-L</th>" in html and "<th>id / target</th>" in html
    # both outputs are diffed (and escaped): the markup removed, a word added
    assert "<del><b>&lt;b&gt;</b>flight<b>&lt;/b&gt;</b></del>" in html
    assert "<ins>very</ins>" in html
    assert "+0.30" in html and "0.80 → 0.50" in html
    assert "score fell" in html and "wrong → right" not in html  # only its own directions
