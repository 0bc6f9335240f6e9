"""The Load page with the new tool outputs (issue 18): what an import could not carry is shown beside the file."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.ingesting import ingest_split
from tests.conftest import REPO

APP = str(REPO / "dashboard" / "ui" / "app.py")


def test_load_page_stores_a_ragas_result_and_says_its_ids_are_positional(tmp_path, monkeypatch):
    """Test uploading a Ragas CSV: stored, and the files table says the rows were named by position."""
    monkeypatch.setenv("READINESS_DB", str(tmp_path / "load.duckdb"))
    from dashboard.ui import data

    data.store.clear()
    manifest = (REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml").read_bytes()
    results = (REPO / "tests" / "fixtures" / "tools" / "ragas" / "results.csv").read_bytes()
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("views/load.py").run()
    at.text_input(key="load_release").input("rel-2026.10.0")
    at.file_uploader(key="load_manifest").set_value(("manifest.yaml", manifest, "application/yaml"))
    at.file_uploader(key="load_files").set_value([("results.csv", results, "text/csv")])
    at.text_input(key="load_dataset").input("case_policy_golden")
    at.button(key="FormSubmitter:load_form-Validate and store").click().run()
    assert not at.exception
    frames = [df.value for df in at.dataframe if "notes" in df.value.columns]
    assert frames and frames[0]["records"].iloc[0] == 6
    assert "named by position (row-1 ... row-6)" in frames[0]["notes"].iloc[0]
    assert data.store().table_counts()["cases"] == 6
    data.store.clear()


TOOL_POLICY = """policy_id: tool-metrics
version: '1'
gates:
  - {id: exact_match_mean, name: exact match, category: quality, severity: blocker, score: exact_match,
     condition: '>= 0.9'}
  - {id: cites_policy_paired, name: cites policy, category: quality, severity: blocker, check: cites_policy,
     condition: no_regression}
"""


def test_gates_page_shows_gates_on_an_mlflow_comparison_in_words(tmp_path, monkeypatch):
    """Test the Gates page on a baseline/candidate pair of MLflow runs judged on the tool's own metrics."""
    from dashboard.core.manifests import load_manifest
    from dashboard.store.db import Store
    from dashboard.ui import data
    from tests.test_importers_formats import MLRUNS, _manifests

    ma, mb = _manifests(tmp_path, "rel-mlflow-a", "rel-mlflow-b")
    db = tmp_path / "ui.duckdb"
    with Store(db) as s:
        ingest_split(s, [MLRUNS], "tag.role", {"baseline": "rel-mlflow-a", "candidate": "rel-mlflow-b"},
                       [load_manifest(ma), load_manifest(mb)], dataset="case_policy_golden")
    (tmp_path / "tool.yaml").write_text(TOOL_POLICY)
    monkeypatch.setenv("READINESS_DB", str(db))
    monkeypatch.setenv("READINESS_POLICIES", str(tmp_path / "tool.yaml"))
    data.store.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["candidate"] = "rel-mlflow-b"
    at.query_params["policy"] = "tool.yaml"
    at.run()
    at.selectbox(key="policy").set_value("tool.yaml").run()
    at.switch_page("views/gates.py").run()
    assert not at.exception
    shown = " ".join([str(e.value) for e in at.markdown] + [str(e.value) for kind in ("error", "warning", "success",
                                                                                      "info", "caption")
                                                              for e in at.get(kind)])
    frames = " ".join(df.value.to_csv() for df in at.dataframe)
    assert "The tool's mean score 'exact_match' is 0.8333" in shown + frames, shown + frames
    assert "The tool's check 'cites_policy' pass rate did not get significantly worse" in shown + frames
    data.store.clear()
