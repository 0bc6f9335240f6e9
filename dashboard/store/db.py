"""The only module that speaks SQL to the release store (an embedded DuckDB file).

Writes are serialised through one lock and each ingest is one transaction: either every file
of the call is stored, or nothing is.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from pydantic import BaseModel

from dashboard.core.canonical import canonical_json, digest
from dashboard.core.errors import InputRefused, Problem, ReadinessError
from dashboard.core.gates import GateDecision
from dashboard.core.metrics import MetricValue, ToolMeasure, metric_value, tool_metric, tool_metric_name
from dashboard.core.models import (
    FINAL_STATUSES,
    JSON_TEXT_FIELDS,
    MAP_FIELDS,
    MAX_MAP_KEYS,
    MAX_SLICE_KEYS,
    RISK_LEVELS,
    ReleaseEvidence,
    ReleaseManifest,
)
from dashboard.core.policy import SliceSpec
from dashboard.core.reviews import LogEntry, envelope_hash, next_log_entry
from dashboard.core.stats import Paired
from dashboard.store import connections, stats
from dashboard.store.metrics import CASE_LEVEL_SQL, METRIC_SQL, tool_metric_sql, tool_outcome_sql
from dashboard.store.schema import CASE_COLUMNS, DDL

if TYPE_CHECKING:  # pyarrow (and the numpy it loads) is imported where a table is written (issue 15)
    import pyarrow as pa

DEFAULT_DB = "readiness.duckdb"
MAX_DISTINCT_KEYS = 10_000  # distinct slice dimensions in one file
PROGRESS_BAR_BYTES = 64 << 20


def default_db_path(explicit: str | None = None) -> str:
    """--db, else $READINESS_DB, else ./readiness.duckdb."""
    return explicit or os.environ.get("READINESS_DB") or DEFAULT_DB


class StoreUnavailable(ReadinessError):
    """The store file cannot be opened (another process holds it, or it is not a DuckDB file). Exit code 2."""

    exit_code = 2


class ReleaseRow(BaseModel):
    release_id: str
    application_version: str
    environment: str
    baseline_release_id: str | None
    created_at: datetime
    manifest_digest: str
    runs: int
    cases: int


class RunRow(BaseModel):
    run_id: str
    suite: str
    dataset: str
    dataset_version: str
    cases: int
    passed: int
    failed: int
    source_digest: str
    data_digest: str


class FileResult(BaseModel):
    path: str
    format: str
    source_digest: str
    status: str  # "ingested" or "unchanged"
    records: int
    runs: list[str]
    notes: list[str] = []  # what an eval tool's file could not carry over (e.g. positional ids)


class IngestReport(BaseModel):
    release_id: str
    manifest: str  # "stored", "unchanged" or "none"
    files: list[FileResult]


def _sql_list(values: tuple[str, ...]) -> str:
    """A SQL list literal of trusted constants (enum values defined in code, never user input)."""
    assert all(v.replace("_", "").isalnum() for v in values)
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _validated_select(source_sql: str) -> str:
    """Native columns from `source_sql`, each checked in the same pass: a bad value raises error()."""

    def fail(cond: str, expr: str, msg: str) -> str:
        return f"CASE WHEN {cond} THEN error('{msg}') ELSE {expr} END"

    required = ("case_id", "suite", "dataset", "dataset_version")
    cols: dict[str, str] = {c: f'"{c}"' for c in CASE_COLUMNS}
    for c in required:
        cols[c] = fail(f'"{c}" IS NULL OR "{c}" = \'\'', f'"{c}"', f"{c}: missing or empty")
    # The default run id depends on the suite; the file's short digest is a parameter (names are data).
    cols["run_id"] = fail("run_id = ''", "coalesce(run_id, suite || '@' || $short_digest)", "run_id: empty")
    cols["risk"] = fail(f"risk IS NULL OR NOT list_contains({_sql_list(RISK_LEVELS)}, risk)", "risk",
                        "risk: missing or not one of low, medium, high, critical")
    cols["passed"] = fail("passed IS NULL", "passed", "passed: missing")
    cols["content_digest"] = (
        "coalesce(content_digest, 'sha256:' || sha256(coalesce(input, '') || chr(0) || coalesce(expected, '')))"
    )
    for c in ("latency_ms", "cost_usd"):
        cols[c] = fail(f"isnan({c}) OR isinf({c}) OR {c} < 0", c, f"{c}: must be a finite number >= 0")
    for c in ("input_tokens", "output_tokens"):
        cols[c] = fail(f"{c} < 0", c, f"{c}: must be >= 0")
    cols["retries"] = fail("retries < 0", "coalesce(retries, 0)", "retries: must be >= 0")
    cols["scores"] = fail("list_bool_or(list_transform(map_values(scores), lambda v: isnan(v) OR isinf(v)))",
                          "coalesce(scores, MAP {})", "scores: values must be finite numbers")
    cols["counters"] = fail("list_bool_or(list_transform(map_values(counters), lambda v: v < 0))",
                            "coalesce(counters, MAP {})", "counters: values must be >= 0")
    for c in ("slices", "checks"):
        cols[c] = f"coalesce({c}, MAP {{}})"
    # Bounded keys per case (a case with 10^6 slice keys would make every slice query crawl).
    for c in MAP_FIELDS:
        limit = MAX_SLICE_KEYS if c == "slices" else MAX_MAP_KEYS
        cols[c] = fail(f"cardinality({c}) > {int(limit)}", cols[c], f"{c}: more than {int(limit)} keys in one case")
    cols["trajectory"] = fail(
        f"trajectory IS NOT NULL AND NOT list_contains({_sql_list(FINAL_STATUSES)}, "
        "coalesce(trajectory.final_status, 'completed'))",
        "trajectory", "trajectory.final_status: not a known status",
    )
    body = ", ".join(f"{expr}" for expr in cols.values())
    return f"SELECT $release, {body}, $source FROM ({source_sql})"  # noqa: S608 (no user text in SQL)


def _csv_source_sql(header: list[str]) -> str:
    """A CSV read as text, rebuilt into the native layout (maps from dotted columns, JSON text → structs)."""
    known = set(CASE_COLUMNS)
    exprs: list[str] = []
    for name, typ in CASE_COLUMNS.items():
        if name in MAP_FIELDS:
            keys = [h.partition(".")[2] for h in header if h.startswith(name + ".") and h.partition(".")[2]]
            value_type = typ[typ.index(",") + 1 : -1].strip()
            if keys:
                pairs = ", ".join(
                    f"struct_pack(key := {_quote(k)}, value := CAST({_ident(name + '.' + k)} AS {value_type}))"
                    for k in keys
                )
                exprs.append(f"map_from_entries(list_filter([{pairs}], lambda e: e.value IS NOT NULL)) AS {name}")
            else:
                exprs.append(f"NULL::{typ} AS {name}")
        elif name in JSON_TEXT_FIELDS:
            exprs.append(f"CAST(json({_ident(name)}) AS {typ}) AS {name}" if name in header else f"NULL::{typ} AS {name}")
        elif name in header:
            exprs.append(f"CAST(nullif({_ident(name)}, '') AS {typ}) AS {name}")
        else:
            exprs.append(f"NULL::{typ} AS {name}")
    unknown = [h for h in header if h not in known and h.partition(".")[0] not in MAP_FIELDS]
    if unknown:
        raise _Refuse(f"unknown column {unknown[0]!r} (not part of the format)")
    return "SELECT " + ", ".join(exprs) + " FROM read_csv($path, all_varchar = true, header = true)"  # noqa: S608


# One scan of a JSONL file naming the first top-level field the format does not know. (Unknown keys
# inside nested objects cost a second parse per object here; `readiness validate` reports them.)
_UNKNOWN_KEYS_SQL = """
SELECT k FROM (SELECT DISTINCT unnest(json_keys(json)) AS k FROM read_ndjson_objects($path))
WHERE NOT list_contains($known, k) ORDER BY k LIMIT 1
"""


def _slice_sql(spec: SliceSpec, params: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """WHERE conditions and the group expression of a slice spec, with its values as parameters."""
    conds = ["TRUE"]
    if spec.risk is not None:
        conds.append("list_contains($risk, risk)")
        params["risk"] = list(spec.risk)
    if spec.suite is not None:
        conds.append("list_contains($suite, suite)")
        params["suite"] = list(spec.suite)
    for i, (dim, values) in enumerate(sorted(spec.where.items())):
        conds.append(f"list_contains($wv{i}, slices[$wk{i}])")
        params[f"wk{i}"], params[f"wv{i}"] = dim, list(values)
    if spec.for_each is None:
        group = "''"
    elif spec.for_each in ("risk", "suite"):
        group = f"coalesce({spec.for_each}, '(none)')"
    else:
        group = "coalesce(slices[$group_dim], '(none)')"
        params["group_dim"] = spec.for_each
    return " AND ".join(conds), group, params


# The one definition of "the same case" (issue 11), used by paired(), regressions() and cases_page(): a case is
# (suite, case_id) within a release; its outcome is that of one designated repeat, its record in the run whose
# run_id sorts first (so the number of repeats never changes a pass into a fail); two releases ran the same case
# when suite, case_id and that record's content_digest agree, and a "changed" case when only the digest differs.
DESIGNATED_REPEAT = "one designated repeat per case: its record in the run whose run_id sorts first"


def _per_case_sql(release_param: str, where: str = "TRUE", group: str = "''", extra: str = "",
                  outcome: str = "passed", one_record: bool = False) -> str:
    if one_record:  # each (suite, case_id) is one record (Store._one_run_per_suite): it is its own designated
        # repeat, and the million-row GROUP BY is skipped (issue 15); `extra` is then per-record expressions
        return f"""SELECT {group} AS slice_value, suite, case_id, content_digest, {outcome} AS passed, risk,
                          CAST(1 AS BIGINT) AS repeats{extra}
                   FROM cases WHERE release_id = {release_param} AND {where}"""  # noqa: S608
    return f"""SELECT arg_min({group}, run_id) AS slice_value, suite, case_id,
                      arg_min(content_digest, run_id) AS content_digest, arg_min({outcome}, run_id) AS passed,
                      arg_min(risk, run_id) AS risk, count(*) AS repeats{extra}
               FROM cases WHERE release_id = {release_param} AND {where} GROUP BY suite, case_id"""  # noqa: S608


def _case_pairs_sql(where: str = "TRUE", group: str = "''", extra: str = "", outcome: str = "passed",
                    one_record: tuple[bool, bool] = (False, False)) -> str:
    """CTEs c (the candidate's cases in the slice, one row per case, with `extra` aggregates), b (the baseline's)
    and p (the cases both ran: `same` when the content agrees, else changed). Parameters: $cand, $base and the
    slice's. `outcome` (a tool's check, or score >= t; trusted SQL with parameters) replaces the verdict as the
    per-case outcome: then only the cases carrying it count, in both releases. `one_record`: whether each release
    has one record per case (then no GROUP BY; `extra` per record)."""
    has = "TRUE" if outcome == "passed" else f"({outcome}) IS NOT NULL"
    return f"""WITH c AS ({_per_case_sql("$cand", f"{where} AND {has}", group, extra, outcome, one_record[0])}),
                    b AS ({_per_case_sql("$base", has, outcome=outcome, one_record=one_record[1])}),
                    p AS (SELECT c.*, b.passed AS baseline_passed, b.repeats AS baseline_repeats,
                                 c.content_digest = b.content_digest AS same
                          FROM c JOIN b ON c.suite = b.suite AND c.case_id = b.case_id)"""  # noqa: S608


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class NativeLoadFailed(Exception):
    """The bulk load refused a native file (rolled back with its transaction); the ingest operation diagnoses it
    record by record to say where."""


class _Refuse(Exception):
    """Internal: the fast path found the file wrong; the diagnosis pass says exactly where."""


class Store:
    """The release store. One DuckDB connection per process; a cursor per caller."""

    shared = False  # True for the stores a team shares through PostgreSQL (dashboard/store/postgres.py, team.py)

    def __init__(self, path: str | Path = ":memory:", read_only: bool = False):
        self.path = str(path)
        self.read_only = read_only
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:  # waits (bounded) for another process's write: dashboard/store/connections.py
            self._held = connections.open_file(self.path, read_only)
        except connections.Busy as e:
            raise StoreUnavailable(str(e)) from e
        except duckdb.IOException as e:
            raise StoreUnavailable(f"cannot open the store {self.path}: {e}") from e
        self.con = self._held.con
        self._write_lock = self._held.write_lock  # one per file in this process: its writers take turns
        if not read_only:
            with self._write_lock:
                for ddl in DDL:
                    self.con.execute(ddl)
                self._migrate_review_log()

    def _migrate_review_log(self) -> None:
        """A format-1 review log (before statement ids and trust roots): an empty one is recreated; one with
        entries cannot be migrated (its reviews are bound to no trust root) and is refused when used."""
        cols = {r[0] for r in self.con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                               "table_name = 'review_log'").fetchall()}
        if "statement_id" in cols:
            return
        if self.con.execute("SELECT count(*) FROM review_log").fetchall()[0][0] == 0:
            self.con.execute("DROP TABLE review_log")
            self.con.execute(next(d for d in DDL if "TABLE IF NOT EXISTS review_log" in d))
            self.con.execute("DELETE FROM checkpoints")

    def _check_review_log_format(self) -> None:
        cols = {r[0] for r in self.query("SELECT column_name FROM information_schema.columns WHERE "
                                         "table_name = 'review_log'")}
        if cols and "statement_id" not in cols:
            raise InputRefused(f"{self.path}: the review log is in format 1 (before trust roots and statement ids); "
                               "its reviews cannot be migrated because they are bound to no trust root: keep this "
                               "store for the record (verify it with the readiness version that wrote it) and record new "
                               "reviews in a new store")

    def close(self) -> None:
        self._held.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def table_counts(self) -> dict[str, int]:
        return {t: self.query(f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608 (fixed table names)
                for t in ("releases", "sources", "runs", "cases", "policies", "evidence")}

    # ----- releases and runs -------------------------------------------------------------------
    def manifest(self, release_id: str) -> ReleaseManifest | None:
        rows = self.query("SELECT manifest_json FROM releases WHERE release_id = ?", [release_id])
        return ReleaseManifest.model_validate_json(rows[0][0]) if rows else None

    def manifest_digest(self, release_id: str) -> str | None:
        rows = self.query("SELECT manifest_digest FROM releases WHERE release_id = ?", [release_id])
        return rows[0][0] if rows else None

    def releases(self) -> list[ReleaseRow]:
        rows = self.query(
            """SELECT r.release_id, r.application_version, r.environment, r.baseline_release_id, r.created_at,
                      r.manifest_digest, count(DISTINCT u.run_id), coalesce(sum(u.cases), 0)
               FROM releases r LEFT JOIN runs u USING (release_id)
               GROUP BY ALL ORDER BY r.created_at, r.release_id"""
        )
        names = list(ReleaseRow.model_fields)
        return [ReleaseRow.model_validate(dict(zip(names, r, strict=True))) for r in rows]

    def runs(self, release_id: str) -> list[RunRow]:
        rows = self.query(
            """SELECT run_id, suite, dataset, dataset_version, cases, passed, failed, source_digest, data_digest
               FROM runs WHERE release_id = ? ORDER BY run_id""",
            [release_id],
        )
        names = list(RunRow.model_fields)
        return [RunRow.model_validate(dict(zip(names, r, strict=True))) for r in rows]

    # ----- ingest ----------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One serialised write transaction: committed if the block returns, rolled back if it raises."""
        with self._write_lock:
            cur = self.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def put_manifest(self, manifest: ReleaseManifest) -> str:
        with self.writing() as batch:
            return batch.put_manifest(manifest.release_id, manifest)

    @contextmanager
    def writing(self) -> Iterator[Batch]:
        """One write transaction for an ingest operation (dashboard/ingesting.py): what it may write, all or
        nothing."""
        with self._transaction() as cur:
            yield Batch(self, cur)

    @staticmethod
    def _manifest_in(cur: duckdb.DuckDBPyConnection, release_id: str) -> ReleaseManifest | None:
        row = cur.execute("SELECT manifest_json FROM releases WHERE release_id = ?", [release_id]).fetchall()
        return ReleaseManifest.model_validate_json(row[0][0]) if row else None

    def _put_manifest(self, cur: duckdb.DuckDBPyConnection, release_id: str, m: ReleaseManifest | None) -> str:
        if m is None:
            return "none"
        d = digest(m)
        row = cur.execute("SELECT manifest_digest FROM releases WHERE release_id = ?", [release_id]).fetchall()
        if row:
            if row[0][0] == d:
                return "unchanged"
            raise InputRefused(
                f"release {release_id!r} is already stored with a different manifest ({row[0][0]}); "
                f"this one is {d}. A release's manifest never changes: give the new one a new release_id"
            )
        cur.execute(
            "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [release_id, m.application_version, m.environment, m.baseline_release_id, m.created_at,
             m.created_by, canonical_json(m).decode(), d, datetime.now(UTC)],
        )
        return "stored"

    @staticmethod
    def _already_stored(cur: duckdb.DuckDBPyConnection, release_id: str, source_digest: str, src: str,
                        fmt: str) -> FileResult | None:
        """The 'unchanged' result when this source is stored in the release already, else None."""
        seen = cur.execute("SELECT records FROM sources WHERE release_id = ? AND source_digest = ?",
                           [release_id, source_digest]).fetchall()
        if not seen:
            return None
        runs = [r[0] for r in cur.execute(
            "SELECT run_id FROM runs WHERE release_id = ? AND source_digest = ? ORDER BY run_id",
            [release_id, source_digest]).fetchall()]
        return FileResult(path=src, format=fmt, source_digest=source_digest, status="unchanged",
                          records=seen[0][0], runs=runs)

    def _ingest_native(self, cur: duckdb.DuckDBPyConnection, path: Path, fmt: str, release_id: str,
                       manifest: ReleaseManifest, progress: bool, source_digest: str, header: list[str] | None,
                       recorded_path: Path | None = None, recorded_format: str | None = None) -> FileResult:
        src = str(recorded_path or path)
        done = self._already_stored(cur, release_id, source_digest, src, recorded_format or fmt)
        if done is not None:
            return done
        big = progress and path.stat().st_size >= PROGRESS_BAR_BYTES
        cur.execute(f"SET enable_progress_bar = {'true' if big else 'false'}")
        try:
            self._load_native(cur, path, fmt, release_id, source_digest, header)
            records = self._check_loaded(cur, release_id, source_digest)
        except (duckdb.Error, UnicodeDecodeError, _Refuse) as e:  # the caller's transaction rolls back; a
            # DuckDB message quoting invalid UTF-8 cannot even be decoded (UnicodeDecodeError)
            raise NativeLoadFailed(_clean_duckdb_message(e).replace(str(path), src)) from e
        self._check_manifest_match(cur, Path(src), release_id, source_digest, manifest)
        runs = self._record_runs(cur, Path(src), recorded_format or fmt, release_id, source_digest, records)
        stats.record(cur, release_id, source_digest, records)  # per-run sufficient statistics (issue 15)
        return FileResult(path=src, format=recorded_format or fmt, source_digest=source_digest, status="ingested",
                          records=records, runs=runs)

    def _load_native(self, cur: duckdb.DuckDBPyConnection, path: Path, fmt: str, release_id: str,
                     source_digest: str, header: list[str] | None) -> None:
        params: dict[str, Any] = {"release": release_id, "source": source_digest, "path": str(path)}
        if fmt == "jsonl":
            unknown = cur.execute(_UNKNOWN_KEYS_SQL, {"path": str(path), "known": list(CASE_COLUMNS)}).fetchall()
            if unknown:
                raise _Refuse(f"unknown field {unknown[0][0]!r}")
            source = "SELECT * FROM read_json($path, format = 'newline_delimited', columns = $columns)"
            params["columns"] = CASE_COLUMNS
        elif fmt == "csv":
            if header is None:
                raise _Refuse("a CSV file needs its header")
            source = _csv_source_sql(header)
        else:
            _refuse_unsafe_parquet(path)
            cols = [r[0] for r in cur.execute("DESCRIBE SELECT * FROM read_parquet($path)",
                                              {"path": str(path)}).fetchall()]
            unknown_cols = [c for c in cols if c not in CASE_COLUMNS]
            if unknown_cols:
                raise _Refuse(f"unknown column {unknown_cols[0]!r}")
            picked = ", ".join(f"CAST({_ident(c)} AS {t}) AS {_ident(c)}" if c in cols else f"NULL::{t} AS {_ident(c)}"
                               for c, t in CASE_COLUMNS.items())
            source = f"SELECT {picked} FROM read_parquet($path)"  # noqa: S608
        params["short_digest"] = source_digest.removeprefix("sha256:")[:12]
        cur.execute(f"INSERT INTO cases {_validated_select(source)}", params)  # noqa: S608 (trusted constants)
        self._check_distinct_keys(cur, release_id, source_digest)

    @staticmethod
    def _check_distinct_keys(cur: duckdb.DuckDBPyConnection, release_id: str, source_digest: str) -> None:
        """At most MAX_DISTINCT_KEYS distinct slice dimensions in one file (the pages group by them). Score, check
        and counter names are bounded per case only: counting theirs costs ~5% of an ingest, slices' under 1%."""
        n = cur.execute(
            """SELECT count(DISTINCT k) FROM (SELECT unnest(map_keys(slices)) AS k FROM cases
               WHERE release_id = ? AND source_digest = ?)""", [release_id, source_digest]).fetchall()[0][0]
        if n > MAX_DISTINCT_KEYS:
            raise _Refuse(f"slices: the file names {n:,} distinct slice dimensions, more than the limit of "
                          f"{MAX_DISTINCT_KEYS:,}")

    @staticmethod
    def _check_loaded(cur: duckdb.DuckDBPyConnection, release_id: str, source_digest: str) -> int:
        n = cur.execute("SELECT count(*) FROM cases WHERE release_id = ? AND source_digest = ?",
                        [release_id, source_digest]).fetchall()[0][0]
        if n == 0:
            raise _Refuse("the file holds no records")
        dup = cur.execute(
            """SELECT run_id, case_id FROM cases WHERE release_id = ? AND source_digest = ?
               GROUP BY run_id, case_id HAVING count(*) > 1 LIMIT 1""",
            [release_id, source_digest]).fetchall()
        if dup:
            raise _Refuse(f"duplicate case_id {dup[0][1]!r} in run {dup[0][0]!r}")
        return int(n)

    @staticmethod
    def _check_manifest_match(cur: duckdb.DuckDBPyConnection, path: Path, release_id: str, source_digest: str,
                              manifest: ReleaseManifest) -> None:
        rows = cur.execute(
            """SELECT dataset, dataset_version, min(case_id) FROM cases
               WHERE release_id = ? AND source_digest = ? GROUP BY ALL ORDER BY ALL""",
            [release_id, source_digest]).fetchall()
        for dataset, version, case_id in rows:
            expected = manifest.eval_dataset_versions.get(dataset)
            if expected != version:
                why = (f"the manifest of {release_id!r} does not list eval dataset {dataset!r}" if expected is None
                       else f"the manifest of {release_id!r} says {dataset!r} is {expected!r}, the run has {version!r}")
                raise InputRefused([Problem(str(path), f"case {case_id!r}", "dataset_version",
                                            f"does not match the manifest: {why}")])

    @staticmethod
    def _record_runs(cur: duckdb.DuckDBPyConnection, path: Path, fmt: str, release_id: str,
                     source_digest: str, records: int) -> list[str]:
        runs = cur.execute(
            """SELECT run_id, min(suite), min(dataset), min(dataset_version),
                      count(DISTINCT suite) + count(DISTINCT (dataset, dataset_version)) - 1,
                      count(*), count(*) FILTER (WHERE passed)
               FROM cases WHERE release_id = ? AND source_digest = ? GROUP BY run_id ORDER BY run_id""",
            [release_id, source_digest]).fetchall()
        for run_id, suite, dataset, version, n_distinct, n, passed in runs:
            if n_distinct != 1:  # counted, never parsed from a joined string: names may hold any text
                raise InputRefused([Problem(str(path), "", "run_id",
                                            f"run {run_id!r} mixes suites or eval datasets: one run is one suite "
                                            "on one dataset version")])
            clash = cur.execute("SELECT source_digest FROM runs WHERE release_id = ? AND run_id = ?",
                                [release_id, run_id]).fetchall()
            if clash:
                raise InputRefused([Problem(str(path), "", "run_id",
                                            f"run {run_id!r} of release {release_id!r} is already stored from "
                                            f"another file ({clash[0][0]}); a stored run never changes: "
                                            "give the new run its own run_id")])
            data_digest = digest({"source_digest": source_digest, "run_id": run_id})
            cur.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [release_id, run_id, suite, dataset, version, source_digest, n, passed, n - passed,
                         data_digest])
        cur.execute("INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                    [release_id, source_digest, str(path), fmt, records, datetime.now(UTC)])
        return [r[0] for r in runs]

    # ----- metrics ---------------------------------------------------------------------------------
    def slice_metrics(self, release_id: str, spec: SliceSpec, metrics: Sequence[str]) -> dict[str, dict[str, MetricValue]]:
        """Every metric on the slice (or on each value of `spec.for_each`), in one aggregate query.

        Keys are the slice values ('' when the spec is not expanded; '(none)' for cases without the
        dimension). Metric names must be catalogue names (their SQL is fixed in store/metrics.py).
        """
        names = [m for m in dict.fromkeys(metrics) if m in METRIC_SQL or tool_metric(m) is not None]
        where, group, params = _slice_sql(spec, {"release": release_id})
        metric_sql = {m: METRIC_SQL[m] if m in METRIC_SQL else tool_metric_sql(m, f"tm{i}", params)
                      for i, m in enumerate(names)}
        aggs = ", ".join(f"{a}, {b}, {n}" for m in names for a, b, n in [metric_sql[m]])
        sql = (f"SELECT {group} AS slice_value, count(*) AS n_cases{', ' + aggs if aggs else ''} "  # noqa: S608
               f"FROM cases WHERE release_id = $release AND {where} GROUP BY ALL ORDER BY slice_value")
        out: dict[str, dict[str, MetricValue]] = {}
        # run_stats hold catalogue metrics only; a tool's own metric (score:NAME, check:NAME) reads the cases
        catalogue = bool(names) and all(m in METRIC_SQL for m in names)
        rows = stats.metric_rows(self, release_id, spec, names, _slice_sql) if catalogue else None
        for row in rows if rows is not None else self.query(sql, params):
            value, n_cases = row[0], int(row[1])
            out[value] = {m: metric_value(m, n_cases, row[2 + 3 * i], row[3 + 3 * i], int(row[4 + 3 * i] or 0))
                          for i, m in enumerate(names)}
        case_level = [m for m in dict.fromkeys(metrics) if m in CASE_LEVEL_SQL]
        if case_level:
            aggs = ", ".join(f"{a}, {b}, {n}" for m in case_level for a, b, n in [CASE_LEVEL_SQL[m]])
            sql = (f"SELECT slice_value, count(*) AS n_cases, {aggs} FROM ("  # noqa: S608
                   f"SELECT {group} AS slice_value, suite, case_id, count(*) AS repeats, "
                   "count(*) FILTER (WHERE passed) AS passes "
                   f"FROM cases WHERE release_id = $release AND {where} GROUP BY ALL) GROUP BY ALL")
            for row in self.query(sql, params):
                value, n_cases = row[0], int(row[1])
                out.setdefault(value, {})
                for i, m in enumerate(case_level):
                    out[value][m] = metric_value(m, n_cases, row[2 + 3 * i], row[3 + 3 * i], int(row[4 + 3 * i] or 0))
        return out

    def tool_measures(self, release_id: str) -> list[ToolMeasure]:
        """The scores and checks present in a release's data (what its eval tools measured), one aggregate query:
        name, kind (score | check), cases carrying it, and for scores mean / min / max and whether every value is
        0 or 1, for checks how many passed. Names a policy can gate on (`score:` / `check:`)."""
        rows = self.query(
            """WITH s AS (SELECT unnest(map_keys(scores)) AS k, unnest(map_values(scores)) AS v
                          FROM cases WHERE release_id = $r),
                    c AS (SELECT unnest(map_keys(checks)) AS k, unnest(map_values(checks)) AS v
                          FROM cases WHERE release_id = $r)
               SELECT 'score' AS kind, k, count(*), avg(v), min(v), max(v), bool_and(v IN (0, 1)), NULL FROM s
               GROUP BY k
               UNION ALL
               SELECT 'check', k, count(*), NULL, NULL, NULL, NULL, count(*) FILTER (WHERE v) FROM c GROUP BY k
               ORDER BY 1, 2""", {"r": release_id})
        return [ToolMeasure(kind=kind, name=k, metric=tool_metric_name("scores" if kind == "score" else "checks", k),
                            cases=int(n), mean=mean, min=lo, max=hi, binary=binary,
                            passed=None if passed is None else int(passed))
                for kind, k, n, mean, lo, hi, binary, passed in rows]

    def paired(self, candidate_id: str, baseline_id: str, spec: SliceSpec,
               risk: list[str] | None = None, metric: str | None = None) -> dict[str, Paired]:
        """Per slice value: outcomes of the cases both releases ran with the same content (see _case_pairs_sql:
        one designated repeat per case), and of the changed cases (same suite and case id, different content),
        judged apart. The slice is taken on the candidate. `metric`, a tool's rate (`check:<name>`,
        `score:<name>>=<t>`), pairs on that outcome instead of the verdict."""
        where, group, params = _slice_sql(spec, {"cand": candidate_id, "base": baseline_id})
        if risk is not None:
            where += " AND list_contains($metric_risk, risk)"
            params["metric_risk"] = risk
        outcome = tool_outcome_sql(metric, "po", params) if metric and tool_metric(metric) else "passed"
        one = (self._one_run_per_suite(candidate_id), self._one_run_per_suite(baseline_id))
        sql = _case_pairs_sql(where, group, outcome=outcome, one_record=one) + """
            SELECT slice_value,
                   count(*) FILTER (WHERE same AND passed AND baseline_passed),
                   count(*) FILTER (WHERE same AND baseline_passed AND NOT passed),
                   count(*) FILTER (WHERE same AND passed AND NOT baseline_passed),
                   count(*) FILTER (WHERE same AND NOT passed AND NOT baseline_passed),
                   count(*) FILTER (WHERE NOT same), count(*) FILTER (WHERE NOT same AND passed),
                   count(*) FILTER (WHERE NOT same AND baseline_passed), max(greatest(repeats, baseline_repeats))
            FROM p GROUP BY ALL ORDER BY ALL"""  # noqa: S608
        return {r[0]: Paired(int(r[1]), int(r[2]), int(r[3]), int(r[4]), changed=int(r[5]), changed_passed=int(r[6]),
                             changed_baseline_passed=int(r[7]), max_repeats=int(r[8]))
                for r in self.query(sql, params)}

    def metric_arrays(self, release_id: str, spec: SliceSpec, columns: list[str]) -> dict[str, dict[str, Any]]:
        """Raw per-case values for bootstraps: slice value -> column -> numpy array (non-null rows only), in a
        fixed order. Only the numeric columns are fetched; slices are cut by their counts."""
        allowed = {"latency_ms": "latency_ms", "cost_usd": "CAST(cost_usd AS DOUBLE)",
                   "passed": "CAST(passed AS DOUBLE)"}
        where, group, params = _slice_sql(spec, {"release": release_id})
        cols = ", ".join(f"{allowed[c]} AS {c}" for c in columns)
        notnull = " AND ".join(f"{c} IS NOT NULL" for c in columns)
        source = f"FROM cases WHERE release_id = $release AND {where} AND {notnull}"
        counts = self.query(f"SELECT {group} AS slice_value, count(*) {source} GROUP BY ALL ORDER BY 1", params)  # noqa: S608
        cur = self.cursor()
        try:
            by_slice = f"{group}, " if spec.for_each else ""
            data = cur.execute(f"SELECT {cols} {source} ORDER BY {by_slice}suite, case_id, run_id",  # noqa: S608
                               params).fetchnumpy()
        finally:
            cur.close()
        out: dict[str, dict[str, Any]] = {}
        start = 0
        for value, n in counts:
            out[value] = {c: data[c][start:start + n] for c in columns}
            start += n
        return out

    def order_statistics(self, release_id: str, spec: SliceSpec, column: str,
                         ranks: dict[str, list[int]]) -> dict[str, dict[int, float]]:
        """The values at the given 1-based ranks of `column` (ascending, nulls excluded), per slice value."""
        allowed = {"latency_ms": "latency_ms"}
        where, group, params = _slice_sql(spec, {"release": release_id})
        pairs = [(value, r) for value, rs in ranks.items() for r in rs]
        # One sort per slice value (list_sort), then the wanted positions: ~2x faster than a row_number() window
        # over every row, and the same values (issue 15).
        rows = self.query(
            f"""WITH s AS (SELECT {group} AS slice_value, list_sort(list({allowed[column]})) AS l
                           FROM cases WHERE release_id = $release AND {where} AND {allowed[column]} IS NOT NULL
                           GROUP BY 1),
                     w AS (SELECT unnest($wanted_values) AS slice_value, unnest($wanted_ranks) AS rn)
                SELECT w.slice_value, w.rn, s.l[w.rn] FROM w JOIN s USING (slice_value)
                WHERE w.rn BETWEEN 1 AND len(s.l)""",  # noqa: S608
            {**params, "wanted_values": [p[0] for p in pairs], "wanted_ranks": [int(p[1]) for p in pairs]})
        out: dict[str, dict[int, float]] = {}
        for value, rn, v in rows:
            out.setdefault(value, {})[int(rn)] = float(v)
        return out

    def dataset_changes(self, candidate_id: str, baseline_id: str) -> list[dict[str, Any]]:
        """Eval-dataset governance (seed §28): per case of either release, what changed.

        Rows: dataset, suite, case_id, change (added | removed | changed | downgraded), baseline and
        candidate risk and content digest. Unchanged cases are not listed."""
        c_sql, b_sql = (
            ("""SELECT dataset, suite, case_id, risk, content_digest AS digest, passed
                FROM cases WHERE release_id = $cand""" if self._one_run_per_dataset_suite(candidate_id) else
             """SELECT dataset, suite, case_id, arg_min(risk, run_id) AS risk,
                       arg_min(content_digest, run_id) AS digest, arg_min(passed, run_id) AS passed
                FROM cases WHERE release_id = $cand GROUP BY ALL"""),
            ("""SELECT dataset, suite, case_id, risk, content_digest AS digest
                FROM cases WHERE release_id = $base""" if self._one_run_per_dataset_suite(baseline_id) else
             """SELECT dataset, suite, case_id, arg_min(risk, run_id) AS risk,
                       arg_min(content_digest, run_id) AS digest
                FROM cases WHERE release_id = $base GROUP BY ALL"""))
        rows = self.query(
            f"""WITH c AS ({c_sql}), b AS ({b_sql})
               SELECT coalesce(c.dataset, b.dataset), coalesce(c.suite, b.suite), coalesce(c.case_id, b.case_id),
                      CASE WHEN b.case_id IS NULL THEN 'added' WHEN c.case_id IS NULL THEN 'removed'
                           WHEN list_position($order, c.risk) > list_position($order, b.risk) THEN 'downgraded'
                           WHEN c.digest <> b.digest THEN 'changed' END AS change,
                      b.risk, c.risk, b.digest, c.digest, c.passed
               FROM c FULL OUTER JOIN b USING (dataset, suite, case_id)
               WHERE change IS NOT NULL ORDER BY 1, 2, 3""",  # noqa: S608 (constant SQL only)
            {"cand": candidate_id, "base": baseline_id, "order": ["critical", "high", "medium", "low"]})
        keys = ("dataset", "suite", "case_id", "change", "baseline_risk", "candidate_risk", "baseline_digest",
                "candidate_digest", "candidate_passed")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def _one_run_per_suite(self, release_id: str) -> bool:
        """Whether no two runs of the release share a suite: then (a run's case ids being unique, checked at ingest)
        each (suite, case_id) is one record, its own designated repeat (issue 15: the per-case GROUP BY is skipped)."""
        row = self.query("SELECT count(*) = count(DISTINCT suite) FROM runs WHERE release_id = ?", [release_id])
        return bool(row[0][0])

    def _one_run_per_dataset_suite(self, release_id: str) -> bool:
        """Whether no two runs of the release share a (dataset, suite): then, a run's case ids being unique (checked
        at ingest), each (dataset, suite, case_id) is one record, its own designated repeat, and the eval-dataset
        diff needs no GROUP BY over a million cases (issue 15: same rows, ~5x less time)."""
        row = self.query("SELECT count(*) = count(DISTINCT (dataset, suite)) FROM runs WHERE release_id = ?",
                         [release_id])
        return bool(row[0][0])

    def judging(self, release_id: str) -> dict[str, dict[str, list[str]]]:
        """Per dataset: the dataset versions, judge models and scorer versions a release's cases ran with."""
        rows = self.query(
            """SELECT dataset, list(DISTINCT dataset_version ORDER BY dataset_version),
                      list(DISTINCT judge_model ORDER BY judge_model) FILTER (WHERE judge_model IS NOT NULL),
                      list(DISTINCT scorer_version ORDER BY scorer_version) FILTER (WHERE scorer_version IS NOT NULL)
               FROM cases WHERE release_id = ? GROUP BY dataset ORDER BY dataset""", [release_id])
        return {r[0]: {"dataset_version": r[1], "judge_model": r[2] or [], "scorer_version": r[3] or []}
                for r in rows}

    def regressions(self, candidate_id: str, baseline_id: str, limit: int = 10) -> tuple[int, int, list[dict]]:
        """Cases both releases ran with the same content (the definition paired() and the Cases page use):
        counts of pass->fail and fail->pass, and the first `limit` regressions, most severe risk first."""
        one = (self._one_run_per_suite(candidate_id), self._one_run_per_suite(baseline_id))
        task = ", slices['task'] AS task" if one[0] else ", arg_min(slices['task'], run_id) AS task"
        sql = _case_pairs_sql(extra=task, one_record=one) + """,
                 counts AS (SELECT count(*) FILTER (WHERE same AND baseline_passed AND NOT passed) AS regressions,
                                   count(*) FILTER (WHERE same AND passed AND NOT baseline_passed) AS fixes FROM p),
                 top AS (SELECT case_id, suite, risk, task FROM p WHERE same AND baseline_passed AND NOT passed
                         ORDER BY list_position(['critical', 'high', 'medium', 'low'], risk), suite, case_id
                         LIMIT $limit)
            SELECT counts.regressions, counts.fixes, top.case_id, top.suite, top.risk, top.task
            FROM counts LEFT JOIN top ON TRUE
            ORDER BY list_position(['critical', 'high', 'medium', 'low'], top.risk), top.suite, top.case_id"""  # noqa: S608
        rows = self.query(sql, {"cand": candidate_id, "base": baseline_id, "limit": limit})
        top = [dict(zip(("case_id", "suite", "risk", "task"), r[2:], strict=True)) for r in rows if r[2] is not None]
        return int(rows[0][0]), int(rows[0][1]), top

    def generation(self) -> str:
        """Changes whenever anything is ingested or attached: a cache key for derived results."""
        row = self.query("""SELECT (SELECT count(*) FROM sources) || '/' || (SELECT count(*) FROM releases) || '/' ||
                                   (SELECT count(*) FROM evidence) || '/' || (SELECT count(*) FROM review_log) || '/' ||
                                   coalesce((SELECT max(ingested_at)::VARCHAR FROM sources), '')""")
        return str(row[0][0])

    def slice_dimensions(self, release_ids: Sequence[str]) -> list[str]:
        """Slice dimension names present in the releases' cases (plus risk and suite)."""
        rows = self.query("""SELECT DISTINCT unnest(map_keys(slices)) AS k FROM cases
                             WHERE list_contains($r, release_id) ORDER BY k""", {"r": list(release_ids)})
        return ["risk", "suite"] + [r[0] for r in rows]

    def slice_values(self, release_ids: Sequence[str], dimension: str) -> list[str]:
        if dimension in ("risk", "suite"):
            sql = f"SELECT DISTINCT {dimension} FROM cases WHERE list_contains($r, release_id) ORDER BY 1"  # noqa: S608
            rows = self.query(sql, {"r": list(release_ids)})
        else:
            rows = self.query("""SELECT DISTINCT slices[$d] FROM cases WHERE list_contains($r, release_id)
                                 AND slices[$d] IS NOT NULL ORDER BY 1""", {"r": list(release_ids), "d": dimension})
        return [r[0] for r in rows]

    def check_names(self, release_ids: Sequence[str]) -> list[str]:
        rows = self.query("SELECT DISTINCT unnest(map_keys(checks)) FROM cases WHERE list_contains($r, release_id) "
                          "ORDER BY 1", {"r": list(release_ids)})
        return [r[0] for r in rows]

    def cases_page(self, candidate_id: str, baseline_id: str | None, spec: SliceSpec, kind: str,
                   limit: int = 50, offset: int = 0, failed_check: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """One page of cases (kind: regressions, fixes, failed, all), most severe risk first; `failed_check` keeps
        cases whose named check is false. The Cases page's own query (store/cases.py), so one definition of the
        same case serves the gate, its outputs and the page."""
        from dashboard.store import cases

        q = cases.CaseQuery(candidate_id, baseline_id, spec, kind, check=failed_check, check_value=False)
        return cases.case_list(self, q, limit, offset)

    def case_list(self, query: Any, limit: int = 50, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Search, sort and gate filters over a candidate's cases: dashboard/store/cases.py."""
        from dashboard.store import cases

        return cases.case_list(self, query, limit, offset)

    def export_cases(self, query: Any, fmt: str) -> bytes:
        from dashboard.store import cases

        return cases.export_cases(self, query, fmt)

    def case_records(self, release_id: str, suite: str, case_id: str) -> list[dict[str, Any]]:
        """Every stored record of one case in one release (one per run), as plain dicts."""
        cur = self.cursor()
        try:
            cur.execute("""SELECT * EXCLUDE (release_id, source_digest) FROM cases
                           WHERE release_id = ? AND suite = ? AND case_id = ? ORDER BY run_id""",
                        [release_id, suite, case_id])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        finally:
            cur.close()

    def quantile_curve(self, release_id: str, spec: SliceSpec, column: str, points: int = 101) -> list[float]:
        """Evenly spaced quantiles of a numeric column (an ECDF at `points` points), computed in DuckDB."""
        allowed = {"latency_ms": "latency_ms", "cost_usd": "cost_usd", "input_tokens": "input_tokens",
                   "output_tokens": "output_tokens"}
        where, _group, params = _slice_sql(spec, {"release": release_id})
        probs = [i / (points - 1) for i in range(points)]
        row = self.query(f"SELECT quantile_cont({allowed[column]}, $p) FROM cases "  # noqa: S608
                         f"WHERE release_id = $release AND {where}", {**params, "p": probs})
        return list(row[0][0] or [])

    def put_evidence(self, evidence: ReleaseEvidence) -> str:
        """Attach non-eval evidence to a stored release; the same evidence again is a no-op."""
        d = digest(evidence)
        with self._transaction() as cur:
            if self._manifest_in(cur, evidence.release_id) is None:
                raise InputRefused(f"release {evidence.release_id!r} is not in the store")
            row = cur.execute("SELECT evidence_digest FROM evidence WHERE release_id = ?",
                              [evidence.release_id]).fetchall()
            if row and row[0][0] == d:
                return "unchanged"
            if row:
                raise InputRefused(f"release {evidence.release_id!r} already has evidence ({row[0][0]}); "
                                   "evidence is append-only: attach it to a new release id")
            cur.execute("INSERT INTO evidence VALUES (?, ?, ?, ?)",
                        [evidence.release_id, canonical_json(evidence).decode(), d, datetime.now(UTC)])
        return "stored"

    def evidence(self, release_id: str) -> tuple[ReleaseEvidence, str] | None:
        row = self.query("SELECT evidence_json, evidence_digest FROM evidence WHERE release_id = ?", [release_id])
        return (ReleaseEvidence.model_validate_json(row[0][0]), row[0][1]) if row else None

    def policy_json(self, policy_digest: str) -> str | None:
        row = self.query("SELECT policy_json FROM policies WHERE policy_digest = ?", [policy_digest])
        return str(row[0][0]) if row else None

    def remember_policy(self, policy_id: str, version: str, policy_digest: str, policy_json: str) -> None:
        """Keep every policy ever judged, by digest (skipped on a read-only store)."""
        if self.read_only or self.policy_json(policy_digest) is not None:
            return
        with self._transaction() as cur:
            cur.execute("INSERT INTO policies VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [policy_digest, policy_id, version, policy_json, datetime.now(UTC)])

    # ----- reviews ---------------------------------------------------------------------------------
    def put_decision(self, decision: GateDecision) -> None:
        """Keep a gate decision a review is signed against (idempotent by digest)."""
        with self._write_lock:
            self.query("INSERT INTO decisions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [decision.digest, decision.candidate.release_id, decision.model_dump_json(), datetime.now(UTC)])

    def decisions(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.query("SELECT decision_digest, decision_json FROM decisions")}

    def cached_decision(self, judged_key: str) -> tuple[str, str] | None:
        """(decision digest, decision JSON) stored under the digest of everything judged; None when absent (or on a
        read-only store older than the cache table). The caller checks the JSON against its digest."""
        try:
            rows = self.query("SELECT decision_digest, decision_json FROM decision_cache WHERE judged_key = ?",
                              [judged_key])
        except duckdb.CatalogException:
            return None
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def cache_decision(self, judged_key: str, decision_digest: str, decision_json: str) -> bool:
        """Store (or replace a corrupt) cached decision; False on a read-only store or when the file is busy."""
        if self.read_only:
            return False
        try:
            with self._write_lock:
                self.query("INSERT OR REPLACE INTO decision_cache VALUES (?, ?, ?, ?)",
                           [judged_key, decision_digest, decision_json, datetime.now(UTC)])
        except (duckdb.CatalogException, duckdb.TransactionException):
            return False
        return True

    def manifest_digests(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.query("SELECT release_id, manifest_digest FROM releases")}

    def run_digests(self) -> dict[tuple[str, str], str]:
        """(release id, run id) -> data digest of every stored run (what reviewed decisions judged)."""
        return {(r[0], r[1]): r[2] for r in self.query("SELECT release_id, run_id, data_digest FROM runs")}

    def log_id(self) -> str:
        """This store's review-log id (made once, on first use)."""
        with self._write_lock:
            row = self.query("SELECT log_id FROM log_meta")
            if row:
                return str(row[0][0])
            if self.read_only:
                return "unnamed"
            new = "readiness-log:" + uuid.uuid4().hex
            self.query("INSERT INTO log_meta VALUES (?)", [new])
            return new

    def append_review(self, release_id: str, envelope: bytes, received_at: datetime | None = None, *,
                      kind: str = "review", statement_id: str, reviewer: str | None = None,
                      reviewed_at: datetime | None = None, expect_previous: str | None = None,
                      block: bool = False) -> LogEntry:
        """Append one envelope to the hash chain (right after the entry whose hash is `expect_previous`, if given:
        an admin event signs where it goes). Serialised: concurrent callers never fork the chain. Refused:
        a statement already logged (however it is encoded), and a review not newer (by its signed review time)
        than the reviewer's latest review of the release (a `block` at the same time is newer: a block wins ties)."""
        self._check_review_log_format()
        when = (received_at or datetime.now(UTC)).astimezone(UTC)
        env_hash = envelope_hash(envelope)
        with self._transaction() as cur:
            dup = cur.execute("SELECT seq FROM review_log WHERE statement_id = ? OR envelope_hash = ?",
                              [statement_id, env_hash]).fetchall()
            newer = cur.execute("SELECT seq, reviewed_at FROM review_log WHERE kind = 'review' AND reviewer = ? "
                                "AND release_id = ? AND (reviewed_at > ? OR (reviewed_at = ? AND NOT ?)) "
                                "ORDER BY reviewed_at DESC LIMIT 1",
                                [reviewer, release_id, reviewed_at, reviewed_at, block]).fetchall() \
                if reviewer is not None and reviewed_at is not None else []
            last = cur.execute("SELECT seq, entry_hash, received_at FROM review_log ORDER BY seq DESC LIMIT 1").fetchall()
            entry = next_log_entry(release_id, envelope, when, duplicate_of=dup[0][0] if dup else None,
                                   newer=newer[0] if newer else None, last=last[0] if last else None,
                                   reviewer=reviewer, reviewed_at=reviewed_at, expect_previous=expect_previous)
            when = entry.received_at
            cur.execute("INSERT INTO review_log (seq, release_id, prev_hash, envelope, envelope_hash, received_at, "
                        "entry_hash, kind, statement_id, reviewer, reviewed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [entry.seq, release_id, entry.prev_hash, envelope, env_hash, when, entry.entry_hash, kind,
                         statement_id, reviewer, reviewed_at])
        return entry

    def review_entries(self) -> list[LogEntry]:
        self._check_review_log_format()
        rows = self.query("SELECT seq, release_id, prev_hash, envelope, envelope_hash, received_at, entry_hash "
                          "FROM review_log ORDER BY seq")
        keys = ("seq", "release_id", "prev_hash", "envelope", "envelope_hash", "received_at", "entry_hash")
        return [LogEntry.model_validate(dict(zip(keys, r, strict=True))) for r in rows]

    def put_checkpoint(self, size: int, head: str, envelope: bytes, issued_at: datetime) -> None:
        with self._write_lock:
            self.query("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", [size, head, envelope, issued_at])

    def checkpoints(self) -> list[bytes]:
        return [bytes(r[0]) for r in self.query("SELECT envelope FROM checkpoints ORDER BY issued_at")]

    # ----- files -----------------------------------------------------------------------------------
    def write_table(self, table: pa.Table, path: str | Path, fmt: str) -> None:
        """Write an Arrow table of native records as JSONL, CSV (flat layout) or Parquet."""
        cur = self.cursor()
        try:
            cur.register("native_records", table)
            if fmt == "jsonl":
                cur.execute("COPY (SELECT * FROM native_records) TO $p (FORMAT json)", {"p": str(path)})
            elif fmt == "parquet":
                cur.execute("COPY (SELECT * FROM native_records) TO $p (FORMAT parquet, COMPRESSION zstd)",
                            {"p": str(path)})
            elif fmt == "csv":
                cur.execute(f"COPY ({_flat_select(table)}) TO $p (FORMAT csv, HEADER)", {"p": str(path)})
            else:
                raise ValueError(f"unknown format {fmt!r}")
            cur.unregister("native_records")
        finally:
            cur.close()


def _flat_select(table: pa.Table) -> str:
    """The CSV layout of native records: dotted columns for maps, JSON text for nested structs."""
    exprs: list[str] = []
    for name in table.column_names:
        if name in MAP_FIELDS:
            col = table.column(name).combine_chunks()
            keys = sorted(set(col.keys.to_pylist())) if hasattr(col, "keys") else []
            exprs.extend(f"{_ident(name)}[{_quote(k)}] AS {_ident(name + '.' + k)}" for k in keys)
        elif name in JSON_TEXT_FIELDS:
            exprs.append(f"to_json({_ident(name)}) AS {_ident(name)}")
        else:
            exprs.append(_ident(name))
    return "SELECT " + ", ".join(exprs) + " FROM native_records"  # noqa: S608


def _refuse_unsafe_parquet(path: Path) -> None:
    """Refuse what DuckDB cannot cast safely: a struct column for a map field with a key named "" makes the cast
    to MAP fail with an INTERNAL error that invalidates the whole database (DuckDB 1.x/2.0; found by fuzzing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # unreadable: DuckDB's own read reports it  # noqa: BLE001
        return
    for name in MAP_FIELDS:
        if name in schema.names:
            typ = schema.field(name).type
            if pa.types.is_struct(typ) and any(typ.field(i).name == "" for i in range(typ.num_fields)):
                raise _Refuse(f"{name}: a key with an empty name")


def _clean_duckdb_message(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.removeprefix("Invalid Input Error: ").removeprefix("Conversion Error: ")


class Batch:
    """The writes of one ingest transaction (`Store.writing`): manifests and native eval-run files. The ingest
    operation (dashboard/ingesting.py) reads files with the importers and hands them over here."""

    def __init__(self, store: Store, cursor: duckdb.DuckDBPyConnection):
        self._store = store
        self.cursor = cursor  # for the store package's other writers (store/observations.py)

    def put_manifest(self, release_id: str, manifest: ReleaseManifest | None) -> str:
        """'stored', 'unchanged' or 'none'; a different manifest for a stored release is refused."""
        return self._store._put_manifest(self.cursor, release_id, manifest)

    def manifest(self, release_id: str) -> ReleaseManifest | None:
        return Store._manifest_in(self.cursor, release_id)

    def already_stored(self, release_id: str, source_digest: str, src: str, fmt: str) -> FileResult | None:
        """The 'unchanged' result when this source is in the release already (re-ingest is idempotent)."""
        return Store._already_stored(self.cursor, release_id, source_digest, src, fmt)

    def load_native(self, path: Path, fmt: str, release_id: str, manifest: ReleaseManifest, source_digest: str, *,
                    progress: bool = False, csv_header: list[str] | None = None, recorded_path: Path | None = None,
                    recorded_format: str | None = None) -> FileResult:
        """Load one native file (jsonl, csv with its header, parquet) as source `source_digest` of the release;
        `recorded_path` / `recorded_format` name an eval tool's original file when `path` is its conversion.
        Raises NativeLoadFailed when the bulk load refuses the file."""
        return self._store._ingest_native(self.cursor, path, fmt, release_id, manifest, progress, source_digest,
                                          csv_header, recorded_path, recorded_format)
