"""Evidently's embedding drift methods and HTML report, as an optional extra opinion.

Evidently's methods (``model``, ``distance``, ``ratio``, ``mmd``) decide with fixed
thresholds or a bootstrap of the reference alone, not a test with a known error rate
(its distance flags identical data at 0.2; its MMD with bootstrap fired on 20 of 20
windows of 100 rows drawn from the reference itself, 8-d Gaussian). So results are
labelled ``calibrated: False``, carry no p-value, and their decision is Evidently's own;
``Detector.calibrate`` measures how often it false-alarms.
Evidently (~8 s to import) is imported only when a method runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.arrays import check_matrix
from shiftbench.detectors import Detector, Score
from shiftbench.errors import ShiftbenchError

METHODS = ("model", "distance", "ratio", "mmd")
REPORT_ROWS = 500  # per side: its t-SNE plot takes ~30 s at 2,000 x 384


def _frame(x: np.ndarray) -> Any:
    import pandas as pd

    return pd.DataFrame(x, columns=[f"e{i}" for i in range(x.shape[1])])


def _method(name: str, bootstrap: bool | None, options: dict[str, Any] | None) -> Any:
    if name not in METHODS:
        raise ShiftbenchError(f"evidently: method {name!r}: use {', '.join(METHODS)}")
    from evidently.legacy.metrics.data_drift import embedding_drift_methods

    factory = getattr(embedding_drift_methods, name)
    kwargs = dict(options or {})
    if name != "ratio":  # the ratio method has no bootstrap option
        kwargs["bootstrap"] = bootstrap
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ShiftbenchError(f"evidently: bad options for method {name!r}: {exc}") from None


class EvidentlyDetector(Detector):
    """One of Evidently's embedding drift methods; uncalibrated (see module doc)."""

    name = "evidently"
    calibrated = False

    def __init__(self, alpha: float = 0.05, method: str = "mmd", bootstrap: bool | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self.alpha = alpha
        self.method = method
        self.bootstrap = bootstrap
        self.options = options

    @property
    def method_name(self) -> str:
        return f"evidently:{self.method}"

    @property
    def min_sample(self) -> int:
        return 10

    @property
    def min_reference(self) -> int:
        return 10

    def _validate(self) -> None:
        _method(self.method, self.bootstrap, self.options)

    def _score(self, sample: np.ndarray) -> Score:
        drift = _method(self.method, self.bootstrap, self.options)
        # Fresh frames on every call: Evidently's model method adds a column to its inputs.
        score, drifted, _ = drift(_frame(sample), _frame(self.reference_))
        details = {
            "decision_rule": f"Evidently's own ({drift!r}); not a test at alpha",
            "note": "uncalibrated: measure its false-alarm rate with calibrate()",
        }
        return Score(float(score), None, details, bool(drifted))


def html_report(reference: Any, sample: Any, path: str | Path, method: str = "mmd",
                bootstrap: bool | None = None, max_rows: int = REPORT_ROWS,
                seed: int = 0) -> Path:
    """Evidently's embedding drift report (t-SNE plot + its method's verdict) as HTML.

    Both sides are sampled down to ``max_rows`` rows (seeded) first, so the whole report,
    its drift number included, describes that sample.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    ref, cur = check_matrix(reference, "reference"), check_matrix(sample, "sample")
    if ref.shape[1] != cur.shape[1]:
        raise ShiftbenchError(f"sample has {cur.shape[1]} features, the reference has "
                              f"{ref.shape[1]}")
    rng = np.random.default_rng(seed)
    ref, cur = (x[np.sort(rng.choice(len(x), min(len(x), max_rows), replace=False))]
                for x in (ref, cur))
    columns = [f"e{i}" for i in range(ref.shape[1])]
    definition = DataDefinition(embeddings={"embeddings": columns}, numerical_columns=[])
    report = Report([EmbeddingsDrift(embeddings_name="embeddings",
                                     drift_method=_method(method, bootstrap, None))])
    snapshot = report.run(Dataset.from_pandas(_frame(cur), data_definition=definition),
                          Dataset.from_pandas(_frame(ref), data_definition=definition))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    return out
