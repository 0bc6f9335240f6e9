"""Per-run sufficient statistics (issue 15): every additive metric component, computed once at ingest.

At ingest, within the ingest's transaction, each file's cases are grouped by (run_id, risk, suite, slices) and every
additive component of every catalogue metric (`store/metrics.py`: counts, FILTERed counts, exact DECIMAL sums) is
stored per group in `run_stats`, one row per group and metric. A gate then reads these few rows instead of the
release's cases: a slice spec (risk / suite / slice-dimension filters, `for_each` on any of them) filters and groups
the stored groups with the very SQL it uses on `cases` (`db._slice_sql`), and the sums of the partial sums are the
same exact numbers (counts are integers, sums are DECIMAL(38, 12): exact, so any grouping adds up to the same value).

Not stored: quantiles (not additive) and the case-level metrics (over a case's repeats across runs); those are still
computed from `cases`, reading only the columns they need.

Stores written before this module, files whose slice combinations are too many to be worth storing, and rows of
another statistics format (the SQL of the partials changed) have no usable rows: the gate then computes everything
from `cases` exactly as before (a fallback, never a wrong answer; `tests/test_speed_stats.py` checks both paths).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from dashboard.core.policy import SliceSpec
from dashboard.store.metrics import METRIC_SQL

if TYPE_CHECKING:
    from dashboard.store.db import Store

# Components that do not add up across groups (an order statistic): computed from `cases`.
ADDITIVE = tuple(m for m, parts in METRIC_SQL.items() if not any("quantile" in p for p in parts))
GROUP_COLUMNS = ("run_id", "risk", "suite", "slices")
EXACT = "DECIMAL(38, 12)"
# A file whose cases fall into more (run, risk, suite, slices) combinations than this, or into more than one per
# MIN_CASES_PER_GROUP cases (say, a slice unique to each case), gets no statistics: computed on the fly.
MAX_GROUPS = 20_000
MIN_CASES_PER_GROUP = 2

STATS_FORMAT = "sha256:" + hashlib.sha256(
    repr((GROUP_COLUMNS, EXACT, [(m, METRIC_SQL[m]) for m in ADDITIVE])).encode()).hexdigest()[:32]


def _partials_sql() -> str:
    parts = ", ".join(
        f"{{'metric': '{m}', 'a': CAST({a} AS {EXACT}), 'b': CAST({b} AS {EXACT}), 'n': CAST({n} AS BIGINT)}}"
        for m in ADDITIVE for a, b, n in [METRIC_SQL[m]])
    return f"""INSERT INTO run_stats
        SELECT release_id, run_id, risk, suite, slices, $format, s.metric, s.a, s.b, s.n FROM (
            SELECT release_id, run_id, risk, suite, slices, unnest([{parts}]) AS s
            FROM cases WHERE release_id = $release AND source_digest = $source
            GROUP BY release_id, run_id, risk, suite, slices)"""  # noqa: S608 (catalogue constants only)


_INSERT_SQL = _partials_sql()


def record(cur: duckdb.DuckDBPyConnection, release_id: str, source_digest: str, records: int) -> int:
    """Store the statistics of one ingested file's cases (inside the caller's ingest transaction). Returns the
    number of groups stored (0 when there are too many combinations to be worth it)."""
    groups = cur.execute(
        "SELECT count(DISTINCT hash(run_id, risk, suite, slices)) FROM cases WHERE release_id = ? AND source_digest = ?",
        [release_id, source_digest]).fetchall()[0][0]
    if groups > MAX_GROUPS or groups * MIN_CASES_PER_GROUP > records:
        return 0
    cur.execute(_INSERT_SQL, {"format": STATS_FORMAT, "release": release_id, "source": source_digest})
    return int(groups)


def usable(store: Store, release_id: str) -> bool:
    """Whether every run of the release has statistics in the current format (else: compute from `cases`)."""
    try:
        rows = store.query(
            """SELECT (SELECT count(*) FROM runs WHERE release_id = $r),
                      (SELECT count(DISTINCT run_id) FROM run_stats WHERE release_id = $r AND stats_format = $f)""",
            {"r": release_id, "f": STATS_FORMAT})
    except duckdb.CatalogException:  # a read-only store written before run_stats existed
        return False
    return bool(rows[0][0]) and rows[0][0] == rows[0][1]


def metric_rows(store: Store, release_id: str, spec: SliceSpec, names: Sequence[str],
                slice_sql: Callable[[SliceSpec, dict[str, Any]], tuple[str, str, dict[str, Any]]]
                ) -> list[tuple[Any, ...]] | None:
    """The rows `Store.slice_metrics` reads from its aggregate over `cases`: (slice value, n_cases, then a, b, n of
    each of `names`), ordered by slice value, with the same values; additive components come from `run_stats`, the
    rest from `cases`. None when the release has no usable statistics."""
    if not usable(store, release_id):
        return None
    additive = [m for m in names if m in ADDITIVE]
    where, group, params = slice_sql(spec, {"release": release_id})
    params.update(format=STATS_FORMAT, metrics=sorted({"cases", *additive}))
    got: dict[str, dict[str, tuple[Any, Any, Any]]] = {}
    for value, metric, a, b, n in store.query(
            f"""SELECT {group} AS slice_value, metric, sum(a), sum(b), sum(n) FROM run_stats
                WHERE release_id = $release AND stats_format = $format AND list_contains($metrics, metric)
                AND {where} GROUP BY ALL ORDER BY slice_value, metric""", params):  # noqa: S608
        got.setdefault(value, {})[metric] = (a, b, n)
    rest = [m for m in names if m not in ADDITIVE]
    if rest:
        where, group, params = slice_sql(spec, {"release": release_id})
        aggs = ", ".join(f"{a}, {b}, {n}" for m in rest for a, b, n in [METRIC_SQL[m]])
        for row in store.query(f"SELECT {group} AS slice_value, {aggs} FROM cases "  # noqa: S608
                               f"WHERE release_id = $release AND {where} GROUP BY ALL", params):
            if row[0] not in got:
                return None  # cannot happen (the same rows are grouped); never guess
            for i, m in enumerate(rest):
                got[row[0]][m] = tuple(row[1 + 3 * i: 4 + 3 * i])
    rows = []
    for value in got:  # in the stats query's ORDER BY slice_value: the order the query over `cases` gives
        per = got[value]
        if any(m not in per for m in names):
            return None
        rows.append((value, per["cases"][0], *(x for m in names for x in per[m])))
    return rows
