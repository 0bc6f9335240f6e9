"""The store's tables. The `cases` columns mirror `dashboard.core.models.EvalCase` field by field
(a test keeps them in step).

Tables
- releases: one row per release: its manifest (canonical JSON) and the manifest's digest.
- sources: one row per ingested file: its sha256, format and record count (re-ingest is a no-op).
- runs: one row per eval run: suite, dataset and version, case / pass / fail counts, the source digest.
- cases: one row per eval case of a run (release_id, run_id, case_id unique), with the digest of
  the file it came from.
- policies: gate policies seen by the gate engine, by digest.
- evidence: non-eval evidence attached to a release (secrets scan, rollback plan, ...).
- decisions: gate decisions that reviews were signed against, by digest (canonical JSON).
- decision_cache: gate decisions by the digest of everything they judged (dashboard/service.py:judged_key), so CI's
  `readiness gate` and the dashboard judge a selection once; a row whose JSON does not match its digest is ignored.
- run_stats: per-run sufficient statistics (dashboard/store/stats.py): every additive metric component per
  (run, risk, suite, slices) group, written in the ingest's transaction, so gates read groups rather than cases.
- review_log: the append-only, hash-chained log of signed envelopes (bytes as received): reviews and admin
  events (trust-root changes, governing policies). Format 2: `statement_id` (digest of what was signed) is
  unique, so a re-encoded copy of a statement is a replay; `kind`, `reviewer`, `reviewed_at` are derived
  from the envelope for admission checks only (verification recomputes everything from the envelope).
- log_meta: this store's log id; checkpoints: signed (size, head) checkpoints issued for the log.
"""

from __future__ import annotations

STEP_TYPE = (
    "STRUCT(tool VARCHAR, args_digest VARCHAR, authorized BOOLEAN, forbidden BOOLEAN, "
    "approval_required BOOLEAN, approved BOOLEAN, approval_id VARCHAR)"
)

# Native record field -> DuckDB type. Order is the column order of `cases` after the key columns.
CASE_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR",
    "case_id": "VARCHAR",
    "suite": "VARCHAR",
    "dataset": "VARCHAR",
    "dataset_version": "VARCHAR",
    "content_digest": "VARCHAR",
    "risk": "VARCHAR",
    "slices": "MAP(VARCHAR, VARCHAR)",
    "passed": "BOOLEAN",
    "scores": "MAP(VARCHAR, DOUBLE)",
    "checks": "MAP(VARCHAR, BOOLEAN)",
    "counters": "MAP(VARCHAR, BIGINT)",
    "judge_model": "VARCHAR",
    "scorer_version": "VARCHAR",
    "retrieval": "STRUCT(retrieved_ids VARCHAR[], relevant_ids VARCHAR[], identifier_ids VARCHAR[], "
    "metadata_complete BOOLEAN)",
    "trajectory": f"STRUCT(steps {STEP_TYPE}[], required_nodes VARCHAR[], reached_nodes VARCHAR[], "
    "final_status VARCHAR)",
    "latency_ms": "DOUBLE",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cost_usd": "DOUBLE",
    "retries": "BIGINT",
    "error": "VARCHAR",
    "trace": "STRUCT(request_id VARCHAR, prompt_version VARCHAR, model_version VARCHAR, index_version VARCHAR, "
    "tool_version VARCHAR, workflow_version VARCHAR, evidence_ids VARCHAR[])",
    "input": "VARCHAR",
    "output": "VARCHAR",
    "expected": "VARCHAR",
}

DDL = [
    """CREATE TABLE IF NOT EXISTS releases (
        release_id VARCHAR PRIMARY KEY,
        application_version VARCHAR NOT NULL,
        environment VARCHAR NOT NULL,
        baseline_release_id VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        created_by VARCHAR NOT NULL,
        manifest_json VARCHAR NOT NULL,
        manifest_digest VARCHAR NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sources (
        release_id VARCHAR NOT NULL,
        source_digest VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        records BIGINT NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (release_id, source_digest)
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        release_id VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        suite VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        dataset_version VARCHAR NOT NULL,
        source_digest VARCHAR NOT NULL,
        cases BIGINT NOT NULL,
        passed BIGINT NOT NULL,
        failed BIGINT NOT NULL,
        data_digest VARCHAR NOT NULL,
        PRIMARY KEY (release_id, run_id)
    )""",
    "CREATE TABLE IF NOT EXISTS cases (release_id VARCHAR NOT NULL, "
    + ", ".join(f'"{name}" {typ}' for name, typ in CASE_COLUMNS.items())
    + ", source_digest VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS policies (
        policy_digest VARCHAR PRIMARY KEY,
        policy_id VARCHAR NOT NULL,
        version VARCHAR NOT NULL,
        policy_json VARCHAR NOT NULL,
        first_seen_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_digest VARCHAR PRIMARY KEY,
        release_id VARCHAR NOT NULL,
        decision_json VARCHAR NOT NULL,
        stored_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS decision_cache (
        judged_key VARCHAR PRIMARY KEY,
        decision_digest VARCHAR NOT NULL,
        decision_json VARCHAR NOT NULL,
        stored_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS review_log (
        seq BIGINT PRIMARY KEY,
        release_id VARCHAR NOT NULL,
        prev_hash VARCHAR NOT NULL,
        envelope BLOB NOT NULL,
        envelope_hash VARCHAR NOT NULL UNIQUE,
        received_at TIMESTAMPTZ NOT NULL,
        entry_hash VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        statement_id VARCHAR NOT NULL UNIQUE,
        reviewer VARCHAR,
        reviewed_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS log_meta (log_id VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        size BIGINT NOT NULL,
        head VARCHAR NOT NULL,
        envelope BLOB NOT NULL,
        issued_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evidence (
        release_id VARCHAR PRIMARY KEY,
        evidence_json VARCHAR NOT NULL,
        evidence_digest VARCHAR NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL
    )""",
    # rollout_evidence: a release's rollout records (rollback drills, flags, experiments, incidents, tier runs,
    # artifact digests); append-only like evidence (dashboard/store/rollout.py).
    """CREATE TABLE IF NOT EXISTS rollout_evidence (
        release_id VARCHAR PRIMARY KEY,
        evidence_json VARCHAR NOT NULL,
        evidence_digest VARCHAR NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL
    )""",
]

# Production observations (dashboard/core/observations.py, dashboard/store/observations.py): one row per request a
# release served as baseline, canary or shadow; observation_sources: one row per ingested observation file.
OBSERVATION_COLUMNS: dict[str, str] = {
    "release_id": "VARCHAR NOT NULL",
    "variant": "VARCHAR NOT NULL",
    "request_id": "VARCHAR NOT NULL",
    "time": "TIMESTAMPTZ NOT NULL",
    "tenant": "VARCHAR",
    "slices": "MAP(VARCHAR, VARCHAR)",
    "error": "BOOLEAN",
    "latency_ms": "DOUBLE",
    "cost_usd": "DOUBLE",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "feedback": "VARCHAR",
    "citation_failure": "BOOLEAN",
    "refusal": "BOOLEAN",
    "tool_error": "BOOLEAN",
    "safety_alert": "BOOLEAN",
    "schema_failure": "BOOLEAN",
    "approval_bypass": "BOOLEAN",
    "fallback": "BOOLEAN",
    "scores": "MAP(VARCHAR, DOUBLE)",
    "answer": "VARCHAR",
    "retrieved_ids": "VARCHAR[]",
    "tool_calls": "STRUCT(name VARCHAR, side_effect BOOLEAN, error BOOLEAN)[]",
    "model": "VARCHAR",
    "operation": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "source_digest": "VARCHAR NOT NULL",
}
DDL += [
    "CREATE TABLE IF NOT EXISTS observations (" + ", ".join(f'"{c}" {t}' for c, t in OBSERVATION_COLUMNS.items()) + ")",
    """CREATE TABLE IF NOT EXISTS observation_sources (
        release_id VARCHAR NOT NULL,
        source_digest VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        records BIGINT NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS run_stats (
        release_id VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        risk VARCHAR,
        suite VARCHAR,
        slices MAP(VARCHAR, VARCHAR),
        stats_format VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        a DECIMAL(38, 12),
        b DECIMAL(38, 12),
        n BIGINT
    )""",
]
