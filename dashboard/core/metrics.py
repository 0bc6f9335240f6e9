"""The metric catalogue: what each metric means, which case fields it needs, and how its value is
formed from the exact components the store computes (counts and exact sums).

The SQL for each metric lives in dashboard/store/metrics.py under the same name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from dashboard.core.stats import wilson_interval

MetricKind = Literal["rate", "count", "mean", "quantile", "ratio"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: MetricKind
    category: str
    description: str
    needs: str  # the case fields it reads
    higher_is_better: bool
    unit: str = ""


def _m(name: str, kind: MetricKind, category: str, description: str, needs: str, higher: bool,
       unit: str = "") -> MetricDef:
    return MetricDef(name, kind, category, description, needs, higher, unit)


_DEFS = [
    # quality (seed §10)
    _m("cases", "count", "quality", "Number of eval cases in the slice.", "case_id", True),
    _m("pass_rate", "rate", "quality", "Share of cases whose verdict is passed.", "passed", True),
    _m("critical_pass_rate", "rate", "quality", "Pass rate over critical-risk cases only.", "passed, risk", True),
    _m("high_risk_pass_rate", "rate", "quality", "Pass rate over high and critical-risk cases.", "passed, risk", True),
    _m("error_rate", "rate", "quality", "Share of cases that errored.", "error", False),
    _m("groundedness_pass_rate", "rate", "quality", "Share of judged cases with checks.grounded true.",
       "checks.grounded", True),
    _m("mean_groundedness", "mean", "quality", "Mean of scores.groundedness.", "scores.groundedness", True),
    _m("citation_support_rate", "rate", "quality", "Share of judged cases whose claims are supported by "
       "their citations (checks.citation_supported).", "checks.citation_supported", True),
    _m("unsupported_claims", "count", "quality", "Cases with an unsupported claim.", "checks.unsupported_claim", False),
    _m("unsupported_critical_claims", "count", "quality", "Critical-risk cases with an unsupported claim.",
       "checks.unsupported_claim, risk", False),
    _m("mean_answer_style", "mean", "quality", "Mean of scores.answer_style.", "scores.answer_style", True),
    _m("over_refusal_rate", "rate", "quality", "Share of cases that should be answered but were refused.",
       "checks.refusal_expected, checks.refusal_observed", False),
    _m("under_refusals", "count", "quality", "Cases that should be refused but were answered.",
       "checks.refusal_expected, checks.refusal_observed", False),
    _m("under_refusal_rate", "rate", "quality", "Share of should-refuse cases that were answered.",
       "checks.refusal_expected, checks.refusal_observed", False),
    _m("flaky_case_rate", "rate", "quality", "Share of cases run more than once (repeated eval runs of one "
       "suite) whose verdict differs between repeats.", "passed over repeated runs", False),
    _m("pass_hat_k", "rate", "quality", "pass^k: share of cases run more than once that passed in every repeat.",
       "passed over repeated runs", True),
    # RAG (seed §11)
    _m("unauthorized_retrievals", "count", "rag", "Documents retrieved that the caller may not see.",
       "counters.unauthorized_retrieval", False),
    _m("stale_source_failures", "count", "rag", "Cases that relied on a stale or superseded active policy.",
       "checks.stale_source", False),
    _m("recall_at_5", "mean", "rag", "Mean share of relevant ids among the top 5 retrieved.",
       "retrieval.retrieved_ids, retrieval.relevant_ids", True),
    _m("recall_at_10", "mean", "rag", "Mean share of relevant ids among the top 10 retrieved.",
       "retrieval.retrieved_ids, retrieval.relevant_ids", True),
    _m("mrr", "mean", "rag", "Mean reciprocal rank of the first relevant id (0 when none is retrieved).",
       "retrieval.retrieved_ids, retrieval.relevant_ids", True),
    _m("exact_identifier_hit_rate", "rate", "rag", "Share of cases naming exact identifiers whose "
       "identifiers were all retrieved.", "retrieval.identifier_ids, retrieval.retrieved_ids", True),
    _m("no_result_rate", "rate", "rag", "Share of retrieval cases that retrieved nothing.",
       "retrieval.retrieved_ids", False),
    _m("metadata_completeness", "rate", "rag", "Share of retrieval cases whose documents carried all "
       "mandatory metadata.", "retrieval.metadata_complete", True),
    # agent and tools (seed §12, §13)
    _m("approval_bypasses", "count", "agent", "Tool calls that required approval and ran without it.",
       "trajectory.steps", False),
    _m("forbidden_tool_calls", "count", "tool", "Tool calls to a forbidden tool.", "trajectory.steps", False),
    _m("unauthorized_tool_calls", "count", "tool", "Tool calls the caller was not authorized to make.",
       "trajectory.steps", False),
    _m("max_step_failure_rate", "rate", "agent", "Share of agent cases that hit the step limit.",
       "trajectory.final_status", False),
    _m("required_node_completion_rate", "rate", "agent", "Share of agent cases that reached every "
       "required workflow node.", "trajectory.required_nodes, trajectory.reached_nodes", True),
    _m("trajectory_success_rate", "rate", "agent", "Share of agent cases that completed.",
       "trajectory.final_status", True),
    _m("idempotency_violations", "count", "tool", "Repeated writes with different effects.",
       "counters.idempotency_violations", False),
    _m("unsafe_handoffs", "count", "agent", "Handoffs to an agent or human without required context or "
       "authority.", "counters.unsafe_handoffs", False),
    _m("avg_agent_steps", "mean", "agent", "Mean number of tool calls per agent case.", "trajectory.steps", False),
    # security and privacy (seed §14, §15)
    _m("prompt_injection_critical_failures", "count", "security", "High or critical-risk cases where a "
       "prompt injection succeeded.", "checks.injection_succeeded, risk", False),
    _m("injection_success_rate", "rate", "security", "Share of judged cases where an injection succeeded.",
       "checks.injection_succeeded", False),
    _m("cross_tenant_failures", "count", "security", "Accesses to another tenant's data.",
       "counters.cross_tenant_access", False),
    _m("redaction_failures", "count", "privacy_governance", "Cases whose output or trace leaked data that "
       "must be redacted.", "checks.redaction_failure", False),
    # performance and cost (seed §16)
    _m("latency_p50_ms", "quantile", "performance", "Median latency.", "latency_ms", False, "ms"),
    _m("latency_p95_ms", "quantile", "performance", "95th percentile latency.", "latency_ms", False, "ms"),
    _m("latency_p99_ms", "quantile", "performance", "99th percentile latency.", "latency_ms", False, "ms"),
    _m("avg_input_tokens", "mean", "cost", "Mean prompt tokens per case.", "input_tokens", False),
    _m("avg_output_tokens", "mean", "cost", "Mean completion tokens per case.", "output_tokens", False),
    _m("total_cost_usd", "count", "cost", "Total spend of the slice.", "cost_usd", False, "USD"),
    _m("cost_per_successful_task", "ratio", "cost", "Spend divided by passed cases: a release that spends "
       "less because it fails more is not cheaper.", "cost_usd, passed", False, "USD"),
    _m("retry_rate", "rate", "performance", "Share of cases with at least one model retry.", "retries", False),
    # observability (seed §17)
    _m("trace_completeness", "rate", "observability", "Share of cases whose trace names the request, "
       "prompt and model versions, plus the index version and evidence ids for retrieval cases and the "
       "tool and workflow versions for agent cases.", "trace", True),
    _m("approval_trace_completeness", "rate", "observability", "Share of approved tool calls that carry "
       "an approval id.", "trajectory.steps", True),
]

CATALOGUE: dict[str, MetricDef] = {d.name: d for d in _DEFS}
# Short human labels for reports and the dashboard (the metric name where none is given).
LABELS = {
    "pass_rate": "Pass rate", "critical_pass_rate": "Critical pass rate", "groundedness_pass_rate": "Groundedness",
    "citation_support_rate": "Citation support", "unsupported_critical_claims": "Unsupported critical claims",
    "over_refusal_rate": "Over-refusal rate", "under_refusals": "Under-refusals", "recall_at_10": "Recall@10",
    "mrr": "MRR", "exact_identifier_hit_rate": "Exact identifier hit rate",
    "unauthorized_retrievals": "Unauthorized retrievals", "stale_source_failures": "Stale active-policy failures",
    "no_result_rate": "No-result rate", "metadata_completeness": "Metadata completeness",
    "trajectory_success_rate": "Trajectory success", "approval_bypasses": "Approval bypasses",
    "forbidden_tool_calls": "Forbidden tool calls", "unauthorized_tool_calls": "Unauthorized tool calls",
    "max_step_failure_rate": "Max-step failures", "required_node_completion_rate": "Required-node completion",
    "avg_agent_steps": "Average agent steps", "prompt_injection_critical_failures": "Prompt-injection critical failures",
    "cross_tenant_failures": "Cross-tenant failures", "redaction_failures": "Redaction failures",
    "trace_completeness": "Trace completeness", "approval_trace_completeness": "Audit (approval id) completeness",
    "latency_p50_ms": "p50 latency (ms)", "latency_p95_ms": "p95 latency (ms)", "latency_p99_ms": "p99 latency (ms)",
    "avg_input_tokens": "Average input tokens", "avg_output_tokens": "Average output tokens",
    "cost_per_successful_task": "Cost per successful task (USD)", "retry_rate": "Retry rate",
}

EVIDENCE_PREFIX = "evidence."
# Rate metrics over one named check that is true when the case is fine: the cases behind a failing gate
# on such a metric are those whose check is false.
CHECK_OF_METRIC = {"citation_support_rate": "citation_supported", "groundedness_pass_rate": "grounded"}


def is_known_metric(name: str) -> bool:
    """Catalogue metrics, `evidence.<kind>` for the release's non-eval evidence, and a tool's own metrics
    (`score:<name>`, `score:<name>>=<t>`, `check:<name>`)."""
    return (name in CATALOGUE or (name.startswith(EVIDENCE_PREFIX) and len(name) > len(EVIDENCE_PREFIX))
            or tool_metric(name) is not None)


# ----- a tool's own metrics ----------------------------------------------------------------------------------
# What an eval tool measured, named in a policy without SQL: `score:<name>` is the mean of scores.<name> over the
# cases that carry it; `score:<name>>=<t>` the share of those cases scoring at least t; `check:<name>` the share
# of the cases carrying checks.<name> whose check is true. The two rates can be compared paired (no_regression,
# non_inferior): the per-case outcome is the check, or score >= t, instead of the case's verdict.
SCORE_PREFIX, CHECK_PREFIX = "score:", "check:"
MAX_TOOL_METRIC_NAME = 200


@dataclass(frozen=True)
class ToolMetric:
    field: Literal["scores", "checks"]
    key: str
    threshold: float | None = None  # scores only: a rate of cases scoring >= threshold


def tool_metric(name: str) -> ToolMetric | None:
    """The tool metric a metric name stands for, or None (not one, or malformed)."""
    if name.startswith(CHECK_PREFIX):
        key = name[len(CHECK_PREFIX):]
        return ToolMetric("checks", key) if _tool_key_ok(key) else None
    if not name.startswith(SCORE_PREFIX):
        return None
    key = name[len(SCORE_PREFIX):]
    head, sep, tail = key.rpartition(">=")
    if sep:
        try:
            threshold = float(tail)
        except ValueError:
            return None
        if not math.isfinite(threshold) or not _tool_key_ok(head):
            return None
        return ToolMetric("scores", head, threshold)
    return ToolMetric("scores", key) if _tool_key_ok(key) else None


def _tool_key_ok(key: str) -> bool:
    return 0 < len(key) <= MAX_TOOL_METRIC_NAME and key.isprintable() and key.strip() == key


def tool_metric_name(field: Literal["scores", "checks"], key: str, threshold: float | None = None) -> str:
    if field == "checks":
        return f"{CHECK_PREFIX}{key}"
    return f"{SCORE_PREFIX}{key}" + (f">={threshold:g}" if threshold is not None else "")


class ToolMeasure(BaseModel):
    """A score or check present in a release's data (`readiness metrics --release`): what its eval tools measured."""

    kind: Literal["score", "check"] = Field(description="score (scores.<name>, a number) or check (checks.<name>).")
    name: str = Field(description="The score's or check's name, as the tool wrote it.")
    metric: str = Field(description="The metric a gate names for it: score:<name> (mean) or check:<name> (rate).")
    cases: int = Field(description="Records of the release that carry it.")
    mean: float | None = Field(None, description="Scores: the mean value.")
    min: float | None = Field(None, description="Scores: the smallest value.")
    max: float | None = Field(None, description="Scores: the largest value.")
    binary: bool | None = Field(None, description="Scores: every value is 0 or 1 (a pass/fail score).")
    passed: int | None = Field(None, description="Checks: records whose check is true.")


def metric_def(name: str) -> MetricDef | None:
    """The catalogue's definition of a metric, or the definition of a tool metric; None for anything else."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    t = tool_metric(name)
    if t is None:
        return None
    if t.field == "checks":
        return MetricDef(name, "rate", "quality", f"Share of cases carrying the tool's check {t.key!r} whose check "
                         "passed.", f"checks.{t.key}", True)
    if t.threshold is None:
        return MetricDef(name, "mean", "quality", f"Mean of the tool's score {t.key!r} over the cases carrying it.",
                         f"scores.{t.key}", True)
    return MetricDef(name, "rate", "quality", f"Share of cases carrying the tool's score {t.key!r} that score at "
                     f"least {t.threshold:g}.", f"scores.{t.key}", True)


class MetricValue(BaseModel):
    """One metric on one slice of one release, with the components it came from."""

    metric: str
    value: float | None  # None: cannot be computed (no eligible case, no baseline, ...)
    n_cases: int  # cases in the slice
    n_eligible: int  # cases that carry the fields the metric needs
    numerator: float | None = None
    denominator: float | None = None
    why_missing: str | None = None
    interval: tuple[float, float] | None = None  # 95%: Wilson for rates, bootstrap for percentiles and cost
    interval_method: str | None = None


def metric_value(name: str, n_cases: int, a: float | int | None, b: float | int | None, n: int) -> MetricValue:
    """Turn the store's exact components (a, b, n_eligible) into a value; fail closed on no data."""
    found = metric_def(name)
    assert found is not None, name
    d = found
    a = None if a is None else float(a)
    b = None if b is None else float(b)
    value: float | None
    why = None
    if n_cases == 0:
        value, why = None, "the slice has no cases"
    elif n == 0:
        value, why = None, f"no case in the slice carries {d.needs}"
    elif d.kind == "rate":
        value = a / b if a is not None and b else None
    elif d.kind == "count":
        value = a
    elif d.kind == "mean":
        value = a / n if a is not None else None
    elif d.kind == "quantile":
        value = a
    else:  # ratio
        value = a / b if a is not None and b else None
        if value is None:
            why = "no successful task to divide the spend by"
    if value is None and why is None:
        why = f"cannot be computed from {d.needs}"
    interval = None
    if d.kind == "rate" and value is not None and a is not None and b:
        interval = wilson_interval(a, b)
    return MetricValue(metric=name, value=value, n_cases=n_cases, n_eligible=n, numerator=a,
                       denominator=b if d.kind in ("rate", "ratio") else float(n), why_missing=why,
                       interval=interval, interval_method="wilson" if interval else None)


def _check_polarity() -> dict[str, bool]:
    """Named check -> whether `true` means the case is fine, read off the catalogue: a metric over exactly one
    check (a rate of true values or a count of them) is better when higher exactly when `true` is good."""
    out: dict[str, bool] = {}
    for d in _DEFS:
        needs = [n.strip() for n in d.needs.split(",")]
        checks = [n.removeprefix("checks.") for n in needs if n.startswith("checks.")]
        if len(checks) == 1 and set(needs) <= {f"checks.{checks[0]}", "risk"} and d.kind in ("rate", "count"):
            out.setdefault(checks[0], d.higher_is_better)
    return out


# Check name -> True when `true` is good (citation_supported), False when `true` is a failure (injection_succeeded).
CHECK_TRUE_IS_GOOD: dict[str, bool] = _check_polarity()
