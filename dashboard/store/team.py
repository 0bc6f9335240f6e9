"""The team store: PostgreSQL is the system of record, case data is Parquet in shared object storage, and each
process reads through its own DuckDB copy (`--store postgresql://… --data PATH|s3://bucket/prefix`).

What lives where
- PostgreSQL: releases (manifests), sources, runs, policies, evidence, rollout evidence, observation sources, and
  (dashboard/store/postgres.py) the review log, its checkpoints, reviewed decisions and the decision cache.
- Object storage (dashboard/store/objects.py): the rows of each ingested file, written once as Parquet and named by
  the file's digest and the Parquet bytes' own digest (`cases/<file sha256>/<object sha256>.parquet`,
  `observations/…`); PostgreSQL records each object's name, digest and size, and every read verifies them.
- The `--db` file: this machine's copy (a replica). Every query the gates, pages and reports run is the embedded
  store's own SQL on this copy, so both modes give byte-identical decisions.

How the copy stays current (one mechanism for every write and read)
- Every write transaction (`Store._transaction`: ingest, evidence, rollout evidence, policies) first brings the copy
  up to date, then does the embedded store's checks and inserts, then publishes what it added: the new files' rows
  to object storage, the new metadata rows to PostgreSQL in one transaction under one lock, where a release, run or
  evidence already published with other content is refused exactly as the embedded store refuses it. Only then
  does the local transaction commit: a refused or failed publish leaves nothing in either place (an object written
  before a refused publish is unreferenced and harmless: objects are content-addressed).
- Opening the store (every command, every dashboard rerun) compares PostgreSQL's generation (bumped by every
  publish) with the one the copy was last brought to, and copies what is missing, verifying every object.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, Field

from dashboard.core.errors import InputRefused
from dashboard.store import stats
from dashboard.store.db import Store, StoreUnavailable, _ident
from dashboard.store.objects import ObjectRef, ObjectStore, open_objects, parquet_digest
from dashboard.store.postgres import PostgresReviewLog, SharedLogStore, _redacted
from dashboard.store.schema import CASE_COLUMNS, OBSERVATION_COLUMNS

# Replicated metadata: table -> (key columns, the column that must be equal when the key is published twice,
# the refusal when it is not). Their columns are the embedded store's; sources tables add the object's ref.
REPLICATED: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "releases": (("release_id",), "manifest_digest",
                 "release {key} is already stored with a different manifest ({theirs}); this one is {ours}. A "
                 "release's manifest never changes: give the new one a new release_id"),
    "policies": (("policy_digest",), None, ""),
    "evidence": (("release_id",), "evidence_digest",
                 "release {key} already has evidence ({theirs}); evidence is append-only: attach it to a new "
                 "release id"),
    "rollout_evidence": (("release_id",), "evidence_digest",
                         "release {key} already has rollout evidence ({theirs}); rollout evidence is append-only: "
                         "attach it to a new release id"),
    "runs": (("release_id", "run_id"), "source_digest",
             "run {key} is already stored from another file ({theirs}); a stored run never changes: give the new "
             "run its own run_id"),
    "sources": (("release_id", "source_digest"), None, ""),
    "observation_sources": (("release_id", "source_digest"), None, ""),
}
# Tables whose rows are a file's data: sources table -> (data table, its columns, object name prefix).
DATA_TABLES = {
    "sources": ("cases", ("release_id", *CASE_COLUMNS, "source_digest"), "cases"),
    "observation_sources": ("observations", tuple(OBSERVATION_COLUMNS), "observations"),
}
OBJECT_COLUMNS = {"object_name": "TEXT", "object_sha256": "TEXT", "object_size": "BIGINT"}  # PostgreSQL only

_PG_TYPES = {"VARCHAR": "TEXT", "BIGINT": "BIGINT", "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
             "INTEGER": "INTEGER", "BOOLEAN": "BOOLEAN", "DOUBLE": "DOUBLE PRECISION"}
REPLICA_DDL = "CREATE TABLE IF NOT EXISTS replica_of (store_id VARCHAR NOT NULL, generation BIGINT NOT NULL)"
STAGED = -1  # replica_of.generation of a file staged by `store copy`: its rows are not in PostgreSQL yet


def shared_data_location(explicit: str | None = None) -> str | None:
    """--data, else $READINESS_DATA: where the team store's case data lives (a directory or s3://bucket/prefix)."""
    return explicit or os.environ.get("READINESS_DATA") or None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall()]


def team_ddl() -> list[str]:
    """PostgreSQL tables of the team store, made from the embedded store's own (so the columns never drift)."""
    from dashboard.store.schema import DDL as EMBEDDED

    con = duckdb.connect(":memory:")
    try:
        for ddl in EMBEDDED:
            con.execute(ddl)
        out = ["CREATE TABLE IF NOT EXISTS team_meta (store_id TEXT NOT NULL, generation BIGINT NOT NULL)"]
        for table, (keys, _, _) in REPLICATED.items():
            cols = [f"{_ident(c)} {_PG_TYPES[t]}" for c, t in _columns(con, table)]
            if table in DATA_TABLES:
                cols += [f"{c} {t} NOT NULL" for c, t in OBJECT_COLUMNS.items()]
            cols.append(f"PRIMARY KEY ({', '.join(map(_ident, keys))})")
            out.append(f"CREATE TABLE IF NOT EXISTS {_ident(table)} ({', '.join(cols)})")
        return out
    finally:
        con.close()


def team_meta(log: PostgresReviewLog) -> tuple[str, int]:
    """The team store's id (made on first use) and its generation, bumped by every publish."""
    with log._tx() as cur:  # noqa: SLF001 (the same package's connection)
        cur.execute("SELECT store_id, generation FROM team_meta")
        row = cur.fetchone()
        if row is None:
            cur.execute("LOCK TABLE team_meta IN EXCLUSIVE MODE")
            cur.execute("SELECT store_id, generation FROM team_meta")
            row = cur.fetchone()
            if row is None:
                row = ("readiness-store:" + uuid.uuid4().hex, 0)
                cur.execute("INSERT INTO team_meta VALUES (%s, %s)", list(row))
    return str(row[0]), int(row[1])


class TeamStore(SharedLogStore):
    """A machine's copy of the team store (module docstring). Reads are the embedded store's; writes publish."""

    def __init__(self, path: str | Path, url: str, data: str, read_only: bool = False):
        self.objects: ObjectStore = open_objects(data)
        self.log = PostgresReviewLog(url)
        try:
            self.store_id, pg_generation = team_meta(self.log)
            self._open_current_copy(str(path), pg_generation, read_only)
        except BaseException:
            self.log.close()
            raise

    def generation(self) -> str:
        return Store.generation(self) + f"/team:{team_meta(self.log)[1]}/pg:{self.log.count()}"

    # ----- the local copy ----------------------------------------------------------------------------
    def _open_current_copy(self, path: str, pg_generation: int, read_only: bool) -> None:
        """Open this machine's file with everything PostgreSQL has: a read-only open that finds the copy behind
        closes it and opens the file for writing just long enough to copy what is missing."""
        if Path(path).exists():
            Store.__init__(self, path, read_only=read_only)
            try:
                if self._copy_generation(self.con, path) == pg_generation:
                    return
                if not read_only:
                    with Store._transaction(self) as cur:
                        self._sync(cur, path)
                    return
            except BaseException:
                Store.close(self)
                raise
            Store.close(self)
        with Store(path) as w, Store._transaction(w) as cur:
            self._sync(cur, path)
        Store.__init__(self, path, read_only=read_only)

    def _copy_generation(self, con: duckdb.DuckDBPyConnection, path: str) -> int | None:
        """The generation the copy was last brought to (None: never)."""
        try:
            rows = con.execute("SELECT store_id, generation FROM replica_of").fetchall()
        except duckdb.CatalogException:
            return None
        if rows and rows[0][0] != self.store_id:
            raise StoreUnavailable(f"{path} is the local copy of another team store ({rows[0][0]}), not of "
                                   f"{self.store_id}: pass another --db")
        return int(rows[0][1]) if rows else None

    def _sync(self, cur: duckdb.DuckDBPyConnection, path: str) -> None:
        """Copy every published row this file lacks (inside the caller's local transaction), each checked against
        its own digests before anything is written; refuse when PostgreSQL lost rows this copy had."""
        cur.execute(REPLICA_DDL)
        marker = cur.execute("SELECT store_id, generation FROM replica_of").fetchall()
        if marker and marker[0][0] != self.store_id:
            raise StoreUnavailable(f"{path} is the local copy of another team store ({marker[0][0]}), not of "
                                   f"{self.store_id}: pass another --db")
        if not marker and cur.execute("SELECT count(*) FROM releases").fetchall()[0][0]:
            raise StoreUnavailable(f"{path} holds an embedded store's releases; the team store keeps its own copy "
                                   "on each machine: pass another --db (an empty or new file), and move this file's "
                                   "contents to the team store with `readiness store copy`")
        staged = bool(marker) and int(marker[0][1]) == STAGED
        with self.log._tx() as pg:  # noqa: SLF001 - one snapshot of PostgreSQL for the whole copy
            pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            pg.execute("SELECT generation FROM team_meta")
            row = pg.fetchone()
            generation = int(row[0]) if row else 0
            if marker and int(marker[0][1]) == generation:
                return
            new_runs: list[dict[str, Any]] = []
            for table in REPLICATED:
                names, theirs = _published_rows(pg, cur, table)
                mine = _local_rows(cur, table)
                lost = set(mine) - set(theirs)
                if lost and not staged:
                    raise StoreUnavailable(f"the team store no longer has {table} rows this copy has (e.g. "
                                           f"{', '.join(map(str, sorted(lost)[0]))}): they were deleted in PostgreSQL "
                                           "or it was restored from an older backup; nothing was copied")
                for key, r in theirs.items():
                    if key in mine:
                        continue
                    values = list(r[:len(names)])
                    record = dict(zip(names, values, strict=True))
                    _check_published_row(table, record)
                    if table in DATA_TABLES:
                        ref = ObjectRef(name=r[-3], sha256=r[-2], size=r[-1])
                        _check_object_name(table, record, ref)
                        self._load_object(cur, table, values[0], values[1], values[names.index("records")], ref)
                    elif table == "runs":
                        new_runs.append(record)
                    cur.execute(f"INSERT INTO {_ident(table)} VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                                values)
            for run in new_runs:
                _check_run_against_cases(cur, run)
        cur.execute("DELETE FROM replica_of")
        cur.execute("INSERT INTO replica_of VALUES (?, ?)", [self.store_id, generation])

    def _load_object(self, cur: duckdb.DuckDBPyConnection, sources_table: str, release_id: str,
                     source_digest: str, records: int, ref: ObjectRef) -> None:
        data_table, columns, _ = DATA_TABLES[sources_table]
        local = self.objects.fetch(ref)  # verified against its digest and size
        picked = ", ".join("$release" if c == "release_id" else "$source" if c == "source_digest" else _ident(c)
                           for c in columns)
        try:
            cur.execute(f"INSERT INTO {_ident(data_table)} ({', '.join(map(_ident, columns))}) "  # noqa: S608
                        f"SELECT {picked} FROM read_parquet($path)",
                        {"release": release_id, "source": source_digest, "path": str(local)})
        except duckdb.Error as e:
            raise StoreUnavailable(f"{self.objects.describe()}: {ref.name} is not the rows of an ingested file "
                                   f"({str(e).splitlines()[0]}); nothing was copied") from e
        n = cur.execute(f"SELECT count(*) FROM {_ident(data_table)} WHERE release_id = ? AND source_digest = ?",  # noqa: S608
                        [release_id, source_digest]).fetchall()[0][0]
        if n != records:
            raise StoreUnavailable(f"{self.objects.describe()}: {ref.name} holds {n} rows, PostgreSQL says {records}")
        if data_table == "cases":
            stats.record(cur, release_id, source_digest, records)

    # ----- writes ------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with super()._transaction() as cur:
            self._sync(cur, self.path)
            yield cur
            self._publish(cur)

    def _publish(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Publish what this local transaction added: data objects first, then the metadata rows in one
        PostgreSQL transaction under one lock. A key another machine published first (between this copy's update
        and now) must hold the same content (manifest, evidence, a run's file, a file's rows): else refused like
        the embedded store refuses it; when it does, this copy takes the published row, so copies converge."""
        with self.log._tx() as pg:  # noqa: SLF001
            published = {table: _published_rows(pg, cur, table)[1] for table in REPLICATED}
        new: dict[str, list[tuple[list[str], list[Any]]]] = {}
        for table in REPLICATED:
            names = [c for c, _ in _columns(cur, table)]
            for key, r in _local_rows(cur, table).items():
                theirs = published[table].get(key)
                if theirs is None:
                    new.setdefault(table, []).append((names, list(r)))
                elif tuple(theirs[:len(names)]) != tuple(r):
                    self._take_published(cur, table, names, list(r), theirs)
        if not new:
            return
        refs: dict[tuple[str, str, str], ObjectRef] = {}
        for table in DATA_TABLES:
            for _names, values in new.get(table, []):
                release_id, source_digest = values[0], values[1]
                refs[(table, release_id, source_digest)] = self._put_object(cur, table, release_id, source_digest)
        taken: list[tuple[str, list[str], list[Any], tuple[Any, ...]]] = []
        with self.log._tx() as pg:  # noqa: SLF001
            pg.execute("SELECT pg_advisory_xact_lock(hashtext('readiness-publish'))")
            for table, rows in new.items():
                keys = REPLICATED[table][0]
                for names, values in rows:
                    ref = refs.get((table, values[0], values[1]))
                    extra = _ref_row(ref) if ref is not None else []
                    cols = names + (list(OBJECT_COLUMNS) if extra else [])
                    pg.execute(f"INSERT INTO {_ident(table)} ({', '.join(map(_ident, cols))}) "  # noqa: S608
                               f"VALUES ({', '.join(['%s'] * len(cols))}) ON CONFLICT DO NOTHING", values + extra)
                    if pg.rowcount == 1:
                        continue
                    key = tuple(values[names.index(k)] for k in keys)
                    pg.execute(f"SELECT {', '.join(map(_ident, cols if ref else names))} FROM {_ident(table)} "  # noqa: S608
                               "WHERE " + " AND ".join(f"{_ident(k)} = %s" for k in keys), list(key))
                    theirs = pg.fetchone()
                    if theirs is not None:
                        self._check_same_content(table, names, values, tuple(theirs), ref)
                        taken.append((table, names, values, tuple(theirs)))
            pg.execute("UPDATE team_meta SET generation = generation + 1")
        for table, names, values, theirs in taken:
            _replace_local_row(cur, table, names, values, theirs)

    def _take_published(self, cur: duckdb.DuckDBPyConnection, table: str, names: list[str], values: list[Any],
                        theirs: tuple[Any, ...]) -> None:
        """A row this transaction added under a key another machine published since this copy was updated."""
        ref = None
        if table in DATA_TABLES:
            ref = self._put_object(cur, table, values[0], values[1])
        self._check_same_content(table, names, values, theirs, ref)
        _replace_local_row(cur, table, names, values, theirs)

    @staticmethod
    def _check_same_content(table: str, names: list[str], values: list[Any], theirs: tuple[Any, ...],
                            ref: ObjectRef | None) -> None:
        keys, must_equal, refusal = REPLICATED[table]
        key = tuple(values[names.index(k)] for k in keys)
        if must_equal is not None and theirs[names.index(must_equal)] != values[names.index(must_equal)]:
            raise _refused(refusal, key, theirs[names.index(must_equal)], values[names.index(must_equal)])
        if ref is not None and theirs[len(names) + 1] != ref.sha256:
            raise InputRefused(f"file {key[1]} of release {key[0]!r} was published to the team store by another "
                               "machine with other rows (read with other options, e.g. --default-risk, or by another "
                               "readiness version): a stored file never changes; nothing was written")
    def _put_object(self, cur: duckdb.DuckDBPyConnection, sources_table: str, release_id: str,
                    source_digest: str) -> ObjectRef:
        """Write one file's rows as Parquet (in stored order) and put it, named by the file's and its own digest."""
        data_table, columns, prefix = DATA_TABLES[sources_table]
        kept = [c for c in columns if c not in ("release_id", "source_digest")]
        with tempfile.TemporaryDirectory(prefix="readiness-publish-") as tmp:
            out = Path(tmp) / "rows.parquet"
            cur.execute(f"COPY (SELECT {', '.join(map(_ident, kept))} FROM {_ident(data_table)} "  # noqa: S608
                        "WHERE release_id = $release AND source_digest = $source) TO $path "
                        "(FORMAT parquet, COMPRESSION zstd)",
                        {"release": release_id, "source": source_digest, "path": str(out)})
            sha = parquet_digest(out).removeprefix("sha256:")
            name = f"{prefix}/{source_digest.removeprefix('sha256:')}/{sha}.parquet"
            return self.objects.exists(name) or self.objects.put(name, out)


def _published_rows(pg: Any, cur: duckdb.DuckDBPyConnection, table: str
                    ) -> tuple[list[str], dict[tuple[Any, ...], tuple[Any, ...]]]:
    """PostgreSQL's rows of a replicated table by key (the embedded columns, then the object ref of data tables),
    in publish order."""
    keys = REPLICATED[table][0]
    names = [c for c, _ in _columns(cur, table)]
    extra = list(OBJECT_COLUMNS) if table in DATA_TABLES else []
    order = ", ".join(_ident(c) for c in ("ingested_at", "first_seen_at", *keys) if c in names)
    pg.execute(f"SELECT {', '.join(map(_ident, names + extra))} FROM {_ident(table)} ORDER BY {order}")  # noqa: S608
    return names, {tuple(r[names.index(k)] for k in keys): tuple(r) for r in pg.fetchall()}


def _local_rows(cur: duckdb.DuckDBPyConnection, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    keys = REPLICATED[table][0]
    names = [c for c, _ in _columns(cur, table)]
    return {tuple(r[names.index(k)] for k in keys): tuple(r)
            for r in cur.execute(f"SELECT * FROM {_ident(table)}").fetchall()}  # noqa: S608


def _replace_local_row(cur: duckdb.DuckDBPyConnection, table: str, names: list[str], values: list[Any],
                       theirs: tuple[Any, ...]) -> None:
    """This copy takes the published row (the same content; another machine's path and time)."""
    keys = REPLICATED[table][0]
    cur.execute(f"DELETE FROM {_ident(table)} WHERE "  # noqa: S608
                + " AND ".join(f"{_ident(k)} = ?" for k in keys), [values[names.index(k)] for k in keys])
    cur.execute(f"INSERT INTO {_ident(table)} VALUES ({', '.join('?' * len(names))})",  # noqa: S608
                list(theirs[:len(names)]))


def _check_object_name(table: str, row: dict[str, Any], ref: ObjectRef) -> None:
    """A file's object is named by the file's digest and its own: a sources row pointed at another file's
    object is refused."""
    prefix = DATA_TABLES[table][2]
    want = f"{prefix}/{str(row['source_digest']).removeprefix('sha256:')}/{ref.sha256}.parquet"
    if ref.name != want:
        raise StoreUnavailable(f"the team store's {table} row ({row['release_id']}, {row['source_digest']}) names "
                               f"object {ref.name!r}, not the file's own ({want}): it was changed outside readiness; "
                               "nothing was copied")


def _check_run_against_cases(cur: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    """A copied run's counts, suite and dataset must be what its file's rows say."""
    got = cur.execute(
        """SELECT count(*), count(*) FILTER (WHERE passed), min(suite), max(suite), min(dataset), max(dataset),
                  min(dataset_version), max(dataset_version)
           FROM cases WHERE release_id = ? AND run_id = ? AND source_digest = ?""",
        [run["release_id"], run["run_id"], run["source_digest"]]).fetchall()[0]
    want = (run["cases"], run["passed"], run["suite"], run["suite"], run["dataset"], run["dataset"],
            run["dataset_version"], run["dataset_version"])
    if tuple(got) != want or run["failed"] != run["cases"] - run["passed"]:
        raise StoreUnavailable(f"the team store's runs row ({run['release_id']}, {run['run_id']}) does not match its "
                               "file's rows (counts, suite or dataset): it was changed outside readiness; nothing "
                               "was copied")


def _check_published_row(table: str, row: dict[str, Any]) -> None:
    """A row read from PostgreSQL must carry the digest of its own content (the embedded store writes canonical
    JSON, whose sha256 is the digest): a row edited in the database behind readiness is refused, never copied."""
    from dashboard.core.canonical import digest, sha256_hex
    from dashboard.core.policy import GatePolicy

    def canonical(text_col: str, digest_col: str) -> bool:
        return "sha256:" + sha256_hex(str(row[text_col]).encode()) == row[digest_col]

    ok = {
        "releases": lambda: canonical("manifest_json", "manifest_digest") and _release_columns_match(row),
        "evidence": lambda: canonical("evidence_json", "evidence_digest")
        and json.loads(row["evidence_json"]).get("release_id") == row["release_id"],
        "rollout_evidence": lambda: canonical("evidence_json", "evidence_digest")
        and json.loads(row["evidence_json"]).get("release_id") == row["release_id"],
        "policies": lambda: GatePolicy.model_validate_json(row["policy_json"]).digest == row["policy_digest"],
        "runs": lambda: digest({"source_digest": row["source_digest"], "run_id": row["run_id"]}) == row["data_digest"],
    }.get(table, lambda: True)
    try:
        good = ok()
    except ValueError:
        good = False
    if not good:
        key = ", ".join(str(row[k]) for k in REPLICATED[table][0])
        raise StoreUnavailable(f"the team store's {table} row ({key}) does not match its digest: it was changed "
                               "outside readiness; nothing was copied")


def _release_columns_match(row: dict[str, Any]) -> bool:
    """The releases row's columns are its manifest's (the dashboard reads the baseline from the column)."""
    from dashboard.core.models import ReleaseManifest

    m = ReleaseManifest.model_validate_json(row["manifest_json"])
    return (m.release_id, m.application_version, m.environment, m.baseline_release_id, m.created_at, m.created_by) \
        == (row["release_id"], row["application_version"], row["environment"], row["baseline_release_id"],
            row["created_at"], row["created_by"])


def _refused(refusal: str, key: tuple[Any, ...], theirs: Any, ours: Any) -> InputRefused:
    """The embedded store's refusal, for a key another machine published first with other content."""
    named = " of release ".join(repr(k) for k in reversed(key))
    return InputRefused(refusal.format(key=named, theirs=theirs, ours=ours)
                        + " (published to the team store by another machine)")


def _ref_row(ref: ObjectRef) -> list[Any]:
    return [ref.name, ref.sha256, ref.size]


class TeamCopyReport(BaseModel):
    """What `readiness store copy --data` published from an embedded file, read back through a fresh copy."""

    releases: int = Field(description="Releases (manifests) published.")
    sources: int = Field(description="Ingested eval-run files published, each as one Parquet object.")
    cases: int = Field(description="Eval cases in those objects.")
    observation_sources: int = Field(description="Observation files published.")
    verified: list[str] = Field(description="What was compared between the embedded file and a fresh copy made "
                                            "from PostgreSQL and the objects (all equal, else the copy fails).")


# What must read back identical after a copy: name -> query (run on the embedded file and on a fresh copy).
_FINGERPRINTS = {
    "manifest digests": "SELECT release_id, manifest_digest FROM releases ORDER BY ALL",
    "runs and their data digests": "SELECT release_id, run_id, source_digest, data_digest, cases, passed, failed "
                                   "FROM runs ORDER BY ALL",
    "cases of every file (count and content hash)": "SELECT release_id, source_digest, count(*), sum(hash(c))::VARCHAR "
                                                    "FROM cases c GROUP BY ALL ORDER BY ALL",
    "evidence digests": "SELECT release_id, evidence_digest FROM evidence ORDER BY ALL",
    "rollout evidence digests": "SELECT release_id, evidence_digest FROM rollout_evidence ORDER BY ALL",
    "observations of every file (count and content hash)":
        "SELECT release_id, source_digest, count(*), sum(hash(o))::VARCHAR FROM observations o GROUP BY ALL "
        "ORDER BY ALL",
    "policy digests": "SELECT policy_digest FROM policies ORDER BY ALL",
}


def copy_to_team(source: str | Path, url: str, data: str) -> TeamCopyReport:
    """Publish an embedded store's releases, files, runs, evidence and policies to the team store, through the one
    publish step (so a release or run the team store has with other content is refused and nothing is published),
    then make a fresh copy from PostgreSQL and the objects (every object verified against its digest) and compare
    it with the file: manifest and data digests, every file's case count and content hash, evidence digests."""
    import shutil

    with tempfile.TemporaryDirectory(prefix="readiness-copy-") as tmp:
        staged = Path(tmp) / "staged.duckdb"
        with Store(source, read_only=True) as held:  # no writer can change the file while it is copied
            shutil.copy(source, staged)
            expected = {name: held.query(sql) for name, sql in _FINGERPRINTS.items()}
        log = PostgresReviewLog(url)  # the store's id only: no copy of what it holds
        try:
            store_id = team_meta(log)[0]
        finally:
            log.close()
        with Store(staged) as s:  # the file becomes a copy of the team store that has everything to publish
            s.query(REPLICA_DDL)
            s.query("DELETE FROM replica_of")
            s.query("INSERT INTO replica_of VALUES (?, ?)", [store_id, STAGED])
        staging = TeamStore(staged, url, data)
        try:
            with staging._transaction():
                pass  # brings in what the team store has, then publishes what it lacks
        finally:
            staging.close()
        with TeamStore(Path(tmp) / "check.duckdb", url, data, read_only=True) as check:
            got = {name: check.query(sql) for name, sql in _FINGERPRINTS.items()}
        for name in _FINGERPRINTS:
            mine = set(expected[name])
            if not mine <= set(got[name]):
                raise InputRefused(f"the team store does not read back what {source} holds ({name}): "
                                   f"{len(mine - set(got[name]))} rows differ")
    return TeamCopyReport(releases=len(expected["manifest digests"]),
                          sources=len(expected["cases of every file (count and content hash)"]),
                          cases=sum(int(r[2]) for r in expected["cases of every file (count and content hash)"]),
                          observation_sources=len(expected["observations of every file (count and content hash)"]),
                          verified=list(_FINGERPRINTS))


def open_team_store(path: str | Path, url: str, data: str, read_only: bool = False) -> TeamStore:
    try:
        return TeamStore(path, url, data, read_only=read_only)
    except duckdb.Error as e:
        raise StoreUnavailable(f"cannot bring {path} up to date with the team store at {_redacted(url)}: "
                               f"{str(e).splitlines()[0]}") from e


__all__: Sequence[str] = ("TeamCopyReport", "TeamStore", "copy_to_team", "open_team_store", "shared_data_location",
                          "team_ddl")
