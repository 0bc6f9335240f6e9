"""Rollout safety as gates (seed §7, §24-27, §35, §37): tested rollbacks, audited feature flags, A/B only where it
is safe, the release train, incidents that become evals.

Pure: the records (a release's rollout evidence file, every stored incident and artifact digest, the candidate's
outcome on the cases incidents name) are gathered by dashboard.service; `judge_rollout` turns them and the policy's
`rollout` section into gate results and adds them to a decision whose digest then covers `RolloutInputs` too.
Fail closed: a rollout gate with no rollout evidence to judge fails, and so does a tier that never ran.

Ages (drill within N days, tier evidence at most N days old) are measured at `RolloutInputs.as_of`: the latest
of the candidate manifest's `created_at` and the rollout evidence's `as_of`, never the wall clock, so the same
inputs give the same decision in CI, on the dashboard and in a review.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused, Problem
from dashboard.core.manifests import ArtifactChange, pydantic_problems
from dashboard.core.models import ARTIFACT_KINDS, RiskLevel, ZonedDatetime

ROLLOUT_SCHEMA = "readiness.rollout/v1"

# Seed §25: how each kind of artifact is rolled back (the drill's `method`).
RollbackMethod = Literal["previous_image", "prompt_version_switch", "route_config", "promote_previous_index",
                         "disable_tool", "revert_tool", "route_to_previous_workflow", "config_revert"]
METHOD_FOR_KIND: dict[str, tuple[str, ...]] = {
    "code": ("previous_image",), "image": ("previous_image",), "prompts": ("prompt_version_switch",),
    "model_routes": ("route_config",), "indexes": ("promote_previous_index",),
    "tools": ("disable_tool", "revert_tool"), "workflows": ("route_to_previous_workflow",),
    "config": ("config_revert",), "governance_policy": ("config_revert",),
}
# Rollbacks that need no earlier version to return to: the capability is switched off.
DISABLE_METHODS = ("disable_tool",)
ArtifactKind = Literal["code", "image", "prompts", "model_routes", "indexes", "tools", "workflows", "eval_datasets",
                       "config", "governance_policy", "memory"]
# §24: what an A/B experiment must not expose without a named safeguard.
Exposure = Literal["high_risk_policy_interpretation", "regulated_decision", "tool_side_effects", "approval_workflow",
                   "retrieval_ranking", "answer_style", "latency_cost", "other"]
UNSAFE_EXPOSURES = ("high_risk_policy_interpretation", "regulated_decision", "tool_side_effects",
                    "approval_workflow")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class RollbackDrill(_Record):
    """A rollback that was actually performed (seed §25): from the new version back to the old one, timed."""

    kind: Literal["rollback_drill"] = Field(description="Record kind: rollback_drill.")
    artifact_kind: ArtifactKind = Field(description="The artifact kind rolled back: prompts, model_routes, indexes, "
                                                    "tools, workflows, code, image, config, governance_policy.")
    artifact: str = Field(min_length=1, description="The artifact's name in the manifest (e.g. policy_answer).")
    from_version: str = Field(min_length=1, description="The version rolled back from.")
    to_version: str = Field(min_length=1, description="The version rolled back to (the rollback target).")
    method: RollbackMethod = Field(description="How (seed §25): previous_image, prompt_version_switch, route_config, "
                                               "promote_previous_index, disable_tool, revert_tool, "
                                               "route_to_previous_workflow, config_revert.")
    performed_at: ZonedDatetime = Field(description="When the drill ran (ISO 8601 with a time zone).")
    performed_by: str = Field(min_length=1, description="Who ran it.")
    minutes_to_rollback: float = Field(ge=0, description="Minutes from the decision to roll back until the old "
                                                         "version served all traffic.")
    outcome: Literal["succeeded", "failed", "partial"] = Field(description="What happened.")
    ref: str | None = Field(default=None, description="Runbook, ticket or CI run.")


class FeatureFlag(_Record):
    """A feature flag of the release (seed §26) and who may see what it controls."""

    kind: Literal["feature_flag"] = Field(description="Record kind: feature_flag.")
    flag: str = Field(min_length=1, description="The flag's name.")
    artifact_kind: ArtifactKind = Field(description="The kind of artifact the flag controls.")
    artifact: str = Field(min_length=1, description="The artifact's name in the manifest (e.g. close_case).")
    risk: RiskLevel = Field(description="Risk level of what the flag exposes: low, medium, high, critical.")
    default: bool = Field(description="On for everyone not matched by a dimension below.")
    percentage: float | None = Field(default=None, ge=0, le=100, description="Share of traffic exposed (0-100); "
                                                                               "null: no percentage rollout.")
    tenants: list[str] = Field(default_factory=list, description="Tenants exposed; empty: not limited by tenant.")
    users: list[str] = Field(default_factory=list, description="Users exposed; empty: not limited by user.")
    roles: list[str] = Field(default_factory=list, description="Roles exposed; empty: not limited by role.")
    environments: list[str] = Field(default_factory=list, description="Environments where it can be on.")
    workflows: list[str] = Field(default_factory=list, description="Workflows it applies to.")
    owner: str = Field(min_length=1, description="Who owns the flag.")
    audited: bool = Field(default=False, description="Every change of the flag is written to an audit log.")
    audit_ref: str | None = Field(default=None, description="Where that audit trail lives.")

    def limited(self, max_percentage: float) -> bool:
        """Exposure starts limited: off by default, or a small percentage, or named tenants or users."""
        if self.tenants or self.users:
            return True
        if self.percentage is not None:
            return self.percentage <= max_percentage
        return not self.default


class Experiment(_Record):
    """An A/B experiment plan (seed §24)."""

    kind: Literal["experiment"] = Field(description="Record kind: experiment.")
    experiment_id: str = Field(min_length=1, description="The experiment's id.")
    variants: list[str] = Field(min_length=2, description="The variants compared (at least two).")
    artifact_kind: ArtifactKind = Field(description="The kind of artifact varied.")
    artifact: str = Field(min_length=1, description="The artifact varied.")
    population: str = Field(min_length=1, description="Who is exposed (e.g. '10% of acme support agents').")
    tasks: list[str] = Field(default_factory=list, description="Tasks exposed.")
    risk_levels: list[RiskLevel] = Field(default_factory=list, description="Risk levels of the exposed tasks.")
    exposes: list[Exposure] = Field(min_length=1, description="What the variants change for users: "
                                                             "high_risk_policy_interpretation, regulated_decision, "
                                                             "tool_side_effects, approval_workflow, "
                                                             "retrieval_ranking, answer_style, latency_cost, other.")
    safeguard: str | None = Field(default=None, description="The safeguard the team relies on (must be one the "
                                                            "policy names for an unsafe exposure).")


class Incident(_Record):
    """A production incident and the eval cases that now cover it (seed §37)."""

    kind: Literal["incident"] = Field(description="Record kind: incident.")
    incident_id: str = Field(min_length=1, description="The incident's id.")
    occurred_at: ZonedDatetime = Field(description="When it happened (ISO 8601 with a time zone).")
    artifact_kind: ArtifactKind = Field(description="The kind of artifact at fault.")
    artifact: str = Field(min_length=1, description="The artifact at fault.")
    description: str = Field(min_length=1, description="What happened (untrusted text).")
    case_ids: list[str] = Field(default_factory=list, description="Eval case ids that now cover it.")


class TierRun(_Record):
    """One run of a release-train tier for the release (seed §7, §27)."""

    kind: Literal["tier_run"] = Field(description="Record kind: tier_run.")
    tier: str = Field(min_length=1, description="The tier, as named in the policy's rollout.tiers.")
    suites: list[str] = Field(default_factory=list, description="The suites it ran.")
    ran_at: ZonedDatetime = Field(description="When it ran (ISO 8601 with a time zone).")
    passed: bool = Field(description="Its result.")
    ref: str | None = Field(default=None, description="CI run or report.")


class ArtifactDigest(_Record):
    """The content digest behind an artifact version, so a version reused with new content is caught (§35)."""

    kind: Literal["artifact_digest"] = Field(description="Record kind: artifact_digest.")
    artifact_kind: ArtifactKind = Field(description="The artifact kind (indexes, prompts, ...).")
    artifact: str = Field(min_length=1, description="The artifact's name.")
    version: str = Field(min_length=1, description="Its version, as in the manifest.")
    content_digest: str = Field(min_length=1, description="Digest of its content (e.g. sha256 of the index build).")


RolloutRecord = Annotated[RollbackDrill | FeatureFlag | Experiment | Incident | TierRun | ArtifactDigest,
                          Field(discriminator="kind")]
RECORD_KINDS = ("rollback_drill", "feature_flag", "experiment", "incident", "tier_run", "artifact_digest")


class RolloutEvidence(_Record):
    """A release's rollout evidence file: `readiness evidence FILE --release ID` (a file with `records`)."""

    schema_version: Literal["readiness.rollout/v1"] = Field("readiness.rollout/v1", description="The format.")
    release_id: str = Field(min_length=1, description="The release the evidence belongs to.")
    as_of: ZonedDatetime = Field(description="When the evidence was assembled: ages are measured here (never at the "
                                        "wall clock), at the manifest's created_at when that is later.")
    records: list[RolloutRecord] = Field(default_factory=list, max_length=10_000,
                                         description="rollback_drill, feature_flag, experiment, incident, tier_run "
                                                     "and artifact_digest records.")

    def of(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)]


def parse_rollout(data: Any, source: str) -> RolloutEvidence:
    """A rollout evidence file's content, validated; errors name the file, the record and the field."""
    if not isinstance(data, dict):
        raise InputRefused([Problem(source, "", "", "rollout evidence is a JSON/YAML object with release_id, "
                                    "as_of and records")])
    records = data.get("records")
    if isinstance(records, list):
        for i, r in enumerate(records):
            if not isinstance(r, dict) or r.get("kind") not in RECORD_KINDS:
                got = r.get("kind") if isinstance(r, dict) else type(r).__name__
                raise InputRefused([Problem(source, f"record {i + 1}", "kind",
                                            f"{str(got)[:60]!r} is not a rollout record kind "
                                            f"({', '.join(RECORD_KINDS)})")])
    try:
        ev = RolloutEvidence.model_validate(data)
    except ValidationError as e:
        problems = []
        for p in pydantic_problems(source, "", e):
            parts = p.field.split(".")
            if len(parts) >= 3 and parts[0] == "records" and parts[1].isdigit():
                # records.3.rollback_drill.minutes_to_rollback -> record 4, field minutes_to_rollback
                problems.append(Problem(source, f"record {int(parts[1]) + 1}", ".".join(parts[3:]) or parts[2],
                                        p.message))
            else:
                problems.append(p)
        raise InputRefused(problems) from e
    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(ev.records):
        if not isinstance(r, (FeatureFlag, Experiment, Incident)):
            continue
        key = (type(r).__name__, _record_key(r))
        if key in first:
            raise InputRefused([Problem(source, f"record {i + 1}", _key_field(r),
                                        f"{key[1]!r} appears more than once in the file (first at record "
                                        f"{first[key] + 1})")])
        first[key] = i
    return ev


def _key_field(r: Any) -> str:
    return {"FeatureFlag": "flag", "Experiment": "experiment_id", "Incident": "incident_id"}.get(type(r).__name__, "")


def _record_key(r: Any) -> str:
    field = _key_field(r)
    return str(getattr(r, field)) if field else digest(r.model_dump(mode="json"))


# ----- policy ---------------------------------------------------------------------------------------------------

RolloutGateKind = Literal["rollback_tested", "high_risk_flagged", "high_risk_flag_audited",
                          "high_risk_exposure_limited", "ab_safe", "incidents_covered", "tier_evidence_fresh"]
ROLLOUT_GATE_KINDS: tuple[str, ...] = RolloutGateKind.__args__  # type: ignore[attr-defined]


class RolloutGate(BaseModel):
    """One rollout gate of a policy's `rollout.gates` (docs/policy.md, Rollout safety)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", description="Stable id, used in waivers and reports.")
    kind: RolloutGateKind = Field(description="What the gate checks.")
    name: str | None = Field(default=None, description="Human name (default: one per kind).")
    severity: Literal["blocker", "warning", "informational"] = "blocker"
    profiles: list[str] | None = Field(default=None, description="Profiles that run the gate; default all.")
    # rollback_tested
    max_age_days: int = Field(default=30, ge=0, description="rollback_tested: a drill counts this many days.")
    max_minutes: float = Field(default=15.0, ge=0, description="rollback_tested: time to roll back at most.")
    artifact_kinds: list[str] | None = Field(default=None, description="rollback_tested, high_risk_flagged: the "
                                                                       "artifact kinds judged (default: all).")
    # flags
    high_risk_tools: list[str] = Field(default_factory=list, description="high_risk_flagged: tools that are high "
                                                                         "risk (every added tool is, too).")
    max_percentage: float = Field(default=10.0, ge=0, le=100, description="high_risk_exposure_limited: the largest "
                                                                          "starting percentage.")
    # ab_safe
    safeguards: dict[str, str] = Field(default_factory=dict, description="ab_safe: unsafe exposure -> the safeguard "
                                                                         "that allows it.")
    offline_categories: list[str] = Field(default_factory=lambda: ["security"],
                                          description="ab_safe: gate categories that must all pass before a "
                                                      "retrieval-ranking experiment.")
    # tier_evidence_fresh
    tiers: list[str] | None = Field(default=None, description="tier_evidence_fresh: tiers required (default: all).")

    @field_validator("artifact_kinds")
    @classmethod
    def _kinds(cls, v: list[str] | None) -> list[str] | None:
        for k in v or []:
            if k not in ARTIFACT_KINDS:
                raise ValueError(f"unknown artifact kind {k!r} (use {', '.join(ARTIFACT_KINDS)})")
        return v

    @field_validator("safeguards")
    @classmethod
    def _exposures(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if k not in UNSAFE_EXPOSURES:
                raise ValueError(f"safeguards names {k!r}: use {', '.join(UNSAFE_EXPOSURES)}")
        return v


class Tier(BaseModel):
    """A release-train tier (seed §7, §27): when it runs, what it runs, how old its evidence may be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="e.g. pr_fast, nightly, release_candidate.")
    profile: str | None = Field(default=None, description="The policy profile whose gates this tier runs.")
    cadence: Literal["per_pr", "hourly", "nightly", "weekly", "per_release", "canary", "post_release"] = Field(
        description="When it runs.")
    suites: list[str] = Field(default_factory=list, description="The suites it must run.")
    max_age_days: float = Field(gt=0, description="Older evidence is stale.")


class RolloutPolicy(BaseModel):
    """A policy's `rollout` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    anti_pattern_severity: Literal["blocker", "warning", "informational"] = Field(
        default="blocker", description="Severity of the built-in rollback anti-pattern gates (§35).")
    tiers: list[Tier] = Field(default_factory=list, description="The release train.")
    gates: list[RolloutGate] = Field(default_factory=list, description="Rollout gates.")

    @model_validator(mode="after")
    def _consistent(self) -> RolloutPolicy:
        names = [t.name for t in self.tiers]
        dupes = [n for n, k in Counter(names).items() if k > 1]
        if dupes:
            raise ValueError(f"duplicate tier {dupes[0]!r}")
        ids = [g.id for g in self.gates]
        dupes = [n for n, k in Counter(ids).items() if k > 1]
        if dupes:
            raise ValueError(f"duplicate rollout gate id {dupes[0]!r}")
        for g in self.gates:
            for t in g.tiers or []:
                if t not in names:
                    raise ValueError(f"gate {g.id!r} names unknown tier {t!r}")
            if g.kind == "tier_evidence_fresh" and not self.tiers:
                raise ValueError(f"gate {g.id!r} needs rollout.tiers")
        return self

    def gates_for(self, profile: str | None) -> list[RolloutGate]:
        return [g for g in self.gates if g.profiles is None or profile is None or profile in g.profiles]


# ----- inputs and judging ---------------------------------------------------------------------------------------

class CaseOutcome(BaseModel):
    """The candidate's outcome on one case an incident names (a store query)."""

    case_id: str = Field(description="The case id.")
    records: int = Field(description="Records of it in the candidate's eval runs.")
    passed: int = Field(description="Of those, how many passed.")


class RolloutInputs(BaseModel):
    """Everything the rollout gates judge; its digest is part of the decision (GateDecision.rollout_digest)."""

    evidence: RolloutEvidence | None = Field(description="The candidate's rollout evidence; null: none attached.")
    evidence_digest: str | None = Field(description="Its stored digest.")
    candidate_created_at: datetime = Field(description="The candidate manifest's created_at.")
    baseline_created_at: datetime | None = Field(description="The baseline manifest's created_at; null: no baseline.")
    incidents: list[Incident] = Field(description="Every stored incident, by id.")
    artifact_digests: list[tuple[str, ArtifactDigest]] = Field(
        description="(release id, record) for every stored artifact digest.")
    case_outcomes: list[CaseOutcome] = Field(description="The candidate's outcome on every case an incident names.")

    @property
    def as_of(self) -> datetime:
        if self.evidence is None:
            return self.candidate_created_at
        return max(self.evidence.as_of, self.candidate_created_at)


GATE_NAMES = {
    "rollback_tested": "Every changed artifact has a tested, fast rollback",
    "high_risk_flagged": "Every high-risk capability the candidate changes is behind a feature flag",
    "high_risk_flag_audited": "Every high-risk feature flag has an audit trail",
    "high_risk_exposure_limited": "High-risk exposure starts limited (percentage or tenant list)",
    "ab_safe": "A/B experiments only where they are safe",
    "incidents_covered": "Every incident since the baseline is covered by a passing eval case",
    "tier_evidence_fresh": "Release-train tier evidence is present, passing and fresh",
}
GATE_CATEGORY = {"rollback_tested": "rollback", "high_risk_flagged": "rollback", "high_risk_flag_audited": "rollback",
                 "high_risk_exposure_limited": "rollback", "ab_safe": "human_approval", "incidents_covered": "quality",
                 "tier_evidence_fresh": "observability"}
GATE_METRIC = {"rollback_tested": "rollout.rollback_drills", "high_risk_flagged": "rollout.feature_flags",
               "high_risk_flag_audited": "rollout.feature_flags", "high_risk_exposure_limited": "rollout.feature_flags",
               "ab_safe": "rollout.experiments", "incidents_covered": "rollout.incidents",
               "tier_evidence_fresh": "rollout.tier_runs"}


def _ids(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _result(gate_id: str, name: str, category: str, severity: str, metric: str, findings: list[str], ok_reason: str,
            n: int, condition: str = "no findings") -> dict[str, Any]:
    return {"gate_id": gate_id, "policy_gate_id": gate_id, "name": name, "category": category, "severity": severity,
            "metric": metric, "slice": "rollout evidence", "condition": condition,
            "status": "fail" if findings else "pass", "observed": float(len(findings)), "threshold": 0.0, "n": n,
            "reason": "; ".join(findings) if findings else ok_reason}


def _changed(changes: list[ArtifactChange], kinds: list[str] | None) -> list[ArtifactChange]:
    return [c for c in changes if c.candidate is not None and (kinds is None or c.kind in kinds)]


def _rollback_tested(g: RolloutGate, ev: RolloutEvidence, inputs: RolloutInputs,
                     changes: list[ArtifactChange]) -> tuple[list[str], int, str]:
    kinds = g.artifact_kinds if g.artifact_kinds is not None else [k for k in ARTIFACT_KINDS if k != "eval_datasets"]
    targets = _changed(changes, kinds)
    drills = ev.of(RollbackDrill)
    since = inputs.as_of - timedelta(days=g.max_age_days)
    findings = []
    for kind in sorted({c.kind for c in targets}):
        names = sorted(c.name for c in targets if c.kind == kind)
        of_kind = [d for d in drills if d.artifact_kind == kind]
        good = [d for d in of_kind if d.outcome == "succeeded" and d.performed_at >= since
                and d.minutes_to_rollback <= g.max_minutes and d.method in METHOD_FOR_KIND.get(kind, ())]
        if good:
            continue
        what = f"{kind} changed ({_ids(names)})"
        if not of_kind:
            findings.append(f"{what}: no rollback drill for {kind}")
            continue
        latest = max(of_kind, key=lambda d: d.performed_at)
        why = []
        if latest.outcome != "succeeded":
            why.append(f"the latest drill {latest.outcome}")
        if latest.performed_at < since:
            age = (inputs.as_of - latest.performed_at).days
            why.append(f"the latest drill is {age} days old (> {g.max_age_days})")
        if latest.minutes_to_rollback > g.max_minutes:
            why.append(f"rollback took {latest.minutes_to_rollback:g} min (> {g.max_minutes:g})")
        if latest.method not in METHOD_FOR_KIND.get(kind, ()):
            why.append(f"method {latest.method} does not roll back {kind}")
        findings.append(f"{what}: no successful drill within {g.max_age_days} days under {g.max_minutes:g} min "
                        f"({'; '.join(why) or 'no drill qualifies'})")
    ok = (f"{len({c.kind for c in targets})} changed artifact kind(s) each with a successful drill within "
          f"{g.max_age_days} days under {g.max_minutes:g} min" if targets else "no artifact to roll back changed")
    return findings, len(targets), ok


def _high_risk_changes(g: RolloutGate, changes: list[ArtifactChange]) -> list[ArtifactChange]:
    kinds = g.artifact_kinds if g.artifact_kinds is not None else ["model_routes", "indexes", "workflows", "tools",
                                                                     "memory"]
    out = []
    for c in _changed(changes, kinds):
        if c.kind == "tools" and not (c.baseline is None or c.name in g.high_risk_tools):
            continue
        out.append(c)
    return out


def _flags_for(ev: RolloutEvidence, c: ArtifactChange) -> list[FeatureFlag]:
    return [f for f in ev.of(FeatureFlag) if f.artifact_kind == c.kind and f.artifact == c.name]


def _high_risk_flags(g: RolloutGate, ev: RolloutEvidence, changes: list[ArtifactChange]) -> list[FeatureFlag]:
    """Flags declared high or critical risk, and flags controlling a high-risk change."""
    hi = {(c.kind, c.name) for c in _high_risk_changes(g, changes)}
    return [f for f in ev.of(FeatureFlag) if f.risk in ("high", "critical") or (f.artifact_kind, f.artifact) in hi]


def _incidents_covered(inputs: RolloutInputs) -> tuple[list[str], int, str]:
    """Seed §37: every incident since the baseline is covered by a case in the candidate's eval data that passes
    (every record of it). The incidents are every one stored, whichever release's file brought them."""
    since = inputs.baseline_created_at
    due = [i for i in inputs.incidents if since is None or i.occurred_at > since]
    outcomes = {o.case_id: o for o in inputs.case_outcomes}
    findings = []
    for i in sorted(due, key=lambda i: i.incident_id):
        if not i.case_ids:
            findings.append(f"incident {i.incident_id} names no eval case")
            continue
        ran = [outcomes[c] for c in i.case_ids if c in outcomes and outcomes[c].records > 0]
        if not ran:
            findings.append(f"incident {i.incident_id}: none of its cases ({_ids(i.case_ids, 3)}) is in the "
                            "candidate's eval data")
        elif not any(o.passed == o.records for o in ran):
            findings.append(f"incident {i.incident_id}: its cases fail in the candidate "
                            f"({_ids([o.case_id for o in ran], 3)})")
    label = "since the baseline" if since is not None else "(no baseline: every incident)"
    return findings, len(due), (f"{len(due)} incident(s) {label}, each covered by a passing case" if due
                                else f"no incident {label}")


def _judge_kind(g: RolloutGate, inputs: RolloutInputs, changes: list[ArtifactChange],
                decided: dict[str, str]) -> tuple[list[str], int, str]:
    if g.kind == "incidents_covered":
        return _incidents_covered(inputs)
    ev = inputs.evidence
    assert ev is not None
    if g.kind == "rollback_tested":
        return _rollback_tested(g, ev, inputs, changes)
    if g.kind == "high_risk_flagged":
        hi = _high_risk_changes(g, changes)
        missing = [f"{c.kind}/{c.name}" for c in hi if not _flags_for(ev, c)]
        return ([f"high-risk change not behind a feature flag: {_ids(missing)}"] if missing else [], len(hi),
                f"{len(hi)} high-risk change(s), each behind a flag" if hi else "no high-risk capability changed")
    if g.kind == "high_risk_flag_audited":
        flags = _high_risk_flags(g, ev, changes)
        bad = [f.flag for f in flags if not (f.audited and f.audit_ref)]
        return ([f"high-risk flag without an audit trail (audited and audit_ref): {_ids(bad)}"] if bad else [],
                len(flags), f"{len(flags)} high-risk flag(s), each audited" if flags else "no high-risk flag")
    if g.kind == "high_risk_exposure_limited":
        flags = _high_risk_flags(g, ev, changes)
        wide = [f for f in flags if not f.limited(g.max_percentage)]
        shown = [f"{f.flag} ({f.artifact_kind}/{f.artifact}: "
                 f"{'on for everyone' if f.percentage is None else f'{f.percentage:g}%'})" for f in wide]
        return ([f"high-risk flag enabled globally, excessive blast radius: {_ids(shown)}; start at "
                 f"<= {g.max_percentage:g}% or a tenant list"] if wide else [], len(flags),
                f"{len(flags)} high-risk flag(s), each starting limited" if flags else "no high-risk flag")
    if g.kind == "ab_safe":
        exps = ev.of(Experiment)
        findings = []
        for x in exps:
            for e in x.exposes:
                if e in UNSAFE_EXPOSURES:
                    named = g.safeguards.get(e)
                    if named is None:
                        findings.append(f"experiment {x.experiment_id} exposes {e} to A/B: the policy names no "
                                        "safeguard for it")
                    elif x.safeguard != named:
                        findings.append(f"experiment {x.experiment_id} exposes {e}: its safeguard "
                                        f"{x.safeguard!r} is not the policy's {named!r}")
            if "retrieval_ranking" in x.exposes:
                offline = {gid: s for gid, s in decided.items() if s.split("|")[1] in g.offline_categories}
                failed = sorted(gid for gid, s in offline.items() if s.split("|")[0] == "fail")
                if not offline:
                    findings.append(f"experiment {x.experiment_id} varies retrieval ranking: no offline "
                                    f"{'/'.join(g.offline_categories)} gate ran first")
                elif failed:
                    findings.append(f"experiment {x.experiment_id} varies retrieval ranking before the offline "
                                    f"safety gates passed ({_ids(failed)} failed)")
        return findings, len(exps), (f"{len(exps)} experiment(s), each safe for A/B" if exps
                                     else "no A/B experiment planned")
    raise ValueError(f"rollout gate kind {g.kind!r} is judged elsewhere")


def tier_findings(inputs: RolloutInputs, wanted: list[str] | None, ev: RolloutEvidence | None,
                  tiers: list[Tier]) -> list[tuple[str, str]]:
    """(finding, tier) for every required tier that is missing, failed, stale or did not run its suites."""
    out = []
    for t in tiers:
        if wanted is not None and t.name not in wanted:
            continue
        runs = [r for r in (ev.of(TierRun) if ev else []) if r.tier == t.name]
        if not runs:
            out.append((f"tier {t.name} ({t.cadence}) has no run for this release", t.name))
            continue
        last = max(runs, key=lambda r: r.ran_at)
        age = (inputs.as_of - last.ran_at).total_seconds() / 86400
        if not last.passed:
            out.append((f"tier {t.name}: its latest run failed ({last.ran_at:%Y-%m-%d})", t.name))
        if age > t.max_age_days:
            out.append((f"tier {t.name} evidence is {age:.1f} days old (max {t.max_age_days:g})"
                        + (f": {', '.join(t.suites)}" if t.suites else ""), t.name))
        missing = sorted(set(t.suites) - set(last.suites))
        if missing:
            out.append((f"tier {t.name}: its latest run did not run {', '.join(missing)}", t.name))
    return out


def anti_pattern_results(policy: RolloutPolicy, inputs: RolloutInputs, changes: list[ArtifactChange],
                         candidate_id: str) -> list[dict[str, Any]]:
    """Seed §35 as built-in gates: an index version reused with different content, a change with no rollback target
    in the baseline manifest, an eval-dataset change presented as a rollback."""
    sev = policy.anti_pattern_severity
    out = []
    # 1. the same artifact version with two contents anywhere in the store (an index overwritten in place)
    by_version: dict[tuple[str, str, str], set[str]] = {}
    where: dict[tuple[str, str, str], set[str]] = {}
    for rel, a in inputs.artifact_digests:
        key = (a.artifact_kind, a.artifact, a.version)
        by_version.setdefault(key, set()).add(a.content_digest)
        where.setdefault(key, set()).add(rel)
    cand_versions = {(c.kind, c.name, c.candidate) for c in changes if c.candidate is not None}
    cand_versions |= {(a.artifact_kind, a.artifact, a.version) for a in (inputs.evidence.of(ArtifactDigest)
                                                                         if inputs.evidence else [])}
    reused = sorted(f"{k}/{n} {v} ({len(by_version[(k, n, v)])} contents in {', '.join(sorted(where[(k, n, v)]))})"
                    for (k, n, v) in by_version if len(by_version[(k, n, v)]) > 1 and (k, n, v) in cand_versions)
    if inputs.evidence is None:
        out.append(_result("rollback.version_reused", "No artifact version reused with different content", "rollback",
                           sev, "rollout.artifact_digests", ["no rollout evidence is attached to the release (needed: "
                                                             "artifact_digest records)"], "", 0))
    else:
        out.append(_result("rollback.version_reused", "No artifact version reused with different content", "rollback",
                           sev, "rollout.artifact_digests",
                           [f"version reused with different content, the old one is gone (no rollback target): "
                            f"{_ids(reused)}"] if reused else [],
                           f"{len(by_version)} artifact version(s) with a content digest, none reused", len(by_version)))
    # 2. an artifact the candidate changes that the baseline does not have: nothing to roll back to
    no_target = []
    disables = {(d.artifact_kind, d.artifact) for d in (inputs.evidence.of(RollbackDrill) if inputs.evidence else [])
                if d.method in DISABLE_METHODS and d.outcome == "succeeded"}
    flagged = {(f.artifact_kind, f.artifact) for f in (inputs.evidence.of(FeatureFlag) if inputs.evidence else [])}
    for c in changes:
        if c.kind == "eval_datasets" or c.candidate is None or c.baseline is not None:
            continue
        if (c.kind, c.name) in disables or (c.kind, c.name) in flagged:
            continue  # switched off by a flag or a tested disable: that is its rollback
        no_target.append(f"{c.kind}/{c.name} (added: {c.candidate})")
    out.append(_result("rollback.target_in_baseline", "Every change has a rollback target in the baseline manifest",
                       "rollback", sev, "rollout.rollback_targets",
                       [f"change with no rollback target in the baseline manifest and no flag or tested disable: "
                        f"{_ids(no_target)}"] if no_target else [],
                       "every changed artifact has a baseline version, a flag or a tested disable to return to",
                       len(_changed(changes, None))))
    # 3. an eval-dataset change presented as a rollback
    drills = inputs.evidence.of(RollbackDrill) if inputs.evidence else []
    fake = [f"{d.artifact} {d.from_version} -> {d.to_version}" for d in drills if d.artifact_kind == "eval_datasets"]
    out.append(_result("rollback.not_an_eval_change", "No eval-dataset change presented as a rollback", "rollback", sev,
                       "rollout.rollback_drills",
                       [f"an eval-dataset change is not a rollback (the behaviour did not change back): "
                        f"{_ids(fake)}"] if fake else [],
                       f"{len(drills)} rollback drill(s), none on an eval dataset" if inputs.evidence
                       else "no rollback drill presented", len(drills)))
    del candidate_id
    return out


def judge_rollout(policy: RolloutPolicy, profile: str | None, inputs: RolloutInputs,
                  changes: list[ArtifactChange], candidate_id: str,
                  decided: dict[str, str]) -> list[dict[str, Any]]:
    """The rollout gates' results (as GateResult fields). `decided`: gate id -> 'status|category' of the other gates
    (the offline gates an A/B of retrieval ranking must have passed first)."""
    out = anti_pattern_results(policy, inputs, changes, candidate_id)
    for g in policy.gates_for(profile):
        name = g.name or GATE_NAMES[g.kind]
        cat, metric = GATE_CATEGORY[g.kind], GATE_METRIC[g.kind]
        if inputs.evidence is None and g.kind != "incidents_covered":  # incidents are the store's, not the file's
            out.append(_result(g.id, name, cat, g.severity, metric,
                               [f"no rollout evidence is attached to the release (needed: {metric.split('.')[1]})"],
                               "", 0))
            continue
        if g.kind == "tier_evidence_fresh":
            findings = [f for f, _ in tier_findings(inputs, g.tiers, inputs.evidence, policy.tiers)]
            n = len(g.tiers or policy.tiers)
            ok = f"{n} tier(s) ran, passed and are fresh"
        else:
            findings, n, ok = _judge_kind(g, inputs, changes, decided)
        out.append(_result(g.id, name, cat, g.severity, metric, findings, ok, n))
    return out


def train_status(tiers: list[Tier], evidence: RolloutEvidence | None, created_at: datetime) -> list[dict[str, Any]]:
    """One row per tier for a release: when it last ran, its result, its age and what is missing (the train view)."""
    as_of = max(evidence.as_of, created_at) if evidence else created_at
    rows = []
    for t in tiers:
        runs = [r for r in (evidence.of(TierRun) if evidence else []) if r.tier == t.name]
        last = max(runs, key=lambda r: r.ran_at) if runs else None
        age = (as_of - last.ran_at).total_seconds() / 86400 if last else None
        missing = sorted(set(t.suites) - set(last.suites)) if last else list(t.suites)
        if last is None:
            state = "missing"
        elif not last.passed:
            state = "failed"
        elif age is not None and age > t.max_age_days:
            state = "stale"
        elif missing:
            state = "incomplete"
        else:
            state = "ok"
        rows.append({"tier": t.name, "cadence": t.cadence, "suites": ", ".join(t.suites),
                     "max_age_days": t.max_age_days, "last_run": last.ran_at.isoformat() if last else None,
                     "age_days": round(age, 1) if age is not None else None,
                     "result": None if last is None else ("passed" if last.passed else "failed"),
                     "missing_suites": ", ".join(missing), "state": state})
    return rows


def rollout_loosened(previous: RolloutPolicy | None, current: RolloutPolicy | None) -> list[tuple[str, str]]:
    """(gate id, change) for every way `current`'s rollout section lets through what `previous`'s did not: the
    section or a gate removed, a severity downgraded, a drill allowed to be older or slower, a larger starting
    exposure, more safeguards or fewer offline categories, fewer required tiers, a tier's evidence allowed to be
    older, fewer suites per tier, narrower artifact kinds or high-risk tools."""
    if previous is None:
        return []
    if current is None:
        return [("(rollout)", "rollout section removed: no rollout gate runs")]
    order = {"blocker": 0, "warning": 1, "informational": 2}
    out = []
    if order[current.anti_pattern_severity] > order[previous.anti_pattern_severity]:
        out.append(("(rollout)", f"anti_pattern_severity {previous.anti_pattern_severity} -> "
                                 f"{current.anti_pattern_severity}"))
    now = {g.id: g for g in current.gates}
    for old in previous.gates:
        new = now.get(old.id)
        if new is None:
            out.append((old.id, "rollout gate removed"))
            continue
        if new.kind != old.kind:
            out.append((old.id, f"kind {old.kind} -> {new.kind} (a different check: review)"))
            continue
        if order[new.severity] > order[old.severity]:
            out.append((old.id, f"severity {old.severity} -> {new.severity}"))
        for name, label in (("max_age_days", "drills may be older"), ("max_minutes", "rollbacks may be slower"),
                            ("max_percentage", "high-risk exposure may start larger")):
            if getattr(new, name) > getattr(old, name):
                out.append((old.id, f"{name} {getattr(old, name):g} -> {getattr(new, name):g}: {label}"))
        if old.artifact_kinds is None and new.artifact_kinds is not None or (
                old.artifact_kinds is not None and new.artifact_kinds is not None
                and not set(old.artifact_kinds) <= set(new.artifact_kinds)):
            out.append((old.id, "artifact_kinds narrowed"))
        if not set(old.high_risk_tools) <= set(new.high_risk_tools):
            out.append((old.id, "high_risk_tools narrowed"))
        more = sorted(k for k in new.safeguards if old.safeguards.get(k) != new.safeguards[k])
        if more:
            out.append((old.id, f"A/B allowed with a safeguard for {', '.join(more)}"))
        if not set(old.offline_categories) <= set(new.offline_categories):
            out.append((old.id, "fewer offline gate categories before a retrieval-ranking A/B"))
        if old.profiles is None and new.profiles is not None or (
                old.profiles is not None and new.profiles is not None and not set(old.profiles) <= set(new.profiles)):
            out.append((old.id, "runs in fewer profiles"))
        if old.kind == "tier_evidence_fresh":
            names_old = set(old.tiers or [t.name for t in previous.tiers])
            names_new = set(new.tiers or [t.name for t in current.tiers])
            if not names_old <= names_new:
                out.append((old.id, f"no longer requires tier {', '.join(sorted(names_old - names_new))}"))
    tiers_now = {t.name: t for t in current.tiers}
    for t in previous.tiers:
        n = tiers_now.get(t.name)
        if n is None:
            continue  # a required tier's removal is reported by its gate above
        if n.max_age_days > t.max_age_days:
            out.append((f"(tier {t.name})", f"max_age_days {t.max_age_days:g} -> {n.max_age_days:g}"))
        if not set(t.suites) <= set(n.suites):
            out.append((f"(tier {t.name})", f"no longer runs {', '.join(sorted(set(t.suites) - set(n.suites)))}"))
    return out
