"""How numbers are shown: short, but never so short that two different numbers look the same."""

from __future__ import annotations

import math


def fmt_value(x: float | None, other: float | None = None) -> str:
    """4 significant digits; with `other`, enough digits that the two never print alike when they differ."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    for digits in range(4, 13):
        text = f"{x:.{digits}g}"
        if other is None or x == other or text != f"{other:.{digits}g}":
            return text
    return repr(x)


def fmt_interval(iv: tuple[float, float] | None) -> str:
    return f"[{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""


def fmt_percent(rate: float | None) -> str:
    """A rate as a percentage with two decimals, floored: 0.97997 shows 97.99%, never a rounded-up 98.00%."""
    if rate is None or math.isnan(rate):
        return "n/a"
    return f"{math.floor(rate * 10000 + 1e-9) / 100:.2f}%"
