"""The operations the CLI and the dashboard share: one function each, reading through the store."""

from __future__ import annotations

from dashboard.core.errors import InputRefused
from dashboard.core.gates import GateDecision, ReleaseRef, RunDigest, evaluate, spec_key
from dashboard.core.manifests import diff_manifests
from dashboard.core.policy import GatePolicy
from dashboard.store.db import Store


def resolve_baseline(store: Store, candidate_id: str, baseline_id: str | None) -> str | None:
    """The explicit baseline, else the one the candidate's manifest names (which must be stored)."""
    manifest = store.manifest(candidate_id)
    if manifest is None:
        raise InputRefused(f"candidate release {candidate_id!r} is not in the store")
    chosen = baseline_id or manifest.baseline_release_id
    if chosen is not None and store.manifest(chosen) is None:
        raise InputRefused(f"baseline release {chosen!r} is not in the store")
    return chosen


def gate_release(store: Store, policy: GatePolicy, candidate_id: str, baseline_id: str | None = None,
                 profile: str | None = None) -> GateDecision:
    """Judge `candidate_id` against its baseline under `policy`: the one decision CI and dashboard show."""
    baseline_id = resolve_baseline(store, candidate_id, baseline_id)
    gates = policy.gates_for(profile)
    store.remember_policy(policy.policy_id, policy.version, policy.digest, policy.model_dump_json())
    cand_manifest = store.manifest(candidate_id)
    base_manifest = store.manifest(baseline_id) if baseline_id else None
    assert cand_manifest is not None
    if not store.runs(candidate_id):
        raise InputRefused(f"candidate release {candidate_id!r} has no eval runs stored")

    # One aggregate query per distinct slice spec and release, computing every metric it needs.
    specs: dict[str, tuple] = {}
    for g in gates:
        if not g.metric.startswith("evidence."):
            spec, metrics = specs.setdefault(spec_key(g.slice), (g.slice, set()))
            metrics.add(g.metric)
    cand_values = {k: store.slice_metrics(candidate_id, spec, sorted(ms)) for k, (spec, ms) in specs.items()}
    base_values = ({k: store.slice_metrics(baseline_id, spec, sorted(ms)) for k, (spec, ms) in specs.items()}
                   if baseline_id else {})

    evidence = store.evidence(candidate_id)
    runs = [RunDigest(release_id=candidate_id, run_id=r.run_id, data_digest=r.data_digest)
            for r in store.runs(candidate_id)]
    if baseline_id:
        runs += [RunDigest(release_id=baseline_id, run_id=r.run_id, data_digest=r.data_digest)
                 for r in store.runs(baseline_id)]
    notes = [] if baseline_id else ["no baseline release: relative gates fail closed"]
    decision = evaluate(
        policy, profile,
        ReleaseRef(release_id=candidate_id, manifest_digest=store.manifest_digest(candidate_id) or ""),
        ReleaseRef(release_id=baseline_id, manifest_digest=store.manifest_digest(baseline_id) or "")
        if baseline_id else None,
        diff_manifests(base_manifest, cand_manifest),
        cand_values, base_values,
        evidence[0] if evidence else None, evidence[1] if evidence else None,
        store.suites(candidate_id), runs, notes,
    )
    return decision
