"""Real headless chromium: the Release train page (issue 17) as people see it."""

from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, body_shows, wait_for_app

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")
VIEWPORT = {"width": 1400, "height": 1700}


def test_release_train_page_in_a_real_browser(server, page):
    """Test that the train page shows rc5's stale nightly tier and its untested prompt rollback, then rc6's
    globally enabled high-risk tool after choosing rc6 in the sidebar; screenshots of both."""
    page.goto(f"{server}/train?candidate=rel-2026.11.0-rc5&policy=rollout.yaml")
    wait_for_app(page)
    body = body_shows(page, "Release train", "Which tiers ran, when, with which result",
                      "nightly evidence is 9.3 days old (max 2)", "rollout.rollback_tested")
    assert "took 38 min" in body
    assert page.get_by_test_id("stException").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "rollout-train-rc5.png"))
    page.get_by_role("tab", name="Rollback drills").click()
    page.goto(f"{server}/train?candidate=rel-2026.11.0-rc6&policy=rollout.yaml")
    wait_for_app(page)
    body_shows(page, "rollout.exposure_limited", "high-risk flag enabled globally")
    page.get_by_role("tab", name="Feature flags").click()
    body_shows(page, "close_case_enabled")
    page.screenshot(path=str(ARTIFACTS / "rollout-train-rc6.png"))


def test_overview_names_the_rollout_blocker_in_a_real_browser(server, page):
    """Test that rc5's Overview under the rollout policy names its rollout blocker in words; screenshot."""
    page.goto(f"{server}/?candidate=rel-2026.11.0-rc5&policy=rollout.yaml")
    wait_for_app(page)
    body_shows(page, "BLOCKED", "rollout.rollback_tested", "Prompts changed (policy_answer)")
    page.screenshot(path=str(ARTIFACTS / "rollout-overview-rc5.png"))
