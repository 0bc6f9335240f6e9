"""Seeded simulation: the canary judge's false-rollback rate over a canary's whole life, and its detection speed."""

from __future__ import annotations

from tests.canary_sim import BASE_RATES, shipped_policy, simulate


def test_unchanged_canary_rolled_back_at_most_alpha_over_all_looks() -> None:
    """Test that an unchanged canary judged every 500 requests up to 20,000 is rolled back <= 5% of the time."""
    r = simulate({}, runs=2000)
    assert r["rollback_any_look"] <= 0.05
    assert r["promoted"] >= 0.3  # and it is not simply never promoted


def test_always_valid_even_when_every_signal_rolls_back_on_any_increase() -> None:
    """Test that the bound holds at its edge: every signal critical at 0 (any shown increase rolls back)."""
    p = shipped_policy()
    strict = p.model_copy(update={"signals": [s.model_copy(update={"critical": 0.0, "allowed": 0.0})
                                              for s in p.signals]})
    assert simulate({}, runs=2000, policy=strict)["rollback_any_look"] <= 0.05


def test_doubled_approval_bypasses_are_caught() -> None:
    """Test that a canary with twice the approval bypasses is rolled back, and how fast (median requests)."""
    r = simulate({"approval_bypass": BASE_RATES["approval_bypass"]}, runs=1000)
    assert r["rollback_first"] >= 0.95
    assert r["median_requests_to_rollback"] <= 8000


def test_five_point_rise_in_citation_failures_is_caught() -> None:
    """Test that a canary with 5 more points of citation failures is rolled back, never promoted first."""
    r = simulate({"citation_failure": 0.05}, runs=1000)
    assert r["rollback_first"] >= 0.95
    assert r["median_requests_to_rollback"] <= 5000


def test_simulation_is_seeded() -> None:
    """Test that the same seed gives the same figures (the docs quote them)."""
    assert simulate({"citation_failure": 0.05}, runs=200) == simulate({"citation_failure": 0.05}, runs=200)


def test_a_fixed_sample_test_at_every_look_would_not_keep_its_level() -> None:
    """Test the reason for the method: a fixed 95% test repeated at 40 looks rolls back an unchanged canary far more
    often than at one look, while the always-valid rule on the same data stays under its alpha."""
    from tests.canary_sim import naive_rollback_rate

    r = naive_rollback_rate(runs=2000)
    assert r["fixed_sample_last_look_only"] < 0.04 < 0.10 < r["fixed_sample_every_look"]
    assert r["always_valid"] <= 0.05
