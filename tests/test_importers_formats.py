"""More eval-tool outputs (issue 18): promptfoo's JSONL and CSV, MLflow runs, Ragas results.

tests/fixtures/tools/README.md says how each fixture was written by the real tool."""

from __future__ import annotations

import json

import pytest

from dashboard import demo
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
    return store.ingest([path], BASE.release_id, dataset="case_policy_golden", **kw)


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
