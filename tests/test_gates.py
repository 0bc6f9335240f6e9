"""The gate engine: the seed's release scenarios, fail-closed rules, profiles, and deterministic digests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from dashboard import demo
from dashboard.core.errors import InputRefused
from dashboard.core.models import ReleaseEvidence
from dashboard.core.policy import load_policy, parse_condition, parse_policy
from dashboard.ingesting import ingest
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.conftest import REPO, good_case, write_jsonl
from tests.scenarios import BASE, SCENARIOS, load_story

TIERED = REPO / "data" / "policies" / "tiered.yaml"
CASE_MGMT = REPO / "data" / "policies" / "case-management.yaml"


@pytest.fixture(scope="module")
def scenario_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scenarios")
    store = Store(tmp / "s.duckdb")
    load_story(store, BASE, 1500, tmp)
    for name, story in SCENARIOS.items():
        load_story(store, story, 1500, tmp, evidence=name != "dataset_adds_critical_case")
    yield store
    store.close()


def failed(decision) -> dict[str, str]:
    return {g.gate_id: g.severity for g in decision.gates if g.status == "fail"}


# seed §36: each scenario reaches the decision a risk owner expects, naming the right gate.
EXPECTED = {
    "prompt_breaks_citation": ("blocked", "citation_support"),
    "index_leaks_stale_policy": ("blocked", "stale_policy"),
    "model_costs_more": ("approved_with_warnings", "cost_per_success"),
    "tool_description_wrong_tool": ("blocked", "forbidden_tools"),
    "workflow_bypasses_approval": ("blocked", "approval_bypass"),
    "dataset_adds_critical_case": ("blocked", "change.eval_datasets.eval_dataset_review"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_seed_release_scenarios(scenario_store, name):
    """Test that each §36 scenario reaches the expected decision and names the right gate."""
    status, gate = EXPECTED[name]
    decision = gate_release(scenario_store, load_policy(TIERED), SCENARIOS[name].release_id, BASE.release_id)
    assert decision.status == status, failed(decision)
    assert gate in failed(decision)
    expected_list = decision.blockers if status == "blocked" else decision.warnings
    assert gate in expected_list


def test_index_change_needs_its_evidence(scenario_store, tmp_path):
    """Test that the index scenario's recall gate runs (indexes changed) and the change's evidence passes."""
    d = gate_release(scenario_store, load_policy(TIERED), "sc-index", BASE.release_id)
    by_id = {g.gate_id: g for g in d.gates}
    assert by_id["recall_at_10"].status == "pass"  # the new index does improve recall
    assert by_id["change.indexes.acl_validation"].status == "pass"
    assert d.changed_artifacts[0].kind == "indexes"


def test_recall_gate_is_skipped_when_nothing_it_watches_changed(scenario_store):
    d = gate_release(scenario_store, load_policy(TIERED), "sc-tool", BASE.release_id)
    recall = next(g for g in d.gates if g.gate_id == "recall_at_10")
    assert recall.status == "skipped" and "indexes" in recall.reason


def test_missing_change_evidence_fails_closed(tmp_path):
    """Test that a model-route change without its required evidence is blocked, naming what is missing."""
    store = Store(tmp_path / "s.duckdb")
    load_story(store, BASE, 300, tmp_path)
    load_story(store, SCENARIOS["model_costs_more"], 300, tmp_path, evidence=False)
    d = gate_release(store, load_policy(TIERED), "sc-model", BASE.release_id)
    gates = {g.gate_id: g for g in d.gates}
    assert d.status == "blocked"
    assert gates["change.model_routes.latency_cost_comparison"].status == "fail"
    assert "missing" in gates["change.model_routes.latency_cost_comparison"].reason
    assert gates["change.model_routes.golden_eval"].status == "pass"  # provided by the rag_policy_qa suite
    assert gates["secrets_scan"].status == "fail" and "no evidence file" in gates["secrets_scan"].reason


def test_dataset_change_is_judged_on_the_new_cases_once_reviewed(scenario_store):
    """Test that the grown dataset's new critical cases count in the critical slice."""
    d = gate_release(scenario_store, load_policy(TIERED), "sc-dataset", BASE.release_id, profile="pr")
    crit = next(g for g in d.gates if g.gate_id == "critical_pass_rate")
    base = gate_release(scenario_store, load_policy(TIERED), BASE.release_id, BASE.release_id, profile="pr")
    base_crit = next(g for g in base.gates if g.gate_id == "critical_pass_rate")
    assert crit.n == base_crit.n + 12


def test_demo_candidates_get_their_stories_decisions(demo_store):
    """Test that the bundled demo's candidates reach the decisions their stories call for."""
    policy = load_policy(CASE_MGMT)
    expected = {"rel-2026.11.0-rc1": ("approved", None), "rel-2026.11.0-rc2": ("blocked", "policy_citation_support"),
                "rel-2026.11.0-rc3": ("approved_with_warnings", "cost_per_successful_task"),
                "rel-2026.11.0-rc4": ("blocked", "approval_bypass")}
    for release, (status, gate) in expected.items():
        d = gate_release(demo_store, policy, release)
        assert d.status == status, (release, failed(d))
        assert d.baseline is not None and d.baseline.release_id == demo.BASELINE_ID
        if gate:
            assert gate in failed(d)


def _store_with(tmp_path, records: list[dict], baseline_records: list[dict] | None = None) -> Store:
    store = Store(tmp_path / "x.duckdb")
    base_manifest = demo.manifest_for(BASE)
    store.put_manifest(base_manifest)
    cand = base_manifest.model_copy(update={"release_id": "cand",
                                            "baseline_release_id": BASE.release_id if baseline_records else None})
    store.put_manifest(cand)
    if baseline_records:
        ingest(store, [write_jsonl(tmp_path / "b.jsonl", baseline_records)], BASE.release_id)
    ingest(store, [write_jsonl(tmp_path / "c.jsonl", records)], "cand")
    return store


POLICY_HEAD = "policy_id: t\nversion: '1'\ngates:\n"


def test_high_overall_pass_rate_with_failing_critical_cases_is_blocked(tmp_path):
    """Test seed §10: 96% overall pass rate, all failures critical -> blocked."""
    records = [good_case(case_id=f"c{i}", risk="critical" if i < 100 else "low", passed=not (i < 40))
               for i in range(1000)]
    store = _store_with(tmp_path, records)
    policy = parse_policy(POLICY_HEAD + """
  - {id: overall, name: Overall pass rate, category: quality, severity: blocker, metric: pass_rate, condition: ">= 0.95"}
  - {id: critical, name: Critical pass rate, category: quality, severity: blocker, metric: critical_pass_rate,
     condition: ">= 0.98"}
""")
    d = gate_release(store, policy, "cand", None)
    assert d.status == "blocked"
    assert d.blockers == ["critical"]
    overall = next(g for g in d.gates if g.gate_id == "overall")
    assert overall.status == "pass" and overall.observed == pytest.approx(0.96)


@pytest.mark.parametrize("gate, why", [
    ("{id: g, name: n, category: quality, severity: blocker, metric: pass_rate, slice: {where: {task: [nope]}}, "
     "condition: '>= 0'}", "no cases"),
    ("{id: g, name: n, category: performance, severity: warning, metric: latency_p95_ms, condition: '<= 1e9'}",
     "cannot be computed"),
    ("{id: g, name: n, category: quality, severity: blocker, metric: pass_rate, condition: '>= baseline'}",
     "no baseline release"),
    ("{id: g, name: n, category: quality, severity: blocker, metric: pass_rate, min_samples: 50, condition: '>= 0'}",
     "too small to judge"),
    ("{id: g, name: n, category: rag, severity: blocker, metric: unauthorized_retrievals, condition: '== 0'}",
     "carries counters.unauthorized_retrieval"),
    ("{id: g, name: n, category: rollback, severity: blocker, metric: evidence.rollback_plan, condition: '== 1'}",
     "no evidence file"),
])
def test_fail_closed(tmp_path, gate, why):
    """Test that an empty slice, an uncomputable metric, a missing baseline, a small slice, a missing counter
    and missing evidence each fail their gate and say why."""
    records = [good_case(case_id=f"c{i}", latency_ms=None) for i in range(10)]
    store = _store_with(tmp_path, records)
    d = gate_release(store, parse_policy(POLICY_HEAD + "  - " + gate + "\n"), "cand", None)
    g = d.gates[0]
    assert g.status == "fail" and why in g.reason
    assert d.status in ("blocked", "approved_with_warnings")


def test_for_each_slice_missing_in_candidate_fails(tmp_path):
    """Test that a slice present in the baseline but absent in the candidate fails closed."""
    base = [good_case(case_id=f"b{i}", slices={"task": "a" if i % 2 else "b"}) for i in range(20)]
    cand = [good_case(case_id=f"b{i}", slices={"task": "a"}) for i in range(20)]
    store = _store_with(tmp_path, cand, base)
    policy = parse_policy(POLICY_HEAD + "  - {id: g, name: n, category: quality, severity: blocker, metric: pass_rate,"
                          " slice: {for_each: task}, condition: '>= baseline - 0.05'}\n")
    d = gate_release(store, policy, "cand", BASE.release_id)
    by_id = {g.gate_id: g for g in d.gates}
    assert by_id["g[task=a]"].status == "pass"
    assert by_id["g[task=b]"].status == "fail" and "no cases in the candidate" in by_id["g[task=b]"].reason


@pytest.mark.parametrize("text, line, what", [
    (POLICY_HEAD + "  - {id: g, name: n, category: quality, severity: blocker, metric: pass_rat, condition: '>= 1'}\n",
     "line 4", "unknown metric 'pass_rat'"),
    (POLICY_HEAD + "  - id: g\n    name: n\n    category: quality\n    severity: fatal\n    metric: pass_rate\n"
     "    condition: '>= 1'\n", "line 7", "severity"),
    (POLICY_HEAD + "  - {id: g, name: n, category: quality, severity: blocker, metric: pass_rate, condition: '~ 1'}\n",
     "line 4", "cannot read condition"),
    (POLICY_HEAD + "  - {id: g, name: n, category: quality, severity: blocker, metric: pass_rate, condition: '>= 1',"
     " when_changed: [promts]}\n", "line 4", "unknown artifact kind 'promts'"),
    (POLICY_HEAD + "  - {id: g, name: n, category: quality, severity: blocker, metric: pass_rate, condition: '>= 1',"
     " profiles: [nightly]}\n", "", "unknown profile 'nightly'"),
    ("policy_id: t\nversion: '1'\ngates: [\n", "line 4", "invalid YAML"),
])
def test_bad_policies_are_refused_before_judging(text, line, what):
    with pytest.raises(InputRefused) as e:
        parse_policy(text, "p.yaml")
    assert what in str(e.value) and line in str(e.value)


def test_conditions_parse():
    assert parse_condition(">= 0.98").threshold == 0.98
    assert parse_condition(">= baseline - 0.02").bound(0.9) == pytest.approx(0.88)
    assert parse_condition("<= baseline + 10%").bound(200) == pytest.approx(220)
    assert parse_condition("<= baseline + 1").bound(4) == 5
    assert parse_condition("<= baseline * 1.3").bound(10) == pytest.approx(13)
    assert parse_condition("lower95 >= 0.95").statistic == "lower95"


def test_profiles_select_gates():
    policy = load_policy(TIERED)
    pr = {g.id for g in policy.gates_for("pr")}
    release = {g.id for g in policy.gates_for("release")}
    assert "citation_support" not in pr and "citation_support" in release
    assert pr < release
    with pytest.raises(InputRefused, match="unknown profile"):
        policy.gates_for("weekly")


def test_decision_digest_is_deterministic_across_processes(demo_store, tmp_path):
    """Test that the same inputs give the same digest in this process and in the CLI's."""
    policy = load_policy(CASE_MGMT)
    first = gate_release(demo_store, policy, "rel-2026.11.0-rc2")
    second = gate_release(demo_store, policy, "rel-2026.11.0-rc2")
    assert first.digest == second.digest and first.verify_digest()
    demo_store.query("CHECKPOINT")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo_store.path, copy)  # this process holds the original's lock
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "gate", "--candidate", "rel-2026.11.0-rc2",
                          "--policy", str(CASE_MGMT), "--format", "json", "--db", str(copy)],
                         capture_output=True, text=True)
    assert out.returncode == 1, out.stderr  # blocked
    payload = json.loads(out.stdout)
    assert payload["status"] == "blocked" and payload["digest"] == first.digest
    assert payload["policy"]["digest"] == policy.digest
    assert payload["candidate"]["manifest_digest"] == demo_store.manifest_digest("rel-2026.11.0-rc2")


def test_evidence_changes_the_digest(tmp_path):
    store = _store_with(tmp_path, [good_case(case_id=f"c{i}") for i in range(10)])
    policy = parse_policy(POLICY_HEAD + "  - {id: g, name: n, category: rollback, severity: blocker, "
                          "metric: evidence.rollback_plan, condition: '== 1'}\n")
    before = gate_release(store, policy, "cand", None)
    store.put_evidence(ReleaseEvidence(release_id="cand", items=[{"kind": "rollback_plan", "passed": True}]))
    after = gate_release(store, policy, "cand", None)
    assert before.status == "blocked" and after.status == "approved"
    assert after.evidence_digest and after.digest != before.digest


def test_every_catalogue_metric_has_sql_and_computes(demo_store):
    """Test that the catalogue and the store's SQL name the same metrics, and each computes on the demo."""
    from dashboard.core.metrics import CATALOGUE
    from dashboard.core.policy import SliceSpec
    from dashboard.store.metrics import CASE_LEVEL_SQL, METRIC_SQL

    assert set(CATALOGUE) == set(METRIC_SQL) | set(CASE_LEVEL_SQL)
    values = demo_store.slice_metrics("rel-2026.11.0-rc4", SliceSpec(), list(METRIC_SQL))[""]
    assert all(v.value is not None for v in values.values()), [k for k, v in values.items() if v.value is None]
    assert values["approval_bypasses"].value > 0 and values["cases"].value == 6000
    assert 0 < values["recall_at_10"].value <= 1 and 0 < values["mrr"].value <= 1
    assert values["latency_p50_ms"].value < values["latency_p95_ms"].value < values["latency_p99_ms"].value


def test_interval_conditions_need_rate_metrics():
    with pytest.raises(InputRefused, match="lower95 needs a metric with an interval"):
        parse_policy(POLICY_HEAD + "  - {id: g, name: n, category: performance, severity: blocker, "
                     "metric: avg_agent_steps, condition: 'lower95 >= 1'}\n")
