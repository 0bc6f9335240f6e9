"""Metric SQL: each catalogue metric as three aggregate expressions (a, b, n_eligible) over `cases`.

Sums of floating-point fields are taken as DECIMAL so they are exact: DuckDB aggregates in
parallel, and an exact sum keeps the decision digest identical from run to run.
"""

from __future__ import annotations

from typing import Any

from dashboard.core.metrics import tool_metric

RISKY = "list_contains(['high', 'critical'], risk)"
STEPS = "coalesce(trajectory.steps, [])"
RETRIEVED = "coalesce(retrieval.retrieved_ids, [])"
RELEVANT = "coalesce(retrieval.relevant_ids, [])"
EXACT = "DECIMAL(38, 12)"


def _rate(num: str, eligible: str) -> tuple[str, str, str]:
    den = f"count(*) FILTER (WHERE {eligible})"
    return f"count(*) FILTER (WHERE ({eligible}) AND ({num}))", den, den


def _check_rate(check: str) -> tuple[str, str, str]:
    return _rate(f"checks['{check}']", f"checks['{check}'] IS NOT NULL")


def _check_count(check: str, extra: str = "TRUE") -> tuple[str, str, str]:
    return (f"count(*) FILTER (WHERE checks['{check}'] AND {extra})", "NULL",
            f"count(checks['{check}'])")


def _counter_sum(counter: str) -> tuple[str, str, str]:
    return f"coalesce(sum(counters['{counter}']), 0)", "NULL", f"count(counters['{counter}'])"


def _mean(expr: str, eligible: str | None = None) -> tuple[str, str, str]:
    cond = eligible or f"({expr}) IS NOT NULL"
    # The guard sits inside the expression: FILTER does not stop it being evaluated on excluded rows.
    return (f"sum(CAST(CASE WHEN {cond} THEN {expr} END AS {EXACT}))", "NULL", f"count(*) FILTER (WHERE {cond})")


def _steps_count(pred: str) -> tuple[str, str, str]:
    return (f"coalesce(sum(len(list_filter({STEPS}, lambda s: {pred}))), 0)", "NULL", "count(trajectory)")


def _recall(k: int) -> tuple[str, str, str]:
    expr = (f"len(list_intersect({RETRIEVED}[1:{k}], {RELEVANT})) / len(list_distinct({RELEVANT}))")
    return _mean(expr, f"retrieval IS NOT NULL AND len({RELEVANT}) > 0")


_FIRST_RANK = (f"list_min(list_filter(list_transform({RELEVANT}, lambda r: list_position({RETRIEVED}, r)), "
               "lambda p: p IS NOT NULL AND p > 0))")
_TRACE_COMPLETE = (
    "trace.request_id IS NOT NULL AND trace.prompt_version IS NOT NULL AND trace.model_version IS NOT NULL"
    " AND (retrieval IS NULL OR (trace.index_version IS NOT NULL AND len(coalesce(trace.evidence_ids, [])) > 0))"
    " AND (trajectory IS NULL OR (trace.tool_version IS NOT NULL AND trace.workflow_version IS NOT NULL))"
)

METRIC_SQL: dict[str, tuple[str, str, str]] = {
    "cases": ("count(*)", "NULL", "count(*)"),
    "pass_rate": _rate("passed", "TRUE"),
    "critical_pass_rate": _rate("passed", "risk = 'critical'"),
    "high_risk_pass_rate": _rate("passed", RISKY),
    "error_rate": _rate("error IS NOT NULL", "TRUE"),
    "groundedness_pass_rate": _check_rate("grounded"),
    "mean_groundedness": _mean("scores['groundedness']"),
    "citation_support_rate": _check_rate("citation_supported"),
    "unsupported_claims": _check_count("unsupported_claim"),
    "unsupported_critical_claims": _check_count("unsupported_claim", "risk = 'critical'"),
    "mean_answer_style": _mean("scores['answer_style']"),
    "over_refusal_rate": _rate("checks['refusal_observed']",
                               "checks['refusal_expected'] = false AND checks['refusal_observed'] IS NOT NULL"),
    "under_refusals": ("count(*) FILTER (WHERE checks['refusal_expected'] AND NOT checks['refusal_observed'])",
                       "NULL",
                       "count(*) FILTER (WHERE checks['refusal_expected'] IS NOT NULL "
                       "AND checks['refusal_observed'] IS NOT NULL)"),
    "under_refusal_rate": _rate("NOT checks['refusal_observed']",
                                "checks['refusal_expected'] AND checks['refusal_observed'] IS NOT NULL"),
    "unauthorized_retrievals": _counter_sum("unauthorized_retrieval"),
    "stale_source_failures": _check_count("stale_source"),
    "recall_at_5": _recall(5),
    "recall_at_10": _recall(10),
    "mrr": _mean(f"coalesce(1.0 / {_FIRST_RANK}, 0)", f"retrieval IS NOT NULL AND len({RELEVANT}) > 0"),
    "exact_identifier_hit_rate": _rate(f"list_has_all({RETRIEVED}, retrieval.identifier_ids)",
                                       "retrieval IS NOT NULL AND len(coalesce(retrieval.identifier_ids, [])) > 0"),
    "no_result_rate": _rate(f"len({RETRIEVED}) = 0", "retrieval IS NOT NULL"),
    "metadata_completeness": _rate("retrieval.metadata_complete", "retrieval.metadata_complete IS NOT NULL"),
    "approval_bypasses": _steps_count("s.approval_required AND NOT coalesce(s.approved, false)"),
    "forbidden_tool_calls": _steps_count("coalesce(s.forbidden, false)"),
    "unauthorized_tool_calls": _steps_count("NOT coalesce(s.authorized, true)"),
    "max_step_failure_rate": _rate("trajectory.final_status = 'max_steps_exceeded'", "trajectory IS NOT NULL"),
    "required_node_completion_rate": _rate(
        "list_has_all(coalesce(trajectory.reached_nodes, []), trajectory.required_nodes)",
        "trajectory IS NOT NULL AND len(coalesce(trajectory.required_nodes, [])) > 0"),
    "trajectory_success_rate": _rate("coalesce(trajectory.final_status, 'completed') = 'completed'",
                                     "trajectory IS NOT NULL"),
    "idempotency_violations": _counter_sum("idempotency_violations"),
    "unsafe_handoffs": _counter_sum("unsafe_handoffs"),
    "avg_agent_steps": _mean(f"len({STEPS})", "trajectory IS NOT NULL"),
    "prompt_injection_critical_failures": _check_count("injection_succeeded", RISKY),
    "injection_success_rate": _check_rate("injection_succeeded"),
    "cross_tenant_failures": _counter_sum("cross_tenant_access"),
    "redaction_failures": _check_count("redaction_failure"),
    "latency_p50_ms": ("quantile_cont(latency_ms, 0.5)", "NULL", "count(latency_ms)"),
    "latency_p95_ms": ("quantile_cont(latency_ms, 0.95)", "NULL", "count(latency_ms)"),
    "latency_p99_ms": ("quantile_cont(latency_ms, 0.99)", "NULL", "count(latency_ms)"),
    "avg_input_tokens": _mean("input_tokens"),
    "avg_output_tokens": _mean("output_tokens"),
    "total_cost_usd": (f"sum(CAST(cost_usd AS {EXACT}))", "NULL", "count(cost_usd)"),
    "cost_per_successful_task": (f"sum(CAST(cost_usd AS {EXACT}))",
                                 "count(*) FILTER (WHERE passed AND cost_usd IS NOT NULL)", "count(cost_usd)"),
    "retry_rate": _rate("retries > 0", "TRUE"),
    "trace_completeness": _rate(_TRACE_COMPLETE, "TRUE"),
    "approval_trace_completeness": (
        f"coalesce(sum(len(list_filter({STEPS}, lambda s: s.approved AND s.approval_id IS NOT NULL))), 0)",
        f"coalesce(sum(len(list_filter({STEPS}, lambda s: s.approved))), 0)",
        f"coalesce(sum(len(list_filter({STEPS}, lambda s: s.approved))), 0)"),
}

# Metrics over cases rather than rows: each case (suite, case_id) with its `repeats` and `passes` across
# the release's runs of the same suite (seed: flaky judges; pass^k).
CASE_LEVEL_SQL: dict[str, tuple[str, str, str]] = {
    "flaky_case_rate": ("count(*) FILTER (WHERE repeats > 1 AND passes > 0 AND passes < repeats)",
                        "count(*) FILTER (WHERE repeats > 1)", "count(*) FILTER (WHERE repeats > 1)"),
    "pass_hat_k": ("count(*) FILTER (WHERE repeats > 1 AND passes = repeats)",
                   "count(*) FILTER (WHERE repeats > 1)", "count(*) FILTER (WHERE repeats > 1)"),
}


# ----- a tool's own metrics (core/metrics.py: tool_metric) ------------------------------------------------------
# The score or check name is data: it is always a query parameter, never SQL text.
def tool_metric_sql(name: str, param: str, params: dict[str, Any]) -> tuple[str, str, str]:
    """(a, b, n_eligible) of `score:<k>` (mean), `score:<k>>=<t>` (rate) or `check:<k>` (rate); binds its
    parameters (`param`, `param`_t) into `params`."""
    t = tool_metric(name)
    assert t is not None, name
    params[param] = t.key
    if t.field == "checks":
        return _rate(f"checks[${param}]", f"checks[${param}] IS NOT NULL")
    if t.threshold is None:
        return _mean(f"scores[${param}]")
    params[f"{param}_t"] = t.threshold
    return _rate(f"scores[${param}] >= ${param}_t", f"scores[${param}] IS NOT NULL")


def tool_outcome_sql(name: str, param: str, params: dict[str, Any]) -> str:
    """The per-case outcome a paired comparison of a tool's rate uses: its check, or its score >= t (NULL when
    the case does not carry it)."""
    t = tool_metric(name)
    assert t is not None and (t.field == "checks" or t.threshold is not None), name
    params[param] = t.key
    if t.field == "checks":
        return f"checks[${param}]"
    params[f"{param}_t"] = t.threshold
    return f"(scores[${param}] >= ${param}_t)"
