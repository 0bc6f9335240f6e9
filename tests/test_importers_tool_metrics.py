"""Gates on what the eval tool measured (issue 18): `score:` / `check:` metrics, `readiness metrics --release`."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dashboard.core.errors import InputRefused
from dashboard.core.manifests import load_manifest
from dashboard.core.policy import Gate, parse_policy
from dashboard.ingesting import ingest, ingest_split
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.test_importers_formats import MLRUNS, PF_JSON, _manifests, _mlflow_runs, _table


def gate(**kw):
    return Gate.model_validate({"id": "g", "name": "g", "category": "quality", "severity": "blocker", **kw})


def test_score_and_check_keys_name_tool_metrics():
    assert gate(score="exact_match", condition=">= 0.8").metric == "score:exact_match"
    assert gate(score="exact_match", stat="pass_rate", at=0.5, condition=">= 0.8").metric == "score:exact_match>=0.5"
    assert gate(score="faithfulness", at=0.8, condition="lower95 >= 0.7").metric == "score:faithfulness>=0.8"
    assert gate(check="contains", condition="no_regression").metric == "check:contains"
    assert gate(metric="check:contains", condition="non_inferior 0.05").metric == "check:contains"
    assert gate(score="s>=0.5", stat="pass_rate", at=1, condition="no_regression").metric == "score:s>=0.5>=1"


@pytest.mark.parametrize("kw, expected", [
    ({"score": "x", "check": "y"}, "one of metric, score or check"),
    ({"score": "x", "metric": "pass_rate"}, "one of metric, score or check"),
    ({"check": "y", "at": 0.5}, "stat and at go with score"),
    ({"score": "x", "stat": "pass_rate"}, "needs at: <threshold>"),
    ({"score": "x", "stat": "mean", "at": 1}, "at: <threshold> goes with stat: pass_rate"),
    ({"score": "x", "stat": "median"}, "use mean"),
    ({"score": "x", "at": "high"}, "expected a number"),
    ({"score": "x", "condition": "no_regression"}, "a score's pass rate"),  # a mean cannot be paired
    ({"score": "x", "condition": "lower95 >= 0.5"}, "needs a metric with an interval"),
    ({"metric": "score:"}, "unknown metric"),
    ({"metric": "check:a\nb"}, "unknown metric"),
])
def test_malformed_tool_metric_gates_are_refused(kw, expected):
    kw.setdefault("condition", ">= 0.5")
    with pytest.raises(ValidationError, match=expected):
        gate(**kw)


def test_a_policy_file_with_tool_metrics_names_the_line_when_wrong(tmp_path):
    from dashboard.core.policy import load_policy

    path = tmp_path / "p.yaml"
    path.write_text("policy_id: p\nversion: '1'\ngates:\n  - id: a\n    name: a\n    category: quality\n"
                    "    severity: blocker\n    score: exact_match\n    stat: pass_rate\n    condition: '>= 0.5'\n")
    with pytest.raises(InputRefused, match="needs at: <threshold>"):
        load_policy(str(path))


def _split_store(tmp_path) -> Store:
    ma, mb = _manifests(tmp_path, "rel-a", "rel-b")
    s = Store(tmp_path / "t.duckdb")
    ingest_split(s, [PF_JSON], "prompt", {"prompt.policy_answer.v7": "rel-a", "prompt.policy_answer.v8": "rel-b"},
                   [load_manifest(ma), load_manifest(mb)], dataset="case_policy_golden")
    return s


def _component_outcomes(metric: str) -> dict[str, dict[str, bool]]:
    """label -> test -> did the tool's assertion with this metric pass (from the tool's own per-case results)."""
    out: dict[str, dict[str, bool]] = {}
    for r in json.loads(PF_JSON.read_text())["results"]["results"]:
        for c in r["gradingResult"]["componentResults"]:
            if c["assertion"].get("metric") == metric:
                out.setdefault(r["prompt"]["label"], {})[r["testCase"]["description"]] = c["pass"]
    return out


def test_a_paired_gate_on_a_promptfoo_check_matches_the_tools_assertion_results(tmp_path):
    outcomes = _component_outcomes("cites_policy")
    base, cand = outcomes["prompt.policy_answer.v7"], outcomes["prompt.policy_answer.v8"]
    shared = sorted(set(base) & set(cand))
    regressions = sum(base[t] and not cand[t] for t in shared)
    fixes = sum(cand[t] and not base[t] for t in shared)
    assert (len(shared), regressions, fixes) == (2, 0, 1)
    policy = parse_policy("""policy_id: t
version: '1'
gates:
  - {id: cites, name: cites, category: quality, severity: blocker, check: cites_policy, condition: no_regression}
  - {id: refund, name: refund, category: quality, severity: blocker, score: mentions_refund, condition: '>= 1'}
  - {id: answered, name: answered, category: quality, severity: warning, score: answered, stat: pass_rate, at: 1,
     condition: '>= baseline'}
  - {id: ghost, name: ghost, category: quality, severity: blocker, score: never_measured, condition: '>= 0'}
""")
    with _split_store(tmp_path) as s:
        decision = gate_release(s, policy, "rel-b")
    by_id = {g.gate_id: g for g in decision.gates}
    p = by_id["cites"].paired
    assert (p.shared_cases, p.regressions, p.fixes) == (len(shared), regressions, fixes)
    assert by_id["cites"].status == "pass"
    assert by_id["refund"].observed == 1.0 and by_id["refund"].status == "pass"
    assert by_id["answered"].observed == 1.0 and by_id["answered"].baseline == 0.0
    assert by_id["ghost"].status == "fail"  # a score the data does not carry fails closed
    assert decision.status == "blocked"


def test_a_score_name_is_data_never_sql(tmp_path):
    policy = parse_policy("policy_id: t\nversion: '1'\ngates:\n  - {id: x, name: x, category: quality, severity: "
                          "blocker, score: \"x']) FROM cases; DROP TABLE cases; --\", condition: '>= 0'}\n")
    with _split_store(tmp_path) as s:
        decision = gate_release(s, policy, "rel-b")
        assert s.table_counts()["cases"] == 10
    assert next(g for g in decision.gates if g.gate_id == "x").status == "fail"


def test_metrics_release_lists_what_the_tool_measured(tmp_path, capsys):
    from dashboard.cli import main

    db = str(tmp_path / "m.duckdb")
    ma, mb = _manifests(tmp_path, "rel-mlflow-a", "rel-mlflow-b")
    assert main(["ingest", str(MLRUNS), "--split", "tag.role", "--release-map",
                 "baseline=rel-mlflow-a,candidate=rel-mlflow-b", "--manifest", ma, "--manifest", mb, "--db", db,
                 "--dataset", "case_policy_golden"]) == 0
    capsys.readouterr()
    assert main(["metrics", "--release", "rel-mlflow-a", "--db", db, "--format", "json"]) == 0
    rows = {(r["kind"], r["name"]): r for r in json.loads(capsys.readouterr().out)}
    table = _table(_mlflow_runs()["baseline"])
    assert set(rows) == {("score", "exact_match"), ("score", "cites_policy"), ("check", "exact_match"),
                         ("check", "cites_policy")}
    assert rows[("score", "exact_match")]["mean"] == pytest.approx(0.5)
    assert rows[("check", "cites_policy")]["passed"] == sum(r["cites_policy/score"] == 1 for r in table) == 4
    assert rows[("check", "cites_policy")]["metric"] == "check:cites_policy"
    assert main(["metrics", "--release", "rel-mlflow-a", "--db", db]) == 0
    out = capsys.readouterr().out
    assert 'score "exact_match"  cases=6 mean=0.5' in out and 'check "cites_policy"  cases=6 passed=4' in out
    assert main(["metrics", "--release", "nope", "--db", db]) == 1


def test_the_policy_docs_example_per_tool_parses_and_names_what_each_tool_measured(tmp_path):
    import glob
    import re

    from dashboard import demo
    from dashboard.core.metrics import tool_metric
    from tests.conftest import REPO
    from tests.test_importers_formats import PF_JSONL, RAGAS_CSV, TOOLS

    text = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    section = text[text.index("### Gates on what an eval tool measured"):text.index("### Fail closed")]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)[1]
    policy = parse_policy("policy_id: docs\nversion: '1'\ngates:\n" + "\n".join("  " + line for line in
                                                                               block.splitlines()))
    fixtures = [PF_JSONL, glob.glob(str(TOOLS / "inspect" / "logs" / "*.json"))[0],
                glob.glob(str(TOOLS / "lm-eval" / "out" / "*" / "samples_*.jsonl"))[0],
                glob.glob(str(TOOLS / "deepeval" / "results" / "test_run_*.json"))[0], _mlflow_runs()["baseline"],
                RAGAS_CSV]
    assert len(policy.gates) == len(fixtures) == 6
    base = demo.manifest_for(demo.STORIES[0]).model_copy(update={"release_id": "rel-mlflow-a"})
    for g, fixture in zip(policy.gates, fixtures, strict=True):
        with Store(tmp_path / f"{g.id}.duckdb") as s:
            s.put_manifest(base)
            ingest(s, [fixture], "rel-mlflow-a", dataset="case_policy_golden")
            measured = {(r.kind, r.name) for r in s.tool_measures("rel-mlflow-a")}
        t = tool_metric(g.metric)
        assert t is not None and ("score" if t.field == "scores" else "check", t.key) in measured, g.id
