"""AppTest: the Canary & shadow page shows the judge's verdict, the timeline and the shadow comparison."""

from __future__ import annotations

import shutil

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.test_ui import texts

APP = str(REPO / "dashboard" / "ui" / "app.py")
PAGE = "views/canary.py"


def test_canary_verdicts_timeline_and_rollback_targets(app) -> None:
    """Test that rc1's canary shows PROMOTE, rc2's ROLLBACK with the signal, its evidence and rollback targets."""
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="canary_release").value == "rel-2026.11.0-rc1"
    assert any("PROMOTE" in s.value for s in app.success)
    app.selectbox(key="canary_release").set_value("rel-2026.11.0-rc2").run()
    assert not app.exception
    banner = "\n".join(e.value for e in app.error)
    assert "ROLLBACK" in banner and "Critical signal citation_failure breached" in texts(app)
    assert app.selectbox(key="canary_signal").value == "citation_failure"  # the breached signal first
    tables = [t.value for t in app.dataframe]
    rollback = next(t for t in tables if "method" in t.columns)
    assert "switch the prompt version back" in set(rollback["method"])
    charts = app.get("plotly_chart")
    assert charts and "first rollback verdict" in charts[0].proto.spec
    assert app.query_params["canary_release"] == ["rel-2026.11.0-rc2"] or \
        app.query_params["canary_release"] == "rel-2026.11.0-rc2"


def test_shadow_tab_blocker_slices_and_pair_diff(app) -> None:
    """Test that the shadow tab shows the side-effect blocker, the diverging slice and a request pair's diff."""
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception
    body = texts(app)
    assert "BLOCKED" in body and "Shadow output must not cause side effects" in body
    assert "language=de" in body  # the warning names the slice where retrieval diverges
    diffs = [c.value for c in app.code if c.value.startswith("--- production")]
    assert diffs and "+++ shadow" in diffs[0]
    assert all("<script>" not in m.value for m in app.markdown)  # answers only as text / code


def test_query_string_opens_the_canary(ui_db, monkeypatch) -> None:
    """Test that a link naming the canary opens it."""
    monkeypatch.setenv("READINESS_DB", ui_db)
    from dashboard.ui import data

    data.store.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["canary_release"] = "rel-2026.11.0-rc2"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.selectbox(key="canary_release").value == "rel-2026.11.0-rc2"
    data.store.clear()


def test_shadow_tab_shows_evaluator_score_deltas(app) -> None:
    """Test that the online evaluator's score change (shadow − production) is listed with its interval."""
    app.run()
    app.switch_page(PAGE).run()
    scores = next(t.value for t in app.dataframe if "shadow − production" in t.value.columns)
    assert list(scores["score"]) == ["groundedness"] and scores["shadow − production"].iloc[0] < 0


def test_store_without_observations_explains_itself(demo_store, tmp_path, monkeypatch):
    """Test that a store without observations says how to load them, instead of an empty page."""
    demo_store.query("CHECKPOINT")
    db = tmp_path / "none.duckdb"
    shutil.copy(demo_store.path, db)
    from dashboard.store.db import Store

    with Store(db) as s:
        s.query("DELETE FROM observations")
        s.query("DELETE FROM observation_sources")
    monkeypatch.setenv("READINESS_DB", str(db))
    from dashboard.ui import data

    data.store.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("No production observations are stored" in i.value for i in at.info)
    data.store.clear()


def test_policy_without_canary_section_explains_itself(app) -> None:
    """Test that choosing a policy without a canary section says so (the shadow tab still works)."""
    app.run()
    app.selectbox(key="policy").set_value("tiered.yaml").run()
    app.switch_page(PAGE).run()
    assert not app.exception
    assert any("has no `canary` section" in i.value for i in app.info)
    assert "Shadow output must not cause side effects" in texts(app)
