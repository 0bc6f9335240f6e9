"""One benchmark step per process: `python -m benchmarks.steps STEP ARGS...` prints a JSON result line."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path


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


def bare_read(path: str) -> None:
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bare.duckdb"))
        t = time.perf_counter()
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
        report = store.ingest([path], demo.BASELINE_ID)
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
            store.ingest(files, story.release_id, manifest)
    store.close()
    _result(0.0)


def gate(db: str, policy_path: str, repeats: str = "3") -> None:
    """Cold first decision, then the best of `repeats` warm ones (same process, same store)."""
    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release
    from dashboard.store.db import Store

    store = Store(db, read_only=True)
    policy = load_policy(policy_path)
    times, digests = [], set()
    for _ in range(int(repeats)):
        t = time.perf_counter()
        decision = gate_release(store, policy, demo_release("rc2"), demo_release("base"))
        times.append(time.perf_counter() - t)
        digests.add(decision.digest)
    _result(times[0], warm_s=min(times[1:] or times), gates=len(decision.gates), status=decision.status,
            same_digest=len(digests) == 1)


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
