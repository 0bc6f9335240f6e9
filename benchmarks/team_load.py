"""One machine, many processes (issue 19): concurrent CI ingests while browser sessions use the dashboard.

    python -m benchmarks.team_load [--cases 33334] [--ingests 4] [--sessions 5]

Writes the demo as Parquet (`--cases` per eval run; 3 runs per release, so 33,334 gives ~100k cases per release),
loads the baseline and one candidate into a fresh store, starts the dashboard, opens `--sessions` chromium pages
that reload the Overview in a loop, and meanwhile runs `--ingests` `readiness ingest` processes at once, each a
new release of the candidate's files. Prints each ingest's wall time (and whether it had to wait for another
writer), page-load times while the ingests ran (p50 / p95 / max), and checks that every ingest landed whole.
Needs Debian chromium and playwright (test extra).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CANDIDATE = "rel-2026.11.0-rc1"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], env=env, capture_output=True, text=True,
                          cwd=REPO, check=False)


def _ingest_args(demo: Path, tmp: Path, release: str | None, source: str) -> list[str]:
    files = sorted(str(p) for p in (demo / source).glob("*.parquet"))
    manifest = demo / source / "manifest.yaml"
    if release is not None:
        text = manifest.read_text().replace(f"release_id: {source}", f"release_id: {release}")
        manifest = tmp / f"{release}.yaml"
        manifest.write_text(text)
    return ["ingest", "--release", release or source, "--manifest", str(manifest), *files]


async def _sessions(url: str, n: int, stop: asyncio.Event, times: list[tuple[float, float]]) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--no-first-run"])

        async def session() -> None:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 1000})).new_page()
            while not stop.is_set():
                start = time.monotonic()
                await page.goto(f"{url}/?candidate={CANDIDATE}")
                await page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]',
                                             timeout=300_000)
                await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                                             timeout=300_000)
                await page.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length"
                                             " === 0", timeout=300_000)
                await page.get_by_text("Release readiness").first.wait_for(timeout=300_000)
                times.append((start, time.monotonic() - start))

        await asyncio.gather(*(session() for _ in range(n)))
        await browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=33_334, help="cases per eval run (3 runs per release)")
    ap.add_argument("--ingests", type=int, default=4)
    ap.add_argument("--sessions", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="readiness-team-load-"))
    db = tmp / "team.duckdb"
    env = {**os.environ, "READINESS_DB": str(db), "READINESS_LOCK_TIMEOUT": "900",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        demo = tmp / "demo"
        t = time.monotonic()
        out = _cli("demo", "--cases", str(args.cases), "--out", str(demo), "--file-format", "parquet", env=env)
        assert out.returncode == 0, out.stderr
        for release in ("rel-2026.10.0", CANDIDATE):
            out = _cli(*_ingest_args(demo, tmp, None, release), env=env)
            assert out.returncode == 0, out.stderr
        print(f"setup (demo files, baseline + candidate ingested): {time.monotonic() - t:.1f} s")
        port = 8700 + os.getpid() % 200
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "ui" / "app.py"),
                                   "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port",
                                   str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType",
                                   "none"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.3)
            stop = asyncio.Event()
            times: list[tuple[float, float]] = []
            ingest_runs: list[tuple[float, float, bool, int]] = []

            async def run() -> None:
                sessions = asyncio.create_task(_sessions(url, args.sessions, stop, times))
                await asyncio.sleep(20)  # every session has loaded the page once (warm caches)
                started = time.monotonic()

                async def ingest(i: int) -> None:
                    s = time.monotonic()
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "dashboard.cli", *_ingest_args(demo, tmp, f"rel-load-{i}", CANDIDATE),
                        env=env, cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                    _out, err = await proc.communicate()
                    code = await proc.wait()
                    ingest_runs.append((s - started, time.monotonic() - s, b"waiting" in err, code))

                await asyncio.gather(*(ingest(i) for i in range(args.ingests)))
                window = (started, time.monotonic())
                await asyncio.sleep(5)
                stop.set()
                await sessions
                during = [d for (s, d) in times if window[0] <= s <= window[1]]
                before = [d for (s, d) in times if s < window[0]]
                print(f"{args.ingests} concurrent ingests of {3 * args.cases:,} cases each, {args.sessions} browser "
                      f"sessions reloading the Overview")
                for start, wall, waited, code in sorted(ingest_runs):
                    print(f"  ingest started +{start:.1f} s: {wall:.1f} s wall, exit {code}"
                          f"{' (waited for another writer)' if waited else ''}")
                print(f"  all ingests done after {window[1] - window[0]:.1f} s")
                for label, xs in (("page loads before the ingests", before), ("page loads during the ingests", during)):
                    if xs:
                        xs = sorted(xs)
                        p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
                        print(f"  {label}: n={len(xs)}, p50 {statistics.median(xs):.2f} s, p95 {p95:.2f} s, "
                              f"max {xs[-1]:.2f} s")

            asyncio.run(run())
        finally:
            server.terminate()
            server.wait(20)
        from dashboard.store.db import Store

        with Store(db, read_only=True) as s:
            rows = {r.release_id: r for r in s.releases()}
        expected = rows[CANDIDATE].cases
        landed = [rows.get(f"rel-load-{i}") for i in range(args.ingests)]
        ok = all(r is not None and r.cases == expected for r in landed)
        print(f"  every ingest landed whole ({expected:,} cases each): {ok}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
