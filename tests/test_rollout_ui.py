"""AppTest for the Release train page and the rollout blockers on the Overview (issue 17)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.test_ui import texts

APP = str(REPO / "dashboard" / "ui" / "app.py")
APP_TIMEOUT = 90


def _open(app: AppTest, candidate: str, policy: str = "rollout.yaml", page: str = "views/train.py") -> str:
    app.query_params["candidate"] = candidate
    app.query_params["policy"] = policy
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return texts(app)


def test_train_view_shows_tiers_per_release_and_what_rc5_is_missing(app):
    """Test that the train view lists the tiers, a release x tier matrix, rc5's stale nightly and its failed
    rollback gate, and its rollback drills."""
    body = _open(app, "rel-2026.11.0-rc5")
    assert "Release train" in body
    frames = app.dataframe
    matrix = next(f.value for f in frames if "nightly" in f.value.columns and "release_candidate" in f.value.columns)
    assert "⏳ stale" in matrix.loc["rel-2026.11.0-rc5", "nightly"]
    assert matrix.loc["rel-2026.11.0-rc2", "nightly"] == "⛔ missing"
    assert "· not yet" == matrix.loc["rel-2026.11.0-rc1", "canary"]
    assert "nightly evidence is 9.3 days old (max 2)" in body
    assert "BLOCKER · rollout.rollback_tested: prompts changed (policy_answer)" in body
    drills = next(f.value for f in frames if "minutes" in f.value.columns)
    assert 38 in list(drills["minutes"])


def test_train_view_on_rc6_shows_the_global_high_risk_flag(app):
    """Test that rc6's rollout blocker and its flag (on for 100%) are on the page."""
    body = _open(app, "rel-2026.11.0-rc6")
    assert "BLOCKER · rollout.exposure_limited" in body and "close_case_enabled" in body
    flags = next(f.value for f in app.dataframe if "flag" in f.value.columns)
    assert list(flags["percentage"]) == ["100%"]


def test_train_view_without_a_train_explains_itself(app):
    """Test that a policy with no rollout.tiers gets a sentence, not an empty page."""
    body = _open(app, "rel-2026.11.0-rc5", policy="case-management.yaml")
    assert "has no release train" in body
    use = next(b for b in app.button if b.label == "Use rollout.yaml")  # the policies that have one, one click away
    use.click().run()
    assert not app.exception
    body = texts(app)
    assert "has no release train" not in body and "nightly evidence is 9.3 days old (max 2)" in body


def test_overview_names_the_rollout_blocker(app):
    """Test that the Overview's blockers include the rollout gate that blocks rc5."""
    body = _open(app, "rel-2026.11.0-rc5", page="views/overview.py")
    assert "BLOCKED" in body and "rollout.rollback_tested" in body


def test_load_page_attaches_a_rollout_file_or_refuses_it_naming_the_record(tmp_path, monkeypatch):
    """Test that the Load page's evidence slot takes a rollout file: a bad one is refused with file, record and
    field and nothing is stored; the good one is stored with the manifest and eval file."""
    import yaml

    from dashboard import demo
    from dashboard.store.rollout import rollout_evidence
    from tests.conftest import good_case

    monkeypatch.setenv("READINESS_DB", str(tmp_path / "load.duckdb"))
    from dashboard.ui import data

    data.store.clear()
    rid = "rel-2026.10.0"
    manifest = (REPO / "data" / "demo" / rid / "manifest.yaml").read_bytes()
    run = "".join(__import__("json").dumps(good_case(case_id=f"c{i}")) + "\n" for i in range(3)).encode()
    good = demo.ROLLOUT_EVIDENCE[rid]
    bad = {**good, "records": [{**good["records"][0], "occurred_at": "yesterday"}]}
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("views/load.py").run()
    at.text_input(key="load_release").input(rid)
    at.file_uploader(key="load_manifest").set_value(("manifest.yaml", manifest, "application/yaml"))
    at.file_uploader(key="load_files").set_value([("run.jsonl", run, "application/jsonl")])
    at.file_uploader(key="load_evidence").set_value(("rollout.yaml", yaml.safe_dump(bad).encode(), "application/yaml"))
    at.button(key="FormSubmitter:load_form-Validate and store").click().run()
    body = texts(at)
    assert "nothing was stored" in body and "rollout.yaml:record 1: occurred_at" in body, body
    assert data.store().table_counts()["releases"] == 0
    at.file_uploader(key="load_evidence").set_value(("rollout.yaml", yaml.safe_dump(good).encode(), "application/yaml"))
    at.button(key="FormSubmitter:load_form-Validate and store").click().run()
    assert not at.exception and "rollout evidence stored" in texts(at), texts(at)
    assert rollout_evidence(data.store(), rid) is not None
    data.store.clear()


def test_train_view_judges_the_candidate_under_each_tiers_profile(app):
    """Test that every tier with a profile shows the decision of that profile's gates on the candidate."""
    _open(app, "rel-2026.11.0-rc6")
    table = next(f.value for f in app.dataframe if "decision" in f.value.columns and "tier" in f.value.columns)
    assert list(table["profile"]) == ["pr_fast", "pr_medium", "nightly", "weekly", "release", "canary", "post_release"]
    assert all("BLOCKED" in x for x in table["decision"])  # rc6's exposure gate runs in every profile
    assert all("rollout.exposure_limited" in x for x in table["blockers"])
