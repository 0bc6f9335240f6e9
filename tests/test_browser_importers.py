"""Real browser: a side-by-side promptfoo eval, split into two releases, judged on the tool's own check."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.ingesting import ingest_split
from tests.browser import ARTIFACTS, CHROMIUM, body_shows, streamlit_server, wait_for_app

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

POLICY = """policy_id: side-by-side
version: '1'
gates:
  - {id: cites_policy_paired, name: cites policy, category: quality, severity: blocker, check: cites_policy,
     condition: no_regression}
  - {id: answered_rate, name: answered, category: quality, severity: warning, score: answered, stat: pass_rate,
     at: 1, condition: '>= 1'}
"""


def test_gates_page_on_a_split_promptfoo_eval(tmp_path):
    """Test that the Gates page shows the tool's check gate in words, paired on the prompts' shared tests."""
    from dashboard.core.manifests import load_manifest
    from dashboard.store.db import Store
    from tests.test_importers_formats import PF_JSON, _manifests

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: scripts/test.sh installs it with apt-get")
    ma, mb = _manifests(tmp_path, "rel-a", "rel-b")
    db = tmp_path / "b.duckdb"
    with Store(db) as s:
        ingest_split(s, [PF_JSON], "prompt", {"prompt.policy_answer.v7": "rel-a", "prompt.policy_answer.v8": "rel-b"},
                       [load_manifest(ma), load_manifest(mb)], dataset="case_policy_golden")
    (tmp_path / "side.yaml").write_text(POLICY)
    with streamlit_server(str(db), {"READINESS_POLICIES": str(tmp_path / "side.yaml")}) as url, \
            playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
        page.goto(f"{url}/gates?candidate=rel-b&policy=side.yaml")
        wait_for_app(page)
        body_shows(page, "APPROVED", "quality — 3 gate(s)")
        page.get_by_text("quality — 3 gate(s)").click()
        body = body_shows(page, "The tool's check 'cites_policy' pass rate did not get significantly worse",
                          "The share of cases scoring 'answered' at least 1")
        assert "rel-a" in body and page.get_by_test_id("stException").count() == 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "importers-gates-split-promptfoo.png"))
        page.get_by_text("Show the cases behind this gate").click()  # cites_policy: the case failing the check
        wait_for_app(page)
        body = body_shows(page, "refund-window|echo-model")
        assert "cite-the-policy|echo-model" not in body  # it passes the check in the candidate
        page.screenshot(path=str(ARTIFACTS / "importers-cases-behind-a-tool-check.png"))
        browser.close()
