"""AppTest: every page renders without exception, shows its key content, and follows the sidebar selection."""

from __future__ import annotations

import re
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

APP = str(REPO / "dashboard" / "ui" / "app.py")
PAGES = ["views/overview.py", "views/releases.py", "views/gates.py", "views/review.py", "views/slices.py", "views/quality_rag.py", "views/agent_tools.py",
         "views/security.py", "views/cost_latency.py", "views/cases.py", "views/datasets.py", "views/load.py"]


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.title] + [e.value for e in at.subheader]
    for kind in ("error", "warning", "success", "info", "caption", "code", "text"):
        parts += [str(e.value) for e in at.get(kind)]
    shown = re.sub(r"(`+) (.*?) \1", r"\2", "\n".join(parts))  # code spans (untrusted text) -> their text
    return re.sub(r"\\(.)", r"\1", shown)  # Markdown source -> the text it shows


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app, page):
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]


def test_overview_shows_the_decision_and_digest(app):
    app.run()
    assert not app.exception
    body = texts(app)
    assert "BLOCKED" in body and "rel-2026.11.0-rc4" in body
    assert "decision  sha256:" in body
    assert "BLOCKER · approval_bypass" in body  # each blocker named, with its reason as plain text
    # a plain sentence first, the statistics second (issue 14, item 9)
    assert any(t.value == "49 tool calls ran without the human approval they required; the policy allows none."
               for t in app.text)
    assert "Statistics: 49 fails == 0" in body
    labels = [b.proto.label for b in app.get("download_button")]
    assert {"Release report (HTML)", "Release report (Markdown)", "Decision (JSON)"} <= set(labels)


def test_sidebar_selection_changes_the_numbers(app):
    app.run()
    first = texts(app)
    app.selectbox(key="candidate").set_value("rel-2026.11.0-rc1").run()
    assert not app.exception
    second = texts(app)
    assert "APPROVED" in second and "rel-2026.11.0-rc1" in second and second != first
    assert app.query_params["candidate"] == ["rel-2026.11.0-rc1"] or app.query_params["candidate"] == "rel-2026.11.0-rc1"


def test_query_string_reproduces_the_view(ui_db, monkeypatch):
    monkeypatch.setenv("READINESS_DB", ui_db)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["candidate"] = "rel-2026.11.0-rc3"
    at.run()
    assert not at.exception
    assert at.selectbox(key="candidate").value == "rel-2026.11.0-rc3"
    assert "APPROVED WITH WARNINGS" in texts(at)


def test_cases_page_drills_into_a_regression_and_shows_untrusted_text_as_text(app):
    app.run()
    app.switch_page("views/cases.py").run()
    assert not app.exception
    assert app.selectbox(key="cases_kind").value == "regressions"
    body = texts(app)
    assert "Case " in body and "Baseline: rel-2026.10.0" in body and "Candidate: rel-2026.11.0-rc4" in body
    # hostile outputs are only ever shown through st.text (never Markdown/HTML)
    app.selectbox(key="cases_kind").set_value("all").run()
    assert all("<script>" not in m.value for m in app.markdown)


def test_hostile_case_output_is_plain_text(app):
    app.run()
    app.switch_page("views/cases.py").run()
    app.selectbox(key="cases_kind").set_value("all").run()
    pages = app.number_input(key="cases_page")
    found = False
    for page in range(1, 40):
        pages.set_value(page).run()
        options = app.selectbox(key="cases_pick").options
        for opt in options:
            app.selectbox(key="cases_pick").set_value(opt).run()
            shown = [t.value for t in app.text]
            if any("<script>" in t or "javascript:" in t or "onerror" in t for t in shown):
                found = True
                break
        if found:
            break
    assert found, "no hostile demo output found to check"
    assert all("<script>" not in m.value and "onerror" not in m.value for m in app.markdown)


def test_gate_drill_down_opens_cases(app):
    app.run()
    app.switch_page("views/gates.py").run()
    app.selectbox(key="gate_cases_pick").set_value("approval_bypass").run()
    app.button(key="gate_cases_go").click().run()
    assert not app.exception
    assert "Cases behind gate approval" in texts(app)


def test_empty_store_explains_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("READINESS_DB", str(tmp_path / "empty.duckdb"))
    from dashboard.ui import data

    data.store.clear()
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "No release is stored yet" in texts(at)
    data.store.clear()


def test_no_baseline_is_explained(app):
    app.run()
    app.selectbox(key="baseline").set_value("(none)").run()
    assert not app.exception
    assert "no baseline release" in texts(app).lower()
    app.switch_page("views/slices.py").run()
    assert "Choose a baseline" in texts(app)


def test_review_page_signs_a_review_end_to_end(ui_db, monkeypatch, tmp_path):
    """Test that a reviewer signs in the form with key file and passphrase, and the review lands verified."""
    import shutil

    db = tmp_path / "review.duckdb"
    shutil.copy(ui_db, db)
    monkeypatch.setenv("READINESS_DB", str(db))
    from dashboard.ui import data

    data.store.clear()
    key = (REPO / "data" / "reviewers" / "eng_example.com.key").read_bytes()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["candidate"] = "rel-2026.11.0-rc3"
    at.run()
    at.switch_page("views/review.py").run()
    assert not at.exception
    assert "NOT READY TO RELEASE" in texts(at) and "No signed review of this release yet." in texts(at)
    at.text_input(key="rv_reviewer").input("eng@example.com")
    at.selectbox(key="rv_role").set_value("engineering")
    at.text_area(key="rv_comment").input("<script>alert(1)</script> **ok**")
    at.file_uploader(key="rv_key").set_value(("eng.key", key, "application/octet-stream"))
    at.text_input(key="rv_passphrase").input("wrong passphrase")
    at.radio(key="rv_choice").set_value("approve")
    at.button(key="FormSubmitter:review_form-Sign and record").click().run()
    assert "wrong passphrase" in texts(at)
    at.text_input(key="rv_passphrase").input("readiness-demo")
    at.radio(key="rv_choice").set_value("approve")
    at.button(key="FormSubmitter:review_form-Sign and record").click().run()
    assert not at.exception
    body = texts(at)
    assert "Recorded as entry 3" in body, body  # entries 1 and 2: the demo's trust root and governing policy
    assert "DEMO KEYS" in body
    at.run()
    frames = [df.value for df in at.dataframe if "reviewer" in df.value.columns]
    assert frames and frames[0]["reviewer"].tolist() == ["eng@example.com"]
    assert "quorum not met: no current approval from security, risk" in texts(at)
    data.store.clear()


def test_cases_filter_by_a_failed_check(app):
    app.run()
    app.selectbox(key="candidate").set_value("rel-2026.11.0-rc2").run()
    app.switch_page("views/cases.py").run()
    app.selectbox(key="cases_check").set_value("citation_supported=false").run()
    assert not app.exception
    label = app.number_input(key="cases_page").label
    regressions_failing_citation = int(label.split("; ")[1].split(" ")[0].replace(",", ""))
    app.selectbox(key="cases_check").set_value("(any)").run()
    all_regressions = int(app.number_input(key="cases_page").label.split("; ")[1].split(" ")[0].replace(",", ""))
    assert 0 < regressions_failing_citation < all_regressions


def test_load_page_stores_a_tool_file_or_nothing(tmp_path, monkeypatch):
    """Test uploading promptfoo output with a manifest; then a broken file is refused and nothing is stored."""
    monkeypatch.setenv("READINESS_DB", str(tmp_path / "load.duckdb"))
    from dashboard.ui import data

    data.store.clear()
    manifest = (REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml").read_bytes()
    results = (REPO / "tests" / "fixtures" / "tools" / "promptfoo" / "results.json").read_bytes()
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("views/load.py").run()
    at.text_input(key="load_release").input("rel-2026.10.0")
    at.file_uploader(key="load_manifest").set_value(("manifest.yaml", manifest, "application/yaml"))
    at.file_uploader(key="load_files").set_value([("broken.json", results[:500], "application/json")])
    at.text_input(key="load_dataset").input("case_policy_golden")
    at.button(key="FormSubmitter:load_form-Validate and store").click().run()
    assert "nothing was stored" in texts(at) and "broken.json" in texts(at)
    assert data.store().table_counts()["releases"] == 0
    at.file_uploader(key="load_files").set_value([("results.json", results, "application/json")])
    at.button(key="FormSubmitter:load_form-Validate and store").click().run()
    assert not at.exception and "Stored in release" in texts(at), texts(at)
    assert data.store().table_counts()["cases"] == 10
    data.store.clear()


def test_review_page_forgets_the_passphrase_and_records_waivers(ui_db, monkeypatch, tmp_path):
    """Test that the passphrase is cleared after signing and that a waiver typed in the table is signed."""
    import shutil

    db = tmp_path / "waive.duckdb"
    shutil.copy(ui_db, db)
    monkeypatch.setenv("READINESS_DB", str(db))
    from dashboard.ui import data

    data.store.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["candidate"] = "rel-2026.11.0-rc4"
    at.run()
    at.switch_page("views/review.py").run()
    at.text_input(key="rv_reviewer").input("risk@example.com")
    at.selectbox(key="rv_role").set_value("risk")
    at.get("arrow_data_editor")  # the waiver table is there for the failed gates
    at.session_state["rv_waivers"] = {"edited_rows": {0: {"justification": "hotfix 4.13.1 ships tomorrow",
                                                          "ticket": "RISK-42"}},
                                      "added_rows": [], "deleted_rows": []}
    key = (REPO / "data" / "reviewers" / "risk_example.com.key").read_bytes()
    at.file_uploader(key="rv_key").set_value(("risk.key", key, "application/octet-stream"))
    at.text_input(key="rv_passphrase").input("readiness-demo")
    at.radio(key="rv_choice").set_value("approve")
    at.button(key="FormSubmitter:review_form-Sign and record").click().run()
    assert not at.exception and "Recorded as entry 3" in texts(at), texts(at)
    assert at.session_state["rv_passphrase"] == ""
    frames = [df.value for df in at.dataframe if "waivers" in df.value.columns]
    assert frames and "RISK-42" in frames[0]["waivers"].iloc[0]
    data.store.clear()


def test_cases_behind_a_citation_gate_are_the_cases_failing_citation(app):
    app.run()
    app.selectbox(key="candidate").set_value("rel-2026.11.0-rc2").run()
    app.switch_page("views/gates.py").run()
    app.selectbox(key="gate_cases_pick").set_value("policy_citation_support").run()
    app.button(key="gate_cases_go").click().run()
    assert not app.exception
    # the cases behind the gate: its slice (high/critical policy_qa) whose citation check failed
    assert "Cases behind gate" in texts(app) and "policy_citation_support" in texts(app)
    n = int(app.number_input(key="cases_page").label.split("; ")[1].split(" ")[0].replace(",", ""))
    from dashboard.ui import data

    expected = data.store().query(
        "SELECT count(DISTINCT (suite, case_id)) FROM cases WHERE release_id = 'rel-2026.11.0-rc2' AND "
        "risk IN ('high', 'critical') AND slices['task'] = 'policy_qa' AND checks['citation_supported'] = false")
    assert n == expected[0][0] > 0


def test_stopping_serve_stops_the_dashboard(tmp_path, demo_store):
    """Test that SIGTERM to `readiness serve` stops Streamlit too and releases the store (issue 14, item 8)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.browser import free_port

    demo_store.query("CHECKPOINT")
    db = tmp_path / "serve.duckdb"
    shutil.copy(demo_store.path, db)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "serve", "--db", str(db), "--port", str(port),
                             "--headless"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def healthy() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok"
        except OSError:
            return False

    try:
        deadline = time.time() + 60
        while not healthy():
            assert proc.poll() is None and time.time() < deadline, "serve did not start"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        time.sleep(1)
        assert not healthy(), "Streamlit kept running after serve was stopped"
        from dashboard.store.db import Store

        Store(db).close()  # the store is free again
    finally:
        if proc.poll() is None:
            proc.kill()


def test_slices_survive_metrics_that_are_na_everywhere(app):
    """Test that Slices renders when every selected metric is n/a for every slice (issue 14, item 6)."""
    app.run()
    app.switch_page("views/slices.py").run()
    app.multiselect(key="slices_metrics").set_value(["flaky_case_rate", "pass_hat_k"]).run()
    assert not app.exception, [e.value for e in app.exception]


def test_heatmap_colour_means_the_same_in_every_cell():
    """Test that a tiny non-significant cost change is grey and a significant pass-rate drop is deep red, on one
    scale (issue 14, item 7)."""
    from dashboard.ui.slices import colour_z

    cost = {"goodness": -0.0006, "se": None}
    assert colour_z(cost, significant=False) == 0.0
    drop = {"goodness": -0.042, "se": 0.01}
    assert colour_z(drop, significant=True) == -4.0 * min(1, 4.2 / 4)  # clipped at -4 (4.2 standard errors)
    assert colour_z({"goodness": None}, significant=False) is None
    assert colour_z({"goodness": 0.02, "se": 0.01}, significant=True) == 2.0


def test_streamlit_never_shows_tracebacks():
    """Test that the dashboard's config and `readiness serve` hide exception details from users (issue 12, 8)."""
    import tomllib

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["disableDataExport"] is True  # the built-in table CSV export is not formula-safe
    cli = (REPO / "dashboard" / "cli.py").read_text()
    assert '"--client.showErrorDetails", "none"' in cli


def test_an_unexpected_error_is_a_notice_with_a_reference(app, monkeypatch):
    """Test that an unexpected exception in a page becomes a plain notice, not a traceback (issue 12, item 8)."""
    from dashboard.ui import data

    def boom(*_a, **_k):
        raise RuntimeError("secret internals /etc/passwd")

    app.run()
    monkeypatch.setattr(data, "dataset_changes", boom)
    app.switch_page("views/datasets.py").run()
    assert not app.exception
    shown = " ".join(e.value for e in app.error)
    assert "Something went wrong" in shown and "secret internals" not in shown


def test_one_case_with_a_huge_slice_map_keeps_pages_bounded(demo_store, tmp_path, monkeypatch):
    """Test that a case with 200,000 slice keys neither floods the Slices and Cases pages' selectors nor slows
    them (issue 12, item 7: 10^6 keys took the Slices page to 20 s)."""
    import time

    import duckdb

    demo_store.query("CHECKPOINT")
    db = tmp_path / "wide.duckdb"
    shutil.copy(demo_store.path, db)
    con = duckdb.connect(str(db))
    con.execute("""UPDATE cases SET slices = (SELECT map_from_entries(list({'key': 'k' || i::VARCHAR, 'value': 'v'}))
                                            FROM range(200000) t(i))
                   WHERE release_id = 'rel-2026.11.0-rc2' AND case_id = (SELECT min(case_id) FROM cases)""")
    con.close()
    monkeypatch.setenv("READINESS_DB", str(db))
    from dashboard.ui import data

    max_dimensions = 50  # dashboard/store/cases.py:MAX_DIMENSIONS
    data.store.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["candidate"] = "rel-2026.11.0-rc2"
    at.run()
    for page, key in (("views/slices.py", "slices_dim"), ("views/quality_rag.py", "quality_dim")):
        start = time.perf_counter()
        at.switch_page(page).run()
        assert not at.exception
        assert len(at.selectbox(key=key).options) <= max_dimensions + 2
        assert time.perf_counter() - start < 5
    at.switch_page("views/cases.py").run()
    assert not at.exception
    data.store.clear()
