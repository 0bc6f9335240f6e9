"""Helpers for real-browser tests: start `streamlit run` on a free loopback port, wait for pages properly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_server(db: str, extra_env: dict[str, str] | None = None):
    port = free_port()
    env = {**os.environ, "READINESS_DB": db, **(extra_env or {})}
    log = Path(db).with_suffix(".log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.ui.launch", "run", str(REPO / "dashboard" / "ui" / "app.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start:\n{log.read_text()}")
                time.sleep(0.3)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for_app(page, timeout: float = 60_000) -> None:
    """Connected, script finished, no skeleton left (what Streamlit's own e2e suite waits for)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_function('document.querySelectorAll(\'[data-testid="stSkeleton"]\').length === 0',
                           timeout=timeout)
    page.wait_for_timeout(300)


def body_shows(page, *texts: str, timeout: float = 20_000) -> str:
    """Wait until the page shows every text, then return the page's text.

    A rerun replaces elements one by one, so a snapshot taken right after an action can hold half the new page;
    waiting for the expected state (Playwright's retrying expect) is what a user's eyes do."""
    from playwright.sync_api import expect

    for text in texts:
        expect(page.locator("body")).to_contain_text(text, timeout=timeout)
    return page.inner_text("body")
