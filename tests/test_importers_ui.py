"""The Load page with the new tool outputs (issue 18): what an import could not carry is shown beside the file."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

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
