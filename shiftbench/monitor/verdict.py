"""The verdict of ``shiftbench monitor check`` (its exit code), stated once in ``RULE``.

Only detectors that are tests (they give a p-value) and whose measured false-alarm rate
is not flagged decide, and their p-values are Holm-adjusted, so the verdict's own
false-alarm rate stays at alpha however many detectors are asked.
"""

from __future__ import annotations

from typing import Any

EXIT_CODES = {"no drift": 0, "drift": 1, "undecided": 2}  # the CLI's exit code per verdict
RULE = ("drift when any deciding detector has a Holm-adjusted p-value below alpha; deciding "
        "detectors are tests with a p-value whose measured false-alarm rate is not flagged "
        "(uncalibrated and flagged detectors are shown, not counted)")


def verdict(records: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """The overall decision (see ``RULE``); sets each record's ``decides`` and ``holm_p``."""
    from shiftbench.metrics import holm

    deciding = [r for r in records
                if r["p_value"] is not None and not (r["calibration"] or {}).get("flagged")]
    for record in records:
        record["decides"] = any(record is r for r in deciding)
        record["holm_p"] = None
    for record, adjusted in zip(deciding, holm([r["p_value"] for r in deciding]), strict=True):
        record["holm_p"] = adjusted
    if not deciding:
        return {"status": "undecided", "exit_code": EXIT_CODES["undecided"], "drifted": None,
                "rule": RULE, "alpha": alpha, "deciding": [],
                "reason": "no deciding detector: every one asked is uncalibrated (no p-value) "
                          "or flagged for false alarms; add mmd, ks or classifier"}
    status = "drift" if any(r["holm_p"] < alpha for r in deciding) else "no drift"
    return {"status": status, "exit_code": EXIT_CODES[status], "drifted": status == "drift",
            "rule": RULE, "alpha": alpha, "deciding": [r["method"] for r in deciding]}

