"""Gate evaluation: policy + metric values + manifest diff + evidence -> one deterministic decision.

Pure: the caller (dashboard.service) fetches metric values from the store. Fail closed
everywhere: an empty slice, a too-small slice, a metric that cannot be computed, a missing
baseline for a relative condition, or missing required evidence fails its gate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from dashboard.core.canonical import digest
from dashboard.core.manifests import ArtifactChange
from dashboard.core.metrics import CATALOGUE, EVIDENCE_PREFIX, MetricValue
from dashboard.core.models import ReleaseEvidence
from dashboard.core.numbers import fmt_value
from dashboard.core.policy import SEVERITY_ORDER, Gate, GatePolicy, SliceSpec
from dashboard.core.stats import wilson_interval

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


class CaseFilter(BaseModel):
    """The cases behind a gate result, for drill-down and audit."""

    release_id: str
    risk: list[str] | None = None
    suite: list[str] | None = None
    where: dict[str, list[str]] = Field(default_factory=dict)


class GateResult(BaseModel):
    gate_id: str  # expanded id: "<policy gate id>[<dimension>=<value>]" for for_each gates
    policy_gate_id: str
    name: str
    category: str
    severity: str
    metric: str
    slice: str
    condition: str
    status: GateStatus
    observed: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    interval: tuple[float, float] | None = None  # 95% interval of the observed value, where known
    n: int = 0
    n_baseline: int | None = None
    reason: str
    evidence_ref: CaseFilter | None = None


class ReleaseRef(BaseModel):
    release_id: str
    manifest_digest: str


class PolicyRef(BaseModel):
    policy_id: str
    version: str
    digest: str


class RunDigest(BaseModel):
    release_id: str
    run_id: str
    data_digest: str


class GateDecision(BaseModel):
    """The release decision and everything it judged, named by digests (seed §20)."""

    schema_version: str = DECISION_SCHEMA
    status: DecisionStatus
    candidate: ReleaseRef
    baseline: ReleaseRef | None
    policy: PolicyRef
    profile: str | None
    changed_artifacts: list[ArtifactChange]
    evidence_digest: str | None
    data_digests: list[RunDigest]
    notes: list[str] = Field(default_factory=list)
    gates: list[GateResult]
    blockers: list[str]
    warnings: list[str]
    digest: str = ""

    def with_digest(self) -> GateDecision:
        body = self.model_dump(mode="json", exclude={"digest"})
        return self.model_copy(update={"digest": digest(body)})

    def verify_digest(self) -> bool:
        return self.with_digest().digest == self.digest


def decide(gates: list[GateResult]) -> tuple[DecisionStatus, list[str], list[str]]:
    """Seed §20: any failed blocker blocks; else any failed warning approves with warnings."""
    blockers = [g.gate_id for g in gates if g.status == "fail" and g.severity == "blocker"]
    warnings = [g.gate_id for g in gates if g.status == "fail" and g.severity == "warning"]
    status: DecisionStatus = "blocked" if blockers else ("approved_with_warnings" if warnings else "approved")
    return status, blockers, warnings


def _case_filter(release_id: str, spec: SliceSpec, value: str) -> CaseFilter:
    where = {k: list(v) for k, v in spec.where.items()}
    risk, suite = spec.risk, spec.suite
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


def _judge(gate: Gate, gate_id: str, slice_label: str, cand: MetricValue | None, base: MetricValue | None,
           has_baseline: bool, min_samples: int, ref: CaseFilter | None) -> GateResult:
    cond = gate.condition
    result = GateResult(gate_id=gate_id, policy_gate_id=gate.id, name=gate.name, category=gate.category,
                        severity=gate.severity, metric=gate.metric, slice=slice_label, condition=cond.text,
                        status="fail", reason="", evidence_ref=ref)
    if cand is None or cand.n_cases == 0:
        result.reason = "the slice has no cases in the candidate"
        return result
    result.n = cand.n_eligible  # the cases the metric is computed over (e.g. critical cases only)
    result.observed = cand.value
    kind = CATALOGUE[gate.metric].kind
    if kind == "rate" and cand.numerator is not None and cand.denominator:
        result.interval = wilson_interval(cand.numerator, cand.denominator)
    if base is not None:
        result.n_baseline = base.n_eligible
        result.baseline = base.value
    if cand.value is None:
        result.reason = f"metric cannot be computed: {cand.why_missing}"
        return result
    if cand.n_eligible < min_samples:
        result.reason = f"too small to judge: {cand.n_eligible} cases < minimum {min_samples}"
        return result
    if cand.value is None:
        result.reason = f"metric cannot be computed: {cand.why_missing}"
        return result
    if cond.relative:
        if not has_baseline:
            result.reason = "no baseline release to compare with"
            return result
        if base is None or base.value is None:
            why = base.why_missing if base is not None else "the slice has no cases in the baseline"
            result.reason = f"baseline metric cannot be computed: {why}"
            return result
    bound = cond.bound(result.baseline)
    assert bound is not None
    result.threshold = bound
    observed = cand.value
    if cond.statistic != "value":
        if result.interval is None:
            result.reason = f"{cond.statistic} needs an interval, and {gate.metric} has none"
            return result
        observed = result.interval[0] if cond.statistic == "lower95" else result.interval[1]
    ok = cond.holds(observed, bound)
    result.status = "pass" if ok else "fail"
    shown = fmt_value(observed, bound)
    what = f"{cond.statistic} {shown}" if cond.statistic != "value" else shown
    base_txt = f" (baseline {fmt_value(result.baseline)})" if cond.relative else ""
    result.reason = f"{what} {'meets' if ok else 'fails'} {cond.op} {fmt_value(bound, observed)}{base_txt}"
    return result


def evaluate(
    policy: GatePolicy,
    profile: str | None,
    candidate: ReleaseRef,
    baseline: ReleaseRef | None,
    changes: list[ArtifactChange],
    candidate_values: dict[str, SliceValues],
    baseline_values: dict[str, SliceValues],
    evidence: ReleaseEvidence | None,
    evidence_digest: str | None,
    candidate_suites: set[str],
    data_digests: list[RunDigest],
    notes: list[str] | None = None,
) -> GateDecision:
    """Judge every gate of the profile and decide. `*_values` are keyed by spec_key(gate.slice)."""
    changed = {c.kind for c in changes}
    results: list[GateResult] = []
    for gate in policy.gates_for(profile):
        min_samples = gate.min_samples or policy.min_samples
        if gate.when_changed and not changed.intersection(gate.when_changed):
            results.append(GateResult(
                gate_id=gate.id, policy_gate_id=gate.id, name=gate.name, category=gate.category,
                severity=gate.severity, metric=gate.metric, slice=gate.slice.label(), condition=gate.condition.text,
                status="skipped", reason=f"runs only when {', '.join(gate.when_changed)} change; none did"))
            continue
        if gate.metric.startswith(EVIDENCE_PREFIX):
            value, why = _evidence_value(gate.metric, evidence)
            ok = value is not None and gate.condition.holds(value, gate.condition.bound(None) or 0.0)
            results.append(GateResult(
                gate_id=gate.id, policy_gate_id=gate.id, name=gate.name, category=gate.category,
                severity=gate.severity, metric=gate.metric, slice="release evidence", condition=gate.condition.text,
                status="pass" if ok else "fail", observed=value, threshold=gate.condition.threshold, reason=why))
            continue
        key = spec_key(gate.slice)
        cand_slices = candidate_values.get(key, {})
        base_slices = baseline_values.get(key, {})
        if gate.slice.for_each:
            values = sorted(set(cand_slices) | set(base_slices))
            if not values:
                results.append(_judge(gate, gate.id, gate.slice.label(), None, None, baseline is not None,
                                      min_samples, _case_filter(candidate.release_id, gate.slice, "")))
            for v in values:
                results.append(_judge(
                    gate, f"{gate.id}[{gate.slice.for_each}={v}]", gate.slice.label(v),
                    cand_slices.get(v, {}).get(gate.metric), base_slices.get(v, {}).get(gate.metric),
                    baseline is not None, min_samples, _case_filter(candidate.release_id, gate.slice, v)))
        else:
            results.append(_judge(
                gate, gate.id, gate.slice.label(), cand_slices.get("", {}).get(gate.metric),
                base_slices.get("", {}).get(gate.metric), baseline is not None, min_samples,
                _case_filter(candidate.release_id, gate.slice, "")))
    results += _change_requirements(policy, changed, evidence, candidate_suites)
    results.sort(key=lambda g: (g.status != "fail", SEVERITY_ORDER[g.severity], g.category, g.gate_id))
    status, blockers, warnings = decide(results)
    decision = GateDecision(
        status=status, candidate=candidate, baseline=baseline,
        policy=PolicyRef(policy_id=policy.policy_id, version=policy.version, digest=policy.digest),
        profile=profile or policy.default_profile, changed_artifacts=changes, evidence_digest=evidence_digest,
        data_digests=sorted(data_digests, key=lambda d: (d.release_id, d.run_id)), notes=notes or [],
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
            if value == 1.0:
                ok, reason = True, why
            elif suites:
                ok, reason = True, f"provided by eval suite {', '.join(suites)}"
            else:
                ok = False
                reason = (f"{kind} changed: required evidence {req!r} failed" if value == 0.0
                          else f"{kind} changed: required evidence {req!r} is missing")
            out.append(GateResult(
                gate_id=f"change.{kind}.{req}", policy_gate_id=f"change.{kind}.{req}",
                name=f"{kind} change requires {req}", category=CHANGE_CATEGORY[kind],
                severity=policy.change_requirement_severity, metric=EVIDENCE_PREFIX + req, slice="release evidence",
                condition="present and passed", status="pass" if ok else "fail", observed=value, reason=reason))
    return out
