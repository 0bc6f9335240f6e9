"""Release-level error control: an unchanged release is blocked by the policy's paired blockers together at most
α of the time, while a 5-point drop on a 400-case critical slice is still caught by the shipped policy."""

from __future__ import annotations

import pytest

from dashboard.core.policy import load_policy, parse_policy
from dashboard.core.stats import holm_levels, wilson_interval
from tests.conftest import REPO
from tests.release_sim import Release, block_rate, judge_paired_blockers

CASE_MGMT = REPO / "data" / "policies" / "case-management.yaml"


def test_holm_levels():
    assert holm_levels([0.01, 0.04], 0.05) == [0.025, 0.05]
    assert holm_levels([0.03, 0.04], 0.05) == [0.025, 0.025]  # stops at the first: both keep 0.025
    assert holm_levels([0.2, 0.001, 0.02], 0.05) == pytest.approx([0.05, 0.05 / 3, 0.025])
    assert holm_levels([0.5], 0.05) == [0.05]


def test_shipped_policy_has_two_paired_blockers_sharing_cases():
    paired = [g for g in load_policy(CASE_MGMT).gates if g.condition.test and g.severity == "blocker"]
    assert {g.id for g in paired} == {"pass_rate_per_task", "critical_no_regression"}


def test_unchanged_release_is_blocked_by_the_paired_blockers_together_at_most_alpha():
    """Test, over 600 seeded A/A pairs (6 tasks x 400 cases, 400 critical), that the shipped policy's paired
    blockers together block an unchanged release at most α = 5% of the time (rate and Wilson interval are in
    docs/benchmarks.md)."""
    policy = load_policy(CASE_MGMT)
    pairs = 600
    blocked = block_rate(policy, seed=20261127, pairs=pairs, rel=Release())
    lo, hi = wilson_interval(blocked, pairs)
    assert blocked / pairs <= policy.alpha, (blocked, lo, hi)


def test_a_five_point_drop_on_400_critical_cases_is_caught_by_the_shipped_policy():
    """Test, over 500 seeded pairs, that a 0.95 -> 0.90 drop on the 400 critical cases (spread over six tasks) is
    caught at least 80% of the time by the shipped case-management policy's paired blockers."""
    pairs = 500
    caught = block_rate(load_policy(CASE_MGMT), seed=20261128, pairs=pairs, rel=Release(), critical_drop=0.05)
    assert caught / pairs >= 0.80, caught


def test_two_paired_blockers_judged_each_at_alpha_would_block_more_often():
    """Test that the control is needed: the same two blockers each at α (a policy with one of them a warning
    shows each alone) add up to more false blocks than Holm lets through."""
    policy = load_policy(CASE_MGMT)
    text = CASE_MGMT.read_text()
    per_task_only = parse_policy(text.replace("metric: critical_pass_rate\n    condition: \"no_regression\"",
                                              "metric: critical_pass_rate\n    condition: \">= 0\""))
    critical_only = parse_policy(text.replace("slice: {for_each: task}\n    condition: \"no_regression\"",
                                              "slice: {for_each: task}\n    condition: \">= 0\""))
    assert len([g for g in per_task_only.gates if g.condition.test]) == 1
    assert len([g for g in critical_only.gates if g.condition.test]) == 1
    from numpy.random import default_rng

    rng_a, rng_b, rng_c = default_rng(1), default_rng(1), default_rng(1)
    either = holm = 0
    for _ in range(120):
        a = bool(judge_paired_blockers(per_task_only, rng_a, Release()))
        b = bool(judge_paired_blockers(critical_only, rng_b, Release()))
        c = bool(judge_paired_blockers(policy, rng_c, Release()))
        either += a or b
        holm += c
        assert not c or (a or b)  # Holm never blocks where both gates at full α would pass
    assert holm <= either
