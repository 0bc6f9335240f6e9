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


# ----- identity: sign-in through the company's identity provider (a local OIDC provider) ----------------------
USERS = {"sec-1": {"email": "sec@example.com", "email_verified": True, "groups": ["ai-security"]}}


@pytest.fixture
def oidc(monkeypatch):
    """A local OpenID Connect provider (oidc-provider-mock) on a loopback port, with one user."""
    import json
    import urllib.request

    mock = pytest.importorskip("oidc_provider_mock")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback, for the test only
    with mock.run_server_in_thread(port=0) as server:
        base = f"http://localhost:{server.server_port}"
        for sub, claims in USERS.items():
            req = urllib.request.Request(f"{base}/users/{sub}", data=json.dumps(claims).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
            assert urllib.request.urlopen(req, timeout=5).status == 204
        yield base


def _secrets(tmp_path: Path, issuer: str) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(f'''[auth]
redirect_uri = "http://localhost:{{port}}/oauth2callback"
cookie_secret = "a-test-cookie-secret-not-for-production"
client_id = "readiness-test"
client_secret = "readiness-test-secret"
server_metadata_url = "{issuer}/.well-known/openid-configuration"

[reviewer_roles]
claim = "groups"
[reviewer_roles.map]
"ai-security" = "security"
''')
    return path


def _sign_with(page, key: str) -> None:
    page.get_by_test_id("stRadioGroup").get_by_text("approve", exact=True).click()
    page.get_by_test_id("stMain").locator("input[type=file]").first.set_input_files(str(KEYS / key))
    page.get_by_label("Key passphrase").fill("readiness-demo")
    page.get_by_role("button", name="Sign and record").click()


def test_sign_in_with_the_identity_provider_sign_as_yourself_only_and_sign_out(team_store, page, tmp_path, oidc):
    """Test that with [auth] configured the dashboard asks for sign-in (through a local OIDC provider); a review
    signed with your own key records the provider's issuer, your subject and email in the signed statement; a
    review with someone else's key is refused; signing out returns to the sign-in screen."""
    import urllib.parse

    env = {"STREAMLIT_SECRETS_FILES": str(_secrets(tmp_path, oidc)), "AUTHLIB_INSECURE_TRANSPORT": "1"}
    with streamlit_server(str(team_store), extra_env=env) as url:
        app = url.replace("127.0.0.1", "localhost")  # the redirect URI's host: the sign-in cookie is set for it
        page.goto(f"{app}/review?candidate=rel-2026.11.0-rc1")
        wait_for_app(page)
        body_shows(page, "Sign in with your company account")
        assert "Sign a review" not in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "team-sign-in.png"))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{oidc}/oauth2/authorize*", timeout=30_000)
        page.locator("input[name=sub]").fill("sec-1")
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(f"{app}/**", timeout=30_000)
        wait_for_app(page)
        body_shows(page, "Signed in as sec@example.com")
        page.goto(f"{app}/review?candidate=rel-2026.11.0-rc1")
        wait_for_app(page)
        body_shows(page, "Sign a review", "sign with your own key")
        _sign_with(page, "eng_example.com.key")  # someone else's key
        body_shows(page, "you are signed in as sec@example.com, but this key belongs to eng@example.com")
        page.screenshot(path=str(ARTIFACTS / "team-refused-other-key.png"))
        _sign_with(page, "sec_example.com.key")  # your own
        page.get_by_text("Recorded as entry").wait_for(timeout=60_000)
        wait_for_app(page)
        body_shows(page, "sec@example.com (")  # the review table names the signed-in identity
        page.screenshot(path=str(ARTIFACTS / "team-signed-as-yourself.png"))
        page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{oidc}/oauth2/end_session*", timeout=30_000)
        page.get_by_role("button", name="End session").click()
        page.wait_for_url(f"{app}/**", timeout=30_000)
        wait_for_app(page)
        body_shows(page, "Sign in with your company account")
        page.screenshot(path=str(ARTIFACTS / "team-signed-out.png"))
        env = {**os.environ, "READINESS_DB": str(team_store)}
        verify = subprocess.run(_cli("review", "verify"), env=env, capture_output=True, text=True, cwd=REPO)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    from dashboard.reviewing import resolve_trusted, verify_store
    from dashboard.store.db import Store

    with Store(team_store, read_only=True) as s:
        report = verify_store(s, resolve_trusted(s, None)[0])
    mine = [r for r in report.reviews if r.predicate.reviewer == "sec@example.com"
            and r.predicate.candidate_release_id == "rel-2026.11.0-rc1"]
    assert len(mine) == 1 and mine[0].predicate.identity is not None
    who = mine[0].predicate.identity
    assert (who.subject, who.email) == ("sec-1", "sec@example.com")
    assert urllib.parse.urlparse(who.issuer).port == urllib.parse.urlparse(oidc).port
    assert not [r for r in report.reviews if r.predicate.reviewer == "eng@example.com"
                and r.predicate.candidate_release_id == "rel-2026.11.0-rc1"]
