"""Two machines on the team store in real browsers (issue 19, "Several machines"): two dashboard servers, each with
its own --db copy, reading one PostgreSQL database and one shared data directory, while CI ingests from the command
line (its own copy) and a reviewer signs on machine 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import ARTIFACTS, CHROMIUM, body_shows, streamlit_server, wait_for_app
from tests.conftest import REPO

pytestmark = pytest.mark.browser
psycopg = pytest.importorskip("psycopg")

DEMO = REPO / "data" / "demo"
KEYS = REPO / "data" / "reviewers"
POLICY = REPO / "data" / "policies" / "case-management.yaml"
BASELINE = "rel-2026.10.0"
CI_RELEASE = "rel-team-ci-1"


@pytest.fixture
def team(postgres_server, tmp_path) -> dict[str, str]:
    """A fresh PostgreSQL database and data directory holding the bundled demo (loaded by a third machine)."""
    from dashboard.cli import load_bundled_demo
    from dashboard.store.postgres import open_store

    name = "browser_" + uuid.uuid4().hex[:10]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url, data = f"{postgres_server}/{name}", str(tmp_path / "shared-data")
    with open_store(tmp_path / "loader.duckdb", url=url, data=data) as s:
        load_bundled_demo(s)
    return {"READINESS_STORE": url, "READINESS_DATA": data}


def _cli(team: dict[str, str], db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command on another machine: its own --db copy of the team store."""
    env = {**os.environ, **team, "READINESS_DB": str(db)}
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def _ci_release(tmp: Path) -> list[str]:
    """`readiness ingest` arguments for a new candidate of the demo's baseline (its manifest under a new id)."""
    text = (DEMO / BASELINE / "manifest.yaml").read_text()
    text = text.replace(f"release_id: {BASELINE}", f"release_id: {CI_RELEASE}").replace(
        "baseline_release_id: null", f"baseline_release_id: {BASELINE}")
    manifest = tmp / f"{CI_RELEASE}.yaml"
    manifest.write_text(text)
    return ["ingest", "--release", CI_RELEASE, "--manifest", str(manifest),
            *sorted(str(p) for p in (DEMO / BASELINE).glob("*.parquet"))]


def _nav(page, title: str) -> None:
    """The next interaction: a click in the sidebar's page list (a rerun in the same browser session)."""
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    wait_for_app(page)


def _overview_digest(page) -> str:
    """The decision digest the Overview shows under "What was judged" (the banner's decision)."""
    body_shows(page, "What was judged")
    block = page.get_by_test_id("stCode").filter(has_text="decision").first.inner_text()
    found = re.search(r"decision\s+(sha256:[0-9a-f]{64})", block)
    assert found, block
    return found.group(1)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"team-store-{name}.png"))


def test_two_machines_see_ci_ingests_and_each_others_reviews(team, browser, tmp_path):
    """Test that two dashboards (own copies, one PostgreSQL, one data directory) both show a release CI ingests
    while they are open on their next interaction, agree with `readiness gate` on its decision digest, and that a
    review signed on machine 1 shows on machine 2 and verifies from the command line."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: scripts/test.sh installs it with apt-get")
    started = time.monotonic()
    slow_lock = {**team, "READINESS_LOCK_TIMEOUT": "300"}  # a stall would show as a timeout, not as a skipped write
    with streamlit_server(str(tmp_path / "machine1.duckdb"), extra_env=slow_lock) as url1, \
            streamlit_server(str(tmp_path / "machine2.duckdb"), extra_env=slow_lock) as url2:
        contexts = [browser.new_context(viewport={"width": 1400, "height": 1200}) for _ in range(2)]
        errors: list[str] = []
        m1, m2 = pages = [c.new_page() for c in contexts]
        for p in pages:
            p.on("pageerror", lambda e: errors.append(str(e)))
        try:
            for p, url in ((m1, url1), (m2, url2)):
                p.goto(f"{url}/releases")
                wait_for_app(p)
                body_shows(p, "rel-2026.11.0-rc1", timeout=60_000)
                assert CI_RELEASE not in p.inner_text("body")
            _shot(m1, "machine1-before-ci")

            # CI ingests a new release from its own machine while both dashboards are open
            ci = _cli(team, tmp_path / "ci.duckdb", *_ci_release(tmp_path))
            assert ci.returncode == 0, ci.stdout + ci.stderr
            with psycopg.connect(team["READINESS_STORE"]) as con:
                runs = con.execute("SELECT count(*), sum(cases) FROM runs WHERE release_id = %s",
                                   [CI_RELEASE]).fetchone()
                base = con.execute("SELECT count(*), sum(cases) FROM runs WHERE release_id = %s",
                                   [BASELINE]).fetchone()
            assert runs == base and runs[0] > 0, (runs, base)

            # both show it on their next interaction (a click, not a reload)
            for p in pages:
                _nav(p, "Overview")
                _nav(p, "Releases")
                body_shows(p, CI_RELEASE)
            _shot(m2, "machine2-sees-ci-release")

            # nobody judged the new release yet: two sessions on machine 1 and one on machine 2 open its Overview at
            # once (a reader waiting on another session's judging must not stall it; the lock wait is long here)
            m1b = browser.new_context(viewport={"width": 1400, "height": 1200})
            contexts.append(m1b)
            third = m1b.new_page()
            third.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.monotonic()
            for p, url in ((m1, url1), (third, url1), (m2, url2)):
                p.goto(f"{url}/?candidate={CI_RELEASE}", wait_until="commit")
            shown = []
            for p in (m1, third, m2):
                wait_for_app(p)
                body_shows(p, f"{CI_RELEASE} against {BASELINE}", timeout=60_000)
                shown.append(_overview_digest(p))
            cold = time.monotonic() - t0
            _shot(m1, "machine1-overview")
            _shot(m2, "machine2-overview")
            assert cold < 45, f"three cold Overview loads took {cold:.0f} s"
            # the Overview's decision is the same on both machines and in `readiness gate` (on CI's machine: its
            # copy exists after the ingest; a read-only command refuses a missing --db file)
            gate = _cli(team, tmp_path / "ci.duckdb", "gate", "--candidate", CI_RELEASE, "--policy", str(POLICY),
                        "--format", "json")
            assert gate.returncode in (0, 1), gate.stderr
            cli_digest = json.loads(gate.stdout)["digest"]
            assert shown == [cli_digest] * 3, (shown, cli_digest)
            # and each dashboard kept the decision it judged for its next viewer, in its own copy (the decision
            # cache is never shared through PostgreSQL: docs/security.md)
            from dashboard.store.db import Store

            for machine in ("machine1", "machine2"):
                with Store(tmp_path / f"{machine}.duckdb", read_only=True) as copy:
                    kept = copy.query("SELECT DISTINCT decision_digest FROM decision_cache WHERE decision_digest = ?",
                                      [cli_digest])
                assert kept == [(cli_digest,)], machine
            with psycopg.connect(team["READINESS_STORE"]) as con:
                assert con.execute("SELECT to_regclass('decision_cache')").fetchone()[0] is None

            # machine 2 has no review of the new release yet; machine 1 signs one
            m2.goto(f"{url2}/review?candidate={CI_RELEASE}")
            wait_for_app(m2)
            body_shows(m2, "No signed review of this release yet.")
            m1.goto(f"{url1}/review?candidate={CI_RELEASE}")
            wait_for_app(m1)
            body_shows(m1, "Sign a review")
            m1.get_by_test_id("stRadioGroup").get_by_text("approve", exact=True).click()
            m1.get_by_label("Comment").fill("signed on machine 1")
            m1.get_by_test_id("stMain").locator("input[type=file]").first.set_input_files(
                str(KEYS / "sec_example.com.key"))
            m1.get_by_label("Key passphrase").fill("readiness-demo")
            m1.get_by_role("button", name="Sign and record").click()
            m1.get_by_text("Recorded as entry").wait_for(timeout=60_000)
            wait_for_app(m1)
            _shot(m1, "machine1-signed")

            # machine 2 shows it on its next interaction
            _nav(m2, "Overview")
            _nav(m2, "Review")
            expect(m2.locator("body")).not_to_contain_text("No signed review of this release yet.", timeout=20_000)
            body_shows(m2, "approved: sec@example.com (security) approve")
            expect(m2.get_by_test_id("stDataFrame").first).to_be_visible()
            _shot(m2, "machine2-sees-review")
            assert errors == [], errors
        finally:
            for c in contexts:
                c.close()

    # the review chain verifies from CI's machine and a fresh copy, and the review is the one signed in the browser
    verify = _cli(team, tmp_path / "ci.duckdb", "review", "verify", "--trusted",
                  str(KEYS / "trusted_reviewers.yaml"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    from dashboard.reviewing import verify_store
    from dashboard.store.postgres import open_store

    with open_store(tmp_path / "check.duckdb", read_only=True, url=team["READINESS_STORE"],
                    data=team["READINESS_DATA"]) as s:
        from dashboard.core.reviews import load_trusted

        report = verify_store(s, load_trusted(KEYS / "trusted_reviewers.yaml"))
        from dashboard.core.policy import load_policy
        from dashboard.service import gate_release

        fresh = gate_release(s, load_policy(POLICY), CI_RELEASE, None, None, cache=False)  # judged again, no cache
    assert fresh.digest == cli_digest
    mine = [r for r in report.reviews if r.predicate.candidate_release_id == CI_RELEASE]
    assert [(r.predicate.reviewer, r.predicate.comment, r.predicate.gate_decision_digest) for r in mine] == [
        ("sec@example.com", "signed on machine 1", cli_digest)]
    print(f"two-machine browser test: {time.monotonic() - started:.1f} s")
