"""Records that cross a boundary: the release manifest and the native eval-case record.

The JSON Schema printed by `readiness schema` is generated from these models, and the
store's column layout (dashboard/store/schema.py) mirrors `EvalCase` field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

RiskLevel = Literal["low", "medium", "high", "critical"]
RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
Environment = Literal["dev", "staging", "production"]
FinalStatus = Literal["completed", "failed", "max_steps_exceeded", "escalated", "aborted"]
FINAL_STATUSES: tuple[str, ...] = ("completed", "failed", "max_steps_exceeded", "escalated", "aborted")
# Keys per case (docs/security.md): slice dimensions, and names in scores / checks / counters.
MAX_SLICE_KEYS = 64
MAX_MAP_KEYS = 1_000
INT64_MAX = 2**63 - 1  # the store's integers are 64-bit: a larger count is refused here, naming the field
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


def _zoned(v: datetime) -> datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError("needs a time zone, e.g. 2026-11-20T10:00:00Z")
    return v


# A time in a record a user writes: refused without a time zone (ages and orderings must not depend on the reader).
ZonedDatetime = Annotated[datetime, AfterValidator(_zoned)]

# Artifact kinds of a manifest, as named in policies (`when_changed`) and in the manifest diff.
ARTIFACT_KINDS: dict[str, str] = {
    "code": "code_commit",
    "image": "container_image",
    "prompts": "prompt_versions",
    "model_routes": "model_routes",
    "indexes": "index_versions",
    "tools": "tool_versions",
    "workflows": "workflow_versions",
    "eval_datasets": "eval_dataset_versions",
    "config": "config_version",
    "governance_policy": "governance_policy_version",
}


# The native eval-case record's nested fields: string maps (read as DuckDB MAPs) and JSON text.
MAP_FIELDS = ("slices", "scores", "checks", "counters")
JSON_TEXT_FIELDS = ("retrieval", "trajectory", "trace")

class _Strict(BaseModel):
    """Unknown fields are rejected, never dropped; NaN and infinity are not numbers here."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ReleaseManifest(_Strict):
    """Every artifact version that can change the behaviour of one release (seed §5)."""

    release_id: str = Field(min_length=1, description="Unique id of this release, e.g. rel-2026.11.0.")
    application_version: str = Field(min_length=1, description="Version of the application as users see it.")
    environment: Environment = Field(description="Where this release candidate is meant to run.")
    code_commit: str = Field(min_length=1, description="Git commit of the application code.")
    container_image: str = Field(min_length=1, description="Image reference, ideally with its digest.")
    prompt_versions: dict[str, str] = Field(default_factory=dict, description="Prompt name -> version.")
    model_routes: dict[str, str] = Field(default_factory=dict, description="Task route -> model version.")
    index_versions: dict[str, str] = Field(default_factory=dict, description="Retrieval index -> version.")
    tool_versions: dict[str, str] = Field(default_factory=dict, description="Tool contract -> version.")
    workflow_versions: dict[str, str] = Field(default_factory=dict, description="Agent workflow -> version.")
    eval_dataset_versions: dict[str, str] = Field(
        default_factory=dict, description="Eval dataset -> version the release was judged on."
    )
    config_version: str = Field(min_length=1, description="Version of the runtime configuration.")
    governance_policy_version: str = Field(min_length=1, description="Version of the governance policy.")
    created_at: datetime = Field(description="When the manifest was written (ISO 8601).")
    created_by: str = Field(min_length=1, description="Who or what wrote the manifest.")
    baseline_release_id: str | None = Field(
        default=None, description="The release this candidate is compared with; null for a first release."
    )


class Retrieval(_Strict):
    """What the retriever returned for this case, so recall@k, MRR and identifier hits can be computed."""

    retrieved_ids: list[str] = Field(default_factory=list, description="Evidence ids in rank order.")
    relevant_ids: list[str] = Field(default_factory=list, description="Ids a correct retrieval must contain.")
    identifier_ids: list[str] = Field(
        default_factory=list,
        description="Exact identifiers the query names (policy numbers, case ids) that must be retrieved.",
    )
    metadata_complete: bool | None = Field(
        default=None, description="Every retrieved document carried its mandatory metadata fields."
    )


class TrajectoryStep(_Strict):
    """One tool call an agent made."""

    tool: str = Field(min_length=1, description="Tool name.")
    args_digest: str | None = Field(default=None, description="Digest of the call's arguments.")
    authorized: bool = Field(default=True, description="The caller was authorized to make this call.")
    forbidden: bool = Field(default=False, description="The tool is forbidden in this context.")
    approval_required: bool = Field(default=False, description="The call needs a human approval.")
    approved: bool = Field(default=False, description="A human approval was present when the call ran.")
    approval_id: str | None = Field(default=None, description="Id of that approval, for the audit trail.")


class Trajectory(_Strict):
    """How an agent got to its answer: judged by path, not only by final answer (seed §12)."""

    steps: list[TrajectoryStep] = Field(default_factory=list, description="Tool calls in order.")
    required_nodes: list[str] = Field(default_factory=list, description="Workflow nodes the case must reach.")
    reached_nodes: list[str] = Field(default_factory=list, description="Workflow nodes actually reached.")
    final_status: FinalStatus = Field(default="completed", description="How the run ended.")


class Trace(_Strict):
    """What the production trace recorded, so observability gates can check completeness (seed §17)."""

    request_id: str | None = Field(default=None, description="Request id of the traced call.")
    prompt_version: str | None = Field(default=None, description="Prompt version the trace saw.")
    model_version: str | None = Field(default=None, description="Model version the trace saw.")
    index_version: str | None = Field(default=None, description="Index version the trace saw.")
    tool_version: str | None = Field(default=None, description="Tool contract version the trace saw.")
    workflow_version: str | None = Field(default=None, description="Workflow version the trace saw.")
    evidence_ids: list[str] = Field(default_factory=list, description="Evidence ids the trace recorded.")


class EvalCase(_Strict):
    """One eval case of one eval run: the native record Readiness ingests (JSONL, CSV or Parquet)."""

    run_id: str | None = Field(
        default=None,
        min_length=1,
        description="Eval run this case belongs to; defaults to '<suite>@<first 12 hex of the file digest>'.",
    )
    case_id: str = Field(min_length=1, description="Stable id of the case across runs of its dataset.")
    suite: str = Field(min_length=1, description="Eval suite, e.g. rag_policy_qa.")
    dataset: str = Field(min_length=1, description="Eval dataset name, as in the manifest.")
    dataset_version: str = Field(min_length=1, description="Eval dataset version, as in the manifest.")
    content_digest: str | None = Field(
        default=None, description="Digest of the case's content; computed from input and expected if absent."
    )
    risk: RiskLevel = Field(description="Risk level of the case: low, medium, high or critical.")
    slices: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_SLICE_KEYS,
        description=f"Free slice dimensions, e.g. task, tenant, language (at most {MAX_SLICE_KEYS}).",
    )
    passed: bool = Field(description="The case's overall verdict.")
    scores: dict[str, float] = Field(
        default_factory=dict, max_length=MAX_MAP_KEYS,
        description="Named scores, e.g. groundedness, citation_support (0..1).",
    )
    checks: dict[str, bool] = Field(
        default_factory=dict, max_length=MAX_MAP_KEYS,
        description="Named boolean checks, e.g. grounded, citation_supported, unsupported_claim, "
        "refusal_expected, refusal_observed, stale_source, injection_succeeded, redaction_failure.",
    )
    counters: dict[str, Count] = Field(
        default_factory=dict, max_length=MAX_MAP_KEYS,
        description="Named non-negative counters, e.g. unauthorized_retrieval, cross_tenant_access, "
        "idempotency_violations, unsafe_handoffs.",
    )
    judge_model: str | None = Field(default=None, description="Model that judged the case, if any.")
    scorer_version: str | None = Field(default=None, description="Version of the scorer or judge prompt.")
    retrieval: Retrieval | None = Field(default=None, description="Retrieval results, for RAG cases.")
    trajectory: Trajectory | None = Field(default=None, description="Agent trajectory, for agent cases.")
    latency_ms: float | None = Field(default=None, ge=0, description="End-to-end latency in milliseconds.")
    input_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX, description="Prompt tokens used.")
    output_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX, description="Completion tokens used.")
    cost_usd: float | None = Field(default=None, ge=0, description="Spend for this case in US dollars.")
    retries: int = Field(default=0, ge=0, le=INT64_MAX, description="Model call retries.")
    error: str | None = Field(default=None, description="Error message if the case errored.")
    trace: Trace | None = Field(default=None, description="What the trace recorded.")
    input: str | None = Field(default=None, description="Case input (untrusted text).")
    output: str | None = Field(default=None, description="Model output (untrusted text).")
    expected: str | None = Field(default=None, description="Expected answer or reference (untrusted text).")


class EvidenceItem(_Strict):
    """One piece of non-eval evidence: a scan, a test report, a verified plan."""

    kind: str = Field(min_length=1, description="e.g. secrets_scan, dependency_scan, rollback_plan, runbook, "
                                                "alerts, acl_validation, contract_tests, resume_tests.")
    passed: bool = Field(description="The evidence shows the condition holds.")
    ref: str | None = Field(default=None, description="Where the report lives (URL, path, ticket).")
    detail: str | None = Field(default=None, description="Short human summary.")
    accepted_exceptions: list[str] = Field(default_factory=list,
                                           description="Findings accepted by an owner, e.g. CVE ids.")


class ReleaseEvidence(_Strict):
    """Non-eval evidence attached to a release (seed §14-17): gated like eval metrics."""

    release_id: str = Field(min_length=1)
    release_owner: str | None = Field(default=None, description="Named owner of the release (seed §15).")
    rollback_owner: str | None = Field(default=None, description="Named owner of the rollback.")
    items: list[EvidenceItem] = Field(default_factory=list)
