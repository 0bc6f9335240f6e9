"""Benchmarks: `python -m benchmarks.run [--cases N | --sizes N ...] [--only NAME ...]`.

Each measurement runs in a fresh subprocess so its peak memory (ru_maxrss) is its own. Results are
printed as a Markdown table to paste into docs/benchmarks.md, with the machine they ran on and the host's load
average (1 minute) when each step started: other people's work on a shared machine moves every number.

Sizes above 1,000,000 cases (e.g. `--sizes 100000 1000000 5000000`, the growth curve of issue 15) are built by
replicating the 1,000,000-case sets with fresh case ids (`benchmarks.steps scale_jsonl` / `scale_gate_store`),
so they are whole multiples of it; every set is generated once under benchmarks/out/ (gitignored).
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


BASE = 1_000_000  # larger sets are copies of this one (fresh case ids)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _child(step: str, *args: str) -> dict:
    """Run one step in a fresh interpreter; it prints a JSON line with its wall time and peak RSS. The host's
    1-minute load average when the step started is kept with the result."""
    load = _load()
    out = subprocess.run([sys.executable, "-m", "benchmarks.steps", step, *args], check=False,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark step {step} {' '.join(args)} failed (exit {out.returncode}):\n"
                         + "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:]))
    return {"load": load, **json.loads(out.stdout.strip().splitlines()[-1])}


def _jsonl(cases: int) -> Path:
    OUT.mkdir(exist_ok=True)
    jsonl = OUT / f"cases_{cases}.jsonl"
    if not jsonl.exists():
        if cases > BASE:
            _child("scale_jsonl", str(_jsonl(BASE)), str(jsonl), str(cases), str(BASE))
        else:
            _child("make_jsonl", str(jsonl), str(cases))
    return jsonl


def bench_ingest(cases: int) -> list[tuple[str, dict]]:
    jsonl = _jsonl(cases)
    size = jsonl.stat().st_size / 2**20
    ref = _child("bare_read", str(jsonl))
    typed = _child("bare_read", str(jsonl), "typed")
    typed["ratio"] = typed["wall_s"] / ref["wall_s"]
    ours = _child("ingest", str(jsonl))
    ours["ratio"] = ours["wall_s"] / ref["wall_s"]
    label = f"bare DuckDB `CREATE TABLE AS SELECT * FROM read_json_auto` ({cases:,} cases, {size:.0f} MiB)"  # noqa: S608
    return [(label, ref),
            ("bare DuckDB, the same file read with the store's column types (`read_json(columns=...)`: MAPs, every "
             "trajectory; `read_json_auto` samples the first lines, takes the maps as fixed STRUCTs and reads every "
             f"trajectory as NULL), no checks (ratio to the auto read; ingest / this: {ours['wall_s'] / typed['wall_s']:.2f}×)",
             typed),
            (f"`readiness ingest` of the same file ({cases:,} cases)", ours)]


def _gate_store(cases: int) -> Path:
    OUT.mkdir(exist_ok=True)
    db = OUT / f"gate_{cases}.duckdb"
    if not db.exists():
        if cases > BASE:
            _child("scale_gate_store", str(_gate_store(BASE)), str(db), str(cases), str(BASE))
        else:
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
    cm = _child("gate", str(db), str(CASE_MANAGEMENT), "3")
    cm["ratio"] = cm["wall_s"] / ref["wall_s"]
    rows.append((f"`gate_release`, case-management policy (the dashboard's; paired tests), computed: cold (warm best "
                 f"{cm['warm_s']:.2f} s)", cm))
    _child("clear_decision_cache", str(db))
    cm_cli = _child("gate_cli", str(db), str(CASE_MANAGEMENT))
    miss = _child("gate_cli", str(db), str(policy))
    hit = _child("gate_cli", str(db), str(policy))
    for row in (cm_cli, miss, hit):
        row["ratio"] = row["wall_s"] / ref["wall_s"]
    rows += [("`readiness gate` (fresh process), case-management policy, nothing cached: judged and stored", cm_cli),
             ("`readiness gate` (fresh process), 40-gate policy, nothing cached: judged and stored", miss),
             (f"`readiness gate` (fresh process), the same inputs again: served from the decision cache "
              f"(same digest: {hit['digest'] == miss['digest']})", hit)]
    return rows


CASE_MANAGEMENT = Path(__file__).resolve().parent.parent / "data" / "policies" / "case-management.yaml"


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
                     {"wall_s": r["cases_s"], "peak_mib": r["peak_mib"], "ratio": r["cases_s"] / ref["wall_s"],
                      "load": r["load"]}))
        rows.append((f"dashboard, a second cold chromium on the same server (the selection cached by the server), "
                     f"Overview until the decision banner is visible, selection {what}",
                     {"wall_s": r["second_banner_s"], "peak_mib": r["peak_mib"],
                      "ratio": r["second_banner_s"] / ref["wall_s"], "load": r["load"]}))
        rows.append((f"the same second browser, then the Cases page until its first rows are visible, selection {what}",
                     {"wall_s": r["second_cases_s"], "peak_mib": r["peak_mib"],
                      "ratio": r["second_cases_s"] / ref["wall_s"], "load": r["load"]}))
    return rows


def bench_pages(cases: int) -> list[tuple[str, dict]]:
    db = _gate_store(cases)
    _child("clear_decision_cache", str(db))  # the first load judges (as before the cache)
    r = _child("pages", str(db))
    rows = [(f"dashboard, first page load (decision computed, {cases:,} + {cases:,} cases)",
             {"wall_s": r["first_overview"], "peak_mib": r["peak_mib"], "load": r["load"]})]
    for view, t in r["pages"].items():
        rows.append((f"dashboard page `{view}`: warm render (first visit {t['first']:.2f} s)",
                     {"wall_s": t["warm"], "peak_mib": r["peak_mib"], "load": r["load"]}))
    return rows


# The goals of issue 15 at 2 x 1M cases, shown next to the rows they judge (growth: <= 5.5x the 1M time at 5M).
GOALS = (
    ("`readiness ingest`", "<= 2x the bare read, peak <= 1 GiB"),
    ("`gate_release`, 40-gate policy", "<= 3 s cold, <= 2 s warm, <= 1 GiB, <= 15x"),
    ("Overview until the decision banner is visible, case-management policy, selection judged", "<= 2 s"),
    ("Overview until the decision banner is visible, case-management policy, selection not judged", "<= 4 s"),
    ("then the Cases page (first visit", "<= 1.5 s"),
)


def _goal(label: str) -> str:
    return next((goal for key, goal in GOALS if key in label), "")


BENCHES = {"ingest": bench_ingest, "gate": bench_gate, "pages": bench_pages, "browser": bench_browser}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=BASE)
    ap.add_argument("--sizes", type=int, nargs="*", help="several sizes in one run (the growth curve); each above "
                    f"{BASE:,} a whole multiple of it")
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=sorted(BENCHES))
    args = ap.parse_args()
    sizes = args.sizes or [args.cases]
    for n in sizes:
        if n > BASE and n % BASE:
            ap.error(f"--sizes {n}: above {BASE:,} a size is a whole multiple of it")
    print(f"machine: {_machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| cases per release | measurement | wall (s) | peak RSS (MiB) | ratio to reference | load (1 min) | goal |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        for name in args.only:
            for label, r in BENCHES[name](n):
                ratio = f"{r['ratio']:.2f}×" if "ratio" in r else "reference"
                print(f"| {n:,} | {label} | {r['wall_s']:.2f} | {r['peak_mib']:.0f} | {ratio} | {r.get('load', 0):.1f} "
                      f"| {_goal(label)} |", flush=True)


if __name__ == "__main__":
    main()
