"""Shared fixtures: a store loaded with the bundled demo, and helpers to write native files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dashboard import demo
from dashboard.store.db import Store

REPO = Path(__file__).resolve().parent.parent
BASELINE = demo.BASELINE_ID


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Store:
    """A read-mostly store with every demo release (2,000 cases per run). Do not write to it."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    store = Store(path)
    from dashboard.cli import load_bundled_demo

    load_bundled_demo(store)
    return store


@pytest.fixture
def store(tmp_path) -> Store:
    """An empty store holding only the baseline's manifest."""
    s = Store(tmp_path / "t.duckdb")
    s.put_manifest(demo.manifest_for(demo.STORIES[0]))
    yield s
    s.close()


def good_case(**overrides) -> dict:
    case = {
        "case_id": "c1", "suite": "rag_policy_qa", "dataset": "case_policy_golden",
        "dataset_version": "eval.case_policy_golden.v9", "risk": "high", "passed": True,
        "latency_ms": 1200.5, "scores": {"groundedness": 0.91}, "slices": {"task": "policy_qa"},
    }
    case.update(overrides)
    return case


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def ingest_story(store: Store, story: demo.Story, tmp: Path, suites: list[demo.Suite] | None = None,
                 cases: int = 40) -> None:
    """A small demo release: `cases` cases per suite (all of the demo's suites by default), written as Parquet."""
    from dashboard.ingesting import ingest

    manifest = demo.manifest_for(story)
    files = []
    for suite in demo.SUITES if suites is None else suites:
        path = tmp / f"{story.release_id}-{suite.name}.parquet"
        store.write_table(demo.eval_run(story, suite, cases, manifest), path, "parquet")
        files.append(path)
    ingest(store, files, story.release_id, manifest)


def demo_copy(demo_store: Store, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of the demo store's file (for a server or an AppTest that may write to it)."""
    import shutil

    demo_store.query("CHECKPOINT")
    path = tmp_path_factory.mktemp(name) / f"{name}.duckdb"
    shutil.copy(demo_store.path, path)
    return path


# ----- AppTest fixtures (tests/test_*ui.py); a module may set APP_TIMEOUT (seconds) --------------------------------
@pytest.fixture(scope="module")
def ui_db(demo_store, tmp_path_factory) -> str:
    return str(demo_copy(demo_store, tmp_path_factory, "ui"))


@pytest.fixture
def app(ui_db, monkeypatch, request):
    """The dashboard as an AppTest on the module's copy of the demo store."""
    from streamlit.testing.v1 import AppTest

    from dashboard.ui import data

    monkeypatch.setenv("READINESS_DB", ui_db)
    data.store.clear()
    at = AppTest.from_file(str(REPO / "dashboard" / "ui" / "app.py"),
                           default_timeout=getattr(request.module, "APP_TIMEOUT", 60))
    yield at
    data.store.clear()


# ----- real-browser fixtures (tests/test_browser*.py); a module may set VIEWPORT = {"width": ..., "height": ...} -----
@pytest.fixture(scope="module")
def server(demo_store, tmp_path_factory):
    """`streamlit run` on a copy of the demo store, one per test module (a module's uploads stay its own)."""
    from tests.browser import CHROMIUM, streamlit_server

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: scripts/test.sh installs it with apt-get")
    with streamlit_server(str(demo_copy(demo_store, tmp_path_factory, "browser"))) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--disable-background-networking",
                                                               "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context; fails the test on any JavaScript error of the page."""
    ctx = browser.new_context(viewport=getattr(request.module, "VIEWPORT", {"width": 1400, "height": 1200}))
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, errors


# ----- PostgreSQL (issue 19): one throwaway server per test session, a fresh database per test ------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster (Debian's `postgresql` binaries) on a loopback port, trust auth."""
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdbs:
        pytest.fail("Debian postgresql is missing: scripts/test.sh installs it with apt-get")
    bindir = initdbs[-1].parent
    root = Path(tempfile.mkdtemp(prefix="readiness-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to the postgres user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    from tests.browser import free_port

    data, port = root / "data", free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server):
    """A fresh database on the server for one test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"
@contextmanager
def moto_server(log: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """moto's S3-compatible server in a subprocess on a free loopback port; yields its URL, stops it after."""
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.browser import free_port  # here: tests.browser imports this module

    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(extra_env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A real local S3-compatible endpoint (moto's server in a subprocess on a free loopback port), for the session.

    Yields the AWS environment settings that point boto3 at it (endpoint, dummy credentials, region, and empty
    AWS config files so nothing from the machine leaks in): pass them to `monkeypatch.setenv` or a subprocess's
    `env`. Create buckets with `s3_bucket(s3_endpoint, name)`. The server is stopped after the session.
    """
    pytest.importorskip("moto.server")
    tmp = tmp_path_factory.mktemp("moto")
    empty = tmp / "no-aws-config"
    with moto_server(tmp / "moto.log") as url:
        yield {
            "AWS_ENDPOINT_URL_S3": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_EC2_METADATA_DISABLED": "true",
        }


def s3_bucket(env: dict[str, str], name: str):
    """Create bucket `name` on the `s3_endpoint` server (if absent) and return a boto3 client for it."""
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client
