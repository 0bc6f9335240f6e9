"""Slice comparison shared by the Slices page and the per-area pages: candidate vs baseline per slice value."""

from __future__ import annotations

from typing import Any

from dashboard.core.metrics import CATALOGUE
from dashboard.core.policy import SliceSpec
from dashboard.core.stats import benjamini_hochberg, two_proportion_p
from dashboard.ui import data
from dashboard.ui.state import Selection


def compare(sel: Selection, dimension: str, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (slice value, metric): candidate, baseline, delta, n, and a BH-adjusted significance mark
    for rates (two-proportion test; other metrics carry no mark)."""
    spec = SliceSpec(for_each=dimension).model_dump_json()
    cand = data.slice_metrics(sel.generation, sel.candidate, spec, metrics)
    base = data.slice_metrics(sel.generation, sel.baseline, spec, metrics) if sel.baseline else {}
    rows: list[dict[str, Any]] = []
    for value in sorted(set(cand) | set(base)):
        for m in metrics:
            c, b = cand.get(value, {}).get(m), base.get(value, {}).get(m)
            cv = c.value if c else None
            bv = b.value if b else None
            p = None
            se = None
            if CATALOGUE[m].kind == "rate" and c and b and c.numerator is not None and b.numerator is not None:
                p = two_proportion_p(c.numerator, c.denominator or 0, b.numerator, b.denominator or 0)
                if c.denominator and b.denominator:
                    pc, pb = c.numerator / c.denominator, b.numerator / b.denominator
                    se = (pc * (1 - pc) / c.denominator + pb * (1 - pb) / b.denominator) ** 0.5
            rows.append({"slice": value, "metric": m, "candidate": cv, "baseline": bv,
                         "delta": (cv - bv) if cv is not None and bv is not None else None,
                         "n": c.n_eligible if c else 0, "n_baseline": b.n_eligible if b else 0,
                         "interval": c.interval if c else None, "p": p, "se": se})
    tested = [r for r in rows if r["p"] is not None]
    for r, adj in zip(tested, benjamini_hochberg([r["p"] for r in tested]), strict=True):
        r["p_adjusted"] = adj
    for r in rows:
        better = CATALOGUE[r["metric"]].higher_is_better
        sig = r.get("p_adjusted") is not None and r["p_adjusted"] < 0.05
        r["mark"] = ("▲" if (r["delta"] or 0) * (1 if better else -1) > 0 else "▼") if sig else ""
        r["goodness"] = None if r["delta"] is None else r["delta"] * (1 if better else -1)
        r["z"] = colour_z(r, sig)
    return rows


def colour_z(row: dict[str, Any], significant: bool) -> float | None:
    """The colour of a heatmap cell on one scale for every metric: the change in standard errors (signed so that
    positive is better), 0 (grey) when the change is not significant or no test applies to the metric, None when
    the metric has no value."""
    if row["goodness"] is None:
        return None
    se = row.get("se")
    if not significant or not se:
        return 0.0
    return float(max(-4.0, min(4.0, row["goodness"] / se)))
