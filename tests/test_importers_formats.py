"""More eval-tool outputs (issue 18): promptfoo's JSONL and CSV, MLflow runs, Ragas results.

tests/fixtures/tools/README.md says how each fixture was written by the real tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard import demo, ingesting
from dashboard.core.errors import InputRefused
from dashboard.importers.tools import detect_tool
from dashboard.store.db import Store
from tests.conftest import REPO

TOOLS = REPO / "tests" / "fixtures" / "tools"
PF_JSON = TOOLS / "promptfoo" / "results.json"
PF_JSONL = TOOLS / "promptfoo" / "results.jsonl"
PF_CSV = TOOLS / "promptfoo" / "results.csv"
BASE = demo.manifest_for(demo.STORIES[0])


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "i.duckdb")
    s.put_manifest(BASE)
    yield s
    s.close()


def ingest(store, path, **kw):
    return ingesting.ingest(store, [path], BASE.release_id, dataset="case_policy_golden", **kw)


def per_case(store) -> dict[str, tuple[bool, float]]:
    return {r[0]: (r[1], r[2]) for r in store.query("SELECT case_id, passed, scores['score'] FROM cases")}


# ----- promptfoo -o .jsonl / .csv ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [PF_JSON, PF_JSONL, PF_CSV])
def test_promptfoo_outputs_are_detected(path):
    assert detect_tool(path) == "promptfoo"


@pytest.mark.parametrize("path", [PF_JSONL, PF_CSV])
def test_promptfoo_jsonl_and_csv_give_the_same_cases_and_verdicts_as_the_json_of_the_same_eval(tmp_path, path):
    stats = json.loads(PF_JSON.read_text())["results"]["stats"]
    with Store(tmp_path / "a.duckdb") as a, Store(tmp_path / "b.duckdb") as b:
        a.put_manifest(BASE)
        b.put_manifest(BASE)
        ingest(a, PF_JSON)
        report = ingest(b, path)
        assert report.files[0].format == "promptfoo" and report.files[0].records == 10
        assert per_case(a) == per_case(b)  # same case ids, verdicts and scores
        passed = b.query("SELECT count(*) FILTER (WHERE passed), count(*) FILTER (WHERE NOT passed) FROM cases")[0]
        assert passed == (stats["successes"], stats["failures"]) == (4, 6)
        named = "SELECT case_id, scores['cites_policy'] FROM cases WHERE scores['cites_policy'] IS NOT NULL ORDER BY 1"
        assert a.query(named) == b.query(named)
        hostile = b.query("SELECT output FROM cases WHERE case_id LIKE 'html-in-output|%v8%'")[0][0]
        assert "<script>alert(1)</script>" in hostile


def test_promptfoo_jsonl_keeps_metadata_and_checks_the_csv_says_what_it_lacks(store, tmp_path):
    ingest(store, PF_JSONL)
    row = store.query("""SELECT risk, slices['tenant'], checks['cites_policy'] FROM cases
                         WHERE case_id = 'refund-window|prompt.policy_answer.v7|echo-model'""")[0]
    assert row == ("high", "globex", False)
    with Store(tmp_path / "c.duckdb") as s:
        s.put_manifest(BASE)
        report = ingest(s, PF_CSV)
        assert any("CSV carries no test metadata" in n for n in report.files[0].notes)
        assert s.query("SELECT DISTINCT risk FROM cases") == [("medium",)]


def test_one_test_under_two_prompts_is_one_case_content(store):
    ingest(store, PF_JSON)
    digests = store.query("""SELECT count(DISTINCT content_digest) FROM cases
                             WHERE case_id LIKE 'refund-window|%'""")[0][0]
    assert digests == 1


@pytest.mark.parametrize("path", [PF_JSONL, PF_CSV])
def test_truncated_promptfoo_jsonl_and_csv_are_refused_naming_file_and_line(store, tmp_path, path):
    data = path.read_bytes()
    cut = tmp_path / path.name
    cut.write_bytes(data[: len(data) // 2])
    before = store.table_counts()
    with pytest.raises(InputRefused) as e:
        ingest(store, cut, fmt="promptfoo")
    assert str(cut) in str(e.value) and "line " in str(e.value)
    assert store.table_counts() == before


def test_a_promptfoo_csv_of_an_unknown_layout_is_refused(store, tmp_path):
    text = PF_CSV.read_text(encoding="utf-8").replace("Status,Score", "Verdict,Score", 1)
    (tmp_path / "r.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputRefused, match="not followed by Status and Score.*tested with promptfoo 0.121.20"):
        ingest(store, tmp_path / "r.csv", fmt="promptfoo")
    lines = PF_JSONL.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[1])
    del bad["testCase"]
    (tmp_path / "r.jsonl").write_text(lines[0] + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(InputRefused, match="line 2: not a promptfoo result line"):
        ingest(store, tmp_path / "r.jsonl", fmt="promptfoo")
    assert store.table_counts()["cases"] == 0


# ----- MLflow ---------------------------------------------------------------------------------------------------
MLRUNS = TOOLS / "mlflow" / "mlruns"


def _mlflow_runs() -> dict[str, Path]:
    """role tag -> run folder."""
    return {(run / "tags" / "role").read_text(): run for run in sorted(MLRUNS.glob("*/*"))
            if (run / "tags" / "role").is_file()}


def _table(run: Path) -> list[dict]:
    t = json.loads((run / "artifacts" / "eval_results_table.json").read_text())
    return [dict(zip(t["columns"], row, strict=True)) for row in t["data"]]


def mlflow_store(tmp_path, name="m.duckdb") -> Store:
    s = Store(tmp_path / name)
    s.put_manifest(BASE.model_copy(update={"release_id": "rel-mlflow-a"}))
    s.put_manifest(BASE.model_copy(update={"release_id": "rel-mlflow-b", "baseline_release_id": "rel-mlflow-a"}))
    return s


@pytest.mark.parametrize("path", [MLRUNS, next(MLRUNS.glob("*/meta.yaml")).parent, _mlflow_runs()["baseline"]])
def test_mlflow_run_experiment_and_tree_folders_are_detected(path):
    assert detect_tool(path) == "mlflow"


def test_an_mlflow_run_matches_its_table_and_logged_means(tmp_path):
    run = _mlflow_runs()["baseline"]
    rows = _table(run)
    with mlflow_store(tmp_path) as s:
        report = ingesting.ingest(s, [run], "rel-mlflow-a", dataset="case_policy_golden")
        f = report.files[0]
        assert f.format == "mlflow" and f.records == len(rows) == 6 and f.runs == [run.name]
        expected_passed = sum(r["exact_match/score"] == 1 and r["cites_policy/score"] == 1 for r in rows)
        assert s.query("SELECT count(*) FILTER (WHERE passed) FROM cases")[0][0] == expected_passed == 3
        for metric in ("exact_match", "cites_policy"):
            logged = float((run / "metrics" / metric / "mean").read_text().split()[1])
            assert s.query("SELECT avg(scores[?]) FROM cases", [metric])[0][0] == pytest.approx(logged)
            passes = sum(r[f"{metric}/score"] == 1 for r in rows)
            assert s.query("SELECT count(*) FILTER (WHERE checks[?]) FROM cases", [metric])[0][0] == passes
        row = s.query("""SELECT risk, slices['task'], slices['tag.role'], suite, trace.model_version,
                                trace.prompt_version FROM cases WHERE case_id = 'CASE-1004'""")[0]
        assert row == ("critical", "status_update", "baseline", "case-assistant-policy", "case-assistant-v1",
                       "policy_answer.v7")
        counts = s.table_counts()
        assert ingesting.ingest(s, [run], "rel-mlflow-a", dataset="case_policy_golden").files[0].status == "unchanged"
        assert s.table_counts() == counts


def test_an_mlflow_run_naming_another_release_is_refused_and_nothing_is_stored(tmp_path):
    with mlflow_store(tmp_path) as s:
        with pytest.raises(InputRefused, match="names release 'rel-mlflow-b', not 'rel-mlflow-a'"):
            ingesting.ingest(s, [MLRUNS], "rel-mlflow-a", dataset="case_policy_golden")  # the tree holds both runs
        assert s.table_counts()["cases"] == 0


def _copy_run(tmp_path, role="baseline") -> Path:
    import shutil

    src = _mlflow_runs()[role]
    dst = tmp_path / "mlruns" / src.parent.name / src.name
    shutil.copytree(src, dst)
    shutil.copy(src.parent / "meta.yaml", dst.parent / "meta.yaml")
    return dst


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: t.write_bytes(t.read_bytes()[: len(t.read_bytes()) // 2]), "eval_results_table.json:line 1: invalid JSON"),
    (lambda t: t.write_text(json.dumps({"index": [0], "data": [[1]]})), "not an MLflow evaluation table"),
    (lambda t: t.write_text(json.dumps({"columns": ["inputs", "out"], "data": [["a", "b"]]})),
     "has a 'predictions' column and at least one '<metric>/score'.*tested with mlflow 3.18.0"),
    (lambda t: t.write_text(t.read_text().replace('"data":[[', '"data":[[0,', 1)), r"data\[0\]: expected a row of 8"),
    (lambda t: t.write_text(t.read_text().replace(",1.0,1.0]", ",0.0,1.0]", 1)), "the table's mean exact_match is"),
])
def test_broken_mlflow_runs_are_refused_naming_the_file_and_row(tmp_path, mutate, expected):
    run = _copy_run(tmp_path)
    table = run / "artifacts" / "eval_results_table.json"
    mutate(table)
    with mlflow_store(tmp_path) as s:
        with pytest.raises(InputRefused, match=expected) as e:
            ingesting.ingest(s, [run], "rel-mlflow-a", dataset="case_policy_golden")
        assert str(run) in str(e.value)
        assert s.table_counts()["cases"] == 0


def test_an_mlflow_run_without_a_pass_fail_metric_or_meta_is_refused(tmp_path):
    run = _copy_run(tmp_path)
    table = run / "artifacts" / "eval_results_table.json"
    t = json.loads(table.read_text())
    t["data"] = [[*row[:-2], 0.5, 0.25] for row in t["data"]]
    table.write_text(json.dumps(t))
    from dashboard.importers.mlflow_runs import read_mlflow
    from dashboard.importers.tools import ImportContext

    ctx = ImportContext("d", "v")

    with pytest.raises(InputRefused, match="no metric is pass/fail.*--pass-if"):
        read_mlflow(run, ctx)
    (run / "meta.yaml").write_text("name: [unclosed\n")
    with pytest.raises(InputRefused, match="meta.yaml:line 2: invalid YAML"):
        read_mlflow(run, ctx)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputRefused, match="not an MLflow run, experiment or mlruns folder"):
        read_mlflow(tmp_path / "empty", ctx)


# ----- Ragas ----------------------------------------------------------------------------------------------------
RAGAS = TOOLS / "ragas"
RAGAS_CSV, RAGAS_JSONL, RAGAS_DATASET = RAGAS / "results.csv", RAGAS / "results.jsonl", RAGAS / "dataset.jsonl"


@pytest.mark.parametrize("path", [RAGAS_CSV, RAGAS_JSONL])
def test_ragas_results_are_detected(path):
    assert detect_tool(path) == "ragas"


@pytest.mark.parametrize("path", [RAGAS_CSV, RAGAS_JSONL])
def test_ragas_results_match_its_summary_and_join_the_dataset_by_row_order(store, path):
    means = json.loads((RAGAS / "summary.json").read_text())["means"]
    report = ingest(store, path, dataset_file=str(RAGAS_DATASET))
    assert report.files[0].format == "ragas" and report.files[0].records == 6 and report.files[0].notes == []
    for metric, mean in means.items():
        assert store.query("SELECT avg(scores[?]) FROM cases", [metric])[0][0] == pytest.approx(mean)
    # exact_match and string_present are 0/1: checks; a case passes when both pass
    dataset = [json.loads(line) for line in RAGAS_DATASET.read_text().splitlines()]
    expected = {d["id"]: d["response"].strip() == d["reference"].strip() and d["reference"] in d["response"]
                for d in dataset}
    assert dict(store.query("SELECT case_id, passed FROM cases")) == expected
    assert sum(expected.values()) == 3
    row = store.query("SELECT risk, slices['task'], checks['string_present'] FROM cases "
                      "WHERE case_id = 'CASE-1004'")[0]
    assert row == ("critical", "status_update", False)


def test_ragas_without_a_dataset_file_gets_positional_ids_and_says_so(store):
    report = ingest(store, RAGAS_CSV)
    assert any("named by position (row-1 ... row-6)" in n for n in report.files[0].notes)
    assert sorted(r[0] for r in store.query("SELECT case_id FROM cases")) == [f"row-{i}" for i in range(1, 7)]


def test_ragas_thresholds_judge_a_continuous_metric(store, tmp_path):
    report = ingest(store, RAGAS_JSONL, dataset_file=str(RAGAS_DATASET),
                    pass_if="non_llm_string_similarity>=0.5")
    assert report.files[0].records == 6
    assert store.query("SELECT count(*) FROM cases WHERE checks['non_llm_string_similarity>=0.5'] IS NOT NULL")[0][0] == 6
    with pytest.raises(InputRefused, match="--pass-if names faithfulness, which this result did not measure"):
        ingest(store, RAGAS_CSV, pass_if="faithfulness>=0.8")
    with pytest.raises(InputRefused, match="expected <metric><op><number>"):
        ingest(store, RAGAS_CSV, pass_if="faithfulness=>0.8")


def test_a_dataset_file_that_does_not_match_is_refused_naming_the_row(store, tmp_path):
    lines = RAGAS_DATASET.read_text().splitlines()
    swapped = tmp_path / "dataset.jsonl"
    swapped.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(InputRefused, match=r"dataset.jsonl:row 1: user_input: does not match .*results.csv line 2"):
        ingest(store, RAGAS_CSV, dataset_file=str(swapped))
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:5]) + "\n")
    with pytest.raises(InputRefused, match="the dataset file has 5 rows, the results file .* 6"):
        ingest(store, RAGAS_CSV, dataset_file=str(short))
    assert store.table_counts()["cases"] == 0


@pytest.mark.parametrize("path", [RAGAS_CSV, RAGAS_JSONL])
def test_truncated_ragas_results_are_refused_naming_file_and_line(store, tmp_path, path):
    data = path.read_bytes()
    cut = tmp_path / path.name
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputRefused) as e:
        ingest(store, cut, fmt="ragas")
    assert str(cut) in str(e.value) and "line " in str(e.value)
    assert store.table_counts()["cases"] == 0


def test_old_ragas_columns_and_the_dataset_itself_are_refused_clearly(store, tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("question,answer,contexts,ground_truth,faithfulness\nq,a,[],g,0.9\n")
    with pytest.raises(InputRefused, match="ragas before 0.2's.*tested with ragas 0.4.3"):
        ingest(store, old, fmt="ragas")
    with pytest.raises(InputRefused, match="task: expected a metric score"):
        ingest(store, RAGAS_DATASET, fmt="ragas")
    assert store.table_counts()["cases"] == 0


# ----- versions ---------------------------------------------------------------------------------------------------
def test_every_importer_states_what_it_was_tested_with():
    from dashboard.importers.tools import TESTED_WITH, TOOL_FORMATS

    assert set(TESTED_WITH) == set(TOOL_FORMATS)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for tested in TESTED_WITH.values():
        assert tested.split(" (")[0] in readme, f"README's import table does not name {tested}"


def test_an_untested_version_whose_structure_matches_is_read_and_said(store, tmp_path):
    pf = json.loads(PF_JSON.read_text())
    pf["results"]["version"] = 4
    (tmp_path / "pf.json").write_text(json.dumps(pf))
    report = ingest(store, tmp_path / "pf.json")
    assert report.files[0].records == 10
    assert any("promptfoo results version 4 is not one Readiness was tested with (3, promptfoo 0.121.20): read "
               "because its structure matches" in n for n in report.files[0].notes)
    log = json.loads((next((TOOLS / "inspect" / "logs").glob("*.json"))).read_text())
    log["version"] = 3
    (tmp_path / "log.json").write_text(json.dumps(log))
    report = ingest(store, tmp_path / "log.json")
    assert report.files[0].records == 10 and "Inspect AI log version 3 is not one" in report.files[0].notes[0]


@pytest.mark.parametrize("path, fmt", [(PF_JSONL, "ragas"), (PF_CSV, "ragas"), (RAGAS_CSV, "promptfoo"),
                                       (RAGAS_JSONL, "promptfoo"), (PF_JSON, "mlflow"), (MLRUNS, "promptfoo")])
def test_a_file_of_another_tool_is_refused_for_the_new_formats(store, path, fmt):
    with pytest.raises(InputRefused, match=f"this is not a {fmt} file: it looks like"):
        ingest(store, path, fmt=fmt)
    assert store.table_counts()["cases"] == 0


def test_the_cli_says_what_an_import_could_not_carry(tmp_path, capsys):
    from dashboard.cli import main

    db = str(tmp_path / "c.duckdb")
    manifest = str(REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml")
    assert main(["ingest", str(RAGAS_CSV), "--release", "rel-2026.10.0", "--manifest", manifest, "--db", db,
                 "--dataset", "case_policy_golden"]) == 0
    out = capsys.readouterr().out
    assert "(ragas): ingested 6 cases" in out and "note: Ragas rows carry no ids" in out


# ----- a side-by-side eval is a comparison ---------------------------------------------------------------------
PAIRED_POLICY = """policy_id: side-by-side
version: '1'
gates:
  - {id: no_regression, name: no paired regression, category: quality, severity: blocker, metric: pass_rate,
     condition: no_regression}
"""


def _manifests(tmp_path, a: str, b: str) -> tuple[str, str]:
    pa, pb = tmp_path / f"{a}.json", tmp_path / f"{b}.json"
    pa.write_text(BASE.model_copy(update={"release_id": a}).model_dump_json())
    pb.write_text(BASE.model_copy(update={"release_id": b, "baseline_release_id": a}).model_dump_json())
    return str(pa), str(pb)


def _expected_pairs(outcomes: dict[str, dict[str, bool]], base: str, cand: str) -> tuple[int, int, int, int]:
    """(both pass, regressions, fixes, both fail) computed from the tool's own per-case results."""
    tests = sorted(set(outcomes[base]) & set(outcomes[cand]))
    pairs = [(outcomes[base][t], outcomes[cand][t]) for t in tests]
    return (pairs.count((True, True)), pairs.count((True, False)), pairs.count((False, True)),
            pairs.count((False, False)))


def _paired_gate(db: str, candidate: str):
    from dashboard.core.policy import parse_policy
    from dashboard.service import gate_release

    with Store(db) as s:
        decision = gate_release(s, parse_policy(PAIRED_POLICY), candidate)
    gate = next(g for g in decision.gates if g.gate_id == "no_regression")
    return decision, gate


@pytest.mark.parametrize("path", [PF_JSON, PF_JSONL])
def test_a_side_by_side_promptfoo_eval_is_a_gated_comparison_whose_pairs_match_its_results(tmp_path, capsys, path):
    from dashboard.cli import main

    results = json.loads(PF_JSON.read_text())["results"]["results"]
    outcomes: dict[str, dict[str, bool]] = {}
    for r in results:
        outcomes.setdefault(r["prompt"]["label"], {})[r["testCase"]["description"]] = r["success"]
    expected = _expected_pairs(outcomes, "prompt.policy_answer.v7", "prompt.policy_answer.v8")
    assert expected == (1, 0, 2, 2)
    db = str(tmp_path / "s.duckdb")
    ma, mb = _manifests(tmp_path, "rel-a", "rel-b")
    argv = ["ingest", str(path), "--split", "prompt", "--release-map",
            "prompt.policy_answer.v7=rel-a,prompt.policy_answer.v8=rel-b", "--manifest", ma, "--manifest", mb,
            "--db", db, "--dataset", "case_policy_golden"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prompt=prompt.policy_answer.v7 -> release rel-a (manifest: stored)" in out
    assert out.count("(promptfoo): ingested 5 cases") == 2
    decision, gate = _paired_gate(db, "rel-b")
    assert decision.baseline is not None and decision.baseline.release_id == "rel-a"
    paired = gate.paired
    assert (paired.shared_cases, paired.regressions, paired.fixes) == (sum(expected), expected[1], expected[2])
    assert gate.status == "pass"
    with Store(db) as s:
        assert s.query("SELECT DISTINCT case_id FROM cases WHERE release_id = 'rel-a' ORDER BY 1")[0][0] == \
            "cite-the-policy|echo-model"
    assert main(argv) == 0  # the same file again: unchanged, nothing added
    assert "already ingested" in capsys.readouterr().out


def test_a_baseline_and_candidate_pair_of_mlflow_runs_is_a_gated_comparison(tmp_path, capsys):
    from dashboard.cli import main

    outcomes = {role: {r["case_id"]: r["exact_match/score"] == 1 and r["cites_policy/score"] == 1
                       for r in _table(run)} for role, run in _mlflow_runs().items()}
    expected = _expected_pairs(outcomes, "baseline", "candidate")
    assert expected == (2, 1, 3, 0)
    db = str(tmp_path / "m.duckdb")
    ma, mb = _manifests(tmp_path, "rel-mlflow-a", "rel-mlflow-b")
    assert main(["ingest", str(MLRUNS), "--split", "tag.role", "--release-map",
                 "baseline=rel-mlflow-a,candidate=rel-mlflow-b", "--manifest", ma, "--manifest", mb, "--db", db,
                 "--dataset", "case_policy_golden"]) == 0
    assert capsys.readouterr().out.count("(mlflow): ingested 6 cases in 1 run(s)") == 2
    decision, gate = _paired_gate(db, "rel-mlflow-b")
    paired = gate.paired
    assert (paired.shared_cases, paired.regressions, paired.fixes) == (sum(expected), expected[1], expected[2])
    assert gate.status == "pass"


def test_split_refusals_store_nothing(tmp_path):
    from dashboard.importers.split import parse_release_map

    ma, mb = _manifests(tmp_path, "rel-a", "rel-b")
    from dashboard.core.manifests import load_manifest

    manifests = [load_manifest(ma), load_manifest(mb)]
    with Store(tmp_path / "r.duckdb") as s:
        with pytest.raises(InputRefused, match=r"does not name 'prompt.policy_answer.v8' \(5 records\)"):
            ingesting.ingest_split(s, [PF_JSON], "prompt", {"prompt.policy_answer.v7": "rel-a", "other": "rel-b"}, manifests,
                           dataset="case_policy_golden")
        with pytest.raises(InputRefused, match="no record has 'gpt'"):
            ingesting.ingest_split(s, [PF_JSON], "provider", {"echo-model": "rel-a", "gpt": "rel-b"}, manifests,
                           dataset="case_policy_golden")
        with pytest.raises(InputRefused, match="record 1: slices.nope: --split nope: this promptfoo record has no"):
            ingesting.ingest_split(s, [PF_JSON], "nope", {"a": "rel-a", "b": "rel-b"}, manifests, dataset="case_policy_golden")
        with pytest.raises(InputRefused, match="manifests follow the --release-map order"):
            ingesting.ingest_split(s, [PF_JSON], "prompt", {"a": "rel-b", "b": "rel-a"}, manifests, dataset="case_policy_golden")
        with pytest.raises(InputRefused, match="names release 'rel-mlflow-[ab]', but --split tag.role maps it to 'rel-[ab]'"):
            ingesting.ingest_split(s, [MLRUNS], "tag.role", {"baseline": "rel-a", "candidate": "rel-b"}, manifests,
                           dataset="case_policy_golden")
        assert s.table_counts()["cases"] == 0 and s.table_counts()["releases"] == 0
    for bad in ("a=rel-a", "a=rel-a,a=rel-b", "a=rel-a,b=rel-a", "a,b=rel-b"):
        with pytest.raises(InputRefused):
            parse_release_map(bad)


@pytest.mark.parametrize("path", [PF_JSON, PF_JSONL])
def test_promptfoo_per_prompt_counts_and_assertion_passes_equal_its_own_summary(store, path):
    ingest(store, path)
    for prompt in json.loads(PF_JSON.read_text())["results"]["prompts"]:
        m = prompt["metrics"]
        metrics = sorted(m["namedScores"])  # every assertion of this eval names a metric: one check each
        row = store.query("""SELECT count(*) FILTER (WHERE passed), count(*) FILTER (WHERE NOT passed),
                                    sum(len(list_filter(map_entries(checks), lambda e: list_contains($m, e.key)
                                                                                       AND e.value))),
                                    sum(len(list_filter(map_entries(checks), lambda e: list_contains($m, e.key)
                                                                                       AND NOT e.value)))
                             FROM cases WHERE slices['prompt'] = $p""", {"m": metrics, "p": prompt["label"]})[0]
        assert row == (m["testPassCount"], m["testFailCount"], m["assertPassCount"], m["assertFailCount"])


def test_promptfoo_assertion_types_are_checks_too(store):
    """`check: contains` gates on every contains assertion of a case (all passed), beside the metric names."""
    ingest(store, PF_JSON)
    expected = {}
    for r in json.loads(PF_JSON.read_text())["results"]["results"]:
        kinds: dict[str, bool] = {}
        for c in r["gradingResult"]["componentResults"]:
            kinds[c["assertion"]["type"]] = kinds.get(c["assertion"]["type"], True) and c["pass"]
        for kind, ok in kinds.items():
            expected[(f"{r['testCase']['description']}|{r['prompt']['label']}|echo-model", kind)] = ok
    got = {(case_id, k): v for case_id, k, v in store.query(
        "SELECT case_id, unnest(map_keys(checks)), unnest(map_values(checks)) FROM cases")
        if k in ("contains", "icontains", "not-contains")}
    assert got == expected and ("refund-window|prompt.policy_answer.v7|echo-model", "contains") in got


def test_an_experiment_that_grows_adds_its_new_run_and_keeps_the_stored_one(tmp_path):
    import shutil

    run = _copy_run(tmp_path)
    with mlflow_store(tmp_path) as s:
        first = ingesting.ingest(s, [tmp_path / "mlruns"], "rel-mlflow-a", dataset="case_policy_golden")
        assert [f.status for f in first.files] == ["ingested"]
        later = run.parent / "0123456789abcdef0123456789abcdef"
        shutil.copytree(run, later)
        meta = (later / "meta.yaml").read_text().replace(run.name, later.name)
        (later / "meta.yaml").write_text(meta)
        second = ingesting.ingest(s, [tmp_path / "mlruns"], "rel-mlflow-a", dataset="case_policy_golden")
        assert [(f.status, f.runs) for f in second.files] == [("ingested", [later.name]), ("unchanged", [run.name])]
        assert s.query("SELECT count(*) FROM cases")[0][0] == 12


def test_options_a_tool_does_not_read_are_refused_not_ignored(store):
    with pytest.raises(InputRefused, match="--dataset-file joins Ragas results with their dataset; this is promptfoo"):
        ingest(store, PF_JSON, dataset_file=str(RAGAS_DATASET))
    with pytest.raises(InputRefused, match="--pass-if judges the cases of tools that only score"):
        ingest(store, PF_JSON, pass_if="score>=0.5")
    assert store.table_counts()["cases"] == 0
