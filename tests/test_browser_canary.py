"""Real headless chromium: the Canary & shadow page shows the verdicts, the timeline and a request pair."""

from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, body_shows, wait_for_app

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")


VIEWPORT = {"width": 1400, "height": 1600}

def test_canary_page_rollback_banner_and_timeline(server, page):
    """Test that rc2's canary shows ROLLBACK, the breached signal, the rollback targets and the timeline chart."""
    page.goto(f"{server}/canary?canary_release=rel-2026.11.0-rc2")
    wait_for_app(page)
    body_shows(page, "ROLLBACK", "Critical signal citation_failure breached", "Roll back",
               "switch the prompt version back")
    assert page.get_by_test_id("stException").count() == 0
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for(timeout=20_000)
    body_shows(page, "first rollback verdict", "critical limit")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-canary-rollback.png"))
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(ARTIFACTS / "page-canary-timeline.png"))


def test_canary_page_promote_and_shadow_pair(server, page):
    """Test that rc1's canary is promoted, and the shadow tab opens a request pair with its diff as text."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server}/canary?canary_release=rel-2026.11.0-rc1")
    wait_for_app(page)
    body_shows(page, "PROMOTE", "first promote verdict")
    chart = page.locator(".js-plotly-plot").first
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(ARTIFACTS / "page-canary-promote-timeline.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.get_by_role("tab", name="Shadow").click()
    body_shows(page, "BLOCKED", "Shadow output must not cause side effects", "Most disagreeing requests",
               "Answer: production → shadow (text diff)")
    body_shows(page, "--- production", "+++ shadow")
    assert page.locator("script", has_text="alert").count() == 0  # untrusted answers never become HTML
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-canary-shadow.png"))
    diff = page.get_by_text("Answer: production → shadow (text diff)")
    diff.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "page-canary-pair.png"))
