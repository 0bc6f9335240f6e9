"""Adding the rollout gates (dashboard.core.rollout) to a gate decision: pure, deterministic."""

from __future__ import annotations

from dashboard.core.canonical import digest
from dashboard.core.gates import GateDecision, GateResult, decide
from dashboard.core.policy import SEVERITY_ORDER, GatePolicy
from dashboard.core.rollout import RolloutInputs, judge_rollout


def with_rollout(decision: GateDecision, policy: GatePolicy, profile: str | None,
                 inputs: RolloutInputs) -> GateDecision:
    """The decision with the policy's rollout gates judged on `inputs` and added in the decision's gate order; the
    decision then names `inputs` by digest (rollout_digest). A policy without a rollout section: unchanged."""
    if policy.rollout is None:
        return decision
    decided = {g.gate_id: f"{g.status}|{g.category}" for g in decision.gates}
    new = [GateResult(**r) for r in judge_rollout(policy.rollout, profile or policy.default_profile, inputs,
                                                  decision.changed_artifacts, decision.candidate.release_id, decided)]
    gates = list(decision.gates) + new
    gates.sort(key=lambda g: (g.status != "fail", SEVERITY_ORDER[g.severity], g.category, g.gate_id))
    status, blockers, warnings = decide(gates)
    return decision.model_copy(update={
        "gates": gates, "status": status, "blockers": blockers, "warnings": warnings,
        "rollout_digest": digest(inputs.model_dump(mode="json"))}).with_digest()
