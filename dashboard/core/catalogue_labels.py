"""Short, human labels for metrics in reports and on the dashboard."""

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
