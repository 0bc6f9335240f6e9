"""Seeded simulation of the canary judge under repeated looks (docs/canary.md, tests/test_canary_sim.py).

A canary and a baseline of the same size each serve 500 more requests between two looks, up to 20,000 canary
requests (40 looks); the judge (core/canary.py:judge_arrays, the same code the CLI runs) is applied at every
look under the shipped policy's `canary` section. Per 500-request block, counts of rate signals are binomial
draws, feedback arrives on 5% of requests, cost per request is Gamma-distributed (block sums are exact Gamma draws;
block sums of squares are their conditional expectation). Run `python -m tests.canary_sim` for the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dashboard.core.canary import V_PROMOTE, V_ROLLBACK, judge_arrays
from dashboard.core.canary_policy import CanaryPolicy
from dashboard.core.policy import load_policy

REPO = Path(__file__).resolve().parent.parent
BLOCK, LOOKS = 500, 40
SEED = 20261207
# Production rates of the demo application (the baseline).
BASE_RATES = {"approval_bypass": 0.01, "safety_alert": 0.004, "citation_failure": 0.06, "refusal": 0.03,
              "error": 0.01, "tool_error": 0.02, "schema_failure": 0.005, "fallback": 0.02,
              "latency_over.8000": 0.05}
FEEDBACK_SHARE, NEGATIVE = 0.05, 0.2
GROUNDEDNESS_SHARE, GROUNDEDNESS_MEAN, GROUNDEDNESS_SD = 0.3, 0.86, 0.12
COST_SHAPE, COST_MEAN = 2.0, 0.012


def shipped_policy() -> CanaryPolicy:
    section = load_policy(REPO / "data" / "policies" / "case-management.yaml").canary
    assert section is not None
    return section


def _moments(rng: np.random.Generator, policy: CanaryPolicy, runs: int, shifts: dict[str, float]) -> tuple[np.ndarray, ...]:
    """Cumulative (n, sum, sum of squares) per run, look and signal for one variant."""
    shape = (runs, LOOKS)
    n, s, ss = (np.zeros((*shape, len(policy.signals))) for _ in range(3))
    for i, sig in enumerate(policy.signals):
        name = sig.signal
        if name in BASE_RATES:
            p = BASE_RATES[name] + shifts.get(name, 0.0)
            n[..., i] = BLOCK
            s[..., i] = rng.binomial(BLOCK, p, shape)
            ss[..., i] = s[..., i]
        elif name == "negative_feedback":
            n[..., i] = rng.binomial(BLOCK, FEEDBACK_SHARE, shape)
            s[..., i] = rng.binomial(n[..., i].astype(np.int64), NEGATIVE + shifts.get(name, 0.0))
            ss[..., i] = s[..., i]
        elif name == "score.groundedness":
            n[..., i] = rng.binomial(BLOCK, GROUNDEDNESS_SHARE, shape)
            mean = GROUNDEDNESS_MEAN + shifts.get(name, 0.0)
            s[..., i] = rng.normal(mean * n[..., i], GROUNDEDNESS_SD * np.sqrt(n[..., i]))
            ss[..., i] = n[..., i] * (GROUNDEDNESS_SD ** 2 + mean ** 2)
        elif name == "cost_usd":
            scale = COST_MEAN * (1 + shifts.get(name, 0.0)) / COST_SHAPE
            n[..., i] = BLOCK
            s[..., i] = rng.gamma(COST_SHAPE * BLOCK, scale, shape)
            ss[..., i] = s[..., i] ** 2 / BLOCK * (COST_SHAPE + 1) / COST_SHAPE
        else:
            raise ValueError(f"the simulation has no model of signal {name!r}")
    return n.cumsum(1), s.cumsum(1), ss.cumsum(1)


def simulate(shifts: dict[str, float] | None = None, runs: int = 1000, seed: int = SEED,
             policy: CanaryPolicy | None = None) -> dict[str, Any]:
    """Verdicts of `runs` canaries judged at every look. `shifts`: signal -> change of the canary's rate (or
    relative change of its cost, or change of its mean score). Returns the share rolled back at any look, the
    requests at the first rollback look (median over the runs rolled back), and the same for promotion."""
    policy = policy or shipped_policy()
    rng = np.random.default_rng(seed)
    canary = _moments(rng, policy, runs, shifts or {})
    baseline = _moments(rng, policy, runs, {})
    requests = np.broadcast_to(BLOCK * np.arange(1, LOOKS + 1), (runs, LOOKS))
    a = judge_arrays(policy, *canary, *baseline, requests)
    verdict = a["verdict"]
    rolled = (verdict == V_ROLLBACK).any(1)
    first_rb = np.where(rolled, (verdict == V_ROLLBACK).argmax(1), -1)
    promoted = (verdict == V_PROMOTE).any(1)
    first_pr = np.where(promoted, (verdict == V_PROMOTE).argmax(1), -1)
    # the canary stops at its first promote or rollback: which came first
    first_terminal_rollback = rolled & (~promoted | (first_rb <= first_pr))
    return {
        "runs": runs,
        "rollback_any_look": float(rolled.mean()),
        "rollback_first": float(first_terminal_rollback.mean()),
        "median_requests_to_rollback": float(np.median(BLOCK * (first_rb[rolled] + 1))) if rolled.any() else None,
        "promoted": float(promoted.mean()),
        "median_requests_to_promote": float(np.median(BLOCK * (first_pr[promoted] + 1))) if promoted.any() else None,
    }


SCENARIOS: dict[str, dict[str, float]] = {
    "unchanged": {},
    "approval bypasses doubled (1% -> 2%)": {"approval_bypass": BASE_RATES["approval_bypass"]},
    "citation failures +5 points (6% -> 11%)": {"citation_failure": 0.05},
}


if __name__ == "__main__":
    for name, shift in SCENARIOS.items():
        print(name, simulate(shift, runs=2000))  # noqa: T201


def naive_rollback_rate(signal: str = "citation_failure", runs: int = 2000, seed: int = SEED) -> dict[str, float]:
    """For contrast (docs/canary.md): one unchanged rate signal judged at every look by a fixed-sample two-sided 95%
    test (roll back when the change is significant and worse), against the judge's always-valid rule on the same
    data (roll back when the always-valid interval lies above 0: `critical: 0`)."""
    policy = shipped_policy()
    sig = next(s for s in policy.signals if s.signal == signal)
    one = policy.model_copy(update={"signals": [sig.model_copy(update={"critical": 0.0, "allowed": 0.0})],
                                    "groups": {sig.group: 1.0}})
    rng = np.random.default_rng(seed)
    canary = _moments(rng, one, runs, {})
    baseline = _moments(rng, one, runs, {})
    n_c, s_c, n_b, s_b = canary[0][..., 0], canary[1][..., 0], baseline[0][..., 0], baseline[1][..., 0]
    p_c, p_b = s_c / n_c, s_b / n_b
    pooled = (s_c + s_b) / (n_c + n_b)
    z = (p_c - p_b) / np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_b))
    naive = (z > 1.959963984540054).any(1)
    requests = np.broadcast_to(BLOCK * np.arange(1, LOOKS + 1), (runs, LOOKS))
    valid = (judge_arrays(one, *canary, *baseline, requests)["verdict"] == V_ROLLBACK).any(1)
    return {"fixed_sample_every_look": float(naive.mean()), "always_valid": float(valid.mean()),
            "fixed_sample_last_look_only": float((z[:, -1] > 1.959963984540054).mean())}
