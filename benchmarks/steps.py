"""One benchmark step per process: `python -m benchmarks.steps STEP ARGS...` prints a JSON result line."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dashboard import ingesting


def _result(wall: float, **extra: object) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_mib": peak, **extra}))


def make_jsonl(path: str, cases: str) -> None:
    """The demo baseline's three suites, `cases` records in all, as one JSONL file of three runs."""
    import pyarrow as pa

    from dashboard import demo
    from dashboard.store.db import Store

    n = int(cases)
    story = demo.STORIES[0]
    manifest = demo.manifest_for(story)
    per = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    tables = [demo.eval_run(story, suite, k, manifest) for suite, k in zip(demo.SUITES, per, strict=True)]
    s = Store(":memory:")
    s.write_table(pa.concat_tables(tables), path, "jsonl")
    _result(0.0)


def _replicas(n: int, base: int) -> int:
    if n % base:
        raise SystemExit(f"{n:,} cases: a scaled benchmark set is a whole multiple of {base:,}")
    return n // base


def scale_jsonl(src: str, dst: str, cases: str, base: str) -> None:
    """`cases` records as `cases / base` copies of the `base`-case file `src`, each copy's case ids made fresh
    (suffix `~k`), streamed by DuckDB (memory stays flat however large the file)."""
    import duckdb

    k = _replicas(int(cases), int(base))
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"COPY (SELECT * EXCLUDE (r) REPLACE (CASE WHEN r = 0 THEN case_id ELSE case_id || '~' || r END AS case_id) "  # noqa: S608
                f"FROM read_json(?, format = 'newline_delimited', columns = ?), range({k}) AS c(r)) "
                f"TO '{_sql_path(dst)}' (FORMAT json)", [src, dict(_case_types())])
    _result(time.perf_counter() - t)


def _sql_path(path: str) -> str:
    if "'" in path:
        raise SystemExit("a benchmark path must not contain a quote")
    return path


def scale_gate_store(src: str, dst: str, cases: str, base: str) -> None:
    """A gate store of `cases` cases per release built from the `base`-case store `src`: every run's cases
    copied `cases / base` times with fresh case ids (suffix `~k`, the same in both releases so the pairs stay
    pairs), exported to Parquet one run at a time and ingested as `make_gate_store` does."""
    import duckdb

    from dashboard import demo
    from dashboard.store.db import Store

    k = _replicas(int(cases), int(base))
    con = duckdb.connect(src, read_only=True)
    runs = con.execute("SELECT release_id, run_id FROM runs ORDER BY ALL").fetchall()
    store = Store(dst)
    with tempfile.TemporaryDirectory(dir=Path(dst).parent) as tmp:
        files: dict[str, list[Path]] = {}
        for i, (release, run) in enumerate(runs):
            path = Path(tmp) / f"{i}.parquet"
            con.execute("COPY (SELECT * EXCLUDE (release_id, source_digest, r) REPLACE (CASE WHEN r = 0 THEN case_id "  # noqa: S608
                        f"ELSE case_id || '~' || r END AS case_id) FROM cases, range({k}) AS c(r) "
                        "WHERE release_id = ? AND run_id = ?) "
                        f"TO '{_sql_path(str(path))}' (FORMAT parquet)", [release, run])
            files.setdefault(release, []).append(path)
        con.close()
        for story in (demo.STORIES[0], demo.STORIES[2]):
            ingesting.ingest(store, files[story.release_id], story.release_id, demo.manifest_for(story))
    store.close()
    _result(0.0)


def _case_types() -> dict[str, str]:
    from dashboard.store.schema import CASE_COLUMNS

    return CASE_COLUMNS


def bare_read(path: str, how: str = "auto") -> None:
    """A bare DuckDB read of the JSONL file into a table: `read_json_auto` (the issue's reference), or `typed`:
    with the store's column types, as the ingest reads it, without any check."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bare.duckdb"))
        t = time.perf_counter()
        if how == "typed":
            con.execute("CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = ?)",
                        [path, dict(_case_types())])
        else:
            con.execute("CREATE TABLE t AS SELECT * FROM read_json_auto(?)", [path])
        wall = time.perf_counter() - t
        con.close()
    _result(wall)


def ingest(path: str) -> None:
    from dashboard import demo
    from dashboard.store.db import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.duckdb")
        store.put_manifest(demo.manifest_for(demo.STORIES[0]))
        t = time.perf_counter()
        report = ingesting.ingest(store, [path], demo.BASELINE_ID)
        wall = time.perf_counter() - t
        store.close()
    _result(wall, records=report.files[0].records)


def make_gate_store(db: str, cases: str) -> None:
    """Baseline and rc2 (citation regression), `cases` cases each over the three suites, via Parquet."""
    from dashboard import demo
    from dashboard.store.db import Store

    n = int(cases)
    store = Store(db)
    with tempfile.TemporaryDirectory() as tmp:
        for story in (demo.STORIES[0], demo.STORIES[2]):
            manifest = demo.manifest_for(story)
            files = []
            for i, suite in enumerate(demo.SUITES):
                k = n // 3 + (1 if i < n % 3 else 0)
                path = Path(tmp) / f"{story.release_id}-{suite.name}.parquet"
                store.write_table(demo.eval_run(story, suite, k, manifest), path, "parquet")
                files.append(path)
            ingesting.ingest(store, files, story.release_id, manifest)
    store.close()
    _result(0.0)


def gate(db: str, policy_path: str, repeats: str = "3", stats: str = "stats") -> None:
    """Cold first decision, then the best of `repeats` warm ones (same process, same store), always computed (the
    decision cache is bypassed: this is the cost of judging). `stats` = "nostats" ignores the per-run statistics
    (as for a store written before them: every metric aggregated from the cases)."""
    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release
    from dashboard.store import stats as run_stats
    from dashboard.store.db import Store

    if stats == "nostats":
        run_stats.usable = lambda *_a: False  # type: ignore[assignment]

    store = Store(db, read_only=True)
    policy = load_policy(policy_path)
    times, digests = [], set()
    for _ in range(int(repeats)):
        t = time.perf_counter()
        decision = gate_release(store, policy, demo_release("rc2"), demo_release("base"), cache=False)
        times.append(time.perf_counter() - t)
        digests.add(decision.digest)
    _result(times[0], warm_s=min(times[1:] or times), gates=len(decision.gates), status=decision.status,
            same_digest=len(digests) == 1, digest=decision.digest)


def clear_decision_cache(db: str) -> None:
    """Forget every cached decision (the next judgement of any selection is computed)."""
    from dashboard.store.db import Store

    store = Store(db)
    store.query("DELETE FROM decision_cache")
    store.close()
    _result(0.0)


def _children_peak() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def gate_cli(db: str, policy_path: str) -> None:
    """`readiness gate` as CI runs it: one fresh process (imports included); the decision cache is whatever the
    store holds (the caller clears it for a computed run). Peak RSS is the child's."""
    import subprocess

    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "gate", "--db", db, "--candidate",
                          demo_release("rc2"), "--policy", policy_path, "--format", "json"],
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr)
    d = json.loads(out.stdout)
    print(json.dumps({"wall_s": wall, "peak_mib": _children_peak(), "digest": d["digest"], "gates": len(d["gates"])}))


def _open_until_banner(page: Any, url: str) -> None:
    """Navigate and wait until the Overview's decision banner is visible."""
    import re

    page.goto(url, wait_until="commit")
    page.locator('[data-testid="stAlert"]', has_text=re.compile("blocker\\(s\\)")).first.wait_for(
        state="visible", timeout=300_000)


def _open_cases_until_rows(page: Any) -> None:
    """Click Cases in the sidebar and wait until its first rows are on screen (the caption above the table)."""
    page.locator('[data-testid="stSidebarNav"] a[href$="/cases"]').first.click()
    page.get_by_text("Select a row to open the case below").first.wait_for(state="visible", timeout=300_000)
    page.get_by_test_id("stDataFrame").first.wait_for(state="visible", timeout=300_000)


def browser(db: str, judged: str) -> None:
    """Chromium (Playwright, cold browser) against a freshly started `streamlit run`: seconds from navigation until
    the Overview's decision banner is visible, and until the page is idle. `judged`: "judged" runs `readiness gate`
    on the same selection first (as CI does), "fresh" clears the decision cache so the dashboard judges."""
    import os
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    repo = Path(__file__).resolve().parent.parent
    policy = repo / "data" / "policies" / "case-management.yaml"
    cand = demo_release("rc2")
    subprocess.run([sys.executable, "-m", "benchmarks.steps", "clear_decision_cache", db], check=True,
                   capture_output=True)
    if judged == "judged":
        subprocess.run([sys.executable, "-m", "dashboard.cli", "gate", "--db", db, "--candidate", cand, "--policy",
                        str(policy), "--format", "json"], check=False, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(Path(db).with_suffix(".streamlit.log"), "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "dashboard.ui.launch", "run", str(repo / "dashboard" / "ui" / "app.py"),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        env={**os.environ, "READINESS_DB": db}, stdout=log, stderr=subprocess.STDOUT, cwd=repo)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":  # noqa: S310
                    break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start")
            time.sleep(0.2)
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = chromium.new_page(viewport={"width": 1280, "height": 1100})
            t = time.perf_counter()
            _open_until_banner(page, f"http://127.0.0.1:{port}/?candidate={cand}&policy=case-management.yaml")
            banner = time.perf_counter() - t
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=300_000)
            page.wait_for_function('document.querySelectorAll(\'[data-testid="stSkeleton"]\').length === 0',
                                   timeout=300_000)
            idle = time.perf_counter() - t
            # Then the Cases page, as a reviewer opens it next (first visit; the same server and browser): seconds
            # from the click in the sidebar until its first rows are on screen (the caption above the table).
            t = time.perf_counter()
            _open_cases_until_rows(page)
            cases_rows = time.perf_counter() - t
            page.screenshot(path=str(Path(db).with_suffix(f".cases-{judged}.png")))
            chromium.close()
            # A second, cold browser on the same server (the selection now cached by the server): the banner,
            # then the Cases page, as the next reviewer of the meeting sees them.
            chromium = pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = chromium.new_page(viewport={"width": 1280, "height": 1100})
            t = time.perf_counter()
            _open_until_banner(page, f"http://127.0.0.1:{port}/?candidate={cand}&policy=case-management.yaml")
            second_banner = time.perf_counter() - t
            page.screenshot(path=str(Path(db).with_suffix(f".overview-{judged}.png")))
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=300_000)
            t = time.perf_counter()
            _open_cases_until_rows(page)
            second_cases = time.perf_counter() - t
            chromium.close()
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print(json.dumps({"wall_s": banner, "idle_s": idle, "cases_s": cases_rows, "second_banner_s": second_banner,
                      "second_cases_s": second_cases, "peak_mib": _children_peak()}))


def bare_group_by(db: str) -> None:
    """Reference: one bare DuckDB aggregate over both releases (slice x risk, pass rate, p95 latency)."""
    import duckdb

    con = duckdb.connect(db, read_only=True)
    t = time.perf_counter()
    con.execute("SELECT release_id, slices['task'], risk, count(*), avg(passed::INT), "
                "quantile_cont(latency_ms, 0.95) FROM cases GROUP BY ALL").fetchall()
    _result(time.perf_counter() - t)


def pages(db: str) -> None:
    """Server-side render time of every dashboard page (AppTest), first visit and warm (cached)."""
    import os

    from streamlit.testing.v1 import AppTest

    os.environ["READINESS_DB"] = db
    app = str(Path(__file__).resolve().parent.parent / "dashboard" / "ui" / "app.py")
    at = AppTest.from_file(app, default_timeout=600)
    at.query_params["candidate"] = demo_release("rc2")
    t = time.perf_counter()
    at.run()
    first_overview = time.perf_counter() - t
    results = {}
    for view in ("overview", "gates", "slices", "quality_rag", "agent_tools", "security", "cost_latency", "cases",
                 "datasets", "load"):
        at.switch_page(f"views/{view}.py")
        t = time.perf_counter()
        at.run()
        first = time.perf_counter() - t
        t = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t
        if at.exception:
            raise RuntimeError(f"{view}: {at.exception[0].value}")
        results[view] = {"first": first, "warm": warm}
    _result(max(r["warm"] for r in results.values()), first_overview=first_overview, pages=results)


def demo_release(which: str) -> str:
    from dashboard import demo

    return demo.STORIES[0].release_id if which == "base" else demo.STORIES[2].release_id


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
