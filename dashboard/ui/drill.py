"""The one mechanism for "the cases behind X": a gate, a heatmap cell, a slice. Each becomes Cases-page URL
parameters (so the link reproduces the view) and, on the Cases page, one `CaseQuery` for the store."""

from __future__ import annotations

from dashboard.core.gates import GateResult
from dashboard.core.metrics import CATALOGUE, LABELS, metric_def
from dashboard.core.policy import SliceSpec
from dashboard.store.cases import PASS_RATE_METRICS, gate_predicate

CASES_PAGE = "views/cases.py"


def is_relative(gate: GateResult) -> bool:
    return "baseline" in gate.condition or "no_regression" in gate.condition


def gate_kind(gate: GateResult, has_baseline: bool) -> str:
    """Which cases make the gate fail: for pass rates the regressions (relative conditions, with a baseline) or
    the failures; for everything else every case the metric counts against (the gate's own predicate)."""
    if gate.metric in PASS_RATE_METRICS:
        return "regressions" if has_baseline and is_relative(gate) else "failed"
    return "all"


def gate_spec(gate: GateResult) -> SliceSpec:
    ref = gate.evidence_ref
    if ref is None:
        return SliceSpec()
    return SliceSpec(risk=ref.risk, suite=ref.suite, where={k: list(v) for k, v in ref.where.items()})


def gate_params(gate: GateResult, has_baseline: bool) -> dict[str, str | list[str]]:
    """Cases-page URL parameters that open exactly the cases behind `gate`."""
    return {"gate": gate.gate_id, "kind": gate_kind(gate, has_baseline)}


def gate_explanation(gate: GateResult, has_baseline: bool) -> str:
    """A plain sentence saying which cases are listed (shown above the list)."""
    found = metric_def(gate.metric)
    label = LABELS.get(gate.metric) or (found.description.rstrip(".") if found and gate.metric not in CATALOGUE
                                        else gate.metric.replace("_", " "))
    where = gate.slice if gate.slice and gate.slice != "all cases" else "all cases"
    if gate_predicate(gate.metric) is None:
        return f"{label} is not computed from eval cases, so no case is behind this gate."
    kind = gate_kind(gate, has_baseline)
    if kind == "regressions":
        return f"The cases in {where} that passed in the baseline and fail in the candidate."
    if kind == "failed":
        return f"The cases in {where} that fail in the candidate."
    desc = found.description.rstrip(".") if found is not None else label
    limit = f" (the gate's bound is {gate.threshold:g})" if gate.threshold is not None else ""
    return f"The candidate's cases in {where} that count against “{desc}”{limit}."


def slice_params(dimension: str, value: str, kind: str = "regressions") -> dict[str, str | list[str]]:
    """Cases-page URL parameters for one slice value of a dimension."""
    if dimension in ("risk", "suite"):
        return {"kind": kind, dimension: [value]}
    if dimension == "task":
        return {"kind": kind, "task": [value]}
    return {"kind": kind, "slice": f"{dimension}={value}"}


def merge(a: SliceSpec, b: SliceSpec) -> SliceSpec:
    """Cases in both specs (filters intersect)."""
    def both(x: list[str] | None, y: list[str] | None) -> list[str] | None:
        if x is None or y is None:
            return x if y is None else y
        return [v for v in x if v in y]

    where = {k: list(v) for k, v in a.where.items()}
    for k, v in b.where.items():
        where[k] = [x for x in where[k] if x in v] if k in where else list(v)
    return SliceSpec(risk=both(a.risk, b.risk), suite=both(a.suite, b.suite), where=where)
