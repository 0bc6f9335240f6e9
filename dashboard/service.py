"""The operations the CLI and the dashboard share: one function each, reading through the store."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused
from dashboard.core.gates import (
    PAIRED_RISK,
    DatasetChanges,
    EvaluationInputs,
    GateDecision,
    PolicyComparison,
    ReleaseRef,
    RunDigest,
    SliceValues,
    dataset_governance_gate,
    evaluate,
    load_decision,
    loosened_gates,
    paired_key,
    spec_key,
)
from dashboard.core.manifests import ArtifactChange, diff_manifests
from dashboard.core.metrics import CATALOGUE, MetricValue, tool_metric
from dashboard.core.models import ReleaseEvidence
from dashboard.core.policy import Gate, GatePolicy, SliceSpec
from dashboard.core.rollout import RolloutInputs
from dashboard.core.rollout_gates import with_rollout
from dashboard.core.stats import Paired, quantile_interval_ranks, ratio_interval
from dashboard.store.db import Store

QUANTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


def resolve_baseline(store: Store, candidate_id: str, baseline_id: str | None,
                     no_baseline: bool = False) -> str | None:
    """The explicit baseline, else the one the candidate's manifest names (which must be stored);
    None when `no_baseline` asks to judge the candidate on its own."""
    manifest = store.manifest(candidate_id)
    if manifest is None:
        raise InputRefused(f"candidate release {candidate_id!r} is not in the store")
    if no_baseline:
        return None
    chosen = baseline_id or manifest.baseline_release_id
    if chosen is not None and store.manifest(chosen) is None:
        raise InputRefused(f"baseline release {chosen!r} is not in the store")
    return chosen


def add_bootstrap_intervals(store: Store, release_id: str, spec: SliceSpec,
                            values: dict[str, dict[str, MetricValue]]) -> None:
    """Percentiles get exact-bootstrap intervals, cost per successful task a seeded bootstrap."""
    wanted = {m for per_slice in values.values() for m in per_slice}
    if wanted & set(QUANTILES):
        # The exact bootstrap's bounds are order statistics whose ranks depend on n alone: fetch just those.
        bounds: dict[tuple[str, str], tuple[int, int]] = {}
        for value, per_slice in values.items():
            for m in wanted & set(QUANTILES):
                mv = per_slice.get(m)
                ranks = quantile_interval_ranks(mv.n_eligible, QUANTILES[m]) if mv and mv.value is not None else None
                if ranks:
                    bounds[(value, m)] = ranks
        wanted_ranks: dict[str, list[int]] = {}
        for (value, _m), (lo, hi) in bounds.items():
            wanted_ranks.setdefault(value, []).extend([lo, hi])
        stats = store.order_statistics(release_id, spec, "latency_ms", wanted_ranks) if bounds else {}
        for (value, m), (lo, hi) in bounds.items():
            got = stats.get(value, {})
            if lo in got and hi in got:
                values[value][m].interval = (got[lo], got[hi])
                values[value][m].interval_method = "exact bootstrap"
    if "cost_per_successful_task" in wanted:
        for value, arrays in store.metric_arrays(release_id, spec, ["cost_usd", "passed"]).items():
            mv = values.get(value, {}).get("cost_per_successful_task")
            if mv is not None and mv.value is not None:
                mv.interval = ratio_interval(arrays["cost_usd"], arrays["passed"])
                mv.interval_method = "bootstrap (seeded)"


def comparability_notes(store: Store, candidate_id: str, baseline_id: str) -> list[str]:
    """Loud notes when the two releases were judged on different data, judges or scorers."""
    cand, base = store.judging(candidate_id), store.judging(baseline_id)
    notes = []
    for dataset in sorted(set(cand) | set(base)):
        if dataset not in base:
            notes.append(f"eval dataset {dataset} ran only on the candidate: nothing to compare it with")
            continue
        if dataset not in cand:
            notes.append(f"eval dataset {dataset} ran only on the baseline: the candidate was not judged on it")
            continue
        for key, label in (("dataset_version", "dataset version"), ("judge_model", "judge model"),
                           ("scorer_version", "scorer version")):
            if cand[dataset][key] != base[dataset][key]:
                notes.append(f"{dataset}: {label} differs (baseline {', '.join(base[dataset][key]) or 'none'}, "
                             f"candidate {', '.join(cand[dataset][key]) or 'none'}); paired statistics use only "
                             "the cases both ran with the same content")
    return notes


def dataset_changes(store: Store, candidate_id: str, baseline_id: str) -> list[DatasetChanges]:
    rows = store.dataset_changes(candidate_id, baseline_id)
    out: dict[str, DatasetChanges] = {}
    for r in rows:
        d = out.setdefault(r["dataset"], DatasetChanges(dataset=r["dataset"], added=0, removed=0, changed=0,
                                                        downgraded=0))
        setattr(d, r["change"], getattr(d, r["change"]) + 1)
        if r["change"] == "removed" and r["baseline_risk"] == "critical" and len(d.critical_removed) < 20:
            d.critical_removed.append(r["case_id"])
        if r["change"] == "downgraded" and r["baseline_risk"] == "critical" and len(d.critical_downgraded) < 20:
            d.critical_downgraded.append(r["case_id"])
        if (r["change"] == "changed" and "critical" in (r["baseline_risk"], r["candidate_risk"])
                and r["candidate_passed"] is False and len(d.critical_changed_failing) < 20):
            d.critical_changed_failing.append(r["case_id"])
    return [out[k] for k in sorted(out)]


@dataclass(frozen=True)
class _ReleaseFacts:
    """What a decision needs about the two releases, whatever the policy: read from the store once."""

    candidate: ReleaseRef
    baseline: ReleaseRef | None
    changes: list[ArtifactChange]
    suites: set[str]
    runs: list[RunDigest]
    evidence: tuple[ReleaseEvidence, str] | None
    comparability: list[str]
    dataset_changes: list[DatasetChanges]
    notes: list[str]
    rollout: RolloutInputs | None = None  # gathered only for a policy with a rollout section


def _release_facts(store: Store, candidate_id: str, baseline_id: str | None) -> _ReleaseFacts:
    cand_manifest = store.manifest(candidate_id)
    assert cand_manifest is not None
    cand_runs = store.runs(candidate_id)
    if not cand_runs:
        raise InputRefused(f"candidate release {candidate_id!r} has no eval runs stored")
    runs = [RunDigest(release_id=candidate_id, run_id=r.run_id, data_digest=r.data_digest) for r in cand_runs]
    if baseline_id:
        runs += [RunDigest(release_id=baseline_id, run_id=r.run_id, data_digest=r.data_digest)
                 for r in store.runs(baseline_id)]
    return _ReleaseFacts(
        candidate=ReleaseRef(release_id=candidate_id, manifest_digest=store.manifest_digest(candidate_id) or ""),
        baseline=ReleaseRef(release_id=baseline_id, manifest_digest=store.manifest_digest(baseline_id) or "")
        if baseline_id else None,
        changes=diff_manifests(store.manifest(baseline_id) if baseline_id else None, cand_manifest),
        suites={r.suite for r in cand_runs}, runs=runs, evidence=store.evidence(candidate_id),
        comparability=comparability_notes(store, candidate_id, baseline_id) if baseline_id else [],
        dataset_changes=dataset_changes(store, candidate_id, baseline_id) if baseline_id else [],
        notes=[] if baseline_id else
        ["no baseline release: relative gates fail closed and eval-dataset changes cannot be checked"],
    )


@dataclass(frozen=True)
class _MetricValues:
    candidate: dict[str, SliceValues]
    baseline: dict[str, SliceValues]
    paired: dict[str, dict[str, Paired]]


def _metric_values(store: Store, gates: list[Gate], candidate_id: str, baseline_id: str | None) -> _MetricValues:
    """One aggregate query per distinct slice spec and release, computing every metric the gates need."""
    specs: dict[str, tuple[SliceSpec, set[str]]] = {}
    for g in gates:
        if not g.metric.startswith("evidence."):
            spec, metrics = specs.setdefault(spec_key(g.slice), (g.slice, set()))
            metrics.add(g.metric)
    cand = {k: store.slice_metrics(candidate_id, spec, sorted(ms)) for k, (spec, ms) in specs.items()}
    for k, (spec, ms) in specs.items():
        if any(CATALOGUE[m].kind in ("quantile", "ratio") for m in ms if m in CATALOGUE):
            add_bootstrap_intervals(store, candidate_id, spec, cand[k])
    base = ({k: store.slice_metrics(baseline_id, spec, sorted(ms)) for k, (spec, ms) in specs.items()}
            if baseline_id else {})
    paired = {}
    if baseline_id:
        for g in gates:
            if g.condition.test and paired_key(g) not in paired:
                paired[paired_key(g)] = store.paired(candidate_id, baseline_id, g.slice, PAIRED_RISK.get(g.metric),
                                                     metric=g.metric if tool_metric(g.metric) else None)
    return _MetricValues(candidate=cand, baseline=base, paired=paired)


def rollout_inputs(store: Store, candidate_id: str, baseline_id: str | None) -> RolloutInputs:
    """What the rollout gates judge: the candidate's rollout evidence, every stored incident and artifact digest,
    and the candidate's outcome on every case an incident names (one query)."""
    from dashboard.store import rollout as rollout_store

    cand = store.manifest(candidate_id)
    assert cand is not None
    base = store.manifest(baseline_id) if baseline_id else None
    ev = rollout_store.rollout_evidence(store, candidate_id)
    found = rollout_store.incidents(store)
    return RolloutInputs(
        evidence=ev[0] if ev else None, evidence_digest=ev[1] if ev else None,
        candidate_created_at=cand.created_at, baseline_created_at=base.created_at if base else None,
        incidents=found, artifact_digests=rollout_store.artifact_digests(store),
        case_outcomes=rollout_store.case_outcomes(store, candidate_id, [c for i in found for c in i.case_ids]))


def _judge(policy: GatePolicy, profile: str | None, facts: _ReleaseFacts, values: _MetricValues) -> GateDecision:
    if policy.rollout is not None and facts.rollout is not None:
        return with_rollout(_judge_gates(policy, profile, facts, values), policy, profile, facts.rollout)
    return _judge_gates(policy, profile, facts, values)


def _judge_gates(policy: GatePolicy, profile: str | None, facts: _ReleaseFacts, values: _MetricValues) -> GateDecision:
    extra = [dataset_governance_gate(policy, facts.dataset_changes)] if facts.baseline else []
    return evaluate(EvaluationInputs(
        policy=policy, profile=profile, candidate=facts.candidate, baseline=facts.baseline, changes=facts.changes,
        candidate_values=values.candidate, baseline_values=values.baseline,
        evidence=facts.evidence[0] if facts.evidence else None,
        evidence_digest=facts.evidence[1] if facts.evidence else None, candidate_suites=facts.suites,
        data_digests=facts.runs, notes=list(facts.notes), paired=values.paired, extra_gates=extra,
        comparability=facts.comparability, dataset_changes=facts.dataset_changes,
    ))


def gate_release(store: Store, policy: GatePolicy, candidate_id: str, baseline_id: str | None = None,
                 profile: str | None = None, no_baseline: bool = False,
                 previous: GatePolicy | None = None, cache: bool = True) -> GateDecision:
    """Judge `candidate_id` against its baseline under `policy`: the one decision CI and dashboard show.

    The decision depends only on the manifests, the policy, the profile, the evidence and the eval data (and on
    `previous` when given): never on what the store judged before. With `previous` (an explicit comparison
    policy, e.g. `--previous-policy FILE`), that policy judges the same data too (from the same facts and metric
    values) and the decision names it by digest and shows where `policy` is looser.

    With `cache`, a decision stored under the digest of exactly these inputs (`judged_key`) is served when its JSON
    still matches its digest; otherwise the release is judged and the decision stored (when the store is writable).
    A cached decision is the same bytes a fresh judgement gives: the key is the inputs, so nothing stale is served."""
    baseline_id = resolve_baseline(store, candidate_id, baseline_id, no_baseline)
    gates = policy.gates_for(profile)
    # Kept so a review can name the policy it was signed against; never read back into a decision.
    store.remember_policy(policy.policy_id, policy.version, policy.digest, policy.model_dump_json())
    key = judged_key(store, policy, candidate_id, baseline_id, profile, previous) if cache else None
    if key is not None:
        hit = cached_decision(store, key, policy, candidate_id, baseline_id, previous)
        if hit is not None:
            return hit
    decision = _judge_release(store, policy, gates, candidate_id, baseline_id, profile, previous)
    if key is not None:
        _cache(store, key, decision)
    return decision


# The cache key names the computation too: a change to the code that judges (or to this format) misses the cache.
CACHE_FORMAT = "readiness-decision-cache/1"
_JUDGING_CODE = ("core", "service.py", "store")


@functools.cache
def code_fingerprint() -> str:
    """sha256 over the source of every module a decision is computed by, and the versions of the libraries that
    compute its numbers (read once per process)."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for lib in ("duckdb", "numpy", "scipy", "pydantic"):
        try:
            h.update(f"{lib}=={version(lib)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{lib} missing\0".encode())
    for part in _JUDGING_CODE:
        for f in sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / part]:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def judged_key(store: Store, policy: GatePolicy, candidate_id: str, baseline_id: str | None,
               profile: str | None, previous: GatePolicy | None = None) -> str:
    """The digest of everything a decision judges: both manifests, the policy, the profile, the comparison policy,
    the candidate's evidence and every stored run of both releases (whose data digests name their cases' bytes),
    plus the judging code. Cheap: it reads the releases, runs and evidence tables, never the cases."""
    def runs(release_id: str) -> list[list[object]]:
        return [[release_id, r.run_id, r.suite, r.dataset, r.dataset_version, r.cases, r.passed, r.failed,
                 r.source_digest, r.data_digest] for r in store.runs(release_id)]

    evidence = store.evidence(candidate_id)
    rollout = ({"rollout": digest(rollout_inputs(store, candidate_id, baseline_id).model_dump(mode="json"))}
               if policy.rollout is not None or (previous is not None and previous.rollout is not None) else {})
    return digest({**rollout,
        "format": CACHE_FORMAT, "code": code_fingerprint(),
        "candidate": [candidate_id, store.manifest_digest(candidate_id)],
        "baseline": [baseline_id, store.manifest_digest(baseline_id)] if baseline_id else None,
        # Without a comparison policy only the effective profile matters (CI's default is the dashboard's choice);
        # with one, the profile as given also picks the comparison policy's gates.
        "policy": policy.digest, "profile": profile or policy.default_profile,
        "given_profile": profile if previous else None, "previous": previous.digest if previous else None,
        "evidence": [evidence[1], digest(evidence[0])] if evidence else None,
        "runs": runs(candidate_id) + (runs(baseline_id) if baseline_id else []),
    })


def cached_decision(store: Store, key: str, policy: GatePolicy, candidate_id: str, baseline_id: str | None,
                    previous: GatePolicy | None = None) -> GateDecision | None:
    """The decision stored under `key`, only if its JSON is canonical, matches its digest and names these inputs;
    anything else (a corrupt or tampered row) is ignored, so the caller judges afresh."""
    row = store.cached_decision(key)
    if row is None:
        return None
    stored_digest, text = row
    try:
        d = load_decision(text, "decision cache")
    except InputRefused:
        return None
    if d.digest != stored_digest or not d.verify_digest() or d.model_dump_json() != text:
        return None
    if (d.candidate.release_id != candidate_id or (d.baseline.release_id if d.baseline else None) != baseline_id
            or d.policy.digest != policy.digest
            or (d.policy_comparison.previous_digest if d.policy_comparison else None)
            != (previous.digest if previous else None)):
        return None
    return d


def _cache(store: Store, key: str, decision: GateDecision) -> None:
    """Store the decision when it reads back as the same bytes and digest (never cache what would not)."""
    text = decision.model_dump_json()
    try:
        back = load_decision(text, "decision cache")
    except InputRefused:
        return
    if back.model_dump_json() == text and back.verify_digest() and back.digest == decision.digest:
        store.cache_decision(key, decision.digest, text)


def _judge_release(store: Store, policy: GatePolicy, gates: list[Gate], candidate_id: str, baseline_id: str | None,
                   profile: str | None, previous: GatePolicy | None) -> GateDecision:
    prev_profile = (profile if previous is not None and profile in previous.profiles else None)
    prev_gates = previous.gates_for(prev_profile) if previous is not None else []
    facts = _release_facts(store, candidate_id, baseline_id)
    if policy.rollout is not None or (previous is not None and previous.rollout is not None):
        facts = dataclasses.replace(facts, rollout=rollout_inputs(store, candidate_id, baseline_id))
    values = _metric_values(store, gates + prev_gates, candidate_id, baseline_id)
    decision = _judge(policy, profile, facts, values)
    if previous is None:
        return decision
    old = _judge(previous, prev_profile, facts, values)
    now = {g.gate_id: g.status for g in decision.gates}
    was = {g.gate_id: g.status for g in old.gates}
    outcome = [(gid, was.get(gid, "absent"), now.get(gid, "absent"))
               for gid in sorted(set(now) | set(was)) if was.get(gid) != now.get(gid)]
    loosened = loosened_gates(previous, policy)
    comparison = PolicyComparison(previous_version=previous.version, previous_digest=previous.digest,
                                  previous_status=old.status, loosened=loosened, outcome_changes=outcome)
    notes = list(decision.notes)
    if loosened:
        notes.append(f"policy {policy.policy_id} v{policy.version} is looser than v{previous.version} "
                     f"in {len(loosened)} place(s); under v{previous.version} the decision is {old.status}")
    return decision.model_copy(update={"policy_comparison": comparison, "notes": notes}).with_digest()
