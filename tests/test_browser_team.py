"""A team on one machine: the dashboard stays open in chromium while CLI ingests and a CLI review write the same
store, and a review is signed in the browser at the same time (issue 19, "One machine, many processes")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, body_shows, streamlit_server, wait_for_app
from tests.conftest import REPO

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

DEMO = REPO / "data" / "demo"
KEYS = REPO / "data" / "reviewers"
NEW_RELEASES = ["rel-team-1", "rel-team-2", "rel-team-3"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dashboard.cli", *args]


def _release_files(tmp: Path, release: str) -> list[str]:
    """A new candidate of the demo's baseline: the baseline's manifest under a new id, and its eval files."""
    text = (DEMO / "rel-2026.10.0" / "manifest.yaml").read_text()
    text = text.replace("release_id: rel-2026.10.0", f"release_id: {release}").replace(
        "baseline_release_id: null", "baseline_release_id: rel-2026.10.0")
    manifest = tmp / f"{release}.yaml"
    manifest.write_text(text)
    files = sorted(str(p) for p in (DEMO / "rel-2026.10.0").glob("*.parquet"))
    return ["ingest", "--release", release, "--manifest", str(manifest), *files]


@pytest.fixture
def team_store(demo_store, tmp_path) -> Path:
    demo_store.query("CHECKPOINT")
    db = tmp_path / "team.duckdb"
    shutil.copy(demo_store.path, db)
    return db


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: scripts/test.sh installs it with apt-get")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--no-first-run"])
        ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        ctx.close()
        browser.close()
        assert not errors, errors


def test_cli_writers_and_a_browser_signature_share_the_store(team_store, page, tmp_path):
    """Test that while the dashboard is open, 3 CLI ingests and a CLI review sign + add run in parallel with a review
    signed in the browser: every write lands, the review chain verifies, and the page shows the new releases."""
    env = {**os.environ, "READINESS_DB": str(team_store), "READINESS_LOCK_TIMEOUT": "120",
           "DEMO_PASSPHRASE": "readiness-demo"}
    with streamlit_server(str(team_store)) as url:
        page.goto(f"{url}/review?candidate=rel-2026.11.0-rc1")
        wait_for_app(page)
        body_shows(page, "Sign a review")
        # the dashboard is open; now the writers start, all at once
        envelope = tmp_path / "eng.dsse.json"
        logs = {name: open(tmp_path / f"{name}.log", "w") for name in [*NEW_RELEASES, "review"]}  # noqa: SIM115
        procs = {r: subprocess.Popen(_cli(*_release_files(tmp_path, r)), env=env, stdout=logs[r],
                                     stderr=subprocess.STDOUT, cwd=REPO) for r in NEW_RELEASES}
        sign = _cli("review", "sign", "--release", "rel-2026.11.0-rc1", "--decision", "approve",
                    "--key", str(KEYS / "eng_example.com.key"), "--passphrase-env", "DEMO_PASSPHRASE",
                    "--comment", "signed from the command line", "--out", str(envelope))
        add = _cli("review", "add", str(envelope))
        procs["review"] = subprocess.Popen(["sh", "-c", f"{subprocess.list2cmdline(sign)} && "
                                                        f"{subprocess.list2cmdline(add)}"],
                                           env=env, stdout=logs["review"], stderr=subprocess.STDOUT, cwd=REPO)
        # meanwhile a reviewer signs in the browser
        page.get_by_test_id("stRadioGroup").get_by_text("approve", exact=True).click()
        page.get_by_label("Comment").fill("signed in the browser while CI ingests")
        page.get_by_test_id("stMain").locator("input[type=file]").first.set_input_files(
            str(KEYS / "sec_example.com.key"))
        page.get_by_label("Key passphrase").fill("readiness-demo")
        page.get_by_role("button", name="Sign and record").click()
        page.get_by_text("Recorded as entry").wait_for(timeout=120_000)
        started = time.monotonic()
        codes = {name: p.wait(timeout=300) for name, p in procs.items()}
        for f in logs.values():
            f.close()
        outputs = {name: (tmp_path / f"{name}.log").read_text() for name in logs}
        assert all(code == 0 for code in codes.values()), (codes, outputs)
        wait_for_app(page)
        page.screenshot(path=str(ARTIFACTS / "team-signed-while-ingesting.png"))
        # the next interaction shows what the other processes wrote
        page.goto(f"{url}/releases")
        wait_for_app(page)
        body_shows(page, *NEW_RELEASES)
        page.screenshot(path=str(ARTIFACTS / "team-new-releases.png"))
        # and the CLI reads the store while the dashboard is still open
        verify = subprocess.run(_cli("review", "verify"), env=env, capture_output=True, text=True, cwd=REPO)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert time.monotonic() - started < 120
    # every write landed: 3 new releases with all their runs, both reviews in one unforked chain
    from dashboard.reviewing import resolve_trusted
    from dashboard.store.db import Store

    with Store(team_store, read_only=True) as s:
        releases = {r.release_id: r for r in s.releases()}
        baseline_runs = len(s.runs("rel-2026.10.0"))
        for r in NEW_RELEASES:
            assert r in releases and releases[r].runs == baseline_runs > 0, releases.get(r)
        entries = s.review_entries()
        reviewers = {(e.release_id, e.seq) for e in entries}
        assert len(reviewers) == len(entries)
        trusted, _demo = resolve_trusted(s, None)
        from dashboard.reviewing import verify_store

        report = verify_store(s, trusted)
        assert not [f for f in report.findings if f.level == "error"], report.findings
        signed_by = {r.predicate.reviewer for r in report.reviews if r.predicate.candidate_release_id ==
                     "rel-2026.11.0-rc1"}
        assert {"eng@example.com", "sec@example.com"} <= signed_by, signed_by
