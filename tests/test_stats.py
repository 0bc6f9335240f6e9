"""Sound comparisons: intervals, paired regression tests with their error rates, comparability, eval-dataset
governance and flakiness."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import demo
from dashboard.core.gates import EvaluationInputs, ReleaseRef, evaluate, paired_key
from dashboard.core.metrics import metric_value
from dashboard.core.policy import parse_policy
from dashboard.core.stats import (
    Paired,
    benjamini_hochberg,
    mcnemar_exact,
    quantile_interval,
    ratio_interval,
    wilson_interval,
)
from dashboard.ingesting import ingest
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.conftest import good_case, write_jsonl

HEAD = "policy_id: s\nversion: '1'\nalpha: 0.05\ngates:\n"
REGRESSION_GATE = HEAD + ("  - {id: crit, name: Critical no regression, category: quality, severity: blocker, "
                          "metric: critical_pass_rate, condition: no_regression}\n")


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-4) and hi == pytest.approx(0.9785, abs=1e-4)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 10)[0] == 0.0


def test_mcnemar_and_bh():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 * 0.5**10)
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_bootstraps_are_deterministic_and_cover():
    rng = np.random.default_rng(3)
    x = rng.lognormal(7, 0.5, 5000)
    lo, hi = quantile_interval(x, 0.95)
    assert lo < np.quantile(x, 0.95) < hi
    assert quantile_interval(x, 0.95) == (lo, hi)
    cost, passed = rng.gamma(2, 0.005, 30000), (rng.random(30000) < 0.9).astype(float)
    a = ratio_interval(cost, passed)
    assert a == ratio_interval(cost, passed)  # fixed seed
    assert a[0] < cost.sum() / passed.sum() < a[1]


def _decide(policy_text: str, paired: Paired, n_critical: int) -> tuple[str, str]:
    """Run the real evaluator on one slice's paired outcomes."""
    policy = parse_policy(policy_text)
    gate = policy.gates[0]
    passes = paired.both_pass + paired.fixes
    mv = metric_value(gate.metric, n_critical, passes, n_critical, n_critical)
    base_mv = metric_value(gate.metric, n_critical, paired.both_pass + paired.regressions, n_critical, n_critical)
    key = gate.slice.model_dump_json()
    d = evaluate(EvaluationInputs(
        policy=policy, profile=None, candidate=ReleaseRef(release_id="c", manifest_digest="x"),
        baseline=ReleaseRef(release_id="b", manifest_digest="y"), changes=[],
        candidate_values={key: {"": {gate.metric: mv}}}, baseline_values={key: {"": {gate.metric: base_mv}}},
        paired={paired_key(gate): {"": paired}}))
    return d.gates[0].status, d.gates[0].reason


def _simulate_pair(rng, n: int, p_base: float, p_cand: float) -> Paired:
    """Two eval runs of the same n cases: each case has a latent difficulty shared by both runs."""
    difficulty = rng.standard_normal(n)
    from scipy.stats import norm

    base = 0.8 * difficulty + 0.6 * rng.standard_normal(n) < norm.ppf(p_base)
    cand = 0.8 * difficulty + 0.6 * rng.standard_normal(n) < norm.ppf(p_cand)
    return Paired(int((base & cand).sum()), int((base & ~cand).sum()), int((~base & cand).sum()),
                  int((~base & ~cand).sum()))


def test_aa_false_block_rate_is_at_most_alpha():
    """Test that runs drawn from the same distribution are blocked no more often than α (200 seeded pairs)."""
    rng = np.random.default_rng(7)
    blocked = sum(_decide(REGRESSION_GATE, _simulate_pair(rng, 400, 0.95, 0.95), 400)[0] == "fail"
                  for _ in range(200))
    assert blocked / 200 <= 0.05, blocked


def test_power_on_a_planted_five_point_regression():
    """Test that a 5-point pass-rate regression on a 400-case critical slice is caught at least 80% of the time."""
    rng = np.random.default_rng(11)
    caught = sum(_decide(REGRESSION_GATE, _simulate_pair(rng, 400, 0.95, 0.90), 400)[0] == "fail"
                 for _ in range(200))
    assert caught / 200 >= 0.80, caught


def test_one_point_on_fifty_cases_is_within_noise():
    status, reason = _decide(REGRESSION_GATE, Paired(46, 1, 0, 3), 50)  # 94% -> 92%... one more failure
    assert status == "pass" and reason.startswith("within noise")


def test_expanded_gate_uses_bh_and_says_so():
    policy = parse_policy(HEAD + "  - {id: t, name: per task, category: quality, severity: blocker, "
                          "metric: pass_rate, slice: {for_each: task}, condition: no_regression}\n")
    gate = policy.gates[0]
    key = gate.slice.model_dump_json()
    pairs = {"a": Paired(180, 12, 3, 5), "b": Paired(190, 4, 4, 2), "c": Paired(185, 8, 2, 5)}
    values = {v: {"pass_rate": metric_value("pass_rate", p.n, p.both_pass + p.fixes, p.n, p.n)} for v, p in pairs.items()}
    d = evaluate(EvaluationInputs(
        policy=policy, profile=None, candidate=ReleaseRef(release_id="c", manifest_digest="x"),
        baseline=ReleaseRef(release_id="b", manifest_digest="y"), changes=[], candidate_values={key: values},
        baseline_values={key: values}, paired={paired_key(gate): pairs}))
    for g in d.gates:
        assert g.paired is not None and g.paired.slices_tested == 3
        assert "BH-adjusted over 3 slices" in g.reason
        assert g.paired.p_adjusted >= g.paired.p_value


def test_non_inferiority_needs_enough_evidence():
    ni = HEAD + ("  - {id: ni, name: NI, category: quality, severity: blocker, metric: pass_rate, "
                 "condition: non_inferior 0.02}\n")
    assert _decide(ni, Paired(9500, 40, 45, 415), 10000)[0] == "pass"
    status, reason = _decide(ni, Paired(45, 1, 1, 3), 50)
    assert status == "fail" and "not shown non-inferior" in reason


# ----- store-backed checks: comparability, dataset governance, policy loosening, small slices, flakiness ----

def _two_releases(tmp_path, base_records, cand_records, cand_dataset_version=None) -> Store:
    store = Store(tmp_path / "s.duckdb")
    bm = demo.manifest_for(demo.STORIES[0])
    store.put_manifest(bm)
    versions = dict(bm.eval_dataset_versions)
    if cand_dataset_version:
        versions["case_policy_golden"] = cand_dataset_version
    store.put_manifest(bm.model_copy(update={"release_id": "cand", "baseline_release_id": bm.release_id,
                                             "eval_dataset_versions": versions}))
    ingest(store, [write_jsonl(tmp_path / "b.jsonl", base_records)], bm.release_id)
    if cand_records:
        ingest(store, [write_jsonl(tmp_path / "c.jsonl", cand_records)], "cand")
    return store


def _cases(n, version="eval.case_policy_golden.v9", **kw):
    return [good_case(case_id=f"c{i}", dataset_version=version, risk="critical" if i % 5 == 0 else "low",
                      input=f"question {i}", **kw) for i in range(n)]


def test_mismatched_dataset_versions_are_said_loudly_and_pair_only_shared_cases(tmp_path):
    base = _cases(100)
    cand = _cases(100, version="eval.case_policy_golden.v10")
    for r in cand[:10]:
        r["input"] = r["input"] + " (reworded)"  # changed content: no longer the same case
    store = _two_releases(tmp_path, base, cand, "eval.case_policy_golden.v10")
    policy = parse_policy(HEAD + "  - {id: p, name: p, category: quality, severity: blocker, metric: pass_rate, "
                          "condition: no_regression}\n")
    d = gate_release(store, policy, "cand")
    assert any("dataset version differs" in n and "v9" in n and "v10" in n for n in d.comparability)
    gate = next(g for g in d.gates if g.gate_id == "p")
    assert gate.paired is not None and gate.paired.shared_cases == 90
    changes = d.dataset_changes[0]
    assert changes.changed == 10 and changes.removed == 0


def test_no_shared_cases_cannot_approve_a_paired_blocker(tmp_path):
    base = _cases(50)
    cand = [dict(r, case_id="n" + r["case_id"]) for r in _cases(50)]
    store = _two_releases(tmp_path, base, cand)
    policy = parse_policy(REGRESSION_GATE.replace("critical_pass_rate", "pass_rate"))
    d = gate_release(store, policy, "cand")
    assert d.status == "blocked" and "no shared cases" in next(g for g in d.gates if g.gate_id == "crit").reason


def test_removed_or_downgraded_critical_case_blocks(tmp_path):
    base = _cases(50)
    cand = [r for r in _cases(50) if r["case_id"] != "c10"]  # c10 is critical: removed
    cand[0]["risk"] = "low"  # c0 was critical: downgraded
    store = _two_releases(tmp_path, base, cand)
    policy = parse_policy(HEAD + "  - {id: p, name: p, category: quality, severity: warning, metric: pass_rate, "
                          "condition: '>= 0'}\n")
    d = gate_release(store, policy, "cand")
    gate = next(g for g in d.gates if g.gate_id == "dataset.critical_cases_kept")
    assert d.status == "blocked" and gate.status == "fail"
    assert "c10" in gate.reason and "c0" in gate.reason
    assert d.dataset_changes[0].removed == 1 and d.dataset_changes[0].downgraded == 1


def test_a_loosened_threshold_is_flagged_with_both_outcomes(tmp_path):
    store = _two_releases(tmp_path, _cases(100), [dict(r, passed=i % 10 != 0) for i, r in enumerate(_cases(100))])
    strict = parse_policy("policy_id: pol\nversion: '1.0'\ngates:\n  - {id: pr, name: pass rate, category: quality, "
                          "severity: blocker, metric: pass_rate, condition: '>= 0.95'}\n")
    loose = parse_policy("policy_id: pol\nversion: '1.1'\ngates:\n  - {id: pr, name: pass rate, category: quality, "
                         "severity: blocker, metric: pass_rate, condition: '>= 0.85'}\n")
    assert gate_release(store, strict, "cand").status == "blocked"
    assert gate_release(store, loose, "cand").policy_comparison is None  # never "whatever the store saw last"
    d = gate_release(store, loose, "cand", previous=strict)
    assert d.status == "approved"
    comp = d.policy_comparison
    assert comp is not None and comp.previous_version == "1.0" and comp.previous_status == "blocked"
    assert comp.loosened[0].gate_id == "pr" and ">= 0.95 -> >= 0.85" in comp.loosened[0].change
    assert ("pr", "fail", "pass") in [tuple(x) for x in comp.outcome_changes]
    assert any("looser" in n for n in d.notes)


def test_slice_under_minimum_is_too_small_to_judge(tmp_path):
    store = _two_releases(tmp_path, _cases(100), _cases(100))
    policy = parse_policy(HEAD + "  - {id: p, name: p, category: quality, severity: blocker, metric: critical_pass_rate, "
                          "min_samples: 30, condition: no_regression}\n")
    d = gate_release(store, policy, "cand")
    assert d.status == "blocked" and "too small to judge: 20" in next(g for g in d.gates if g.gate_id == "p").reason


def test_flaky_cases_across_repeats_are_reported_and_gated(tmp_path):
    base = _cases(40)
    store = _two_releases(tmp_path, base, [])
    runs = []
    for rep in range(3):
        runs.append(write_jsonl(tmp_path / f"r{rep}.jsonl", [
            dict(r, run_id=f"rep{rep}", passed=not (i < 8 and rep == 1)) for i, r in enumerate(_cases(40))]))
    ingest(store, runs, "cand")
    policy = parse_policy(HEAD + "  - {id: flaky, name: flaky, category: quality, severity: warning, "
                          "metric: flaky_case_rate, condition: '<= 0.05'}\n"
                          "  - {id: passk, name: pass^k, category: quality, severity: blocker, metric: pass_hat_k, "
                          "condition: '>= 0.9'}\n")
    d = gate_release(store, policy, "cand")
    by_id = {g.gate_id: g for g in d.gates}
    assert by_id["flaky"].observed == pytest.approx(8 / 40) and by_id["flaky"].status == "fail"
    assert by_id["passk"].observed == pytest.approx(32 / 40) and by_id["passk"].status == "fail"
    assert d.status == "blocked"


def test_percentages_never_round_across_a_threshold():
    from dashboard.core.numbers import fmt_percent

    assert fmt_percent(0.97997) == "97.99%"
    assert fmt_percent(0.98) == "98.00%"
    assert fmt_percent(1.0) == "100.00%"


def test_percentile_intervals_from_sql_order_statistics_equal_the_numpy_bootstrap(demo_store):
    """Test that fetching only the two order statistics gives exactly the exact-bootstrap interval."""
    from dashboard.core.policy import SliceSpec
    from dashboard.service import add_bootstrap_intervals

    for spec in (SliceSpec(), SliceSpec(for_each="suite")):
        values = demo_store.slice_metrics("rel-2026.11.0-rc2", spec, ["latency_p50_ms", "latency_p99_ms"])
        add_bootstrap_intervals(demo_store, "rel-2026.11.0-rc2", spec, values)
        arrays = demo_store.metric_arrays("rel-2026.11.0-rc2", spec, ["latency_ms"])
        for key, per_slice in values.items():
            for metric, q in (("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)):
                assert per_slice[metric].interval == quantile_interval(arrays[key]["latency_ms"], q)


def test_interval_conditions_on_percentiles_use_the_bootstrap_bound(demo_store):
    policy = parse_policy(HEAD + "  - {id: p95, name: p95, category: performance, severity: warning, "
                          "metric: latency_p95_ms, condition: 'upper95 <= 1e9'}\n"
                          "  - {id: p95tight, name: p95 tight, category: performance, severity: warning, "
                          "metric: latency_p95_ms, condition: 'upper95 <= 10'}\n")
    d = gate_release(demo_store, policy, "rel-2026.11.0-rc1")
    gates = {g.gate_id: g for g in d.gates}
    lo, hi = gates["p95"].interval
    assert lo < gates["p95"].observed < hi and gates["p95"].interval_method == "exact bootstrap"
    assert gates["p95"].status == "pass" and gates["p95tight"].status == "fail"
    assert f"upper95 {hi:.4g}" in gates["p95tight"].reason


def test_z95_is_scipys_normal_quantile_exactly():
    """Test that the literal 97.5% normal quantile (scipy is imported lazily) is the value scipy computes."""
    from scipy.stats import norm

    from dashboard.core.stats import Z95

    assert float(norm.ppf(0.975)) == Z95
