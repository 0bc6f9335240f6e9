"""Importing what real eval tools wrote (tests/fixtures/tools/README.md says how each file was made)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from dashboard import demo
from dashboard.core.errors import InputRefused
from dashboard.core.policy import parse_policy
from dashboard.importers.tools import detect_tool
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.conftest import REPO

TOOLS = REPO / "tests" / "fixtures" / "tools"
PROMPTFOO = TOOLS / "promptfoo" / "results.json"
INSPECT_EVAL = Path(glob.glob(str(TOOLS / "inspect" / "logs" / "*.eval"))[0])
INSPECT_JSON = Path(glob.glob(str(TOOLS / "inspect" / "logs" / "*.json"))[0])
LM_EVAL = Path(glob.glob(str(TOOLS / "lm-eval" / "out" / "*" / "samples_*.jsonl"))[0])
DEEPEVAL = Path(glob.glob(str(TOOLS / "deepeval" / "results" / "test_run_*.json"))[0])
BASE = demo.manifest_for(demo.STORIES[0])


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "i.duckdb")
    s.put_manifest(BASE)
    yield s
    s.close()


def ingest(store, path, **kw):
    return store.ingest([path], BASE.release_id, dataset="case_policy_golden", **kw)


def outcomes(store) -> tuple[int, int]:
    row = store.query("SELECT count(*) FILTER (WHERE passed), count(*) FILTER (WHERE NOT passed) FROM cases")[0]
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("path, tool", [(PROMPTFOO, "promptfoo"), (INSPECT_EVAL, "inspect"), (INSPECT_JSON, "inspect"),
                                        (LM_EVAL, "lm-eval"), (DEEPEVAL, "deepeval")])
def test_formats_are_detected_from_content(path, tool):
    assert detect_tool(path) == tool


def test_promptfoo_matches_its_own_summary(store):
    stats = json.loads(PROMPTFOO.read_text())["results"]["stats"]
    report = ingest(store, PROMPTFOO)
    assert report.files[0].format == "promptfoo" and report.files[0].records == 10
    assert outcomes(store) == (stats["successes"], stats["failures"])
    row = store.query("""SELECT risk, slices['task'], slices['prompt'], checks['cites_policy'], scores['score']
                         FROM cases WHERE case_id = 'refund-window|prompt.policy_answer.v7|echo-model'""")[0]
    assert row == ("high", "policy_qa", "prompt.policy_answer.v7", False, 0.5)
    hostile = store.query("SELECT input FROM cases WHERE case_id LIKE 'html-in-output|%' LIMIT 1")[0][0]
    assert "<script>alert(1)</script>" in hostile  # stored as text, shown as text


@pytest.mark.parametrize("path", [INSPECT_EVAL, INSPECT_JSON])
def test_inspect_matches_its_own_summary_per_sample_and_epoch(store, path):
    log = json.loads(INSPECT_JSON.read_text())
    report = ingest(store, path)
    assert report.files[0].records == log["results"]["total_samples"] == 10
    assert len(report.files[0].runs) == 2  # one run per epoch
    expected_passed = sum(all(v["value"] == "C" for v in s["scores"].values()) for s in log["samples"])
    assert outcomes(store) == (expected_passed, 10 - expected_passed) == (8, 2)
    accuracy = log["results"]["scores"][0]["metrics"]["accuracy"]["value"]
    assert store.query("SELECT avg(scores['match']) FROM cases")[0][0] == pytest.approx(accuracy)
    row = store.query("SELECT risk, slices['task'], input_tokens, trace.model_version FROM cases "
                      "WHERE case_id = 'status-update' ORDER BY run_id LIMIT 1")[0]
    assert row[0] == "critical" and row[1] == "status_update" and row[2] > 0 and "case-assistant-v1" in row[3]


def test_inspect_epochs_show_up_as_flaky_cases(store):
    ingest(store, INSPECT_EVAL)
    policy = parse_policy("policy_id: t\nversion: '1'\ngates:\n  - {id: flaky, name: flaky, category: quality, "
                          "severity: warning, metric: flaky_case_rate, condition: '== 0'}\n")
    gate = gate_release(store, policy, BASE.release_id, no_baseline=True).gates[0]
    assert gate.observed == pytest.approx(2 / 5) and gate.status == "fail"


def test_lm_eval_matches_its_results_file(store):
    results = json.loads(next(LM_EVAL.parent.glob("results_*.json")).read_text())["results"]["case_policy_mc"]
    report = ingest(store, LM_EVAL)
    assert report.files[0].records == results["sample_len"] == 6
    passed, failed = outcomes(store)
    assert passed / 6 == pytest.approx(results["acc,none"])
    assert store.query("SELECT count(*) FROM cases WHERE content_digest LIKE 'lm-eval:%' AND risk = 'critical'")[0][0] == 3


def test_deepeval_matches_its_own_summary(store):
    data = json.loads(DEEPEVAL.read_text())
    ingest(store, DEEPEVAL)
    assert outcomes(store) == (data["testPassed"], data["testFailed"])
    row = store.query("SELECT risk, slices['task'], slices['slice'], checks['Brevity'] FROM cases "
                      "WHERE case_id = 'html-output'")[0]
    assert row == ("medium", "injection_probe", "red-team", True)
    assert store.query("SELECT risk FROM cases WHERE case_id = 'status-update'")[0][0] == "critical"


def test_reimport_is_a_no_op(store):
    ingest(store, PROMPTFOO)
    counts = store.table_counts()
    assert ingest(store, PROMPTFOO).files[0].status == "unchanged"
    assert store.table_counts() == counts


@pytest.mark.parametrize("path, fmt", [(PROMPTFOO, "promptfoo"), (INSPECT_EVAL, "inspect"), (INSPECT_JSON, "inspect"),
                                       (LM_EVAL, "lm-eval"), (DEEPEVAL, "deepeval")])
def test_truncated_files_are_refused_clearly(store, tmp_path, path, fmt):
    cut = tmp_path / path.name
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    before = store.table_counts()
    with pytest.raises(InputRefused) as e:
        ingest(store, cut, fmt=fmt)
    assert str(cut) in str(e.value) and ("truncated" in str(e.value) or "corrupt" in str(e.value))
    assert store.table_counts() == before


@pytest.mark.parametrize("path, fmt", [(PROMPTFOO, "inspect"), (DEEPEVAL, "promptfoo"), (LM_EVAL, "deepeval"),
                                       (INSPECT_JSON, "lm-eval")])
def test_a_file_of_another_tool_is_refused(store, path, fmt):
    with pytest.raises(InputRefused, match=f"this is not a {fmt} file: it looks like"):
        ingest(store, path, fmt=fmt)
    assert store.table_counts()["cases"] == 0


def test_unsupported_versions_are_refused(store, tmp_path):
    pf = json.loads(PROMPTFOO.read_text())
    pf["results"]["version"] = 2
    (tmp_path / "pf.json").write_text(json.dumps(pf))
    with pytest.raises(InputRefused, match="promptfoo results version 2 is not supported"):
        ingest(store, tmp_path / "pf.json")
    log = json.loads(INSPECT_JSON.read_text())
    log["version"] = 9
    (tmp_path / "log.json").write_text(json.dumps(log))
    with pytest.raises(InputRefused, match="Inspect AI log version 9 is not supported"):
        ingest(store, tmp_path / "log.json")
    assert store.table_counts()["cases"] == 0


def test_tool_files_need_a_dataset_when_the_manifest_has_several(store):
    with pytest.raises(InputRefused, match="does not say which eval dataset it ran: name it"):
        store.ingest([PROMPTFOO], BASE.release_id)


def test_cli_ingests_a_tool_file(tmp_path, capsys):
    from dashboard.cli import main

    db = str(tmp_path / "c.duckdb")
    manifest = str(REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml")
    assert main(["ingest", str(PROMPTFOO), "--release", "rel-2026.10.0", "--manifest", manifest, "--db", db,
                 "--dataset", "case_policy_golden"]) == 0
    assert "(promptfoo): ingested 10 cases" in capsys.readouterr().out
    assert main(["ingest", str(DEEPEVAL), "--release", "rel-2026.10.0", "--db", db, "--format", "promptfoo",
                 "--dataset", "case_policy_golden"]) == 1
    assert "it looks like deepeval output" in capsys.readouterr().err
