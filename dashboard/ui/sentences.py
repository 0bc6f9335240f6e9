"""Plain sentences for gate results: what happened, in words a review meeting reads first; the statistics
(the gate's own reason) come second."""

from __future__ import annotations

from dashboard.core.gates import GateResult
from dashboard.core.metrics import LABELS, metric_def, tool_metric

# Counts that a policy usually allows none of: "<n> <what happened>".
COUNT_WORDS = {
    "approval_bypasses": "tool calls ran without the human approval they required",
    "forbidden_tool_calls": "calls went to a forbidden tool",
    "unauthorized_tool_calls": "tool calls were made without authorization",
    "unauthorized_retrievals": "documents were retrieved that the user may not see",
    "redaction_failures": "cases leaked data that must be redacted",
    "cross_tenant_failures": "accesses reached another tenant's data",
    "prompt_injection_critical_failures": "high- or critical-risk cases were taken over by a prompt injection",
    "stale_source_failures": "answers relied on a stale or superseded policy",
    "unsupported_critical_claims": "critical-risk answers made a claim their sources do not support",
    "unsupported_claims": "answers made a claim their sources do not support",
    "under_refusals": "requests that must be refused were answered",
    "idempotency_violations": "repeated writes had different effects",
    "unsafe_handoffs": "handoffs lacked the required context or authority",
}


def _fmt(metric: str, x: float | None) -> str:
    if x is None:
        return "n/a"
    d = metric_def(metric)
    if d is not None and d.kind == "rate":
        return f"{x * 100:.2f}%"
    if d is not None and d.unit == "USD":
        return f"${x:.4g}"
    if d is not None and d.unit == "ms":
        return f"{x:,.0f} ms"
    return f"{x:,.4g}"


def _tool_label(metric: str) -> str | None:
    """A tool's own metric in words: the check 'x' pass rate, the score 'x' (mean), the score 'x' >= t rate."""
    t = tool_metric(metric)
    if t is None:
        return None
    if t.field == "checks":
        return f"The tool's check {t.key!r} pass rate"
    if t.threshold is None:
        return f"The tool's mean score {t.key!r}"
    return f"The share of cases scoring {t.key!r} at least {t.threshold:g}"


def plain_reason(g: GateResult) -> str:
    """One plain sentence: what the gate saw, against what the policy allows."""
    label = LABELS.get(g.metric) or _tool_label(g.metric) or g.metric.replace("_", " ")
    where = "" if not g.slice or g.slice == "all cases" else f" ({g.slice})"
    if g.status == "skipped":
        return f"Not judged{where}: {g.reason}."
    if g.metric.startswith("rollout."):  # rollout gates (issue 17): the reason is already the plain sentence
        return (g.reason[:1].upper() + g.reason[1:]).rstrip(".") + "."
    if g.observed is None:
        return f"{label}{where} could not be measured, so the gate fails (fail closed): {g.reason}."
    if g.metric in COUNT_WORDS and g.threshold == 0:
        n = int(g.observed)
        if g.status == "pass":
            return f"No {COUNT_WORDS[g.metric].split(' ', 1)[0]} {COUNT_WORDS[g.metric].split(' ', 1)[1]}{where}."
        return f"{n:,} {COUNT_WORDS[g.metric]}{where}; the policy allows none."
    if g.paired is not None and g.condition.strip() == "no_regression":
        p = g.paired
        if g.status == "pass":
            return f"{label}{where} did not get significantly worse than the baseline."
        return (f"{label}{where} fell from {_fmt(g.metric, g.baseline)} to {_fmt(g.metric, g.observed)}: "
                f"{p.regressions:,} cases that passed in the baseline now fail ({p.fixes:,} were fixed).")
    found = metric_def(g.metric)
    better = found.higher_is_better if found is not None else True
    base = f" (baseline {_fmt(g.metric, g.baseline)})" if g.baseline is not None else ""
    if g.threshold is None:
        return f"{label}{where} is {_fmt(g.metric, g.observed)}{base}."
    bound = "at least" if better else "at most"
    verdict = "meets" if g.status == "pass" else "misses"
    return (f"{label}{where} is {_fmt(g.metric, g.observed)}{base}; the policy requires {bound} "
            f"{_fmt(g.metric, g.threshold)}, so it {verdict} the bar.")
