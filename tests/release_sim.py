"""A/A and power of a policy's statistical (paired) blockers, simulated at the level of the paired counts.

Faithful to the product: the counts are exactly what `Store.paired` returns for the gate's slice (one designated
repeat per case, shared content), and the policy is judged by the real `evaluate` (BH within a for_each gate, Holm
across paired blockers). What is simulated is the eval data: a release of `tasks` x `per_task` cases, each with a
latent difficulty shared by both releases (so baseline and candidate outcomes are correlated, as in real re-runs),
a `critical_share` of them critical, the rest low risk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from dashboard.core.gates import PAIRED_RISK, EvaluationInputs, ReleaseRef, evaluate, paired_key, spec_key
from dashboard.core.metrics import MetricValue, metric_value
from dashboard.core.policy import GatePolicy
from dashboard.core.stats import Paired


@dataclass(frozen=True)
class Release:
    tasks: int = 6
    per_task: int = 400
    critical_share: float = 1 / 6
    p_critical: float = 0.95  # baseline pass rate of critical cases
    p_other: float = 0.90  # baseline pass rate of the others
    shared: float = 0.8  # weight of the latent difficulty (noise weight: sqrt(1 - shared^2))


def _counts(mask: np.ndarray, group: np.ndarray, b: np.ndarray, c: np.ndarray, k: int) -> list[Paired]:
    def n(sel: np.ndarray) -> np.ndarray:
        return np.bincount(group[mask & sel], minlength=k)

    both, reg, fix, none = n(b & c), n(b & ~c), n(~b & c), n(~b & ~c)
    return [Paired(int(both[i]), int(reg[i]), int(fix[i]), int(none[i])) for i in range(k)]


def simulate_paired(rng: np.random.Generator, rel: Release, critical_drop: float = 0.0):
    """Baseline and candidate outcomes of one simulated pair of releases: (task, critical, baseline, candidate)."""
    n = rel.tasks * rel.per_task
    task = np.repeat(np.arange(rel.tasks), rel.per_task)
    critical = rng.random(n) < rel.critical_share
    difficulty = rng.standard_normal(n)
    noise = np.sqrt(1 - rel.shared ** 2)
    p_base = np.where(critical, rel.p_critical, rel.p_other)
    p_cand = np.where(critical, rel.p_critical - critical_drop, rel.p_other)
    # Marginal pass probability p: latent shared*d + noise*e ~ N(0, 1) below norm.ppf(p).
    base = rel.shared * difficulty + noise * rng.standard_normal(n) < norm.ppf(p_base)
    cand = rel.shared * difficulty + noise * rng.standard_normal(n) < norm.ppf(p_cand)
    return task, critical, base, cand


def judge_paired_blockers(policy: GatePolicy, rng: np.random.Generator, rel: Release,
                          critical_drop: float = 0.0) -> list[str]:
    """The paired blockers that fail on one simulated pair (empty: not blocked by them)."""
    task, critical, base, cand = simulate_paired(rng, rel, critical_drop)
    gates = [g for g in policy.gates_for(None) if g.condition.test]
    cand_values: dict[str, dict[str, dict[str, MetricValue]]] = {}
    base_values: dict[str, dict[str, dict[str, MetricValue]]] = {}
    paired: dict[str, dict[str, Paired]] = {}
    everything = np.ones(len(task), dtype=bool)
    for g in gates:
        assert g.slice.for_each in (None, "task") and not g.slice.where and not g.slice.suite, g.id
        risks = g.slice.risk or PAIRED_RISK.get(g.metric)
        mask = everything if risks is None else (critical if risks == ["critical"] else
                                                 critical if set(risks) <= {"critical", "high"} else everything)
        if g.slice.for_each == "task":
            counts = _counts(mask, task, base, cand, rel.tasks)
            keys = [f"t{i}" for i in range(rel.tasks)]
        else:
            counts = _counts(mask, np.zeros(len(task), dtype=int), base, cand, 1)
            keys = [""]
        cv, bv = {}, {}
        for key, p in zip(keys, counts, strict=True):
            cv[key] = {g.metric: metric_value(g.metric, p.n, p.both_pass + p.fixes, p.n, p.n)}
            bv[key] = {g.metric: metric_value(g.metric, p.n, p.both_pass + p.regressions, p.n, p.n)}
        cand_values.setdefault(spec_key(g.slice), {}).update(cv)
        base_values.setdefault(spec_key(g.slice), {}).update(bv)
        paired[paired_key(g)] = dict(zip(keys, counts, strict=True))
    ref = ReleaseRef(release_id="c", manifest_digest="x")
    d = evaluate(EvaluationInputs(policy=policy, profile=None, candidate=ref,
                                  baseline=ReleaseRef(release_id="b", manifest_digest="y"), changes=[],
                                  candidate_values=cand_values, baseline_values=base_values, paired=paired))
    ids = {g.id for g in gates if g.severity == "blocker"}
    return [r.gate_id for r in d.gates if r.status == "fail" and r.policy_gate_id in ids]


def block_rate(policy: GatePolicy, seed: int, pairs: int, rel: Release, critical_drop: float = 0.0) -> int:
    rng = np.random.default_rng(seed)
    return sum(bool(judge_paired_blockers(policy, rng, rel, critical_drop)) for _ in range(pairs))
