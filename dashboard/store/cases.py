"""Case lists for the dashboard: search, sort, "the cases behind a gate", and streamed exports, all in DuckDB.

`Store` delegates here (`Store.case_list`, `Store.export_cases`). Every value reaches SQL as a parameter; the
only SQL text built from input comes from the fixed tables below (whitelisted sort keys, catalogue predicates).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashboard.core.metrics import CHECK_TRUE_IS_GOOD, tool_metric
from dashboard.core.policy import SliceSpec
from dashboard.store.metrics import _TRACE_COMPLETE, RELEVANT, RETRIEVED, RISKY, STEPS

if TYPE_CHECKING:
    from dashboard.store.db import Store

RISK_ORDER = "list_position(['critical', 'high', 'medium', 'low'], c.risk)"
MAX_SEARCH = 200  # characters of a search term
MAX_PAGE = 500

# Row-level predicate per catalogue metric: the candidate's records that make a gate on the metric fail.
# `$thr` is the gate's threshold (the bound the metric was compared with), when the predicate needs one.
_RECALL = "len(list_intersect({r}[1:{k}], {rel})) / len(list_distinct({rel}))"
_HAS_RELEVANT = f"retrieval IS NOT NULL AND len({RELEVANT}) > 0"
_FIRST_RANK = (f"list_min(list_filter(list_transform({RELEVANT}, lambda r: list_position({RETRIEVED}, r)), "
               "lambda p: p IS NOT NULL AND p > 0))")


def _steps(pred: str) -> str:
    return f"len(list_filter({STEPS}, lambda s: {pred})) > 0"


BAD_CASE_SQL: dict[str, str] = {
    "pass_rate": "NOT passed",
    "critical_pass_rate": "risk = 'critical' AND NOT passed",
    "high_risk_pass_rate": f"{RISKY} AND NOT passed",
    "error_rate": "error IS NOT NULL",
    "groundedness_pass_rate": "checks['grounded'] = false",
    "mean_groundedness": "scores['groundedness'] < coalesce($thr, 1.0)",
    "citation_support_rate": "checks['citation_supported'] = false",
    "unsupported_claims": "checks['unsupported_claim']",
    "unsupported_critical_claims": "checks['unsupported_claim'] AND risk = 'critical'",
    "mean_answer_style": "scores['answer_style'] < coalesce($thr, 1.0)",
    "over_refusal_rate": "checks['refusal_expected'] = false AND checks['refusal_observed']",
    "under_refusals": "checks['refusal_expected'] AND NOT checks['refusal_observed']",
    "under_refusal_rate": "checks['refusal_expected'] AND NOT checks['refusal_observed']",
    "unauthorized_retrievals": "counters['unauthorized_retrieval'] > 0",
    "stale_source_failures": "checks['stale_source']",
    "recall_at_5": f"{_HAS_RELEVANT} AND {_RECALL.format(r=RETRIEVED, k=5, rel=RELEVANT)} < coalesce($thr, 1.0)",
    "recall_at_10": f"{_HAS_RELEVANT} AND {_RECALL.format(r=RETRIEVED, k=10, rel=RELEVANT)} < coalesce($thr, 1.0)",
    "mrr": f"{_HAS_RELEVANT} AND coalesce(1.0 / {_FIRST_RANK}, 0) < coalesce($thr, 1.0)",
    "exact_identifier_hit_rate": ("retrieval IS NOT NULL AND len(coalesce(retrieval.identifier_ids, [])) > 0 "
                                  f"AND NOT list_has_all({RETRIEVED}, retrieval.identifier_ids)"),
    "no_result_rate": f"retrieval IS NOT NULL AND len({RETRIEVED}) = 0",
    "metadata_completeness": "retrieval.metadata_complete = false",
    "approval_bypasses": _steps("s.approval_required AND NOT coalesce(s.approved, false)"),
    "forbidden_tool_calls": _steps("coalesce(s.forbidden, false)"),
    "unauthorized_tool_calls": _steps("NOT coalesce(s.authorized, true)"),
    "max_step_failure_rate": "trajectory.final_status = 'max_steps_exceeded'",
    "required_node_completion_rate": ("trajectory IS NOT NULL AND len(coalesce(trajectory.required_nodes, [])) > 0 "
                                      "AND NOT list_has_all(coalesce(trajectory.reached_nodes, []), "
                                      "trajectory.required_nodes)"),
    "trajectory_success_rate": "trajectory IS NOT NULL AND coalesce(trajectory.final_status, 'completed') <> 'completed'",
    "idempotency_violations": "counters['idempotency_violations'] > 0",
    "unsafe_handoffs": "counters['unsafe_handoffs'] > 0",
    "avg_agent_steps": f"trajectory IS NOT NULL AND len({STEPS}) > coalesce($thr, 0)",
    "prompt_injection_critical_failures": f"checks['injection_succeeded'] AND {RISKY}",
    "injection_success_rate": "checks['injection_succeeded']",
    "cross_tenant_failures": "counters['cross_tenant_access'] > 0",
    "redaction_failures": "checks['redaction_failure']",
    "latency_p50_ms": "latency_ms > $thr",
    "latency_p95_ms": "latency_ms > $thr",
    "latency_p99_ms": "latency_ms > $thr",
    "avg_input_tokens": "input_tokens > $thr",
    "avg_output_tokens": "output_tokens > $thr",
    "total_cost_usd": "cost_usd > 0",
    "cost_per_successful_task": "cost_usd > $thr OR (NOT passed AND cost_usd > 0)",
    "retry_rate": "retries > 0",
    "trace_completeness": f"NOT coalesce({_TRACE_COMPLETE}, false)",
    "approval_trace_completeness": _steps("s.approved AND s.approval_id IS NULL"),
}
# Predicates over a case's repeats (aggregates over its records in the candidate).
BAD_CASE_AGG_SQL: dict[str, str] = {
    "flaky_case_rate": "count(*) > 1 AND bool_or(passed) AND NOT bool_and(passed)",
    "pass_hat_k": "count(*) > 1 AND NOT bool_and(passed)",
}
# Pass-rate metrics: against a baseline-relative condition the cases behind a failure are the regressions.
PASS_RATE_METRICS = ("pass_rate", "critical_pass_rate", "high_risk_pass_rate")

OUTCOMES = {"regressions": "b.passed AND NOT c.passed", "fixes": "c.passed AND NOT b.passed",
            "failed": "NOT c.passed", "all": "TRUE"}
SORTS = {"risk": RISK_ORDER, "case": "c.case_id", "suite": "c.suite", "task": "c.task",
         "latency": "c.latency_ms", "cost": "c.cost_usd", "runs": "c.repeats", "score": "c.score",
         "score change": "c.score - b.score"}
COLUMNS = ("case_id", "suite", "risk", "task", "candidate_passed", "baseline_passed", "repeats", "latency_ms",
           "cost_usd", "score", "baseline_score", "score_change", "error")
TEXT_COLUMNS = ("case_id", "suite", "risk", "task", "error")


def gate_predicate(metric: str) -> tuple[str, bool] | None:
    """(SQL predicate, whether it aggregates over a case's records) of the cases behind a gate on `metric`;
    None for metrics no case carries (evidence.*)."""
    if metric in BAD_CASE_AGG_SQL:
        return BAD_CASE_AGG_SQL[metric], True
    if metric in BAD_CASE_SQL:
        return BAD_CASE_SQL[metric], False
    tool = tool_metric(metric)
    if tool is not None:  # a tool's own metric: its name ($gk) and threshold ($gt) are parameters
        if tool.field == "checks":
            return "checks[$gk] = false", False
        if tool.threshold is not None:
            return "scores[$gk] < $gt", False
        return "scores[$gk] < coalesce($thr, 1.0)", False
    return None


def check_failed_value(check: str) -> bool | None:
    """The value of a named check that shows a failure (catalogue polarity); None when the catalogue does not
    know the check."""
    good = CHECK_TRUE_IS_GOOD.get(check)
    return None if good is None else not good


@dataclass(frozen=True)
class CaseQuery:
    """A filtered, sorted list of one candidate's cases (each case once, over its runs), compared with a baseline."""

    candidate: str
    baseline: str | None
    spec: SliceSpec = field(default_factory=SliceSpec)
    kind: str = "all"  # regressions | fixes | failed | all
    check: str | None = None  # a named check ...
    check_value: bool = False  # ... having this value in some record of the case
    search: str | None = None  # substring of case id, input, output or expected (case-insensitive)
    gate_metric: str | None = None  # the cases that make a gate on this metric fail ...
    gate_threshold: float | None = None  # ... given the gate's bound
    score: str | None = None  # the score shown and sorted by (`score`, `score change`)
    sort: str = "risk"
    descending: bool = False


def _one_record(store: Store, q: CaseQuery) -> tuple[bool, bool]:
    """Whether each release of the query holds one record per case (no two runs share a suite: see
    `Store._one_run_per_suite`), so the per-case GROUP BY over a million records can be skipped (issue 15: the
    paired and regression queries' shortcut). A gate predicate over a case's repeats keeps the grouped query."""
    pred = gate_predicate(q.gate_metric) if q.gate_metric else None
    if pred is not None and pred[1]:
        return False, False
    return store._one_run_per_suite(q.candidate), bool(q.baseline) and store._one_run_per_suite(q.baseline or "")


def _parts(q: CaseQuery, params: dict[str, Any], one: tuple[bool, bool] = (False, False)) -> tuple[str, str]:
    """(c, b): the candidate's cases kept by the filters (one row per case, with a `keep` column already applied)
    and the baseline's (one row per case). With `one` (per release: one record per case) a release's rows are its
    records, read directly: each per-case aggregate of a single record is that record's value."""
    from dashboard.store.db import _per_case_sql, _slice_sql

    if q.kind not in OUTCOMES or q.sort not in SORTS:
        raise ValueError(f"unknown case list {q.kind!r} / sort {q.sort!r}")
    where, _group, params = _slice_sql(q.spec, params)
    params.update(cand=q.candidate, base=q.baseline or "", score=q.score or "")
    # Each filter as a per-record condition; over a case's records it holds when it holds for some record.
    conds: list[str] = []
    having = ["TRUE"]
    if q.check:
        conds.append("checks[$check] = $check_value")
        params.update(check=q.check, check_value=q.check_value)
    if q.search:
        conds.append("contains(lower(concat_ws(chr(10), case_id, input, output, expected)), $search)")
        params["search"] = q.search[:MAX_SEARCH].lower()
    if q.gate_metric:
        pred = gate_predicate(q.gate_metric)
        if pred is None:
            having.append("FALSE")
        elif pred[1]:
            having.append("(" + pred[0] + ")")
        else:
            conds.append(f"coalesce(({pred[0]}), false)")
        if pred and "$thr" in pred[0]:
            params["thr"] = q.gate_threshold
        tool = tool_metric(q.gate_metric)
        if pred and tool is not None:
            params["gk"] = tool.key
            if "$gt" in pred[0]:
                params["gt"] = tool.threshold
    # The one definition of "the same case" (store.db._case_pairs_sql): one designated repeat per case, and a
    # regression or fix only where suite, case id and that repeat's content digest agree.
    if one[0]:
        keep = " AND ".join(having + [f"({c})" for c in conds])
        cand = _per_case_sql("$cand", where, one_record=True,
                             extra=", slices['task'] AS task, latency_ms, cost_usd, error, scores[$score] AS score, "
                                   f"({keep}) AS keep")
    else:
        keep = " AND ".join(having + [f"bool_or({c})" for c in conds])
        cand = _per_case_sql("$cand", where,
                             extra=", arg_min(slices['task'], run_id) AS task, avg(latency_ms) AS latency_ms, "
                                   "sum(cost_usd) AS cost_usd, arg_min(error, run_id) AS error, "
                                   f"avg(scores[$score]) AS score, ({keep}) AS keep")
    base = _per_case_sql("$base", extra=", scores[$score] AS score" if one[1] else ", avg(scores[$score]) AS score",
                         one_record=one[1])
    return f"SELECT * FROM ({cand}) WHERE keep", base  # noqa: S608


_SELECT = """SELECT c.case_id, c.suite, c.risk, c.task, c.passed AS candidate_passed,
               b.passed AS baseline_passed, c.repeats, c.latency_ms, c.cost_usd, c.score, b.score AS baseline_score,
               c.score - b.score AS score_change, c.error"""
_SAME_CASE = "ON c.suite = b.suite AND c.case_id = b.case_id AND c.content_digest = b.content_digest"


def _order(q: CaseQuery) -> str:
    """A total order (suite and case id name one case)."""
    return f"ORDER BY {SORTS[q.sort]} {'DESC' if q.descending else 'ASC'} NULLS LAST, {RISK_ORDER}, c.suite, c.case_id"


def _sql(q: CaseQuery, params: dict[str, Any], one: tuple[bool, bool] = (False, False)) -> str:
    cand, base = _parts(q, params, one)
    return f"""
        WITH c AS ({cand}), b AS ({base})
        {_SELECT}
        FROM c {"JOIN" if q.kind in ("regressions", "fixes") else "LEFT JOIN"} b {_SAME_CASE}
        WHERE {OUTCOMES[q.kind]}
        {_order(q)}
    """  # noqa: S608


def case_list(store: Store, q: CaseQuery, limit: int = 50, offset: int = 0,
              one: tuple[bool, bool] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(number of matching cases, one page of them). `one` overrides `_one_record` (tests compare both paths).

    Issue 15: failures and all cases (a LEFT JOIN on the baseline's one row per case, so the join neither adds nor
    drops candidate rows) are counted on the candidate alone, and their page is cut before the baseline is joined
    when the order does not need the baseline; regressions and fixes are counted and paged in one pass."""
    if q.kind in ("regressions", "fixes") and not q.baseline:
        return 0, []
    params: dict[str, Any] = {}
    one = _one_record(store, q) if one is None else one
    page = {"limit": min(max(limit, 1), MAX_PAGE), "offset": max(offset, 0)}
    if q.kind in ("failed", "all"):
        cand, base = _parts(q, params, one)
        total = store.query(f"SELECT count(*) FROM ({cand}) c WHERE {OUTCOMES[q.kind]}",  # noqa: S608
                            {k: v for k, v in params.items() if k != "base"})[0][0]
        if "b." in SORTS[q.sort]:  # sorted by a baseline value: join first
            rows = store.query(f"{_sql(q, params, one)} LIMIT $limit OFFSET $offset", {**params, **page})
        else:
            rows = store.query(
                f"""WITH c AS (SELECT * FROM ({cand}) c WHERE {OUTCOMES[q.kind]} {_order(q)}
                               LIMIT $limit OFFSET $offset), b AS ({base})
                    {_SELECT} FROM c LEFT JOIN b {_SAME_CASE} {_order(q)}""", {**params, **page})  # noqa: S608
        return int(total), [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    cand, base = _parts(q, params, one)
    rows = store.query(
        f"""WITH c AS ({cand}), b AS ({base})
            {_SELECT}, count(*) OVER () AS total FROM c JOIN b {_SAME_CASE}
            WHERE {OUTCOMES[q.kind]} {_order(q)} LIMIT $limit OFFSET $offset""", {**params, **page})  # noqa: S608
    if rows:
        total = rows[0][-1]
    else:  # past the last page (or nothing matches): count on its own
        total = store.query(f"SELECT count(*) FROM ({_sql(q, params, one)})", params)[0][0]  # noqa: S608
    return int(total), [dict(zip(COLUMNS, r[:-1], strict=True)) for r in rows]


def csv_safe_sql(column: str) -> str:
    """A text column as a spreadsheet cannot execute it: a leading = + - @ tab or CR gets a quote prefix."""
    return f"CASE WHEN regexp_matches({column}, '^[=+\\-@\\t\\r]') THEN '''' || {column} ELSE {column} END"


def export_cases(store: Store, q: CaseQuery, fmt: str, batch_rows: int = 10_000) -> bytes:
    """The whole filtered list as CSV (formula-safe) or Parquet, streamed from DuckDB in record batches."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}")
    if q.kind in ("regressions", "fixes") and not q.baseline:
        q = CaseQuery(**{**q.__dict__, "kind": "failed"})
    params: dict[str, Any] = {}
    sql = _sql(q, params, _one_record(store, q))
    cols = [csv_safe_sql(f"x.{c}") + f" AS {c}" if fmt == "csv" and c in TEXT_COLUMNS else f"x.{c}"
            for c in COLUMNS]
    import pyarrow.csv as pa_csv  # here, not at import: the sidebar reads this module before the banner (issue 15)
    import pyarrow.parquet as pq

    cur = store.cursor()
    out = io.BytesIO()
    try:
        reader = cur.sql(f"SELECT {', '.join(cols)} FROM ({sql}) x", params=params).to_arrow_reader(batch_rows)  # noqa: S608
        writer: Any = (pq.ParquetWriter(out, reader.schema, compression="zstd") if fmt == "parquet"
                       else pa_csv.CSVWriter(out, reader.schema))
        with writer:
            for batch in reader:
                writer.write_batch(batch)
    finally:
        cur.close()
    return out.getvalue()


def csv_safe(value: object) -> object:
    """One cell of a CSV the project writes, formula-safe (the same rule as `csv_safe_sql`)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def score_names(store: Store, release_ids: list[str]) -> list[str]:
    rows = store.query("SELECT DISTINCT unnest(map_keys(scores)) FROM cases WHERE list_contains($r, release_id) "
                       "ORDER BY 1", {"r": list(release_ids)})
    return [r[0] for r in rows]


# Bounds that keep every page fast whatever one case holds (issue 12 item 7): the ingest caps slice keys per case,
# the dashboard also never lists more than this.
MAX_DIMENSIONS = 50  # slice dimensions offered
MAX_KEYS_PER_CASE = 256  # a case with more slice keys is not used to discover dimensions
MAX_VALUES = 500  # values offered for one dimension
MAX_RECORD_SLICES = 100  # slice entries shown for one case record


def _from_stats(store: Store, release_ids: list[str]) -> bool:
    """Whether every release's cases are summed up in `run_stats` (store/stats.py): then the filter options come from
    its groups (a few hundred rows per release: each group is one (run, risk, suite, slices) combination with its
    case count) instead of a scan of every case's maps (issue 15); the same keys, values and counts."""
    from dashboard.store import stats

    return bool(release_ids) and all(stats.usable(store, r) for r in release_ids)


def slice_dimensions(store: Store, release_ids: list[str], use_stats: bool = True) -> list[str]:
    """risk, suite, then the most common slice dimensions (bounded), alphabetically."""
    params = {"r": list(release_ids), "per_case": MAX_KEYS_PER_CASE, "limit": MAX_DIMENSIONS}
    if use_stats and _from_stats(store, list(release_ids)):
        from dashboard.store.stats import STATS_FORMAT

        rows = store.query(
            """SELECT k FROM (SELECT unnest(map_keys(slices)) AS k, n FROM run_stats
                              WHERE list_contains($r, release_id) AND stats_format = $f AND metric = 'cases'
                              AND cardinality(slices) <= $per_case)
               GROUP BY k ORDER BY sum(n) DESC, k LIMIT $limit""", {**params, "f": STATS_FORMAT})
        return ["risk", "suite"] + sorted(r[0] for r in rows)
    rows = store.query(
        """SELECT k FROM (SELECT unnest(map_keys(slices)) AS k FROM cases
                          WHERE list_contains($r, release_id) AND cardinality(slices) <= $per_case)
           GROUP BY k ORDER BY count(*) DESC, k LIMIT $limit""", params)
    return ["risk", "suite"] + sorted(r[0] for r in rows)


def slice_values(store: Store, release_ids: list[str], dimension: str, use_stats: bool = True) -> list[str]:
    table, extra, params = "cases", "", {"r": list(release_ids), "limit": MAX_VALUES}
    if use_stats and _from_stats(store, list(release_ids)):
        from dashboard.store.stats import STATS_FORMAT

        table, extra = "run_stats", "AND stats_format = $f AND metric = 'cases'"
        params["f"] = STATS_FORMAT
    if dimension in ("risk", "suite"):
        rows = store.query(f"SELECT DISTINCT {dimension} FROM {table} WHERE list_contains($r, release_id) "  # noqa: S608
                           f"{extra} ORDER BY 1 LIMIT $limit", params)
    else:
        rows = store.query(f"""SELECT DISTINCT slices[$d] AS v FROM {table} WHERE list_contains($r, release_id)
                               {extra} AND slices[$d] IS NOT NULL ORDER BY 1 LIMIT $limit""",  # noqa: S608
                           {**params, "d": dimension})
    return [r[0] for r in rows]


def case_records(store: Store, release_id: str, suite: str, case_id: str) -> list[dict[str, Any]]:
    """Every stored record of one case in one release (one per run), with at most MAX_RECORD_SLICES slices."""
    cur = store.cursor()
    try:
        cur.execute("""SELECT * EXCLUDE (release_id, source_digest, slices),
                              map_from_entries(list_slice(map_entries(slices), 1, $n)) AS slices,
                              cardinality(slices) AS slice_count
                       FROM cases WHERE release_id = $r AND suite = $s AND case_id = $c ORDER BY run_id""",
                    {"r": release_id, "s": suite, "c": case_id, "n": MAX_RECORD_SLICES})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        cur.close()


def stored_policies(store: Store) -> list[tuple[str, str, str, str]]:
    """(digest, policy id, version, policy JSON) of every policy the store keeps, newest first."""
    rows = store.query("SELECT policy_digest, policy_id, version, policy_json FROM policies "
                       "ORDER BY policy_id, version DESC, policy_digest")
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
