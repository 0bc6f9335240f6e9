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


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
