"""Gate evaluation: policy + metric values + manifest diff + evidence -> one deterministic decision.

Pure: the caller (dashboard.service) fetches metric values from the store. Fail closed
everywhere: an empty slice, a too-small slice, a metric that cannot be computed, a missing
baseline for a relative condition, or missing required evidence fails its gate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused, Problem, UnknownFormat
from dashboard.core.manifests import ArtifactChange
from dashboard.core.metrics import EVIDENCE_PREFIX, MetricValue
from dashboard.core.models import ReleaseEvidence
from dashboard.core.numbers import fmt_value
from dashboard.core.policy import (
    MAX_EXPANDED_GATES,
    MAX_SLICES_PER_GATE,
    SEVERITY_ORDER,
    Condition,
    Gate,
    GatePolicy,
    SliceSpec,
)
from dashboard.core.rollout import rollout_loosened
from dashboard.core.stats import (
    Paired,
    benjamini_hochberg,
    changed_diff_lower,
    holm_levels,
    mcnemar_exact,
    paired_diff_interval,
    slice_p_value,
)

DECISION_SCHEMA = "readiness.decision/v1"
GateStatus = Literal["pass", "fail", "skipped"]
DecisionStatus = Literal["approved", "approved_with_warnings", "blocked"]
# Where a change requirement's gate is filed.
CHANGE_CATEGORY = {"code": "quality", "image": "quality", "prompts": "quality", "model_routes": "quality",
                   "indexes": "rag", "tools": "tool", "workflows": "agent", "eval_datasets": "quality",
                   "config": "observability", "governance_policy": "privacy_governance"}

# slice value ("" when the gate is not expanded) -> metric -> value
SliceValues = dict[str, dict[str, MetricValue]]


def spec_key(spec: SliceSpec) -> str:
    return spec.model_dump_json()


PAIRED_RISK = {"critical_pass_rate": ["critical"], "high_risk_pass_rate": ["high", "critical"]}


def paired_key(gate: Gate) -> str:
    """Paired counts depend on the slice and on the metric's own risk filter."""
    return spec_key(gate.slice) + "|" + gate.metric


class Reason(StrEnum):
    """Why a gate result has its status: evaluation branches on these codes, `REASON_WORDS` says them in words."""

    NOT_CHANGED = "not_changed"
    EVIDENCE = "evidence"
    NO_CANDIDATE_CASES = "no_candidate_cases"
    NOT_COMPUTABLE = "not_computable"
    TOO_SMALL = "too_small"
    NO_BASELINE = "no_baseline"
    BASELINE_NOT_COMPUTABLE = "baseline_not_computable"
    NO_INTERVAL = "no_interval"
    MEETS = "meets"
    FAILS = "fails"
    TOO_MANY_SLICES = "too_many_slices"
    NEW_SLICE = "new_slice"
    NO_SHARED_CASES = "no_shared_cases"
    TOO_FEW_SHARED = "too_few_shared"
    NON_INFERIOR = "non_inferior"
    NOT_NON_INFERIOR = "not_non_inferior"
    REGRESSION = "regression"
    WITHIN_NOISE = "within_noise"
    REQUIREMENT_MET = "requirement_met"
    REQUIREMENT_BY_SUITE = "requirement_by_suite"
    REQUIREMENT_FAILED = "requirement_failed"
    REQUIREMENT_MISSING = "requirement_missing"
    DATASET_KEPT = "dataset_kept"
    DATASET_WEAKENED = "dataset_weakened"


# The words of each reason (str.format fields are the facts the judgement passes). These words are part of the
# decision's bytes and digest: change one only with a new decision schema version.
REASON_WORDS: dict[Reason, str] = {
    Reason.NOT_CHANGED: "runs only when {kinds} change; none did",
    Reason.EVIDENCE: "{words}",
    Reason.NO_CANDIDATE_CASES: "the slice has no cases in the candidate",
    Reason.NOT_COMPUTABLE: "metric cannot be computed: {why}",
    Reason.TOO_SMALL: "too small to judge: {n} cases < minimum {minimum}",
    Reason.NO_BASELINE: "no baseline release to compare with",
    Reason.BASELINE_NOT_COMPUTABLE: "baseline metric cannot be computed: {why}",
    Reason.NO_INTERVAL: "{statistic} needs an interval, and {metric} has none",
    Reason.MEETS: "{observed} meets {op} {bound}{base}",
    Reason.FAILS: "{observed} fails {op} {bound}{base}",
    Reason.TOO_MANY_SLICES: ("{dimension} has {n} values on these releases: more than {limit} slices are too many "
                             "to judge one by one (docs/policy.md, Limits)"),
    Reason.NEW_SLICE: ("new: not comparable: the baseline has no cases in this slice (new eval coverage); the "
                       "absolute gates judge it"),
    Reason.NO_SHARED_CASES: "no shared cases with the baseline: a paired test cannot approve this gate",
    Reason.TOO_FEW_SHARED: "too small to judge: {n} shared cases < minimum {minimum}",
    Reason.NON_INFERIOR: "non-inferior: difference {diff:+.3f}, 95% lower bound {lower:+.3f} > -{margin:g} "
                         "({shared} shared cases){more}",
    Reason.NOT_NON_INFERIOR: "not shown non-inferior: difference {diff:+.3f}, 95% lower bound {lower:+.3f} <= "
                             "-{margin:g} ({shared} shared cases){more}",
    Reason.REGRESSION: "regression: {facts}; p={p:.3g}{bh} < {level} that the candidate is {worse}",
    Reason.WITHIN_NOISE: "within noise: {facts}; p={p:.3g}{bh} ≥ {level}",
    Reason.REQUIREMENT_MET: "{words}",
    Reason.REQUIREMENT_BY_SUITE: "provided by eval suite {suites}",
    Reason.REQUIREMENT_FAILED: "{kind} changed: required evidence {requirement!r} failed",
    Reason.REQUIREMENT_MISSING: "{kind} changed: required evidence {requirement!r} is missing",
    Reason.DATASET_KEPT: "no critical case removed or downgraded since the baseline",
    Reason.DATASET_WEAKENED: "{parts}",
}
# Reasons that fail a gate before any comparison: the candidate side could not be judged at all.
CANDIDATE_UNJUDGEABLE = frozenset({Reason.NO_CANDIDATE_CASES, Reason.NOT_COMPUTABLE, Reason.TOO_SMALL})


class CaseFilter(BaseModel):
    """The cases behind a gate result, for drill-down and audit."""

    release_id: str = Field(description="The release whose cases these are.")
    risk: list[str] | None = Field(None, description="Risk levels kept; null: every risk level.")
    suite: list[str] | None = Field(None, description="Suites kept; null: every suite.")
    where: dict[str, list[str]] = Field(default_factory=dict,
                                        description="Other dimensions (task, language, tenant, ...) and the values kept.")


class GateResult(BaseModel):
    """One gate judged on one slice."""

    gate_id: str = Field(description='The policy gate id; "<policy gate id>[<dimension>=<value>]" for each slice '
                                     "of a for_each gate.")
    policy_gate_id: str = Field(description="The gate's id in the policy.")
    name: str = Field(description="The gate's human name from the policy.")
    category: str = Field(description="quality, rag, agent, security, cost, latency, ... (the policy's category).")
    severity: str = Field(description="blocker, warning or informational: what a failure does to the decision.")
    metric: str = Field(description="The metric judged (see docs/policy.md for the catalogue).")
    slice: str = Field(description="The slice judged, in words (e.g. 'risk in [critical]').")
    slice_value: str | None = Field(None, description="The value of an expanded (for_each) gate's dimension.")
    condition: str = Field(description="The policy's condition, as written.")
    status: GateStatus = Field(description="pass, fail, or skipped (a gate that does not apply; never a pass "
                                           "for missing data, which fails).")
    observed: float | None = Field(None, description="The candidate's value; null when it could not be computed.")
    baseline: float | None = Field(None, description="The baseline's value, for relative conditions.")
    threshold: float | None = Field(None, description="The number the observed value was compared with.")
    interval: tuple[float, float] | None = Field(None, description="95% interval of the observed value, where known.")
    interval_method: str | None = Field(None, description="How the interval was computed (e.g. wilson).")
    n: int = Field(0, description="Cases (or items) behind the observed value.")
    n_baseline: int | None = Field(None, description="Cases behind the baseline value.")
    reason: str = Field(description="Why the gate has this status, in words.")
    evidence_ref: CaseFilter | None = Field(None, description="The cases behind this result, for drill-down.")
    paired: PairedResult | None = Field(None, description="The paired comparison, for paired conditions.")


class PairedResult(BaseModel):
    """A paired comparison on the cases both releases ran."""

    shared_cases: int = Field(description="Cases both releases ran with the same content.")
    regressions: int = Field(description="Shared cases the baseline passed and the candidate failed.")
    fixes: int = Field(description="Shared cases the baseline failed and the candidate passed.")
    diff: float = Field(description="Candidate minus baseline pass rate on the shared cases.")
    diff_interval: tuple[float, float] | None = Field(description="95% interval of diff (paired).")
    mcnemar_p: float = Field(description="Two-sided exact McNemar p on the shared cases.")
    p_value: float | None = Field(None, description="One-sided p of the regression test (no_regression), changed "
                                                    "cases included.")
    p_adjusted: float | None = Field(None, description="Benjamini–Hochberg adjusted p over the gate's slices.")
    slices_tested: int = Field(1, description="How many slices the gate tested (the BH family).")
    # Present only when they apply (absent fields keep earlier decisions' bytes and digests unchanged):
    changed_cases: int | None = Field(None, description="Same suite and case id, different content: judged unpaired.")
    changed_failing: int | None = Field(None, description="Changed cases failing in the candidate.")
    changed_baseline_failing: int | None = Field(None, description="Changed cases that failed in the baseline.")
    changed_p: float | None = Field(None, description="One-sided unpaired p on the changed cases (no_regression).")
    pairing: str | None = Field(None, description="Which per-case outcome was paired, when a case ran more than once.")
    level: float | None = Field(None, description="The level this gate's slices were judged at, when Holm split "
                                                  "alpha across the release's paired blockers.")

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in _OPTIONAL_PAIRED:
            if data.get(key) is None:
                data.pop(key, None)
        return data


_OPTIONAL_PAIRED = ("changed_cases", "changed_failing", "changed_baseline_failing", "changed_p", "pairing", "level")
PAIRING_NOTE = ("paired on one designated repeat per case (its record in the run whose run_id sorts first), "
                "never on all repeats")


class ReleaseRef(BaseModel):
    release_id: str = Field(description="The release id from its manifest.")
    manifest_digest: str = Field(description="sha256 of the manifest's canonical JSON (RFC 8785).")


class PolicyRef(BaseModel):
    policy_id: str = Field(description="The policy's id.")
    version: str = Field(description="The policy's version, as written in it.")
    digest: str = Field(description="sha256 of the policy's canonical JSON: what was actually judged.")


class RunDigest(BaseModel):
    release_id: str = Field(description="The release the run belongs to.")
    run_id: str = Field(description="The eval run's id.")
    data_digest: str = Field(description="sha256 over the run's stored case records.")


class DatasetChanges(BaseModel):
    """What changed in the eval datasets between baseline and candidate (seed §28)."""

    dataset: str = Field(description="The eval dataset (suite).")
    added: int = Field(description="Cases only the candidate has.")
    removed: int = Field(description="Cases only the baseline has.")
    changed: int = Field(description="Cases with the same id and different content.")
    downgraded: int = Field(description="Cases whose risk level went down.")
    critical_removed: list[str] = Field(default_factory=list, description="Critical cases removed (first 20 ids).")
    critical_downgraded: list[str] = Field(default_factory=list, description="Critical cases downgraded (first 20).")
    critical_changed_failing: list[str] = Field(default_factory=list,
                                                description="Critical cases whose content changed and that fail now.")


class LoosenedGate(BaseModel):
    gate_id: str = Field(description="The gate that got looser.")
    change: str = Field(description="What got looser, in words.")


class PolicyComparison(BaseModel):
    """The previous version of the same policy, judged on the same data (seed §28)."""

    previous_version: str = Field(description="The previous policy's version.")
    previous_digest: str = Field(description="The previous policy's digest (given with --previous-policy).")
    previous_status: DecisionStatus = Field(description="The decision the previous policy gives on the same data.")
    loosened: list[LoosenedGate] = Field(description="Gates the new policy judges more loosely.")
    outcome_changes: list[tuple[str, str, str]] = Field(description="(gate id, previous status, current status) "
                                                                    "for gates whose outcome changed.")


class GateDecision(BaseModel):
    """The release decision and everything it judged, named by digests (seed §20)."""

    schema_version: str = Field(DECISION_SCHEMA, description="The decision format; readers refuse unknown ones.")
    status: DecisionStatus = Field(description="approved, approved_with_warnings or blocked (seed §20).")
    candidate: ReleaseRef = Field(description="The release judged.")
    baseline: ReleaseRef | None = Field(description="The release it was compared with; null: absolute gates only.")
    policy: PolicyRef = Field(description="The gate policy judged, by version and digest.")
    profile: str | None = Field(description="The policy profile whose gates ran; null: every gate.")
    changed_artifacts: list[ArtifactChange] = Field(description="Artifacts whose versions differ from the baseline.")
    evidence_digest: str | None = Field(description="sha256 of the release's evidence file; null: none attached.")
    rollout_digest: str | None = Field(None, description="sha256 of everything the rollout gates judged (the rollout "
                                                         "evidence, stored incidents and artifact digests, the "
                                                         "candidate's outcome on incident cases); absent: the policy "
                                                         "has no rollout section.")
    data_digests: list[RunDigest] = Field(description="Every eval run judged, by its data digest.")
    notes: list[str] = Field(default_factory=list, description="Facts a reader should know (not gate results).")
    comparability: list[str] = Field(default_factory=list,
                                     description="Differences that limit the comparison (dataset, judge or scorer "
                                                 "versions).")
    dataset_changes: list[DatasetChanges] = Field(default_factory=list,
                                                  description="Eval dataset changes between the releases (seed §28).")
    policy_comparison: PolicyComparison | None = Field(None, description="The previous policy on the same data, "
                                                                         "when one was named.")
    gates: list[GateResult] = Field(description="Every gate result, in policy order.")
    blockers: list[str] = Field(description="Ids of failed blocker gates.")
    warnings: list[str] = Field(description="Ids of failed warning gates.")
    digest: str = Field("", description="sha256 of the canonical JSON of every other field.")

    @model_serializer(mode="wrap")
    def _omit_absent_rollout(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # decisions without rollout gates keep their bytes and digests
        if data.get("rollout_digest") is None:
            data.pop("rollout_digest", None)
        return data

    def with_digest(self) -> GateDecision:
        body = self.model_dump(mode="json", exclude={"digest"})
        return self.model_copy(update={"digest": digest(body)})

    def verify_digest(self) -> bool:
        return self.with_digest().digest == self.digest

    def judged(self) -> list[tuple[str, str]]:
        """What this decision judged, by digest, as (label, value) lines: the one list every report and page shows."""
        return ([("decision", self.digest),
                 ("candidate", f"{self.candidate.release_id} manifest {self.candidate.manifest_digest}"),
                 ("baseline", f"{self.baseline.release_id} manifest {self.baseline.manifest_digest}"
                  if self.baseline else "none"),
                 ("policy", f"{self.policy.policy_id} v{self.policy.version} {self.policy.digest}"),
                 ("evidence", self.evidence_digest or "none")]
                + ([("rollout", self.rollout_digest)] if self.rollout_digest else [])
                + [("run", f"{r.release_id} {r.run_id} {r.data_digest}") for r in self.data_digests])

    def judged_block(self) -> str:
        """`judged()` as aligned plain-text lines (for a code block)."""
        return "\n".join(f"{label:<9} {value}" for label, value in self.judged())

    def failed(self, severities: tuple[str, ...] = ("blocker", "warning")) -> list[GateResult]:
        """The failed gates of these severities, in policy order."""
        return [g for g in self.gates if g.status == "fail" and g.severity in severities]


# Readers upgrade an older stored decision step by step: schema_version -> function returning the next version's
# JSON object. Empty while only v1 exists; the next format change adds its step here (and a test with an old file).
DECISION_MIGRATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def load_decision(text: str | bytes, source: str = "decision") -> GateDecision:
    """A stored or exported decision, read back: JSON object, a known schema_version (older ones migrated),
    valid fields. Raises InputRefused naming the source and the field."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InputRefused([Problem(source, "", "", f"not a JSON decision: {str(e)[:200]}")]) from e
    if not isinstance(data, dict):
        raise InputRefused([Problem(source, "", "", "a decision is a JSON object")])
    version = data.get("schema_version")
    seen = set()
    while version != DECISION_SCHEMA and version in DECISION_MIGRATIONS and version not in seen:
        seen.add(version)
        data = DECISION_MIGRATIONS[version](data)
        version = data.get("schema_version")
    if version != DECISION_SCHEMA:
        raise UnknownFormat([Problem(source, "", "schema_version",
                                    f"{str(version)[:80]!r} is not a decision format this readiness reads "
                                    f"({DECISION_SCHEMA}); a newer readiness wrote it, or it is not a decision")])
    try:
        return GateDecision.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputRefused([Problem(source, "", field, err["msg"])]) from e


def decide(gates: list[GateResult]) -> tuple[DecisionStatus, list[str], list[str]]:
    """Seed §20: any failed blocker blocks; else any failed warning approves with warnings."""
    blockers = [g.gate_id for g in gates if g.status == "fail" and g.severity == "blocker"]
    warnings = [g.gate_id for g in gates if g.status == "fail" and g.severity == "warning"]
    status: DecisionStatus = "blocked" if blockers else ("approved_with_warnings" if warnings else "approved")
    return status, blockers, warnings


def _case_filter(release_id: str, spec: SliceSpec, value: str, metric_risk: list[str] | None = None) -> CaseFilter:
    """`metric_risk`: the risk levels a paired metric keeps (critical_pass_rate: critical), so the cases behind a
    paired gate are exactly the cases it paired."""
    where = {k: list(v) for k, v in spec.where.items()}
    risk, suite = spec.risk, spec.suite
    if metric_risk is not None:
        risk = [r for r in (risk if risk is not None else metric_risk) if r in metric_risk]
    if spec.for_each == "risk":
        risk = [value]
    elif spec.for_each == "suite":
        suite = [value]
    elif spec.for_each:
        where[spec.for_each] = [value]
    return CaseFilter(release_id=release_id, risk=risk, suite=suite, where=where)


def _evidence_value(metric: str, evidence: ReleaseEvidence | None) -> tuple[float | None, str]:
    kind = metric.removeprefix(EVIDENCE_PREFIX)
    if evidence is None:
        return None, f"no evidence file is attached to the release (needed: {kind})"
    if kind == "owners_named":
        named = bool(evidence.release_owner and evidence.rollback_owner)
        return (1.0 if named else 0.0), ("release and rollback owners named" if named
                                         else "release owner and rollback owner must both be named")
    items = [i for i in evidence.items if i.kind == kind]
    if not items:
        return None, f"no evidence of kind {kind!r} is attached to the release"
    ok = all(i.passed for i in items)
    refs = ", ".join(i.ref for i in items if i.ref)
    return (1.0 if ok else 0.0), (f"{kind} {'passed' if ok else 'failed'}" + (f" ({refs})" if refs else ""))


@dataclass
class _Judged:
    """A gate result while judging, with the code of its reason (evaluation branches on codes, never on words)."""

    result: GateResult
    code: Reason


def _say(result: GateResult, code: Reason, **facts: Any) -> _Judged:
    """Give `result` the words of `code` with these facts."""
    result.reason = REASON_WORDS[code].format(**facts)
    return _Judged(result, code)


def _result(gate: Gate, **fields: Any) -> GateResult:
    """A result of `gate` with the policy's own fields filled in."""
    base = {"gate_id": gate.id, "policy_gate_id": gate.id, "name": gate.name, "category": gate.category,
            "severity": gate.severity, "metric": gate.metric, "slice": gate.slice.label(),
            "condition": gate.condition.text, "status": "fail", "reason": ""}
    return GateResult(**(base | fields))


def _judge(gate: Gate, gate_id: str, slice_label: str, cand: MetricValue | None, base: MetricValue | None,
           has_baseline: bool, min_samples: int, ref: CaseFilter | None, slice_value: str | None = None) -> _Judged:
    cond = gate.condition
    result = _result(gate, gate_id=gate_id, slice=slice_label, slice_value=slice_value, evidence_ref=ref)
    if cand is None or cand.n_cases == 0:
        return _say(result, Reason.NO_CANDIDATE_CASES)
    result.n = cand.n_eligible  # the cases the metric is computed over (e.g. critical cases only)
    result.observed = cand.value
    result.interval, result.interval_method = cand.interval, cand.interval_method
    if base is not None:
        result.n_baseline = base.n_eligible
        result.baseline = base.value
    if cand.value is None:
        return _say(result, Reason.NOT_COMPUTABLE, why=cand.why_missing)
    if cand.n_eligible < min_samples:
        return _say(result, Reason.TOO_SMALL, n=cand.n_eligible, minimum=min_samples)
    if cond.relative:
        if not has_baseline:
            return _say(result, Reason.NO_BASELINE)
        if base is None or base.value is None:
            why = base.why_missing if base is not None else "the slice has no cases in the baseline"
            return _say(result, Reason.BASELINE_NOT_COMPUTABLE, why=why)
    bound = cond.bound(result.baseline)
    assert bound is not None
    result.threshold = bound
    observed = cand.value
    if cond.statistic != "value":
        if result.interval is None:
            return _say(result, Reason.NO_INTERVAL, statistic=cond.statistic, metric=gate.metric)
        observed = result.interval[0] if cond.statistic == "lower95" else result.interval[1]
    ok = cond.holds(observed, bound)
    result.status = "pass" if ok else "fail"
    shown = fmt_value(observed, bound)
    return _say(result, Reason.MEETS if ok else Reason.FAILS,
                observed=f"{cond.statistic} {shown}" if cond.statistic != "value" else shown, op=cond.op,
                bound=fmt_value(bound, observed),
                base=f" (baseline {fmt_value(result.baseline)})" if cond.relative else "")


@dataclass
class _Family:
    """The tested slices of one no_regression gate, with their (BH-adjusted, for an expanded gate) p-values."""

    gate: Gate
    slices: list[tuple[GateResult, float]]


def _new_slice(gate: Gate, value: str | None, base_slices: dict[str, dict[str, MetricValue]]) -> bool:
    """An expanded slice the baseline has no case of (new eval coverage): nothing to compare it with."""
    if not gate.slice.for_each or value is None:
        return False
    base = base_slices.get(value, {}).get(gate.metric)
    return base is None or base.n_cases == 0 or base.n_eligible == 0


def _judge_paired(gate: Gate, policy: GatePolicy, base_results: list[_Judged], pairs: dict[str, Paired],
                  has_baseline: bool, base_slices: dict[str, dict[str, MetricValue]]) -> _Family:
    """Paired tests on shared cases, one per slice, plus an unpaired test on the changed cases; for an expanded
    gate the regression tests' p-values are adjusted with Benjamini–Hochberg across its slices. no_regression
    verdicts are given by `_regression_verdicts` once every gate is known (release-level error control)."""
    cond = gate.condition
    minimum = gate.min_samples or policy.min_samples
    tested: list[tuple[GateResult, Paired]] = []
    for judged in base_results:
        r = judged.result
        if has_baseline and r.n > 0 and _new_slice(gate, r.slice_value, base_slices):
            # New eval coverage, whatever its size: nothing to pair it with, so nothing for a paired test to judge.
            r.threshold, r.status = None, "skipped"
            _say(r, Reason.NEW_SLICE)
            continue
        if r.status == "fail" and judged.code in CANDIDATE_UNJUDGEABLE:
            continue  # already failed closed on the candidate side
        p = pairs.get(r.slice_value or "")
        r.threshold, r.status = None, "fail"
        if not has_baseline:
            _say(r, Reason.NO_BASELINE)
        elif p is None or p.n == 0:
            _say(r, Reason.NO_SHARED_CASES)
        elif p.n < minimum:
            _say(r, Reason.TOO_FEW_SHARED, n=p.n, minimum=minimum)
        else:
            r.paired = PairedResult(shared_cases=p.n, regressions=p.regressions, fixes=p.fixes, diff=p.diff,
                                    diff_interval=paired_diff_interval(p), mcnemar_p=mcnemar_exact(p.regressions, p.fixes))
            if p.changed:
                r.paired.changed_cases = p.changed
                r.paired.changed_failing = p.changed - p.changed_passed
                r.paired.changed_baseline_failing = p.changed - p.changed_baseline_passed
            if p.max_repeats > 1:
                r.paired.pairing = PAIRING_NOTE
            tested.append((r, p))
    family = _Family(gate=gate, slices=[])
    if cond.test == "no_regression":
        raw = [slice_p_value(p, cond.margin) for _, p in tested]
        combined = [c for c, _ in raw]
        adjusted = benjamini_hochberg(combined) if gate.slice.for_each else combined
        for (r, _), (p_raw, p_changed), p_adj in zip(tested, raw, adjusted, strict=True):
            assert r.paired is not None
            r.paired.p_value, r.paired.p_adjusted, r.paired.slices_tested = p_raw, p_adj, len(tested)
            r.paired.changed_p = p_changed
            family.slices.append((r, p_adj))
    else:
        for r, p in tested:
            _non_inferiority_verdict(r, p, cond.margin)
    return family


def _non_inferiority_verdict(r: GateResult, p: Paired, margin: float) -> None:
    """non_inferior: the lower 95% bound of the paired difference must be above -margin (changed cases too)."""
    assert r.paired is not None
    lo = r.paired.diff_interval[0] if r.paired.diff_interval else -1.0
    r.threshold = -margin
    ok = lo > -margin
    more = ""
    if p.changed:
        lo_changed = changed_diff_lower(p)
        ok_changed = lo_changed > -margin
        more += (f"; {p.changed} changed cases judged unpaired: 95% lower bound {lo_changed:+.3f} "
                 f"{'>' if ok_changed else '<='} -{margin:g}")
    if r.paired.pairing:
        more += f"; {r.paired.pairing}"
    _say(r, Reason.NON_INFERIOR if ok else Reason.NOT_NON_INFERIOR, diff=r.paired.diff, lower=lo, margin=margin,
         shared=r.paired.shared_cases, more=more)
    r.status = "pass" if ok and (not p.changed or changed_diff_lower(p) > -margin) else "fail"


def _regression_verdicts(families: list[_Family], alpha: float) -> None:
    """Release-level error control for no_regression gates. Each gate is one family: its p is its slice's p, or
    for an expanded gate the smallest BH-adjusted p (Simes' test of 'no slice regressed'). Holm's procedure runs
    across the blocker families, so an unchanged release is blocked by them together with probability <= alpha;
    inside a family judged at level L, a slice fails when its (BH-adjusted) p < L. Warnings and informational
    gates keep alpha each."""
    blockers = [f for f in families if f.gate.severity == "blocker" and f.slices]
    levels = {id(f): alpha for f in families}
    if len(blockers) > 1:
        for f, level in zip(blockers, holm_levels([min(p for _, p in f.slices) for f in blockers], alpha),
                            strict=True):
            levels[id(f)] = level
    for f in families:
        level = levels[id(f)]
        split = len(blockers) > 1 and any(f is b for b in blockers)
        cond = f.gate.condition
        for r, p_adj in f.slices:
            assert r.paired is not None and r.paired.p_value is not None
            if split:
                r.paired.level = level
            facts = (f"{r.paired.shared_cases} shared cases: {r.paired.regressions} regressions, {r.paired.fixes} "
                     f"fixes, difference {r.paired.diff:+.3f}")
            if r.paired.changed_cases:
                facts += (f"; {r.paired.changed_cases} changed cases judged unpaired: {r.paired.changed_failing} "
                          f"fail now, {r.paired.changed_baseline_failing} failed before (p={r.paired.changed_p:.3g}), "
                          "combined with the paired test by weighted Bonferroni")
            if r.paired.pairing:
                facts += f"; {r.paired.pairing}"
            r.status = "fail" if p_adj < level else "pass"
            _say(r, Reason.REGRESSION if p_adj < level else Reason.WITHIN_NOISE, facts=facts, p=r.paired.p_value,
                 bh=f", BH-adjusted over {len(f.slices)} slices {p_adj:.3g}" if f.gate.slice.for_each else "",
                 level=(f"Holm level {level:.3g} (α {alpha:g} across {len(blockers)} paired blockers)" if split
                        else f"α {alpha:g}"),
                 worse=f"worse by more than {cond.margin:g}" if cond.margin else "worse")


@dataclass(frozen=True, kw_only=True)
class EvaluationInputs:
    """Everything one decision judges. The service fills it from the store; `evaluate` is a pure function of it.
    `*_values` are keyed by spec_key(gate.slice); `paired` by paired_key(gate), then slice value."""

    policy: GatePolicy
    profile: str | None
    candidate: ReleaseRef
    baseline: ReleaseRef | None
    changes: list[ArtifactChange]
    candidate_values: dict[str, SliceValues]
    baseline_values: dict[str, SliceValues]
    evidence: ReleaseEvidence | None = None
    evidence_digest: str | None = None
    candidate_suites: set[str] = dc_field(default_factory=set)
    data_digests: list[RunDigest] = dc_field(default_factory=list)
    notes: list[str] = dc_field(default_factory=list)
    paired: dict[str, dict[str, Paired]] = dc_field(default_factory=dict)
    extra_gates: list[GateResult] = dc_field(default_factory=list)
    comparability: list[str] = dc_field(default_factory=list)
    dataset_changes: list[DatasetChanges] = dc_field(default_factory=list)


def _skipped_gate(gate: Gate) -> GateResult:
    """A gate that runs only when some artifact kinds change, and none of them did."""
    return _say(_result(gate, status="skipped"), Reason.NOT_CHANGED, kinds=", ".join(gate.when_changed or [])).result


def _evidence_gate(gate: Gate, evidence: ReleaseEvidence | None) -> GateResult:
    """A gate on attached release evidence (metric `evidence.<kind>`)."""
    value, why = _evidence_value(gate.metric, evidence)
    ok = value is not None and gate.condition.holds(value, gate.condition.bound(None) or 0.0)
    return _say(_result(gate, slice="release evidence", status="pass" if ok else "fail", observed=value,
                        threshold=gate.condition.threshold), Reason.EVIDENCE, words=why).result


def _slice_gates(gate: Gate, inputs: EvaluationInputs) -> list[_Judged]:
    """A metric gate judged on its slice, or on each value of its for_each dimension."""
    min_samples = gate.min_samples or inputs.policy.min_samples
    has_baseline = inputs.baseline is not None
    key = spec_key(gate.slice)
    metric_risk = PAIRED_RISK.get(gate.metric) if gate.condition.test else None
    cand_slices = inputs.candidate_values.get(key, {})
    base_slices = inputs.baseline_values.get(key, {})

    def ref(value: str) -> CaseFilter:
        return _case_filter(inputs.candidate.release_id, gate.slice, value, metric_risk)

    if not gate.slice.for_each:
        return [_judge(gate, gate.id, gate.slice.label(), cand_slices.get("", {}).get(gate.metric),
                       base_slices.get("", {}).get(gate.metric), has_baseline, min_samples, ref(""))]
    values = sorted(set(cand_slices) | set(base_slices))
    if len(values) > MAX_SLICES_PER_GATE:
        result = _judge(gate, gate.id, gate.slice.label(), None, None, has_baseline, min_samples, ref("")).result
        return [_say(result, Reason.TOO_MANY_SLICES, dimension=gate.slice.for_each, n=len(values),
                     limit=MAX_SLICES_PER_GATE)]
    if not values:
        return [_judge(gate, gate.id, gate.slice.label(), None, None, has_baseline, min_samples, ref(""))]
    return [_judge(gate, f"{gate.id}[{gate.slice.for_each}={v}]", gate.slice.label(v),
                   cand_slices.get(v, {}).get(gate.metric), base_slices.get(v, {}).get(gate.metric),
                   has_baseline, min_samples, ref(v), v) for v in values]


def evaluate(inputs: EvaluationInputs) -> GateDecision:
    """Judge every gate of the profile and decide."""
    policy = inputs.policy
    changed = {c.kind for c in inputs.changes}
    results: list[GateResult] = []
    families: list[_Family] = []
    for gate in policy.gates_for(inputs.profile):
        if gate.when_changed and not changed.intersection(gate.when_changed):
            results.append(_skipped_gate(gate))
        elif gate.metric.startswith(EVIDENCE_PREFIX):
            results.append(_evidence_gate(gate, inputs.evidence))
        else:
            judged = _slice_gates(gate, inputs)
            results += [j.result for j in judged]
            if gate.condition.test and not (len(judged) == 1 and judged[0].code == Reason.TOO_MANY_SLICES):
                families.append(_judge_paired(gate, policy, judged, inputs.paired.get(paired_key(gate), {}),
                                              inputs.baseline is not None,
                                              inputs.baseline_values.get(spec_key(gate.slice), {})))
        if len(results) > MAX_EXPANDED_GATES:
            raise InputRefused(f"policy {policy.policy_id} v{policy.version} expands into more than "
                               f"{MAX_EXPANDED_GATES} gates on these releases (docs/policy.md, Limits)")
    _regression_verdicts(families, policy.alpha)
    results += _change_requirements(policy, changed, inputs.evidence, inputs.candidate_suites)
    results += inputs.extra_gates
    results.sort(key=lambda g: (g.status != "fail", SEVERITY_ORDER[g.severity], g.category, g.gate_id))
    status, blockers, warnings = decide(results)
    decision = GateDecision(
        status=status, candidate=inputs.candidate, baseline=inputs.baseline,
        policy=PolicyRef(policy_id=policy.policy_id, version=policy.version, digest=policy.digest),
        profile=inputs.profile or policy.default_profile, changed_artifacts=inputs.changes,
        evidence_digest=inputs.evidence_digest,
        data_digests=sorted(inputs.data_digests, key=lambda d: (d.release_id, d.run_id)), notes=inputs.notes,
        comparability=inputs.comparability, dataset_changes=inputs.dataset_changes,
        gates=results, blockers=blockers, warnings=warnings,
    )
    return decision.with_digest()


def _change_requirements(policy: GatePolicy, changed: set[str], evidence: ReleaseEvidence | None,
                         candidate_suites: set[str]) -> list[GateResult]:
    """Seed §29-32: each changed artifact kind needs its evidence; missing evidence fails closed."""
    out = []
    for kind in sorted(changed.intersection(policy.change_requirements)):
        for req in policy.change_requirements[kind]:
            suites = sorted(set(policy.suite_evidence.get(req, [])) & candidate_suites)
            value, why = _evidence_value(EVIDENCE_PREFIX + req, evidence)
            result = GateResult(
                gate_id=f"change.{kind}.{req}", policy_gate_id=f"change.{kind}.{req}",
                name=f"{kind} change requires {req}", category=CHANGE_CATEGORY[kind],
                severity=policy.change_requirement_severity, metric=EVIDENCE_PREFIX + req, slice="release evidence",
                condition="present and passed", status="pass" if value == 1.0 or suites else "fail",
                observed=value, reason="")
            if value == 1.0:
                _say(result, Reason.REQUIREMENT_MET, words=why)
            elif suites:
                _say(result, Reason.REQUIREMENT_BY_SUITE, suites=", ".join(suites))
            else:
                _say(result, Reason.REQUIREMENT_FAILED if value == 0.0 else Reason.REQUIREMENT_MISSING, kind=kind,
                     requirement=req)
            out.append(result)
    return out


def _listed(ids: list[str]) -> str:
    return f"{', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}"


def dataset_governance_gate(policy: GatePolicy, changes: list[DatasetChanges]) -> GateResult:
    """Built-in: a removed or downgraded critical case fails (a team can pass a gate by weakening the eval)."""
    removed = [c for d in changes for c in d.critical_removed]
    downgraded = [c for d in changes for c in d.critical_downgraded]
    changed_failing = [c for d in changes for c in d.critical_changed_failing]
    bad = len(removed) + len(downgraded) + len(changed_failing)
    parts = []
    if removed:
        parts.append(f"{len(removed)} critical case(s) removed ({_listed(removed)})")
    if downgraded:
        parts.append(f"{len(downgraded)} critical case(s) downgraded ({_listed(downgraded)})")
    if changed_failing:
        parts.append(f"{len(changed_failing)} critical case(s) changed since the baseline and failing now "
                     f"({_listed(changed_failing)}): a changed case cannot be paired with its old version; review "
                     "the change")
    result = GateResult(
        gate_id="dataset.critical_cases_kept", policy_gate_id="dataset.critical_cases_kept",
        name="Critical eval cases are neither removed nor downgraded", category="quality",
        severity=policy.dataset_governance_severity, metric="dataset_changes", slice="eval datasets",
        condition="== 0", status="fail" if bad else "pass", observed=float(bad), threshold=0.0, reason="")
    return (_say(result, Reason.DATASET_WEAKENED, parts="; ".join(parts)) if parts
            else _say(result, Reason.DATASET_KEPT)).result


_STAT_ORDER = {"lower95": 0, "value": 1, "upper95": 2}  # lower95 <= value <= upper95, always
# Baseline values the relative conditions are compared at: rates, counts, latencies, costs.
_PROBE_BASELINES = (0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.98, 0.99, 1.0, 2.0, 5.0, 10.0, 100.0, 1e3, 1e4, 1e6)


def _condition_looser(a: Condition, b: Condition) -> bool:
    """True when some observation that `a` rejects is accepted by `b` (for some baseline value): `b` is looser
    somewhere. Conditions on different statistics (lower95 / value / upper95) are compared through the order
    lower95 <= value <= upper95 that every interval satisfies."""
    sa, sb = _STAT_ORDER[a.statistic], _STAT_ORDER[b.statistic]
    for base in _PROBE_BASELINES:
        ba, bb = a.bound(base), b.bound(base)
        if ba is None or bb is None:
            continue
        marks = {t + k * 1e-6 * max(1.0, abs(t)) for t in (ba, bb, base, 0.0) for k in (-1, 0, 1)}
        points = sorted(marks | {-1e15, 1e15})
        rejected = [x for x in points if not a.holds(x, ba)]
        accepted = [x for x in points if b.holds(x, bb)]
        if not rejected or not accepted:
            continue
        if sa == sb:
            if set(rejected) & set(accepted):
                return True
        elif sa < sb:  # a judges a smaller statistic than b: need x_a <= x_b
            if min(rejected) <= max(accepted):
                return True
        elif max(rejected) >= min(accepted):
            return True
    return False


def _condition_change(old: Gate, new: Gate) -> str | None:
    a, b = old.condition, new.condition
    if new.metric != old.metric:
        return f"metric {old.metric} {a.text} -> {new.metric} {b.text} (a different measure: review)"
    if a.test and b.test:
        if a.test == "non_inferior" and b.test == "no_regression":
            return f"condition {a.text} -> {b.text}: 'not shown worse' replaces 'shown non-inferior'"
        if b.margin > a.margin:
            return f"margin {a.text} -> {b.text}"
        return None
    if a.test and not b.test:
        return f"condition {a.text} -> {b.text}: a paired test on shared cases replaced by a threshold (review)"
    if b.test and not a.test:
        return f"condition {a.text} -> {b.text}: a threshold replaced by a paired test (review)"
    if _condition_looser(a, b):
        what = "threshold" if a.threshold is not None and b.threshold is not None else "condition"
        return f"{what} {a.text} -> {b.text}"
    return None


def _slice_change(old: SliceSpec, new: SliceSpec) -> str | None:
    """A slice that keeps fewer cases, or no longer judges each value on its own, is looser."""
    parts = []
    for name in ("risk", "suite"):
        o, n = getattr(old, name), getattr(new, name)
        if n is not None and (o is None or not set(o) <= set(n)):
            parts.append(f"{name} {'|'.join(o) if o else 'all'} -> {'|'.join(n)}")
    for dim in sorted(new.where):
        o_values = old.where.get(dim)
        if o_values is None or not set(o_values) <= set(new.where[dim]):
            parts.append(f"{dim} {'|'.join(o_values) if o_values else 'all'} -> {'|'.join(new.where[dim])}")
    if old.for_each and new.for_each != old.for_each:
        parts.append(f"for_each {old.for_each} -> {new.for_each or 'none'}")
    return ("slice narrowed: " + "; ".join(parts)) if parts else None


def _profile_sets(policy: GatePolicy) -> dict[str | None, set[str]]:
    out: dict[str | None, set[str]] = {None: {g.id for g in policy.gates_for(None)}}
    for p in policy.profiles:
        out[p] = {g.id for g in policy.gates_for(p)}
    return out


def loosened_gates(previous: GatePolicy, current: GatePolicy) -> list[LoosenedGate]:
    """Every way `current` lets through what `previous` did not: a gate removed, dropped from a profile, its
    severity downgraded, its condition, margin, statistic or slice loosened, its minimum sample size lowered,
    its `when_changed` narrowed; policy-wide a lower alpha, a downgraded built-in or change-requirement severity,
    a dropped change requirement, a smaller review quorum."""
    out: list[LoosenedGate] = []
    now = {g.id: g for g in current.gates}
    old_sets, new_sets = _profile_sets(previous), _profile_sets(current)
    for old in previous.gates:
        new = now.get(old.id)
        if new is None:
            out.append(LoosenedGate(gate_id=old.id, change="gate removed"))
            continue
        if SEVERITY_ORDER[new.severity] > SEVERITY_ORDER[old.severity]:
            out.append(LoosenedGate(gate_id=old.id, change=f"severity {old.severity} -> {new.severity}"))
        change = _condition_change(old, new)
        if change:
            out.append(LoosenedGate(gate_id=old.id, change=change))
        narrowed = _slice_change(old.slice, new.slice)
        if narrowed:
            out.append(LoosenedGate(gate_id=old.id, change=narrowed))
        old_n, new_n = old.min_samples or previous.min_samples, new.min_samples or current.min_samples
        if new_n < old_n:
            out.append(LoosenedGate(gate_id=old.id, change=f"smaller minimum sample size {old_n} -> {new_n}"))
        if new.when_changed is not None and (old.when_changed is None
                                             or not set(new.when_changed) >= set(old.when_changed)):
            out.append(LoosenedGate(gate_id=old.id, change=f"now runs only when {', '.join(new.when_changed)} "
                                                           "change" + (f" (was {', '.join(old.when_changed)})"
                                                                       if old.when_changed else "")))
        dropped = [p if p is not None else "(default)" for p, ids in old_sets.items()
                   if old.id in ids and old.id not in new_sets.get(p, set())]
        if dropped:
            out.append(LoosenedGate(gate_id=old.id, change=f"no longer runs in profile {', '.join(dropped)}"))
    policy_wide: list[str] = []
    if current.alpha < previous.alpha:
        policy_wide.append(f"alpha {previous.alpha:g} -> {current.alpha:g}: regressions need stronger evidence")
    for name in ("dataset_governance_severity", "change_requirement_severity"):
        o, n = getattr(previous, name), getattr(current, name)
        if SEVERITY_ORDER[n] > SEVERITY_ORDER[o]:
            policy_wide.append(f"{name} {o} -> {n}")
    for kind, reqs in sorted(previous.change_requirements.items()):
        gone = sorted(set(reqs) - set(current.change_requirements.get(kind, [])))
        if gone:
            policy_wide.append(f"change requirement {kind} no longer needs {', '.join(gone)}")
    for req, suites in sorted(current.suite_evidence.items()):
        more = sorted(set(suites) - set(previous.suite_evidence.get(req, [])))
        if more:
            policy_wide.append(f"evidence {req} now also provided by eval suite {', '.join(more)}")
    for level, roles in sorted(previous.review.quorum.items()):
        gone = sorted(set(roles) - set(current.review.quorum.get(level, [])))
        if gone:
            policy_wide.append(f"review quorum for {level} risk no longer needs {', '.join(gone)}")
    risk_order = ("low", "medium", "high", "critical")
    if risk_order.index(current.review.risk_level) < risk_order.index(previous.review.risk_level):
        policy_wide.append(f"review risk level {previous.review.risk_level} -> {current.review.risk_level}")
    more_waivers = sorted(set(current.review.waiver_roles) - set(previous.review.waiver_roles))
    if more_waivers:
        policy_wide.append(f"more roles may waive a blocker: {', '.join(more_waivers)}")
    out += [LoosenedGate(gate_id="(policy)", change=c) for c in policy_wide]
    out += [LoosenedGate(gate_id=gid, change=c) for gid, c in rollout_loosened(previous.rollout, current.rollout)]
    return out
