"""The ``llm:`` scorer in fp32 gives the same numbers whatever the batch size (texts of
very different lengths, continuations sharing rows, a text cut to max_length), and a run's
report states the precision its numbers were computed in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from conftest import make_labelled
from test_llm import PROMPT, VERBALIZERS, make, write_model

from shiftbench.cli import main
from shiftbench.report.markdown import title
from shiftbench.runner import Runner


def test_fp32_scores_are_the_same_for_every_batch_size(tiny_causal_lm_dir: Path) -> None:
    """Batch sizes 1, 3 and all at once: each batch pads its rows to a different width
    and holds a different mix of one-row and shared-row texts; fp32 on CPU agrees to
    float rounding (1e-5 on sums of log-probs), and every predicted class is the same."""
    short, _ = make_labelled(10, seed=13)
    texts = short + [" ".join(short), "ok", " ".join(short[:3])]  # 1 to ~80 tokens, one cut
    model = make(tiny_causal_lm_dir, max_length=64,
                 verbalizers={"negative": [" awful", " awful plot"], "positive": " great"})
    sums, classes = [], []
    for batch_size in (1, 3, len(texts)):
        runner = Runner(device="cpu", precision="fp32", progress=False, batch_size=batch_size)
        try:
            sums.append(model.loglikelihoods(texts, runner)[0])
            classes.append(model.predict_proba(texts, runner).argmax(axis=1))
            assert runner.stats["batches"] == -(-len(texts) // batch_size)  # not all cached
        finally:
            runner.close()
    for other in range(1, 3):
        assert np.allclose(sums[0], sums[other], rtol=0, atol=1e-5)
        assert np.array_equal(classes[0], classes[other])


def test_title_states_device_and_precision() -> None:
    report = {"suite": {"name": "s"}, "model": {"adapter": "llm"},
              "environment": {"device": "cuda", "precision": "bf16"}}
    assert title(report) == "shiftbench: s — llm on cuda, bf16"
    report["environment"] = {"device": "cpu"}  # a report written before precision was kept
    assert title(report) == "shiftbench: s — llm on cpu"


def test_an_llm_run_report_states_its_precision(tiny_causal_lm_dir: Path,
                                                tmp_path: Path) -> None:
    """The resolved precision (auto is fp32 on CPU), in report.json, summary.md and the HTML."""
    texts, labels = make_labelled(20, seed=14)
    rows = [{"id": f"e{i}", "text": t, "label": y}
            for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({"name": "tiny", "seed": 1,
                                     "data": {"kind": "jsonl", "path": "data.jsonl"},
                                     "reference": {"portion": [0, 1]}}))
    spec = write_model(tmp_path, source=str(tiny_causal_lm_dir), prompt=PROMPT,
                       verbalizers=VERBALIZERS)
    assert main(["run", str(suite), "--model", spec, "--reports-dir", str(tmp_path / "reports"),
                 "--device", "cpu", "--precision", "auto", "--no-progress", "--no-movement",
                 "--run-id", "a"]) == 0
    run_dir = tmp_path / "reports" / "tiny" / "a"
    assert json.loads((run_dir / "report.json").read_text())["environment"]["precision"] == "fp32"
    assert (run_dir / "summary.md").read_text().splitlines()[0].endswith(" on cpu, fp32")
    assert "<th>precision</th><td>fp32</td>" in (run_dir / "report.html").read_text()
