"""How far each shift moved the text: similarity, chrF, flagged examples, and their views."""

import json
import re
import zlib

import numpy as np
import pytest
from conftest import make_labelled

from shiftbench import movement
from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import evaluate
from shiftbench.movement import BASIS_NEAREST, BASIS_ORIGINAL, negation_change, text_movement
from shiftbench.report import SCHEMA_VERSION, load_report, write_run
from shiftbench.report.html import report_html
from shiftbench.report.markdown import summary_markdown
from shiftbench.shifts import apply_shift
from shiftbench.shifts.noise import WordDelete
from shiftbench.split import Split

DIM = 512


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: hashed word counts (deterministic, no model)."""
    out = np.zeros((len(texts), DIM))
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            out[row, zlib.crc32(word.encode()) % DIM] += 1
    return out


def reference_split(n: int = 60) -> Split:
    texts, labels = make_labelled(n, seed=5)
    return Split("reference", [f"r{i}" for i in range(n)], texts, labels, {"kind": "reference"})


def perturbed(ref: Split, name: str, texts: list[str]) -> Split:
    return ref.derive(name, texts, kind="perturbation", shift="edit", severity=1, params={})


def test_identical_texts_have_similarity_one_and_chrf_100() -> None:
    ref = reference_split()
    record = text_movement(ref, [perturbed(ref, "same", ref.texts)], bag_of_words)["same"]
    assert record["basis"] == BASIS_ORIGINAL and record["n"] == len(ref)
    for key in ("mean", "median", "p10", "p90"):
        assert record["similarity"][key] == pytest.approx(1.0)
        assert record["chrf"][key] == 100.0
    counts = record["similarity"]["histogram"]["counts"]
    assert sum(counts) == len(ref) and counts[-1] == len(ref)
    assert len(record["similarity"]["histogram"]["bins"]) == len(counts) + 1
    assert record["negation_changed"] == {"count": 0, "share": 0.0}
    assert record["flagged"] == []


def test_heavier_perturbation_moves_the_text_further() -> None:
    ref = reference_split()
    light, heavy = (apply_shift(WordDelete(severity=s), ref, seed=0) for s in (1, 5))
    moved = text_movement(ref, [light, heavy], bag_of_words)
    a, b = moved[light.name], moved[heavy.name]
    assert b["similarity"]["mean"] < a["similarity"]["mean"] < 1.0
    assert b["chrf"]["mean"] < a["chrf"]["mean"] < 100.0
    for record in (a, b):
        sim = record["similarity"]
        assert sim["p10"] <= sim["median"] <= sim["p90"]


def test_least_similar_and_negation_changes_are_flagged_with_reasons() -> None:
    texts = ["the food was not good at all", "i never liked this airline", "great crew and seats",
             "the flight left on time", "lovely staff at the gate", "my bag arrived late"]
    ref = Split("reference", [f"r{i}" for i in range(6)], texts, ["x"] * 6)
    shifted = perturbed(ref, "edited", [
        "the food was nit good at all",          # negation dropped by a typo
        "i never liked this airline",            # unchanged
        "no great crew and seats",               # negation added
        "purple elephants sing opera quietly",   # rewritten: the least similar
        "lovely staff at the gate!",
        "my bag arrived late",
    ])
    record = text_movement(ref, [shifted], bag_of_words, top_k=2)["edited"]
    reasons = {f["id"]: f["reason"] for f in record["flagged"]}
    assert set(reasons) == {"r0", "r2", "r3"}
    assert reasons["r0"].endswith("negation dropped: not")
    assert reasons["r2"].endswith("negation added: no")
    assert reasons["r3"] == "lowest similarity"
    assert record["negation_changed"] == {"count": 2, "share": round(2 / 6, 4)}
    sims = [f["similarity"] for f in record["flagged"]]
    assert sims == sorted(sims) and record["flagged"][0]["id"] == "r3"
    first = record["flagged"][0]
    assert first["original"] == texts[3] and first["shifted"].startswith("purple")
    assert first["chrf"] < 30


def test_negation_words_compare_without_apostrophes() -> None:
    assert negation_change("I don't like it", "I dont like it") == ""
    assert negation_change("I don\u2019t like it", "I don't like it") == ""
    assert negation_change("I don't like it", "I dob't like it") == "negation dropped: don't"
    assert negation_change("it works", "it never works without nothing") == (
        "negation added: never, nothing, without")
    assert negation_change("it is no good", "it is good, not bad") == (
        "negation dropped: no; negation added: not")


def test_perturbations_pair_by_id_not_by_position() -> None:
    ref = reference_split(10)
    order = list(range(9, 2, -1))  # a reordered subset
    subset = Split("subset", [ref.ids[i] for i in order], [ref.texts[i] for i in order],
                   info={"kind": "perturbation"})
    record = text_movement(ref, [subset], bag_of_words)["subset"]
    assert record["n"] == len(order) and record["similarity"]["mean"] == pytest.approx(1.0)
    stranger = Split("stranger", ["zz"], ["hello"], info={"kind": "perturbation"})
    with pytest.raises(ShiftbenchError, match="'stranger': no example id matches"):
        text_movement(ref, [stranger], bag_of_words)


def test_domain_split_is_compared_with_its_nearest_reference_example() -> None:
    ref = reference_split()
    domain_texts = ["pasta garlic basil tonight", ref.texts[7], "rain expected tomorrow"]
    domain = Split("food", ["d0", "d1", "d2"], domain_texts, ["x"] * 3, {"kind": "domain"})
    light = apply_shift(WordDelete(severity=1), ref, seed=0)
    moved = text_movement(ref, [light, domain], bag_of_words, top_k=5)
    record = moved["food"]
    assert record["basis"] == BASIS_NEAREST and record["negation_changed"] is None
    assert record["n"] == 3
    # The copied text finds its own original; the others share no word with any reference
    # text (only a hash collision of the stand-in encoder could make them similar).
    assert record["similarity"]["median"] < 0.3 and record["similarity"]["p90"] > 0.5
    flagged = {f["id"]: f for f in record["flagged"]}
    assert set(flagged) == {"d0", "d2"} and all(f["similarity"] < 0.3 for f in flagged.values())
    assert all(f["reason"] == "lowest similarity" for f in flagged.values())
    assert record["similarity"]["mean"] < moved[light.name]["similarity"]["mean"]


def test_domain_nearest_reference_match_is_recorded() -> None:
    ref = reference_split()
    near = ref.texts[11] + " indeed"
    domain = Split("near", ["d0"], [near], info={"kind": "domain"})
    (flagged,) = text_movement(ref, [domain], bag_of_words)["near"]["flagged"]
    assert flagged["reference_id"] == "r11" and flagged["original"] == ref.texts[11]


def test_record_is_plain_json_and_rejects_a_bad_embedder() -> None:
    ref = reference_split(20)
    splits = [apply_shift(WordDelete(severity=3), ref, seed=1),
              Split("dom", ["d0", "d1"], ["nothing here", ""], info={"kind": "domain"})]
    moved = text_movement(ref, splits, bag_of_words)
    assert json.loads(json.dumps(moved, allow_nan=False)) == moved
    assert text_movement(ref, [], bag_of_words) == {}
    with pytest.raises(ShiftbenchError, match=r"shape \(3, 4\) for 40 texts"):
        text_movement(ref, splits[:1], lambda texts: np.ones((3, 4)))


def _report(with_movement: bool) -> dict:
    ref = reference_split(40)
    heavy = apply_shift(WordDelete(severity=4), ref, seed=2)
    heavy.texts[0] = "<b>bold</b> & not " + heavy.texts[0]
    domain = Split("<i>food</i>", ["d0", "d1"], ["pasta tonight", "soup"], ["negative"] * 2,
                   {"kind": "domain"})
    rng = np.random.default_rng(0)
    probs = [rng.dirichlet([1, 1], len(s)) for s in (ref, heavy, domain)]
    records, _ = evaluate(ref, probs[0], list(zip([heavy, domain], probs[1:], strict=True)),
                          ["negative", "positive"], ["accuracy"], seed=0, n_boot=50)
    report = {
        "schema_version": SCHEMA_VERSION, "shiftbench_version": "0", "run_id": "r",
        "created": "2024-01-01T00:00:00+00:00", "suite": {"name": "s"},
        "model": {"adapter": "fake", "fingerprint": "f" * 12}, "environment": {"device": "cpu"},
        "seed": 0, "timings": {}, "runner": {}, "splits": records,
        "predictions_file": "predictions.parquet",
    }
    if with_movement:
        report["movement"] = text_movement(ref, [heavy, domain], bag_of_words)
    return report


def _table_rows(markdown: str) -> list[list[str]]:
    """The summary table's rows (the first table; domain splits add a label-free one)."""
    table = markdown.split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]


def test_markdown_gains_similarity_and_chrf_columns() -> None:
    report = _report(with_movement=True)
    header, ref_row, heavy_row, domain_row = _table_rows(summary_markdown(report))
    assert header[-2:] == ["similarity", "chrF"]
    assert ref_row[-2:] == ["–", "–"]
    heavy = report["movement"][report["splits"][1]["name"]]
    assert heavy_row[-2:] == [f"{heavy['similarity']['mean']:.3f}", f"{heavy['chrf']['mean']:.1f}"]
    assert domain_row[-1].endswith("†") and "nearest reference example" in summary_markdown(report)


def test_markdown_without_movement_keeps_the_old_table() -> None:
    markdown = summary_markdown(_report(with_movement=False))
    header = _table_rows(markdown)[0]
    assert "similarity" not in header and "chrF" not in header
    assert header[-1].startswith("flip rate")  # the report carries accuracy only
    assert "MiniLM" not in markdown


def test_html_has_the_movement_section_escaped() -> None:
    report = _report(with_movement=True)
    html = report_html(report)
    assert "How far each shift moved the text" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; not" in html
    assert "<i>food</i>" not in html and "&lt;i&gt;food&lt;/i&gt;" in html
    assert html.count('class="spark"') == 2
    assert "Δ accuracy vs mean similarity" in html
    assert "negation added: not" in html and "nearest reference" in html
    assert "<script" not in html


def test_html_without_movement_has_no_section(tmp_path) -> None:
    html = report_html(_report(with_movement=False))
    assert "How far each shift moved the text" not in html and 'class="spark"' not in html


def test_report_with_movement_round_trips(tmp_path) -> None:
    import pandas as pd

    report = _report(with_movement=True)
    write_run(tmp_path, report, pd.DataFrame({"a": [1]}))
    assert load_report(tmp_path)["movement"] == report["movement"]


def test_nearest_search_in_small_blocks_matches_one_argmax(monkeypatch) -> None:
    """Blocks of rows x reference columns keep each row's running best: the same rows and
    similarities as one argmax over the whole matrix, ties to the first reference row."""
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(37, 8))
    reference[20] = reference[5]  # a tie: the first of the two must win
    vectors = np.vstack([rng.normal(size=(22, 8)), reference[5:6]])
    whole = vectors @ reference.T
    monkeypatch.setattr(movement, "_QUERY_ROWS", 4)
    monkeypatch.setattr(movement, "_BLOCK_CELLS", 4 * 6)
    rows, sims = movement._nearest(vectors, reference)
    np.testing.assert_array_equal(rows, whole.argmax(axis=1))
    np.testing.assert_allclose(sims, whole.max(axis=1), rtol=0, atol=1e-12)
    assert rows[-1] == 5


def test_large_domain_split_is_measured_on_a_stated_seeded_sample(monkeypatch) -> None:
    ref = reference_split()
    texts, _ = make_labelled(30, seed=9)
    domain = Split("other", [f"d{i}" for i in range(30)], texts, info={"kind": "domain"})
    whole = text_movement(ref, [domain], bag_of_words)["other"]
    assert whole["n"] == 30 and whole["sampled"] is None
    monkeypatch.setattr(movement, "NEAREST_ROWS", 12)
    first, again, other_seed = (text_movement(ref, [domain], bag_of_words, seed=seed)["other"]
                                for seed in (0, 0, 1))
    assert first == again and first != other_seed
    assert first["n"] == 12 and sum(first["similarity"]["histogram"]["counts"]) == 12
    assert first["sampled"]["rows"] == 12 and first["sampled"]["of"] == 30
    assert "percentile" in first["sampled"]["error"]
    perturbation = text_movement(ref, [perturbed(ref, "p", ref.texts)], bag_of_words)["p"]
    assert perturbation["n"] == len(ref) and perturbation["sampled"] is None


def test_html_says_a_sampled_domain_split_was_measured_on_part_of_it(monkeypatch) -> None:
    monkeypatch.setattr(movement, "NEAREST_ROWS", 1)
    html = report_html(_report(with_movement=True))
    assert '<td class="num">1 of 2</td>' in html
