"""The report's rollout and rollback sections (issue 17): pure, from the decision and the rollout evidence.

Shown only when the decision judged rollout gates (the policy has a rollout section), so reports under other
policies keep their bytes. Untrusted text goes through the caller's escapers (Markdown cell / HTML)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dashboard.core.gates import GateDecision
from dashboard.core.manifests import ROLLBACK_METHOD
from dashboard.core.rollout import Experiment, FeatureFlag, Incident, RollbackDrill, RolloutEvidence


class RolloutReport(BaseModel):
    """What the report shows about rollout safety."""

    evidence: RolloutEvidence | None = Field(description="The candidate's rollout evidence; null: none attached.")
    train: list[dict[str, Any]] = Field(default_factory=list, description="The candidate's release-train rows.")


def _latest_drill(ev: RolloutEvidence | None, kind: str) -> RollbackDrill | None:
    drills = [d for d in (ev.of(RollbackDrill) if ev else []) if d.artifact_kind == kind]
    return max(drills, key=lambda d: d.performed_at) if drills else None


def rollback_rows(d: GateDecision, r: RolloutReport) -> list[list[str]]:
    """artifact, name, roll back to, how, latest drill (when, minutes, outcome) for every changed artifact."""
    rows = []
    for c in d.changed_artifacts:
        drill = _latest_drill(r.evidence, c.kind)
        tested = (f"{drill.performed_at:%Y-%m-%d} · {drill.minutes_to_rollback:g} min · {drill.outcome}" if drill
                  else "never drilled")
        rows.append([c.kind, c.name, c.baseline or "remove it", ROLLBACK_METHOD[c.kind], tested])
    return rows


def sections(d: GateDecision, r: RolloutReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of the rollout section's tables, in order."""
    ev = r.evidence
    gates = [g for g in d.gates if g.metric.startswith("rollout.")]
    out: list[tuple[str, list[str], list[list[str]]]] = [
        ("Rollout gates", ["status", "severity", "gate", "why"],
         [[g.status, g.severity, g.gate_id, g.reason] for g in gates])]
    out.append(("Release train", ["tier", "cadence", "last run", "age (days)", "result", "state"],
                [[t["tier"], t["cadence"], (t["last_run"] or "never")[:16],
                  "" if t["age_days"] is None else f"{t['age_days']:g}", t["result"] or "–", t["state"]]
                 for t in r.train]))
    out.append(("Feature flags", ["flag", "controls", "risk", "default", "exposure", "owner", "audited"],
                [[f.flag, f"{f.artifact_kind}/{f.artifact}", f.risk, "on" if f.default else "off",
                  ", ".join(x for x in [f"{f.percentage:g}%" if f.percentage is not None else "",
                                        ", ".join(f.tenants)] if x) or "everyone",
                  f.owner, "yes" if f.audited and f.audit_ref else "no"] for f in (ev.of(FeatureFlag) if ev else [])]))
    out.append(("A/B experiments", ["experiment", "varies", "population", "exposes", "safeguard"],
                [[x.experiment_id, f"{x.artifact_kind}/{x.artifact}", x.population, ", ".join(x.exposes),
                  x.safeguard or "–"] for x in (ev.of(Experiment) if ev else [])]))
    out.append(("Incidents in this release's evidence", ["incident", "when", "artifact", "eval cases", "what happened"],
                [[i.incident_id, f"{i.occurred_at:%Y-%m-%d}", f"{i.artifact_kind}/{i.artifact}", ", ".join(i.case_ids),
                  i.description] for i in (ev.of(Incident) if ev else [])]))
    return out
