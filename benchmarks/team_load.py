"""One machine, many processes (issue 19): concurrent CI ingests while browser sessions use the dashboard.

    python -m benchmarks.team_load [--cases 33334] [--ingests 4] [--sessions 5]

Writes the demo as Parquet (`--cases` per eval run; 3 runs per release, so 33,334 gives ~100k cases per release),
loads the baseline and one candidate into a fresh store, starts the dashboard, opens `--sessions` chromium pages
that reload the Overview in a loop, and meanwhile runs `--ingests` `readiness ingest` processes at once, each a
new release of the candidate's files. Prints each ingest's wall time (and whether it had to wait for another
writer), page-load times while the ingests ran (p50 / p95 / max), and checks that every ingest landed whole.
Needs Debian chromium and playwright (test extra).

Team store (issue 19, "Several machines"): PostgreSQL and one shared data directory

    python -m benchmarks.team_load --team [--cases 33334] [--ingests 4] [--sessions 20] [--servers 2]
    python -m benchmarks.team_load --store postgresql://user@host/db --data DIR [...]

`--team` starts a throwaway PostgreSQL cluster (Debian's binaries under /usr/lib/postgresql/*/bin, as the postgres
user when run as root) on a free loopback port and removes it afterwards; `--store URL --data DIR` uses an empty
database and data directory you give. The baseline and the candidate (100,002 cases each) are ingested into the team
store, the demo trust root recorded, and `--servers` dashboards started with `readiness serve --store --data`, each
with its own --db copy. `--sessions` chromium pages (spread over the servers) reload the Overview in a loop; once
every session has loaded it, `--ingests` `readiness ingest` processes start at once (each a separate CI machine: its
own fresh --db copy, a new release of the candidate's 3 files) together with 3 reviewers signing the candidate from
the command line (`review sign` + `review add`, each on its own copy). Page loads keep running for `--after` seconds
after the last ingest. Prints ingest wall times, page-load p50 / p95 / max before, during and after the ingests, the
load average, and checks: every ingest landed whole (cases per release in PostgreSQL's file records and through a
fresh copy made from PostgreSQL and the Parquet objects), and `readiness review verify` passes on that fresh copy
with every review in one chain.
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


async def _sessions(url: str | list[str], n: int, stop: asyncio.Event, times: list[tuple[float, float]],
                    loaded: list[int] | None = None) -> None:
    """`n` chromium pages reloading the Overview until `stop` (page i on server i mod len(urls)); every load's
    (start, seconds) goes to `times` and each session's count of loads to `loaded`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--no-first-run"])

        urls = [url] if isinstance(url, str) else url
        counts = loaded if loaded is not None else [0] * n

        async def session(i: int) -> None:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 1000})).new_page()
            while not stop.is_set():
                start = time.monotonic()
                await page.goto(f"{urls[i % len(urls)]}/?candidate={CANDIDATE}")
                await page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]',
                                             timeout=300_000)
                await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                                             timeout=300_000)
                await page.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length"
                                             " === 0", timeout=300_000)
                await page.get_by_text("Release readiness").first.wait_for(timeout=300_000)
                times.append((start, time.monotonic() - start))
                counts[i] += 1

        await asyncio.gather(*(session(i) for i in range(n)))
        await browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=33_334, help="cases per eval run (3 runs per release)")
    ap.add_argument("--ingests", type=int, default=4)
    ap.add_argument("--sessions", type=int, default=None, help="browser sessions (default 5; 20 with the team store)")
    ap.add_argument("--team", action="store_true", help="the team store on a throwaway PostgreSQL cluster")
    ap.add_argument("--store", help="the team store on this (empty) PostgreSQL database instead")
    ap.add_argument("--data", help="with --store: the (empty) shared data directory")
    ap.add_argument("--servers", type=int, default=2, help="team store: dashboard servers (machines)")
    ap.add_argument("--after", type=float, default=60.0, help="team store: seconds of page loads after the ingests")
    args = ap.parse_args()
    if args.team or args.store:
        args.sessions = args.sessions or 20
        team_main(args)
        return
    args.sessions = args.sessions or 5
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


# ----- the team store (issue 19, "Several machines") ---------------------------------------------------------------
REVIEWERS = (("eng_example.com.key", "engineering"), ("sec_example.com.key", "security"),
             ("risk_example.com.key", "risk"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Postgres:
    """A throwaway PostgreSQL cluster on a loopback port (trust auth, fsync off), as tests/conftest.py starts one."""

    def __init__(self) -> None:
        initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not initdbs:
            raise SystemExit("Debian postgresql is missing (apt-get install postgresql)")
        root = Path(tempfile.mkdtemp(prefix="readiness-pg-"))  # its own folder: the postgres user owns it
        self.bindir, self.root, self.port = initdbs[-1].parent, root, _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
            shutil.chown(root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self.as_user, str(self.bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(root / "data"), "-l",
                        str(root / "log"), "-w", "-o", f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start"], check=True, capture_output=True)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                        "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _stats(xs: list[float]) -> str:
    if not xs:
        return "n=0"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    return f"n={len(xs)}, p50 {statistics.median(xs):.2f} s, p95 {p95:.2f} s, max {xs[-1]:.2f} s"


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"dashboard did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.5)
    raise SystemExit(f"dashboard did not answer within {timeout:.0f} s")


def team_main(args: argparse.Namespace) -> None:
    """The team-store load run (module docstring)."""
    import signal

    def _terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # run the clean-up below (servers, the PostgreSQL cluster, files)

    signal.signal(signal.SIGTERM, _terminated)
    tmp = Path(tempfile.mkdtemp(prefix="readiness-team-store-load-"))
    pg: _Postgres | None = None
    servers: list[subprocess.Popen] = []
    try:
        if args.store:
            url, data = args.store, args.data or str(tmp / "shared-data")
        else:
            pg = _Postgres()
            url, data = pg.url, str(tmp / "shared-data")
        base_env = {**os.environ, "READINESS_STORE": url, "READINESS_DATA": data, "READINESS_LOCK_TIMEOUT": "900",
                    "DEMO_PASSPHRASE": "readiness-demo",
                    "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

        def machine(name: str) -> dict[str, str]:
            return {**base_env, "READINESS_DB": str(tmp / f"{name}.duckdb")}

        t = time.monotonic()
        demo = tmp / "demo"
        out = _cli("demo", "--cases", str(args.cases), "--out", str(demo), "--file-format", "parquet",
                   env={**os.environ, "PYTHONPATH": base_env["PYTHONPATH"], "READINESS_DB": str(tmp / "x.duckdb")})
        assert out.returncode == 0, out.stderr
        for release in ("rel-2026.10.0", CANDIDATE):
            out = _cli(*_ingest_args(demo, tmp, None, release), env=machine("setup"))
            assert out.returncode == 0, out.stderr
        from dashboard.reviewing import install_demo_trust
        from dashboard.store.postgres import open_store

        with open_store(tmp / "setup.duckdb", url=url, data=data) as s:
            install_demo_trust(s)
        for _key, role in REVIEWERS:  # each reviewer's machine has its copy (a read-only command needs the file)
            open_store(tmp / f"reviewer-{role}.duckdb", url=url, data=data).close()
        print(f"setup (demo files, baseline + candidate ingested into the team store, trust root): "
              f"{time.monotonic() - t:.1f} s")

        urls = []
        t = time.monotonic()
        for i in range(args.servers):
            port = _free_port()
            log = tmp / f"server{i}.log"
            with open(log, "wb") as f:
                servers.append(subprocess.Popen(
                    [sys.executable, "-m", "dashboard.cli", "serve", "--store", url, "--data", data, "--db",
                     str(tmp / f"server{i}.duckdb"), "--port", str(port), "--address", "127.0.0.1", "--headless"],
                    env={k: v for k, v in base_env.items() if k != "READINESS_LOCK_TIMEOUT"},  # the dashboard's own
                    cwd=REPO, stdout=f, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
            _wait_healthy(urls[-1], servers[-1], log)
        print(f"{args.servers} dashboard server(s) up (each made its own copy): {time.monotonic() - t:.1f} s")

        stop = asyncio.Event()
        times: list[tuple[float, float]] = []
        loaded = [0] * args.sessions
        ingest_runs: list[tuple[str, float, float, int, str]] = []
        load_avg: list[tuple[float, float, float]] = []
        window: list[float] = []
        warm: list[float] = []

        async def cli(label: str, *cmd: str, env: dict[str, str]) -> None:
            s0 = time.monotonic()
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "dashboard.cli", *cmd, env=env,
                                                        cwd=str(REPO), stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            o, e = await proc.communicate()
            ingest_runs.append((label, s0 - window[0], time.monotonic() - s0, proc.returncode or 0,
                                (o + e).decode(errors="replace")[-400:]))

        async def review(key: str, role: str) -> None:
            envelope = tmp / f"{role}.dsse.json"
            env = machine(f"reviewer-{role}")
            await cli(f"review sign ({role})", "review", "sign", "--release", CANDIDATE, "--decision", "approve",
                      "--key", str(REPO / "data" / "reviewers" / key), "--passphrase-env", "DEMO_PASSPHRASE",
                      "--comment", f"{role} signs during the load", "--out", str(envelope), env=env)
            await cli(f"review add ({role})", "review", "add", str(envelope), env=env)

        async def sample_load(stop_at: asyncio.Event) -> None:
            while not stop_at.is_set():
                load_avg.append(os.getloadavg())
                await asyncio.sleep(5)

        async def run() -> None:
            sampling = asyncio.Event()
            sampler = asyncio.create_task(sample_load(sampling))
            sessions = asyncio.create_task(_sessions(urls, args.sessions, stop, times, loaded))
            t0 = time.monotonic()
            while min(loaded) < 1 and time.monotonic() - t0 < 1200:  # every session loaded once (warm caches)
                if sessions.done():
                    await sessions  # a browser session failed: its exception, now
                await asyncio.sleep(1)
            warm.append(time.monotonic())
            print(f"every session loaded the Overview once after {time.monotonic() - t0:.1f} s "
                  f"({len(times)} loads)")
            await asyncio.sleep(10)  # a few warm loads before the writers start
            window.append(time.monotonic())
            await asyncio.gather(*(cli(f"ingest rel-load-{i}", *_ingest_args(demo, tmp, f"rel-load-{i}", CANDIDATE),
                                       env=machine(f"ci{i}")) for i in range(args.ingests)),
                                 *(review(k, r) for k, r in REVIEWERS))
            window.append(time.monotonic())
            await asyncio.sleep(args.after)
            window.append(time.monotonic())
            stop.set()
            await sessions
            sampling.set()
            await sampler

        asyncio.run(run())
        for p in servers:
            p.terminate()
        for p in servers:
            p.wait(30)
        servers.clear()

        print(f"{args.ingests} concurrent CI ingests of {3 * args.cases:,} cases each (each on its own fresh copy) + "
              f"{len(REVIEWERS)} reviewers signing, {args.sessions} chromium sessions reloading the Overview on "
              f"{args.servers} dashboard server(s); one PostgreSQL, one data directory")
        for label, start, wall, code, tail in sorted(ingest_runs, key=lambda r: r[1]):
            print(f"  {label}: started +{start:.1f} s, {wall:.1f} s wall, exit {code}"
                  + ("" if code == 0 else f"\n    {tail}"))
        print(f"  all writes done after {window[1] - window[0]:.1f} s")
        phases = (("before the ingests (warm)", warm[0], window[0]), ("during the ingests", window[0], window[1]),
                  (f"after the ingests ({args.after:.0f} s)", window[1], window[2]))
        for label, lo, hi in phases:
            print(f"  page loads {label}: {_stats([d for (s0, d) in times if lo <= s0 < hi])}")
        first = sorted(times)[:args.sessions]
        print(f"  first loads (cold, all sessions at once): {_stats([d for _, d in first])}")
        if load_avg:
            ones = [a[0] for a in load_avg]
            print(f"  load average (1 min) during the run: mean {statistics.mean(ones):.1f}, max {max(ones):.1f} "
                  f"on {os.cpu_count()} cores")

        # checks: every ingest whole in PostgreSQL and through a fresh copy; the review chain verifies there
        import psycopg

        with psycopg.connect(url) as con:
            pg_cases = dict(con.execute("SELECT release_id, sum(records)::BIGINT FROM sources GROUP BY 1").fetchall())
            pg_runs = dict(con.execute("SELECT release_id, sum(cases)::BIGINT FROM runs GROUP BY 1").fetchall())
        t = time.monotonic()
        with open_store(tmp / "fresh.duckdb", read_only=True, url=url, data=data) as fresh:
            copy_cases = dict(fresh.query("SELECT release_id, count(*) FROM cases GROUP BY 1"))
        fresh_s = time.monotonic() - t
        expected = pg_cases[CANDIDATE]
        new = [f"rel-load-{i}" for i in range(args.ingests)]
        whole = all(pg_cases.get(r) == pg_runs.get(r) == copy_cases.get(r) == expected for r in new)
        print(f"  every ingest landed whole ({expected:,} cases each in PostgreSQL's file records, its runs, and a "
              f"fresh copy): {whole}  " + ", ".join(f"{r}: {copy_cases.get(r)}" for r in new))
        print(f"  a fresh copy of the whole store ({sum(copy_cases.values()):,} cases): {fresh_s:.1f} s")
        verify = _cli("review", "verify", "--db", str(tmp / "fresh.duckdb"), "--trusted",
                      str(REPO / "data" / "reviewers" / "trusted_reviewers.yaml"), env=base_env)
        signed = [line for line in verify.stdout.splitlines() if line.startswith("ok entry") and CANDIDATE in line]
        print(f"  readiness review verify on the fresh copy: exit {verify.returncode}; {len(signed)} of "
              f"{len(REVIEWERS)} reviews signed during the load in the chain; "
              + " | ".join(line for line in verify.stdout.splitlines() if "VALID" in line))
        if not whole or verify.returncode != 0 or len(signed) != len(REVIEWERS) or any(r[3] for r in ingest_runs):
            raise SystemExit(1)
    finally:
        for p in servers:
            p.terminate()
            p.wait(30)
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
