"""How numbers print in every view (run summary and HTML, gate outputs, monitor report),
so a proportion, a change or an interval reads the same wherever it appears.

A number's ``unit`` says how it prints: ``"%"`` a proportion in percent with one decimal
(71.2%), ``"pp"`` a change of proportions in signed percentage points (+1.5 pp),
``"num"`` a plain number with three decimals, ``"Δnum"`` a signed change with three,
``"stat"`` a test statistic with four significant digits. A metric's unit comes from
the metric table (:mod:`shiftbench.metrics`); :data:`CHANGE` is the unit of its change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MISSING = "–"
CHANGE = {"%": "pp", "num": "Δnum"}


def number(value: float | None, unit: str, bare: bool = False) -> str:
    """One number in its unit; ``bare`` drops the unit's sign ('%', ' pp'), as interval
    bounds do."""
    if value is None:
        return MISSING
    if unit in ("%", "pp"):
        text = f"{value * 100:{'+' if unit == 'pp' else ''}.1f}"
        return text if bare else f"{text}{'%' if unit == '%' else ' pp'}"
    if unit == "Δnum":
        return f"{value:+.3f}"
    return f"{value:.3f}" if unit == "num" else f"{value:.4g}"


def with_interval(value: float | None, low: float | None, high: float | None,
                  unit: str) -> str:
    """'71.2% [65.0, 77.1]': the estimate, then its interval's bounds (left out when the
    estimate has none)."""
    if low is None:
        return number(value, unit)
    return f"{number(value, unit)} [{number(low, unit, True)}, {number(high, unit, True)}]"


def estimate_text(est: Mapping[str, Any] | None, unit: str) -> str:
    """An estimate record (value, low, high) with its interval; '–' when there is none."""
    if not est:
        return MISSING
    return with_interval(est["value"], est["low"], est["high"], unit)


def distance(value: float | None, unit: str) -> str:
    """A distance (margin, drop, detectable violation): points for proportions."""
    if value is None:
        return MISSING
    return f"{value * 100:.1f} pp" if unit in ("%", "pp") else f"{value:.3g}"
