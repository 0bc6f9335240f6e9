"""The release train (seed §7, §27) across stored releases: which tiers ran, when, with which result, and what is
missing before a release can be judged. One function for the CLI (`readiness train`) and the dashboard."""

from __future__ import annotations

from typing import Any

from dashboard.core.policy import GatePolicy
from dashboard.core.rollout import RolloutEvidence, train_status
from dashboard.store.db import Store
from dashboard.store.rollout import all_rollout_evidence


def required_tiers(policy: GatePolicy) -> list[str]:
    """The tiers a release needs before it can be judged: those the policy's tier_evidence_fresh gates require."""
    if policy.rollout is None:
        return []
    names = [t.name for t in policy.rollout.tiers]
    wanted: set[str] = set()
    for g in policy.rollout.gates:
        if g.kind == "tier_evidence_fresh":
            wanted |= set(g.tiers or names)
    return [n for n in names if n in wanted]


def release_train(store: Store, policy: GatePolicy) -> list[dict[str, Any]]:
    """One row per stored release and tier of the policy's train, oldest release first."""
    if policy.rollout is None or not policy.rollout.tiers:
        return []
    evidence = all_rollout_evidence(store)
    required = set(required_tiers(policy))
    rows = []
    for r in store.releases():
        ev: RolloutEvidence | None = evidence.get(r.release_id)
        for row in train_status(policy.rollout.tiers, ev, r.created_at):
            if row["state"] == "missing" and row["tier"] not in required:
                row["state"] = "not yet"  # canary, post-release: after the decision, not before it
            rows.append({"release": r.release_id, "created_at": r.created_at.isoformat(),
                         "rollout_evidence": ev is not None, "required": row["tier"] in required, **row})
    return rows


def missing_before_judging(rows: list[dict[str, Any]], release_id: str) -> list[str]:
    """What a release still lacks in its required tiers, in words."""
    out = []
    for row in rows:
        if row["release"] != release_id or not row["required"] or row["state"] == "ok":
            continue
        if row["state"] == "missing":
            out.append(f"{row['tier']} ({row['cadence']}) has not run for this release")
        elif row["state"] == "failed":
            out.append(f"{row['tier']} failed on {row['last_run'][:10]}: fix and run it again")
        elif row["state"] == "stale":
            out.append(f"{row['tier']} evidence is {row['age_days']:g} days old (max {row['max_age_days']:g}): "
                       f"run {row['suites'] or 'it'} again")
        else:
            out.append(f"{row['tier']} did not run {row['missing_suites']}")
    return out
