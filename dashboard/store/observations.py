"""Production observations in the store: ingest (one transaction, idempotent by file digest), and the SQL that
aggregates them for the canary judge and the shadow comparison. The only SQL about observations is here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from dashboard.core.canonical import file_digest
from dashboard.core.errors import InputRefused, Problem
from dashboard.core.observations import FLAG_SIGNALS, Observation
from dashboard.store.db import Batch, Store
from dashboard.store.schema import OBSERVATION_COLUMNS


class ObservationFile(BaseModel):
    """What `readiness observe` did with one file."""

    path: str = Field(description="The file as named on the command line.")
    format: str = Field(description="jsonl, parquet or otlp.")
    source_digest: str = Field(description="sha256 of the file's bytes.")
    status: str = Field(description="ingested, or unchanged when these bytes were already stored for the release.")
    records: int = Field(description="Observations in the file.")
    variants: dict[str, int] = Field(default_factory=dict, description="Observations per variant.")


class ObserveReport(BaseModel):
    """The result of one `readiness observe` call (one transaction)."""

    release_id: str = Field(description="The release the observations belong to.")
    files: list[ObservationFile] = Field(description="One entry per file, in the order given.")


_ARROW: dict[str, pa.DataType] = {
    "release_id": pa.string(), "variant": pa.string(), "request_id": pa.string(),
    "time": pa.timestamp("us", tz="UTC"), "tenant": pa.string(), "slices": pa.map_(pa.string(), pa.string()),
    "error": pa.bool_(), "latency_ms": pa.float64(), "cost_usd": pa.float64(), "input_tokens": pa.int64(),
    "output_tokens": pa.int64(), "feedback": pa.string(),
    **{f: pa.bool_() for f in FLAG_SIGNALS if f != "error"},
    "scores": pa.map_(pa.string(), pa.float64()), "answer": pa.string(), "retrieved_ids": pa.list_(pa.string()),
    "tool_calls": pa.list_(pa.struct([("name", pa.string()), ("side_effect", pa.bool_()), ("error", pa.bool_())])),
    "model": pa.string(), "operation": pa.string(), "trace_id": pa.string(), "span_id": pa.string(), "source_digest": pa.string(),
}


def observations_table(observations: Sequence[Observation], source_digest: str) -> pa.Table:
    """Observations as an Arrow table in the store's column order."""
    cols: dict[str, list[Any]] = {c: [] for c in OBSERVATION_COLUMNS}
    for o in observations:
        d = o.model_dump()
        for c in OBSERVATION_COLUMNS:
            if c == "source_digest":
                cols[c].append(source_digest)
            elif c in ("slices", "scores"):
                cols[c].append(list(d[c].items()))
            elif c == "time":
                cols[c].append(d[c].astimezone(UTC))
            else:
                cols[c].append(d[c])
    return pa.table({c: pa.array(v, type=_ARROW[c]) for c, v in cols.items()})


def put_observation_file(batch: Batch, release_id: str, path: Path, fmt: str,
                         rows: list[tuple[str, Observation]]) -> ObservationFile:
    """Store one file's observations (read by dashboard/importers/observations.py) inside an ingest transaction.
    A file whose bytes were stored for the release before is `unchanged`; a request id already stored for the
    release and variant (from another file) is refused, naming the line: a stored observation never changes."""
    cur = batch.cursor
    digest = file_digest(str(path))
    seen = cur.execute("SELECT records, format FROM observation_sources WHERE release_id = ? AND "
                       "source_digest = ?", [release_id, digest]).fetchall()
    counts: dict[str, int] = {}
    for _, o in rows:
        counts[str(o.variant)] = counts.get(str(o.variant), 0) + 1
    if seen:
        return ObservationFile(path=str(path), format=fmt, source_digest=digest, status="unchanged",
                               records=int(seen[0][0]), variants=counts)
    table = observations_table([o for _, o in rows], digest)
    cur.register("new_observations", table)
    try:
        clash = cur.execute(
            """SELECT n.variant, n.request_id FROM new_observations n JOIN observations o
               ON o.release_id = n.release_id AND o.variant = n.variant AND o.request_id = n.request_id
               LIMIT 1""").fetchall()
        if clash:
            where = next(w for w, o in rows if (o.variant, o.request_id) == tuple(clash[0]))
            raise InputRefused([Problem(str(path), where, "request_id",
                                        f"{clash[0][1]!r} ({clash[0][0]}) is already stored for release "
                                        f"{release_id!r} from another file; a stored observation never "
                                        "changes")])
        cols = ", ".join(f'"{c}"' for c in OBSERVATION_COLUMNS)
        cur.execute(f"INSERT INTO observations ({cols}) SELECT {cols} FROM new_observations")  # noqa: S608
    finally:
        cur.unregister("new_observations")
    cur.execute("INSERT INTO observation_sources VALUES (?, ?, ?, ?, ?, ?)",
                [release_id, digest, str(path), fmt, len(rows), datetime.now(UTC)])
    return ObservationFile(path=str(path), format=fmt, source_digest=digest, status="ingested",
                           records=len(rows), variants=counts)


def observation_generation(store: Store) -> str:
    """Changes whenever observations are ingested: a cache key for the dashboard."""
    row = store.query("SELECT count(*) || '/' || coalesce(max(ingested_at)::VARCHAR, '') FROM observation_sources")
    return str(row[0][0])


def observation_counts(store: Store) -> list[dict[str, Any]]:
    """Stored observations per release and variant, with their time span."""
    rows = store.query("""SELECT release_id, variant, count(*), min(time), max(time) FROM observations
                          GROUP BY ALL ORDER BY min(time), release_id, variant""")
    return [{"release_id": r[0], "variant": r[1], "requests": r[2], "first": r[3], "last": r[4]} for r in rows]


# ----- the canary judge's statistics ------------------------------------------------------------------------------
def _signal_expr(name: str, params: dict[str, Any], i: int) -> str:
    """The per-request value of a signal as SQL (NULL when the request does not carry it); user text is a parameter."""
    from dashboard.core.canary_policy import BUILTIN_SIGNALS, latency_bound, score_name

    if name == "negative_feedback":
        return "CASE feedback WHEN 'negative' THEN 1.0 WHEN 'positive' THEN 0.0 END"
    if name in BUILTIN_SIGNALS:
        assert name.replace("_", "").isalpha()  # a fixed column name
        return f'CAST("{name}" AS DOUBLE)'
    bound = latency_bound(name)
    if bound is not None:
        params[f"p{i}"] = float(bound)
        return f"CASE WHEN latency_ms IS NULL THEN NULL ELSE CAST(latency_ms > ${'p' + str(i)} AS DOUBLE) END"
    score = score_name(name)
    if score is not None:
        params[f"p{i}"] = score
        return f"scores[${'p' + str(i)}]"
    raise InputRefused(f"unknown signal {name!r}")


def canary_looks(store: Store, canary_release: str, baseline_release: str, signals: Sequence[str],
                 since: datetime | None = None, step: int | None = None) -> dict[str, Any]:
    """Cumulative statistics of each signal, canary (variant canary of `canary_release`) and baseline (variant
    baseline of `baseline_release`) over the canary's time window (from `since`), at every `step`-th canary
    request and at the end. One aggregate query: per variant and look, count, sum and sum of squares."""
    from dashboard.core.canary import Moments

    where_since = "AND time >= $since" if since is not None else ""
    base: dict[str, Any] = {"c": canary_release}
    if since is not None:
        base["since"] = since
    w = store.query(f"SELECT min(time), max(time), count(*) FROM observations WHERE release_id = $c AND "  # noqa: S608
                    f"variant = 'canary' {where_since}", base)
    start, end, n_canary = w[0]
    result: dict[str, Any] = {"start": start, "end": end, "canary_requests": int(n_canary), "baseline_requests": 0,
                              "looks": []}
    if not n_canary:
        n_base = store.query(f"SELECT count(*) FROM observations WHERE release_id = $b AND "  # noqa: S608
                             f"variant = 'baseline' {where_since}",
                             {"b": baseline_release, **({"since": since} if since is not None else {})})
        result["baseline_requests"] = int(n_base[0][0])
        return result
    bounds: list[Any] = []
    if step:
        bounds = [r[0] for r in store.query(
            f"""SELECT time FROM (SELECT time, row_number() OVER (ORDER BY time, request_id) AS rn  -- noqa
                FROM observations WHERE release_id = $c AND variant = 'canary' {where_since})
                WHERE rn % $step = 0 ORDER BY rn""", {**base, "step": int(step)})]  # noqa: S608
    if not bounds or bounds[-1] != end:
        bounds.append(end)
    params: dict[str, Any] = {"c": canary_release, "b": baseline_release, "start": start, "end": end,
                              "bounds": bounds}
    exprs = [_signal_expr(name, params, i) for i, name in enumerate(signals)]
    inner = ", ".join(f"{e} AS e{i}" for i, e in enumerate(exprs))
    aggs = ", ".join(f"count(e{i}), coalesce(sum(e{i}), 0), coalesce(sum(e{i} * e{i}), 0)" for i in range(len(exprs)))
    rows = store.query(
        f"""SELECT variant, len(list_filter($bounds, lambda b: b < time)) AS look, count(*), {aggs}
            FROM (SELECT variant, time, {inner} FROM observations
                  WHERE ((release_id = $c AND variant = 'canary') OR (release_id = $b AND variant = 'baseline'))
                    AND time >= $start AND time <= $end)
            GROUP BY ALL""", params)  # noqa: S608 (expressions built from validated names; values are parameters)
    k = len(signals)
    acc = {v: [[0.0] * (1 + 3 * k) for _ in bounds] for v in ("canary", "baseline")}
    for row in rows:
        look = min(int(row[1]), len(bounds) - 1)
        acc[row[0]][look] = [float(x) for x in row[2:]]
    looks = []
    running = {v: [0.0] * (1 + 3 * k) for v in acc}
    for j, t in enumerate(bounds):
        for v in acc:
            running[v] = [a + b for a, b in zip(running[v], acc[v][j], strict=True)]
        stats = {name: tuple(Moments(n=running[v][1 + 3 * i], total=running[v][2 + 3 * i],
                                     squares=running[v][3 + 3 * i]) for v in ("canary", "baseline"))
                 for i, name in enumerate(signals)}
        looks.append({"requests": int(running["canary"][0]), "baseline_requests": int(running["baseline"][0]),
                      "time": t, "stats": stats})
    result["baseline_requests"] = looks[-1]["baseline_requests"]
    result["looks"] = looks
    return result


# ----- shadow comparison -----------------------------------------------------------------------------------------
RBO_P = 0.9  # rank-biased overlap's persistence: the top 10 ranks carry ~65% of the weight

_NORM = "trim(regexp_replace(regexp_replace(lower({x}), '[^\\p{{L}}\\p{{N}}\\s]', ' ', 'g'), '\\s+', ' ', 'g'))"

# Shadow requests of $s paired with the production (baseline) requests of $b by request id, with per-pair measures.
_PAIRS_SQL = f"""
WITH s AS (SELECT * FROM observations WHERE release_id = $s AND variant = 'shadow'),
     p AS (SELECT * FROM observations WHERE release_id = $b AND variant = 'baseline'),
     joined AS (
       SELECT p.request_id, p.time, coalesce(p.tenant, s.tenant) AS tenant, p.slices,
              p.answer AS prod_answer, s.answer AS shadow_answer,
              p.retrieved_ids AS prod_ids, s.retrieved_ids AS shadow_ids,
              s.latency_ms - p.latency_ms AS latency_delta, s.cost_usd - p.cost_usd AS cost_delta,
              p.latency_ms AS prod_latency, p.cost_usd AS prod_cost, p.scores AS prod_scores,
              s.scores AS shadow_scores,
              {_NORM.format(x="p.answer")} AS prod_norm, {_NORM.format(x="s.answer")} AS shadow_norm
       FROM p JOIN s USING (request_id))
SELECT *,
       CASE WHEN prod_answer IS NULL OR shadow_answer IS NULL THEN NULL ELSE prod_answer = shadow_answer END AS exact,
       CASE WHEN prod_answer IS NULL OR shadow_answer IS NULL THEN NULL ELSE prod_norm = shadow_norm END AS normalised,
       CASE WHEN prod_answer IS NULL OR shadow_answer IS NULL THEN NULL
            WHEN prod_norm = shadow_norm THEN 1.0
            ELSE len(list_intersect(list_distinct(string_split(prod_norm, ' ')), list_distinct(string_split(shadow_norm, ' '))))
                 / greatest(1, len(list_distinct(list_concat(string_split(prod_norm, ' '), string_split(shadow_norm, ' '))))) END
         AS answer_similarity,
       CASE WHEN prod_ids IS NULL OR shadow_ids IS NULL THEN NULL
            WHEN len(prod_ids) = 0 AND len(shadow_ids) = 0 THEN 1.0
            ELSE len(list_intersect(list_distinct(prod_ids), list_distinct(shadow_ids)))
                 / len(list_distinct(list_concat(prod_ids, shadow_ids))) END AS jaccard,
       CASE WHEN prod_ids IS NULL OR shadow_ids IS NULL THEN NULL
            WHEN len(prod_ids) = 0 AND len(shadow_ids) = 0 THEN 1.0
            ELSE (1 - {RBO_P}) / (1 - pow({RBO_P}, greatest(len(prod_ids), len(shadow_ids)))) * list_sum(list_transform(
                   range(1, greatest(len(prod_ids), len(shadow_ids)) + 1),
                   lambda d: pow({RBO_P}, d - 1) * len(list_intersect(list_distinct(prod_ids[1:d]), list_distinct(shadow_ids[1:d]))) / d))
       END AS rbo
FROM joined
"""  # noqa: S608 (fixed SQL; the release ids are parameters)


def _moments_sql(col: str) -> str:
    return f"count({col}), avg({col}), stddev_samp({col})"


def shadow_comparison(store: Store, shadow_release: str, baseline_release: str, top: int = 20) -> dict[str, Any]:
    """Everything the shadow report needs, aggregated in SQL: overall and per-slice agreement, retrieval overlap,
    latency and cost deltas (count, mean, sd), evaluator score deltas, side-effect calls, the most-disagreeing
    pairs."""
    params = {"s": shadow_release, "b": baseline_release}
    counts = store.query("""SELECT (SELECT count(*) FROM observations WHERE release_id = $s AND variant = 'shadow'),
                                   (SELECT count(*) FROM observations WHERE release_id = $b AND variant = 'baseline')""",
                         params)[0]
    measures = (f"count(*), avg(exact::DOUBLE), count(exact), avg(normalised::DOUBLE), avg(answer_similarity), "
                f"{_moments_sql('jaccard')}, {_moments_sql('rbo')}, {_moments_sql('latency_delta')}, "
                f"{_moments_sql('cost_delta')}, avg(prod_latency), avg(prod_cost)")
    names = ["pairs", "exact", "answered", "normalised", "answer_similarity", "jaccard_n", "jaccard", "jaccard_sd",
             "rbo_n", "rbo", "rbo_sd", "latency_n", "latency_delta", "latency_sd", "cost_n", "cost_delta", "cost_sd",
             "prod_latency", "prod_cost"]
    overall = dict(zip(names, store.query(f"SELECT {measures} FROM ({_PAIRS_SQL})", params)[0], strict=True))  # noqa: S608
    slice_rows = store.query(
        f"""SELECT e.key AS dim, coalesce(e.value, '(none)') AS val, {measures} FROM (
              SELECT *, unnest(list_concat([{{'key': 'tenant', 'value': tenant}}], map_entries(slices))) AS e
              FROM ({_PAIRS_SQL}))
            GROUP BY ALL ORDER BY dim, val""", params)  # noqa: S608
    slices = [dict(zip(["dimension", "value", *names], r, strict=True)) for r in slice_rows]
    scores = [dict(zip(["score", "n", "delta", "sd"], r, strict=True)) for r in store.query(
        f"""SELECT k, count(d), avg(d), stddev_samp(d) FROM (
              SELECT k, shadow_scores[k] - prod_scores[k] AS d
              FROM (SELECT *, unnest(map_keys(shadow_scores)) AS k FROM ({_PAIRS_SQL})))
            WHERE d IS NOT NULL GROUP BY k ORDER BY k""", params)]  # noqa: S608
    side = store.query(
        """SELECT request_id, list_transform(list_filter(tool_calls, lambda t: t.side_effect), lambda t: t.name)
           FROM observations WHERE release_id = $s AND variant = 'shadow'
             AND list_bool_or(list_transform(tool_calls, lambda t: coalesce(t.side_effect, false)))
           ORDER BY request_id""", {"s": shadow_release})
    worst_cols = ["request_id", "tenant", "slices", "exact", "normalised", "answer_similarity", "jaccard", "rbo",
                  "latency_delta", "cost_delta"]
    worst = [dict(zip(worst_cols, r, strict=True)) for r in store.query(
        f"""SELECT {', '.join(worst_cols)} FROM ({_PAIRS_SQL})
            ORDER BY coalesce(normalised::INT, 1), coalesce(answer_similarity, 1) + coalesce(rbo, 1), request_id
            LIMIT $top""", {**params, "top": int(top)})]  # noqa: S608
    for w in worst:
        w["slices"] = dict(w["slices"] or {})
    return {"shadow_requests": int(counts[0]), "baseline_requests": int(counts[1]), "overall": overall,
            "slices": slices, "scores": scores, "side_effects": [(r[0], list(r[1])) for r in side], "worst": worst}


def shadow_pair(store: Store, shadow_release: str, baseline_release: str, request_id: str) -> dict[str, Any]:
    """The production and the shadow record of one request, for showing them side by side."""
    cols = ["request_id", "time", "tenant", "slices", "answer", "retrieved_ids", "tool_calls", "scores", "latency_ms",
            "cost_usd", "error", "citation_failure", "refusal"]
    out: dict[str, Any] = {}
    for who, release, variant in (("production", baseline_release, "baseline"), ("shadow", shadow_release, "shadow")):
        rows = store.query(f"SELECT {', '.join(cols)} FROM observations WHERE release_id = ? AND variant = ? "  # noqa: S608
                           "AND request_id = ?", [release, variant, request_id])
        out[who] = dict(zip(cols, rows[0], strict=True)) if rows else None
    return out
