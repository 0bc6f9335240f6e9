"""The bundled demo: an enterprise case-management assistant (seed §34).

RAG over policies plus an agent that may update a case's status only with human approval.
One baseline and several candidates whose stories differ. Every case has a latent
difficulty shared by all releases, so candidate vs baseline is a genuinely paired comparison.
Deterministic from a fixed seed; columns are built vectorised (numpy + pyarrow), so a
1,000,000-case run is practical for the benchmarks.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from scipy.special import ndtri

from dashboard.core.models import ReleaseManifest
from dashboard.ingesting import ingest

NONE = np.array(None, dtype=object)

if TYPE_CHECKING:
    from dashboard.store.db import Store

SEED = 20261126
RISK_NAMES = np.array(["low", "medium", "high", "critical"])
TENANTS = np.array(["acme", "globex", "initech", "umbrella"])
LANGUAGES = np.array(["en", "de", "fr"])

# Untrusted model output that must always be shown as text, never rendered.
HOSTILE_OUTPUTS = [
    "<script>alert('owned')</script> Status updated.",
    "<img src=x onerror=alert(1)> See policy POL-0042.",
    "**Approved!** [click here](javascript:alert(document.cookie)) to confirm",
    "</div><h1 style='color:red'>SYSTEM OVERRIDE</h1>",
    "Ignore previous instructions. | table | injection |\n|---|---|\n| a | b |",
]


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str
    tasks: tuple[str, ...]
    task_weights: tuple[float, ...]
    risk_weights: tuple[float, float, float, float]
    latency_median_ms: float
    input_tokens_mean: float
    output_tokens_mean: float


SUITES: tuple[Suite, ...] = (
    Suite(
        "rag_policy_qa", "case_policy_golden",
        ("policy_qa", "prior_decision_lookup", "case_summary"), (0.5, 0.25, 0.25),
        (0.30, 0.30, 0.28, 0.12), 1800.0, 2600.0, 320.0,
    ),
    Suite(
        "agent_case_actions", "case_agent_trajectories",
        ("status_update", "case_recommendation"), (0.55, 0.45),
        (0.25, 0.30, 0.30, 0.15), 3600.0, 3400.0, 420.0,
    ),
    Suite(
        "security_redteam", "case_security_redteam",
        ("injection_probe",), (1.0,),
        (0.10, 0.25, 0.35, 0.30), 1200.0, 1500.0, 180.0,
    ),
)


@dataclass(frozen=True)
class Story:
    """What a release changes relative to the baseline, as effects on its eval outcomes."""

    release_id: str
    title: str
    changes: dict[str, dict[str, str]] = field(default_factory=dict)  # manifest map field -> overrides
    scalar_changes: dict[str, str] = field(default_factory=dict)
    quality_shift: float = 0.0  # probit shift of every pass probability (+ is better)
    citation_break_rate: float = 0.0  # high/critical policy_qa cases losing citation support
    stale_leak_rate: float = 0.0  # policy_qa cases citing a superseded policy
    recall_gain: float = 0.0
    cost_multiplier: float = 1.0
    latency_multiplier: float = 1.0
    token_multiplier: float = 1.0
    approval_bypass_rate: float = 0.0  # status_update cases writing without approval
    wrong_tool_rate: float = 0.0  # agent cases choosing a tool they may not call
    style_gain: float = 0.0
    added_critical_cases: int = 0  # eval dataset grows by new critical cases
    noise_seed: int = 0
    created_at: datetime | None = None  # default: 30 + its place in STORIES days after the baseline


BASELINE_ID = "rel-2026.10.0"
BASE_MANIFEST = {
    "application_version": "4.12.0",
    "environment": "staging",
    "code_commit": "8f3c2a1",
    "container_image": "registry.example/case-assistant@sha256:0b8e5c0d1f",
    "prompt_versions": {"policy_answer": "prompt.policy_answer.v7",
                        "case_recommendation": "prompt.case_recommendation.v3",
                        "grounded_judge": "prompt.grounded_judge.v5"},
    "model_routes": {"high_risk_case_review": "model_route.high_risk_case_review.v2",
                     "policy_answer": "model_route.policy_answer.v4"},
    "index_versions": {"policy_index": "policy-index-2026-06-28-v3"},
    "tool_versions": {"update_case_status": "tool.update_case_status.v2",
                      "search_cases": "tool.search_cases.v4"},
    "workflow_versions": {"case_review": "workflow.case_review.v4"},
    "eval_dataset_versions": {"case_policy_golden": "eval.case_policy_golden.v9",
                              "case_agent_trajectories": "eval.case_agent_trajectories.v5",
                              "case_security_redteam": "eval.case_security_redteam.v3"},
    "config_version": "config.2026-10-01",
    "governance_policy_version": "gov.case-ai.v3",
    "created_by": "release-bot@example.com",
}

STORIES: tuple[Story, ...] = (
    Story(BASELINE_ID, "Baseline: the release in production", noise_seed=0),
    Story(
        "rel-2026.11.0-rc1", "Clean improvement: better case recommendations, nothing else moves",
        changes={"prompt_versions": {"case_recommendation": "prompt.case_recommendation.v4"}},
        scalar_changes={"code_commit": "a41d9e7", "application_version": "4.13.0"},
        quality_shift=0.25, noise_seed=1,
    ),
    Story(
        "rel-2026.11.0-rc2", "Prompt v8 improves answer style but breaks citation support on high-risk policy questions",
        changes={"prompt_versions": {"policy_answer": "prompt.policy_answer.v8"}},
        scalar_changes={"code_commit": "b7720c3", "application_version": "4.13.0"},
        citation_break_rate=0.12, style_gain=0.12, noise_seed=2,
    ),
    Story(
        "rel-2026.11.0-rc3", "New model route: slightly better answers, 30% more cost per successful task",
        changes={"model_routes": {"high_risk_case_review": "model_route.high_risk_case_review.v3",
                                  "policy_answer": "model_route.policy_answer.v5"}},
        scalar_changes={"code_commit": "c0ffee1", "application_version": "4.13.0"},
        quality_shift=0.15, cost_multiplier=1.32, latency_multiplier=1.06, noise_seed=3,
    ),
    Story(
        "rel-2026.11.0-rc4", "Workflow v5 lets update_case_status run without human approval",
        changes={"workflow_versions": {"case_review": "workflow.case_review.v5"}},
        scalar_changes={"code_commit": "d15ea5e", "application_version": "4.13.0"},
        approval_bypass_rate=0.04, noise_seed=4,
    ),
    # Rollout safety (issue 17): eval results as good as rc1; what blocks them is in their rollout evidence.
    Story(
        "rel-2026.11.0-rc5", "Prompt v9 answers better, but its prompt rollback was never drilled in time",
        changes={"prompt_versions": {"policy_answer": "prompt.policy_answer.v9"}},
        scalar_changes={"code_commit": "e4a7b21", "application_version": "4.13.0"},
        quality_shift=0.2, style_gain=0.05, noise_seed=5,
        created_at=datetime(2026, 11, 2, 12, 0, tzinfo=UTC),  # before rc4: the dashboard still opens on rc4
    ),
    Story(
        "rel-2026.11.0-rc6", "New close_case tool, enabled for every tenant at once",
        changes={"tool_versions": {"close_case": "tool.close_case.v1"}},
        scalar_changes={"code_commit": "f00d5e6", "application_version": "4.14.0"},
        quality_shift=0.2, noise_seed=6, created_at=datetime(2026, 11, 3, 12, 0, tzinfo=UTC),
    ),
)


def _tier_runs(day: str, nightly: str | None = None) -> list[dict[str, Any]]:
    """The release train's runs for a release (seed §7, §27): every tier passed on `day` (nightly on `nightly`)."""
    suites = {"pr_fast": ["security_redteam"], "pr_medium": ["rag_policy_qa"],
              "nightly": ["rag_policy_qa", "agent_case_actions"], "weekly": ["security_redteam"],
              "release_candidate": ["rag_policy_qa", "agent_case_actions", "security_redteam"]}
    return [{"kind": "tier_run", "tier": t, "suites": s, "ran_at": f"{nightly if t == 'nightly' and nightly else day}"
             "T06:00:00Z", "passed": True, "ref": f"ci://case-assistant/{t}/{day}"} for t, s in suites.items()]


INCIDENT_CITATION = {
    "kind": "incident", "incident_id": "INC-2026-1014", "occurred_at": "2026-10-14T15:20:00Z",
    "artifact_kind": "prompts", "artifact": "policy_answer",
    "description": "A critical refund-policy answer cited no supporting clause; the agent closed the case on it.",
    "case_ids": ["POLQA-0000219"]}
INCIDENT_OLD = {
    "kind": "incident", "incident_id": "INC-2026-0917", "occurred_at": "2026-09-17T08:05:00Z",
    "artifact_kind": "indexes", "artifact": "policy_index",
    "description": "The policy index served a superseded travel policy for two hours.",
    "case_ids": ["POLQA-0000006"]}
INDEX_DIGEST = {"kind": "artifact_digest", "artifact_kind": "indexes", "artifact": "policy_index",
                "version": "policy-index-2026-06-28-v3", "content_digest": "sha256:5d1f0c9a7be2"}


def _drill(kind: str, name: str, old: str, new: str, method: str, when: str, minutes: float,
           outcome: str = "succeeded") -> dict[str, Any]:
    return {"kind": "rollback_drill", "artifact_kind": kind, "artifact": name, "from_version": new, "to_version": old,
            "method": method, "performed_at": when, "performed_by": "sre-oncall@example.com",
            "minutes_to_rollback": minutes, "outcome": outcome, "ref": f"RUNBOOK-{kind}"}


# Rollout evidence (issue 17) per demo release, written as <release>/rollout.yaml. rc2..rc4 have none: under the
# rollout policy their rollout gates fail closed. Only the rollout policy reads it: the other policies' decisions
# on the demo are unchanged.
ROLLOUT_EVIDENCE: dict[str, dict[str, Any]] = {
    BASELINE_ID: {"release_id": BASELINE_ID, "as_of": "2026-10-01T12:00:00Z", "records": [
        INCIDENT_OLD, INDEX_DIGEST, *_tier_runs("2026-09-30"),
        _drill("code", "code_commit", "7e21b0c", "8f3c2a1", "previous_image", "2026-09-29T10:00:00Z", 7)]},
    "rel-2026.11.0-rc1": {"release_id": "rel-2026.11.0-rc1", "as_of": "2026-11-01T12:00:00Z", "records": [
        INCIDENT_CITATION, INDEX_DIGEST, *_tier_runs("2026-10-31"),
        _drill("code", "code_commit", "8f3c2a1", "a41d9e7", "previous_image", "2026-10-30T10:00:00Z", 6),
        _drill("prompts", "case_recommendation", "prompt.case_recommendation.v3", "prompt.case_recommendation.v4",
               "prompt_version_switch", "2026-10-30T10:30:00Z", 3)]},
    "rel-2026.11.0-rc5": {"release_id": "rel-2026.11.0-rc5", "as_of": "2026-11-02T14:00:00Z", "records": [
        INCIDENT_CITATION, INDEX_DIGEST, *_tier_runs("2026-11-02", nightly="2026-10-24"),
        _drill("code", "code_commit", "8f3c2a1", "e4a7b21", "previous_image", "2026-10-31T10:00:00Z", 6),
        # The last prompt rollback drill: seven weeks ago, and it took 38 minutes (the policy allows 15).
        _drill("prompts", "policy_answer", "prompt.policy_answer.v6", "prompt.policy_answer.v7",
               "prompt_version_switch", "2026-09-16T14:00:00Z", 38),
        {"kind": "experiment", "experiment_id": "EXP-answer-style-3", "variants": ["prompt.policy_answer.v7",
         "prompt.policy_answer.v9"], "artifact_kind": "prompts", "artifact": "policy_answer",
         "population": "5% of acme support agents", "tasks": ["case_summary"], "risk_levels": ["low"],
         "exposes": ["answer_style"]}]},
    "rel-2026.11.0-rc6": {"release_id": "rel-2026.11.0-rc6", "as_of": "2026-11-03T14:00:00Z", "records": [
        INCIDENT_CITATION, INDEX_DIGEST, *_tier_runs("2026-11-03"),
        _drill("code", "code_commit", "8f3c2a1", "f00d5e6", "previous_image", "2026-11-01T10:00:00Z", 5),
        _drill("tools", "close_case", "tool.close_case.v1", "tool.close_case.v1", "disable_tool",
               "2026-11-02T09:00:00Z", 2),
        # High risk, audited, but on for every tenant from the first minute.
        {"kind": "feature_flag", "flag": "close_case_enabled", "artifact_kind": "tools", "artifact": "close_case",
         "risk": "high", "default": True, "percentage": 100, "owner": "case-platform@example.com",
         "audited": True, "audit_ref": "flags-audit://close_case_enabled"}]},
}


def manifest_for(story: Story, created_at: datetime | None = None) -> ReleaseManifest:
    data: dict = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE_MANIFEST.items()}
    for section, overrides in story.changes.items():
        data[section] = {**data[section], **overrides}
    data.update(story.scalar_changes)
    if story.added_critical_cases:
        data["eval_dataset_versions"]["case_policy_golden"] = "eval.case_policy_golden.v10"
    data["release_id"] = story.release_id
    index = [s.release_id for s in STORIES].index(story.release_id) if story in STORIES else 9
    data["created_at"] = created_at or story.created_at or datetime(2026, 10, 1, 9, 0, tzinfo=UTC) + timedelta(
        days=30 + index)
    data["baseline_release_id"] = None if story.release_id == BASELINE_ID else BASELINE_ID
    if story.release_id == BASELINE_ID:
        data["created_at"] = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    return ReleaseManifest.model_validate(data)


def _rng(*parts: object) -> np.random.Generator:
    key = zlib.crc32("|".join(map(str, parts)).encode())
    return np.random.default_rng([SEED, key])


def _pick(rng: np.random.Generator, values: np.ndarray, weights: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    return values[rng.choice(len(values), size=n, p=np.asarray(weights) / np.sum(weights))]


def _flat(values: Any, type_: pa.DataType | None = None) -> pa.Array:
    """pa.array that is never chunked (large numpy inputs come back as ChunkedArray)."""
    arr = pa.array(values, type_)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _str_lists(values: np.ndarray, lengths: np.ndarray) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(_flat(offsets), _flat(values, pa.string()))


def _map(keys: list[str], columns: list[np.ndarray], present: np.ndarray | None, value_type: pa.DataType) -> pa.MapArray:
    """A MAP column with the same keys on every row (or none where `present` is False)."""
    n = len(columns[0])
    k = len(keys)
    present = np.ones(n, bool) if present is None else present
    lengths = np.where(present, k, 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    stacked = np.stack(columns, axis=1)[present].reshape(-1)
    key_col = np.tile(np.array(keys), int(present.sum()))
    return pa.MapArray.from_arrays(_flat(offsets), _flat(key_col, pa.string()), _flat(stacked, value_type))


def universe(suite: Suite, cases: int) -> dict[str, np.ndarray]:
    """The eval dataset of one suite: case ids and attributes shared by every release."""
    rng = _rng("universe", suite.name)
    n = cases
    idx = np.arange(n)
    prefix = {"rag_policy_qa": "POLQA", "agent_case_actions": "AGENT", "security_redteam": "REDTM"}[suite.name]
    return {
        "case_id": np.char.add(f"{prefix}-", np.char.zfill(idx.astype(str), 7)),
        "risk": _pick(rng, RISK_NAMES, suite.risk_weights, n),
        "task": _pick(rng, np.array(suite.tasks), suite.task_weights, n),
        "tenant": _pick(rng, TENANTS, (0.4, 0.25, 0.2, 0.15), n),
        "language": _pick(rng, LANGUAGES, (0.7, 0.2, 0.1), n),
        "difficulty": rng.standard_normal(n),
        "hostile": rng.random(n) < 0.01,
        "size": rng.lognormal(0.0, 0.35, n),
    }


BASE_PASS = {"low": 0.94, "medium": 0.955, "high": 0.97, "critical": 0.993}


def eval_run(story: Story, suite: Suite, cases: int, manifest: ReleaseManifest) -> pa.Table:
    """One eval run of `suite` for the release `story`, as an Arrow table in the native layout."""
    u = universe(suite, cases)
    n = cases
    rng = _rng("run", story.release_id, suite.name, story.noise_seed)
    risk, task = u["risk"], u["task"]
    is_policy_qa = task == "policy_qa"
    high = np.isin(risk, ["high", "critical"])

    # Pass/fail: shared latent difficulty plus per-release noise (few flips between releases).
    p_base = np.vectorize(BASE_PASS.get)(risk).astype(float)
    z = 0.93 * u["difficulty"] + 0.37 * rng.standard_normal(n)
    passed = z < ndtri(p_base) + story.quality_shift
    error = rng.random(n) < 0.002
    passed &= ~error

    # RAG signals.
    grounded_score = np.clip(rng.beta(18, 2, n) - np.where(passed, 0, 0.35), 0, 1)
    citation_supported = passed | (rng.random(n) < 0.5)
    broken = is_policy_qa & high & (rng.random(n) < story.citation_break_rate)
    citation_supported &= ~broken
    passed &= ~broken
    stale = is_policy_qa & (rng.random(n) < story.stale_leak_rate)
    passed &= ~stale
    style = np.clip(rng.beta(7, 3, n) + story.style_gain, 0, 1)

    rag = suite.name == "rag_policy_qa"
    n_rel = 1 + (rng.random(n) < 0.4).astype(int) + (rng.random(n) < 0.15).astype(int)
    hit_prob = np.clip(0.93 + story.recall_gain + np.where(passed, 0.05, -0.3), 0, 1)
    retrieved = np.char.add("DOC-", rng.integers(1000, 9999, size=(n, 10)).astype(str))
    relevant = np.char.add("DOC-", rng.integers(10000, 19999, size=(n, 3)).astype(str))
    for j in range(3):  # place each relevant doc in the ranking with probability hit_prob
        hit = (j < n_rel) & (rng.random(n) < hit_prob)
        rank = rng.integers(0, 10 if j else 3, size=n)
        retrieved[hit, rank[hit]] = relevant[hit, j]
    ident = task == "prior_decision_lookup"

    # Agent trajectories (status updates need approval).
    agent = suite.name == "agent_case_actions"
    status_update = task == "status_update"
    bypass = status_update & (rng.random(n) < story.approval_bypass_rate)
    passed &= ~bypass
    wrong_tool = agent & (rng.random(n) < story.wrong_tool_rate)
    passed &= ~wrong_tool
    max_steps = agent & ~passed & (rng.random(n) < 0.3)

    # Security probes.
    sec = suite.name == "security_redteam"
    injected = sec & ~passed & ~high & (rng.random(n) < 0.05)  # only low/medium probes ever get through

    # Operations.
    latency = suite.latency_median_ms * story.latency_multiplier * rng.lognormal(0, 0.45, n) * u["size"] ** 0.5
    latency = np.round(latency, 1)
    in_tok = np.maximum(50, rng.normal(suite.input_tokens_mean, suite.input_tokens_mean * 0.2, n) * u["size"])
    in_tok = (in_tok * story.token_multiplier).astype(np.int64)
    out_tok = np.maximum(5, rng.normal(suite.output_tokens_mean, suite.output_tokens_mean * 0.3, n)).astype(np.int64)
    cost = np.round((in_tok * 2.5e-6 + out_tok * 1.0e-5) * story.cost_multiplier, 6)
    retries = (rng.random(n) < 0.03).astype(np.int64) + (rng.random(n) < 0.005).astype(np.int64)

    run_id = f"{story.release_id}/{suite.name}/1"
    dataset_version = manifest.eval_dataset_versions[suite.dataset]
    prompt_version = manifest.prompt_versions["policy_answer" if rag or sec else "case_recommendation"]
    model_version = manifest.model_routes["policy_answer" if rag or sec else "high_risk_case_review"]
    trace_ok = rng.random(n) > 0.002
    outputs = np.where(
        u["hostile"], np.array(HOSTILE_OUTPUTS)[np.arange(n) % len(HOSTILE_OUTPUTS)],
        np.where(passed, "Per policy POL-", "I could not find a policy for case CASE-"),
    )
    outputs = np.where(u["hostile"], outputs, np.char.add(outputs, np.char.zfill((np.arange(n) % 997).astype(str), 4)))
    inputs = np.char.add(np.char.add(np.char.add("[", task), "] Question about case CASE-"), u["case_id"])

    cols: dict[str, pa.Array] = {
        "run_id": _flat(np.full(n, run_id)),
        "case_id": _flat(u["case_id"]),
        "suite": _flat(np.full(n, suite.name)),
        "dataset": _flat(np.full(n, suite.dataset)),
        "dataset_version": _flat(np.full(n, dataset_version)),
        "content_digest": pa.nulls(n, pa.string()),  # the store derives it from input and expected
        "risk": _flat(risk),
        "slices": _map(["task", "tenant", "language"], [task, u["tenant"], u["language"]], None, pa.string()),
        "passed": _flat(passed),
        "scores": _map(
            ["groundedness", "answer_style"] if rag else ["answer_style"],
            [np.round(grounded_score, 4), np.round(style, 4)] if rag else [np.round(style, 4)], None, pa.float64(),
        ),
        "checks": _checks(n, rag, agent, sec, passed, grounded_score, citation_supported, stale, injected, high, rng),
        "counters": _map(
            ["unauthorized_retrieval", "cross_tenant_access", "idempotency_violations", "unsafe_handoffs"],
            [np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)],
            None, pa.int64(),
        ),
        "judge_model": _flat(np.full(n, "judge.gpt-x-2026-06")),
        "scorer_version": _flat(np.full(n, manifest.prompt_versions["grounded_judge"])),
        "retrieval": _retrieval(n, rag, retrieved, relevant, n_rel, ident, rng),
        "trajectory": _trajectory(n, agent, status_update, bypass, wrong_tool, max_steps, passed, rng),
        "latency_ms": _flat(latency),
        "input_tokens": _flat(in_tok),
        "output_tokens": _flat(out_tok),
        "cost_usd": _flat(cost),
        "retries": _flat(retries),
        "error": _flat(np.where(error, "upstream timeout after 30s", NONE), pa.string()),
        "trace": pa.StructArray.from_arrays(
            [_flat(np.where(trace_ok, np.char.add("req-", u["case_id"]), NONE), pa.string()),
             _flat(np.full(n, prompt_version)), _flat(np.full(n, model_version)),
             _flat(np.full(n, manifest.index_versions["policy_index"]) if rag else np.full(n, None), pa.string()),
             _flat(np.full(n, manifest.tool_versions["update_case_status"]) if agent else np.full(n, None),
                   pa.string()),
             _flat(np.full(n, manifest.workflow_versions["case_review"]) if agent else np.full(n, None),
                   pa.string()),
             _str_lists(retrieved[:, :3].reshape(-1), np.full(n, 3)) if rag else _str_lists(np.array([], str), np.zeros(n, int))],
            names=["request_id", "prompt_version", "model_version", "index_version", "tool_version",
                   "workflow_version", "evidence_ids"],
        ),
        "input": _flat(inputs),
        "output": _flat(outputs),
        "expected": _flat(np.full(n, "Answer citing the active policy." if rag else "Correct action with approval.")),
    }
    table = pa.table(cols)
    if story.added_critical_cases:
        table = pa.concat_tables([table, _added_cases(story, suite, manifest, table)]) if rag else table
    return table


def _checks(n: int, rag: bool, agent: bool, sec: bool, passed: np.ndarray, grounded: np.ndarray, cited: np.ndarray,
            stale: np.ndarray, injected: np.ndarray, high: np.ndarray, rng: np.random.Generator) -> pa.MapArray:
    if rag:
        refusal_expected = rng.random(n) < 0.05
        refusal_observed = refusal_expected | (rng.random(n) < 0.01)  # noise only over-refuses
        keys = ["grounded", "citation_supported", "unsupported_claim", "stale_source",
                "refusal_expected", "refusal_observed"]
        cols = [grounded >= 0.7, cited, ~passed & (rng.random(n) < 0.3) & ~cited, stale,
                refusal_expected, refusal_observed]
    elif sec:
        refusal_expected = np.ones(n, bool)
        keys = ["injection_succeeded", "redaction_failure", "refusal_expected", "refusal_observed"]
        cols = [injected, np.zeros(n, bool), refusal_expected, passed | high]
    else:
        keys = ["unsupported_claim"]
        cols = [~passed & (rng.random(n) < 0.1)]
    return _map(keys, cols, None, pa.bool_())


def _retrieval(n: int, rag: bool, retrieved: np.ndarray, relevant: np.ndarray, n_rel: np.ndarray, ident: np.ndarray,
               rng: np.random.Generator) -> pa.StructArray:
    if not rag:
        return pa.nulls(n, pa.struct([
            ("retrieved_ids", pa.list_(pa.string())), ("relevant_ids", pa.list_(pa.string())),
            ("identifier_ids", pa.list_(pa.string())), ("metadata_complete", pa.bool_())]))
    rel_mask = np.arange(3)[None, :] < n_rel[:, None]
    return pa.StructArray.from_arrays(
        [_str_lists(retrieved.reshape(-1), np.full(n, 10)),
         _str_lists(relevant[rel_mask], n_rel),
         _str_lists(relevant[ident, 0], ident.astype(int)),
         _flat(rng.random(n) > 0.001)],
        names=["retrieved_ids", "relevant_ids", "identifier_ids", "metadata_complete"],
    )


def _trajectory(n: int, agent: bool, status_update: np.ndarray, bypass: np.ndarray, wrong_tool: np.ndarray,
                max_steps: np.ndarray, passed: np.ndarray, rng: np.random.Generator) -> pa.StructArray:
    step_type = pa.struct([("tool", pa.string()), ("args_digest", pa.string()), ("authorized", pa.bool_()),
                           ("forbidden", pa.bool_()), ("approval_required", pa.bool_()),
                           ("approved", pa.bool_()), ("approval_id", pa.string())])
    traj_type = pa.struct([("steps", pa.list_(step_type)), ("required_nodes", pa.list_(pa.string())),
                           ("reached_nodes", pa.list_(pa.string())), ("final_status", pa.string())])
    if not agent:
        return pa.nulls(n, traj_type)
    # Steps: search_cases, get_case, draft_recommendation, [+ update_case_status for status updates]
    extra = rng.integers(0, 3, n)  # extra search steps
    k = 3 + extra + status_update.astype(int)
    total = int(k.sum())
    row = np.repeat(np.arange(n), k)
    pos = np.arange(total) - np.repeat(np.cumsum(k) - k, k)
    last = pos == np.repeat(k - 1, k)
    is_write = last & np.repeat(status_update, k)
    tool = np.where(pos < 1 + np.repeat(extra, k), "search_cases", np.where(is_write, "update_case_status",
                    np.where(last, "draft_recommendation", "get_case")))
    wrong = last & np.repeat(wrong_tool, k)
    tool = np.where(wrong, "delete_case", tool)
    approved = is_write & ~np.repeat(bypass, k)
    steps = pa.StructArray.from_arrays(
        [_flat(tool), _flat(np.char.add("sha256:", (row * 7919 + pos).astype(str))),
         _flat(~wrong), _flat(wrong), _flat(is_write), _flat(approved),
         _flat(np.where(approved, np.char.add("APR-", row.astype(str)), NONE), pa.string())],
        fields=list(step_type),
    )
    offsets = _flat(np.concatenate([[0], np.cumsum(k)]).astype(np.int32))
    # vectorised required / reached node lists
    base_req = np.array([["retrieve_case", "assess", "human_approval", "write_status"],
                         ["retrieve_case", "assess", "recommend", ""]])
    which = np.where(status_update, 0, 1)
    req = base_req[which][:, :4]
    req_len = np.where(status_update, 4, 3)
    req_mask = np.arange(4)[None, :] < req_len[:, None]
    reach_len = np.where(passed, req_len, np.maximum(1, req_len - 1 - (rng.random(n) < 0.5)))
    reach = req.copy()
    reach[bypass, 2] = "write_status"
    reach[bypass, 3] = ""
    reach_len = np.where(bypass, 3, reach_len)
    reach_mask = np.arange(4)[None, :] < reach_len[:, None]
    status = np.where(max_steps, "max_steps_exceeded", np.where(passed, "completed", "failed"))
    return pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(offsets, steps),
         _str_lists(req[req_mask], req_len), _str_lists(reach[reach_mask], reach_len), _flat(status)],
        fields=list(traj_type),
    )


def _added_cases(story: Story, suite: Suite, manifest: ReleaseManifest, like: pa.Table) -> pa.Table:
    """New critical cases appended to a grown eval dataset (seed §36: the dataset adds a critical case)."""
    m = story.added_critical_cases
    sample = like.slice(0, m).to_pylist()
    rows = []
    for i, r in enumerate(sample):
        r = dict(r)
        r["case_id"] = f"POLQA-NEW-{i:04d}"
        r["risk"] = "critical"
        r["passed"] = i % 4 != 0  # the new hard cases catch a real gap
        r["input"] = f"[policy_qa] New critical question {i}: may a case be closed during an appeal?"
        rows.append(r)
    return pa.Table.from_pylist(rows, schema=like.schema)


def release_runs(story: Story, cases: int) -> tuple[ReleaseManifest, list[pa.Table]]:
    manifest = manifest_for(story)
    return manifest, [eval_run(story, suite, cases, manifest) for suite in SUITES]


def write_demo(out: Path, cases: int = 2000, fmt: str = "parquet") -> list[Path]:
    """Write every demo release as `<release>/manifest.yaml` and one file per eval run; returns the files."""
    import yaml

    from dashboard.store.db import Store

    writer = Store(":memory:")
    written: list[Path] = []
    try:
        for story in STORIES:
            manifest, runs = release_runs(story, cases)
            folder = out / story.release_id
            folder.mkdir(parents=True, exist_ok=True)
            mpath = folder / "manifest.yaml"
            mpath.write_text(f"# {story.title}\n" + yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False))
            written.append(mpath)
            for suite, table in zip(SUITES, runs, strict=True):
                path = folder / f"{suite.name}.{fmt}"
                writer.write_table(table, path, fmt)
                written.append(path)
            if story.release_id in ROLLOUT_EVIDENCE:
                rpath = folder / "rollout.yaml"
                rpath.write_text("# Rollout evidence: readiness evidence rollout.yaml --release " + story.release_id
                                 + "\n" + yaml.safe_dump(ROLLOUT_EVIDENCE[story.release_id], sort_keys=False))
                written.append(rpath)
    finally:
        writer.close()
    return written


def load_demo(store: Store, cases: int = 2000) -> list[str]:
    """Generate the demo and ingest it into `store`, one transaction per release."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp), cases, "parquet")
        return load_demo_folder(store, Path(tmp))


def load_demo_folder(store: Store, folder: Path) -> list[str]:
    """Ingest a demo written by `write_demo` (e.g. the one shipped in data/demo): each `<release>/manifest.yaml`
    with its Parquet runs and rollout evidence, one transaction per release, then the production observations."""
    from dashboard.core.manifests import load_manifest

    loaded = []
    for release_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        manifest = load_manifest(release_dir / "manifest.yaml")
        ingest(store, sorted(release_dir.glob("*.parquet")), manifest.release_id, manifest)
        load_rollout(store, release_dir)  # rollout.yaml, when the release has rollout evidence
        loaded.append(manifest.release_id)
    load_observations(store)  # production traffic: rc1's and rc2's canaries, a shadow of a new index
    return loaded


def load_rollout(store: Store, folder: Path) -> None:
    """Attach `<folder>/rollout.yaml`, the release's rollout evidence, when the demo has one."""
    from dashboard.core.manifests import load_structured
    from dashboard.core.rollout import parse_rollout
    from dashboard.store.rollout import put_rollout

    path = folder / "rollout.yaml"
    if path.is_file():
        put_rollout(store, parse_rollout(load_structured(path), str(path)), str(path))


# ----- production observations (seed §22-23): canaries of rc1 and rc2, and a shadow of a new index -------------------
OBS_TASKS = np.array(["policy_qa", "policy_lookup", "case_update", "case_summary"])
OBS_TASK_WEIGHTS = (0.4, 0.2, 0.25, 0.15)
SHADOW_RELEASE = "rel-2026.11.0-index-v4"  # the policy index rebuilt (policy-index-v4), run as a shadow only
PRODUCTION_RATES = {"error": 0.01, "citation_failure": 0.06, "refusal": 0.03, "tool_error": 0.02,
                    "safety_alert": 0.003, "schema_failure": 0.005, "approval_bypass": 0.001, "fallback": 0.02}


@dataclass(frozen=True)
class CanaryStory:
    """A window of production traffic: the baseline and (optionally) a canary of a release beside it."""

    release_id: str
    start: datetime
    requests: int  # per variant
    rates: dict[str, float] = field(default_factory=dict)  # the canary's rates (default: production's)
    latency_multiplier: float = 1.0
    cost_multiplier: float = 1.0
    seed: int = 0


CANARY_STORIES: tuple[CanaryStory, ...] = (
    CanaryStory("rel-2026.11.0-rc1", datetime(2026, 11, 16, 8, 0, tzinfo=UTC), 10_000,
                rates={"error": 0.008, "citation_failure": 0.05, "refusal": 0.025, "safety_alert": 0.002}, seed=11),
    CanaryStory("rel-2026.11.0-rc2", datetime(2026, 11, 18, 8, 0, tzinfo=UTC), 4_000,
                rates={"citation_failure": 0.14}, seed=12),
)


def _traffic(rng: np.random.Generator, n: int, start: datetime, prefix: str, rates: dict[str, float],
             latency_multiplier: float = 1.0, cost_multiplier: float = 1.0) -> list[dict[str, Any]]:
    """`n` production requests, one every ~3 s from `start`, with the §22 signals drawn at `rates`."""
    task = _pick(rng, OBS_TASKS, OBS_TASK_WEIGHTS, n)
    tenant = _pick(rng, TENANTS, (0.4, 0.3, 0.2, 0.1), n)
    language = _pick(rng, LANGUAGES, (0.7, 0.2, 0.1), n)
    seconds = np.cumsum(rng.exponential(3.0, n))
    latency = rng.lognormal(np.log(2200), 0.55, n) * latency_multiplier
    cost = rng.gamma(2.0, 0.006, n) * cost_multiplier
    tokens_in = rng.poisson(2400, n)
    tokens_out = rng.poisson(280, n)
    answers_with_citations = np.isin(task, ["policy_qa", "policy_lookup"]) | (rng.random(n) < 0.2)
    flags = {k: rng.random(n) < rates.get(k, p) for k, p in PRODUCTION_RATES.items()}
    feedback = rng.random(n)
    judged = rng.random(n) < 0.3
    grounded = np.clip(rng.normal(0.86 - 0.5 * flags["citation_failure"], 0.1), 0, 1)
    out = []
    for i in range(n):
        rec: dict[str, Any] = {
            "request_id": f"{prefix}-{i:06d}", "time": (start + timedelta(seconds=float(seconds[i]))).isoformat(),
            "tenant": str(tenant[i]), "slices": {"task": str(task[i]), "language": str(language[i])},
            "latency_ms": round(float(latency[i]), 1), "cost_usd": round(float(cost[i]), 6),
            "input_tokens": int(tokens_in[i]), "output_tokens": int(tokens_out[i]),
            **{k: bool(v[i]) for k, v in flags.items() if k != "citation_failure"},
        }
        if answers_with_citations[i]:
            rec["citation_failure"] = bool(flags["citation_failure"][i])
        if feedback[i] < 0.05:
            rec["feedback"] = "negative" if feedback[i] < 0.01 else "positive"
        if judged[i]:
            rec["scores"] = {"groundedness": round(float(grounded[i]), 3)}
        out.append(rec)
    return out


POLICY_DOCS = [f"POL-{i:04d}" for i in (42, 107, 12, 388, 215, 77, 19, 301, 5, 64, 150, 233)]
ANSWERS = [
    "No: per {a} §3 a case may not be closed while an appeal is pending; see also {b}.",
    "Yes, per {a} a case worker may reassign the case after the supervisor signs off ({b}).",
    "Per {a}, retention is 7 years for closed cases; {b} covers exceptions.",
    "Escalate to the compliance desk: {a} requires a second review for this category ({b}).",
]


def _shadow_pairs(rng: np.random.Generator, n: int, start: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Production requests with their answers and retrieval, and a shadow of the new index on the same requests:
    the index ranks German policy look-ups differently, and there the answers follow the retrieval."""
    prod = _traffic(rng, n, start, "req-1120", {})
    shadow = []
    docs = np.array(POLICY_DOCS)
    for i, p in enumerate(prod):
        ranked = list(rng.permutation(docs)[:5])
        template = ANSWERS[i % len(ANSWERS)]
        p["retrieved_ids"] = ranked
        p["answer"] = template.format(a=ranked[0], b=ranked[1])
        if i == 7:
            p["answer"] = "<script>alert('x')</script> See [the policy](javascript:alert(1)) per " + ranked[0]
        p["tool_calls"] = [{"name": "search_policies", "side_effect": False}]
        s = {k: v for k, v in p.items() if k not in ("feedback",)}
        s["latency_ms"] = round(p["latency_ms"] * float(rng.normal(1.08, 0.05)), 1)
        s["cost_usd"] = round(p["cost_usd"] * float(rng.normal(1.02, 0.03)), 6)
        diverges = p["slices"]["language"] == "de" and p["slices"]["task"] in ("policy_lookup", "policy_qa")
        if diverges:
            new = [ranked[2], str(rng.choice(docs)), ranked[0], str(rng.choice(docs)), ranked[4]]
            s["retrieved_ids"] = list(dict.fromkeys(new))
            s["answer"] = template.format(a=s["retrieved_ids"][0], b=s["retrieved_ids"][1])
            if "scores" in p:
                s["scores"] = {"groundedness": round(max(0.0, p["scores"]["groundedness"] - 0.15), 3)}
        elif rng.random() < 0.1:
            s["answer"] = "  " + p["answer"].upper().replace(";", " ;") + " "  # same words, other form
        if i in (31, 532, 977):
            s["tool_calls"] = [{"name": "search_policies", "side_effect": False},
                               {"name": "update_case_status", "side_effect": True}]
        shadow.append(s)
    return prod, shadow


def observation_files(out: Path) -> list[tuple[Path, str, str]]:
    """Write the demo's production observations as JSONL: [(file, release, variant)], deterministic."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, str, str]] = []

    def write(name: str, rows: list[dict[str, Any]], release: str, variant: str) -> None:
        path = out / name
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
        written.append((path, release, variant))

    for story in CANARY_STORIES:
        rng = _rng("observations", story.release_id, story.seed)
        day = story.start.strftime("%m%d")
        write(f"{story.release_id}-baseline.jsonl", _traffic(rng, story.requests, story.start, f"req-{day}", {}),
              BASELINE_ID, "baseline")
        write(f"{story.release_id}-canary.jsonl",
              _traffic(rng, story.requests, story.start, f"req-{day}c", story.rates, story.latency_multiplier,
                       story.cost_multiplier), story.release_id, "canary")
    prod, shadow = _shadow_pairs(_rng("observations", SHADOW_RELEASE), 1200, datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    write("shadow-production.jsonl", prod, BASELINE_ID, "baseline")
    write(f"{SHADOW_RELEASE}-shadow.jsonl", shadow, SHADOW_RELEASE, "shadow")
    return written


def load_observations(store: Store) -> int:
    """Ingest the demo's production observations (idempotent: a file already stored is skipped)."""
    import tempfile

    from dashboard.ingesting import observe

    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path, release, variant in observation_files(Path(tmp)):
            report = observe(store, [path], release, variant)
            total += sum(f.records for f in report.files)
    return total
