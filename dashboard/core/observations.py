"""Production observations: one record per request served by a release in production (seed §22–23).

A record says which release answered (`release_id`), in which role (`variant`: the `baseline` in production, a
`canary` getting a share of traffic, or a `shadow` running beside production without showing its answer), and
what happened: the §22 canary signals (errors, latency, cost, tokens, user feedback, citation failures,
refusals, tool errors, safety alerts, output-schema failures, approval bypasses, fallbacks), online evaluator
scores, and for shadow comparison the answer text, the retrieved ids and the tool calls made.

`readiness schema observation` prints the JSON Schema generated from `Observation`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dashboard.core.models import INT64_MAX, MAX_MAP_KEYS, MAX_SLICE_KEYS, ZonedDatetime

Variant = Literal["baseline", "canary", "shadow"]
VARIANTS: tuple[str, ...] = ("baseline", "canary", "shadow")
Feedback = Literal["positive", "negative"]

# The §22 signals recorded per request as true / false (null: not known for this request).
FLAG_SIGNALS: tuple[str, ...] = (
    "error", "citation_failure", "refusal", "tool_error", "safety_alert", "schema_failure", "approval_bypass",
    "fallback",
)
# Numeric per-request measurements.
NUMERIC_SIGNALS: tuple[str, ...] = ("latency_ms", "cost_usd", "input_tokens", "output_tokens")
MAX_TOOL_CALLS = 1_000
MAX_RETRIEVED = 1_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ToolCall(_Strict):
    """One tool the request ran."""

    name: str = Field(min_length=1, description="The tool's name, as in the manifest's tool_versions.")
    side_effect: bool = Field(default=False, description="True when the call changes something outside the "
                              "request (writes a case, sends a message). A shadow request must never make one.")
    error: bool | None = Field(default=None, description="True when the tool call failed.")


class Observation(_Strict):
    """One production request answered by one release (baseline, canary or shadow)."""

    request_id: str = Field(min_length=1, description="The request's id; a shadow request carries the id of the "
                            "production request it mirrors, so the two are compared pairwise.")
    time: ZonedDatetime = Field(description="When the request was served (ISO 8601 with a time zone).")
    release_id: str | None = Field(default=None, description="The release that answered; default: --release. "
                                   "When given it must equal --release.")
    variant: Variant | None = Field(default=None, description="baseline (production), canary or shadow; "
                                    "default: --variant.")
    tenant: str | None = Field(default=None, description="The tenant the request came from (also a slice).")
    slices: dict[str, str] = Field(default_factory=dict, max_length=MAX_SLICE_KEYS, description="Other slice "
                                   "dimensions, e.g. task, language, risk: name -> value.")
    error: bool | None = Field(default=None, description="The request failed (an error was returned).")
    latency_ms: float | None = Field(default=None, ge=0, description="End-to-end latency in milliseconds.")
    cost_usd: float | None = Field(default=None, ge=0, description="Cost of the request in US dollars.")
    input_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX, description="Input tokens used.")
    output_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX, description="Output tokens used.")
    feedback: Feedback | None = Field(default=None, description="The user's feedback: positive or negative "
                                      "(null: none given).")
    citation_failure: bool | None = Field(default=None, description="The answer cited evidence that does not "
                                          "support it, or no evidence where a citation was required.")
    refusal: bool | None = Field(default=None, description="The application refused to answer.")
    tool_error: bool | None = Field(default=None, description="A tool call of the request failed.")
    safety_alert: bool | None = Field(default=None, description="A safety filter or monitor raised an alert.")
    schema_failure: bool | None = Field(default=None, description="The model's output did not match the output "
                                        "schema.")
    approval_bypass: bool | None = Field(default=None, description="An action that needs human approval ran "
                                         "without it.")
    fallback: bool | None = Field(default=None, description="The request was served by a fallback (another "
                                  "model route, a canned answer).")
    scores: dict[str, float] = Field(default_factory=dict, max_length=MAX_MAP_KEYS, description="Online evaluator "
                                     "scores by name "
                                     "(e.g. groundedness from an LLM judge).")
    answer: str | None = Field(default=None, description="The answer text (compared between shadow and "
                               "production).")
    retrieved_ids: list[str] | None = Field(default=None, max_length=MAX_RETRIEVED,
                                            description="Retrieved evidence ids in rank order.")
    tool_calls: list[ToolCall] = Field(default_factory=list, max_length=MAX_TOOL_CALLS,
                                       description="Tools the request ran.")
    model: str | None = Field(default=None, description="The model that answered (gen_ai.response.model).")
    operation: str | None = Field(default=None, description="The GenAI operation of the request's root span "
                                  "(gen_ai.operation.name: chat, invoke_agent, ...).")
    trace_id: str | None = Field(default=None, description="The OpenTelemetry trace id (32 hex digits).")
    span_id: str | None = Field(default=None, description="The OpenTelemetry span id (16 hex digits).")
