"""Benchmarks: `python -m benchmarks.run [--cases N] [--only NAME ...]`.

Each measurement runs in a fresh subprocess so its peak memory (ru_maxrss) is its own. Results are
printed as a Markdown table to paste into docs/benchmarks.md, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def _child(step: str, *args: str) -> dict:
    """Run one step in a fresh interpreter; it prints a JSON line with its wall time and peak RSS."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.steps", step, *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_ingest(cases: int) -> list[tuple[str, dict]]:
    OUT.mkdir(exist_ok=True)
    jsonl = OUT / f"cases_{cases}.jsonl"
    if not jsonl.exists():
        _child("make_jsonl", str(jsonl), str(cases))
    size = jsonl.stat().st_size / 2**20
    ref = _child("bare_read", str(jsonl))
    ours = _child("ingest", str(jsonl))
    ours["ratio"] = ours["wall_s"] / ref["wall_s"]
    label = f"bare DuckDB `CREATE TABLE AS SELECT * FROM read_json_auto` ({cases:,} cases, {size:.0f} MiB)"  # noqa: S608
    return [(label, ref),
            (f"`readiness ingest` of the same file ({cases:,} cases)", ours)]


def _gate_store(cases: int) -> Path:
    OUT.mkdir(exist_ok=True)
    db = OUT / f"gate_{cases}.duckdb"
    if not db.exists():
        _child("make_gate_store", str(db), str(cases))
    return db


def _reference(db: Path, cases: int) -> tuple[str, dict]:
    return (f"bare DuckDB: one GROUP BY task x risk with p95 latency over both releases ({2 * cases:,} rows)",
            _child("bare_group_by", str(db)))


def bench_gate(cases: int) -> list[tuple[str, dict]]:
    db = _gate_store(cases)
    policy = Path(__file__).resolve().parent / "policy_40.yaml"
    label, ref = _reference(db, cases)
    r = _child("gate", str(db), str(policy), "4")
    r["ratio"] = r["wall_s"] / ref["wall_s"]
    rows = [(label, ref), (
        f"`gate_release`, 40-gate policy ({r['gates']} expanded gates), candidate and baseline of {cases:,} cases "
        f"each, computed (cache bypassed): cold (warm best {r['warm_s']:.2f} s; digest stable: {r['same_digest']})",
        r)]
    fallback = _child("gate", str(db), str(policy), "2", "nostats")
    fallback["ratio"] = fallback["wall_s"] / ref["wall_s"]
    rows.append(("the same, a store written before the per-run statistics (computed from the cases, the fallback): "
                 f"cold (warm best {fallback['warm_s']:.2f} s; same digest as above: {fallback['digest'] == r['digest']})",
                 fallback))
    cm = _child("gate", str(db), str(Path(__file__).resolve().parent.parent / "data" / "policies" /
                                      "case-management.yaml"), "3")
    cm["ratio"] = cm["wall_s"] / ref["wall_s"]
    rows.append((f"`gate_release`, case-management policy (the dashboard's; paired tests), computed: cold (warm best "
                 f"{cm['warm_s']:.2f} s)", cm))
    _child("clear_decision_cache", str(db))
    miss = _child("gate_cli", str(db), str(policy))
    hit = _child("gate_cli", str(db), str(policy))
    for row in (miss, hit):
        row["ratio"] = row["wall_s"] / ref["wall_s"]
    rows += [("`readiness gate` (fresh process), 40-gate policy, nothing cached: judged and stored", miss),
             (f"`readiness gate` (fresh process), the same inputs again: served from the decision cache "
              f"(same digest: {hit['digest'] == miss['digest']})", hit)]
    return rows


def bench_browser(cases: int) -> list[tuple[str, dict]]:
    db = _gate_store(cases)
    label, ref = _reference(db, cases)
    rows = [(label, ref)]
    for judged, what in (("judged", "judged before by `readiness gate`"), ("fresh", "not judged before")):
        r = _child("browser", str(db), judged)
        r["ratio"] = r["wall_s"] / ref["wall_s"]
        rows.append((f"dashboard, chromium (cold browser, fresh server), Overview until the decision banner is "
                     f"visible, case-management policy, selection {what} (page idle after {r['idle_s']:.2f} s; "
                     "peak = the largest child: server, gate or browser driver)", r))
        rows.append((f"dashboard, chromium, then the Cases page (first visit, default list: regressions by risk) "
                     f"until its first rows are visible, selection {what}",
                     {"wall_s": r["cases_s"], "peak_mib": r["peak_mib"], "ratio": r["cases_s"] / ref["wall_s"]}))
    return rows


def bench_pages(cases: int) -> list[tuple[str, dict]]:
    db = _gate_store(cases)
    _child("clear_decision_cache", str(db))  # the first load judges (as before the cache)
    r = _child("pages", str(db))
    rows = [(f"dashboard, first page load (decision computed, {cases:,} + {cases:,} cases)",
             {"wall_s": r["first_overview"], "peak_mib": r["peak_mib"]})]
    for view, t in r["pages"].items():
        rows.append((f"dashboard page `{view}`: warm render (first visit {t['first']:.2f} s)",
                     {"wall_s": t["warm"], "peak_mib": r["peak_mib"]}))
    return rows


BENCHES = {"ingest": bench_ingest, "gate": bench_gate, "pages": bench_pages, "browser": bench_browser}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=sorted(BENCHES))
    args = ap.parse_args()
    print(f"machine: {_machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}\n")
    print("| measurement | wall (s) | peak RSS (MiB) | ratio to reference |")
    print("|---|---|---|---|")
    for name in args.only:
        for label, r in BENCHES[name](args.cases):
            ratio = f"{r['ratio']:.2f}×" if "ratio" in r else "reference"
            print(f"| {label} | {r['wall_s']:.2f} | {r['peak_mib']:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
