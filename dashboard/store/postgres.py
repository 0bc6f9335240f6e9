"""The review log shared through PostgreSQL, for a team on several machines (`$READINESS_STORE=postgresql://…`).

What lives in PostgreSQL here: the review log (the hash chain of signed reviews and admin events), its log id and
checkpoints, and the gate decisions reviews were signed against. With a data location too (`--data`), the team
store (dashboard/store/team.py) keeps releases, runs, sources, policies and evidence there as well; without one,
they stay in each machine's embedded DuckDB file (`--db`), which each machine fills with `readiness ingest` of the
same files (ingest is idempotent and content-addressed, so the same files give the same manifest and data digests
everywhere; verification checks reviews against those digests). The decision cache is never shared: each machine
keeps its own in its file, so a machine whose copy was edited by hand cannot decide for the others.

Appends are serialised across every process and machine by a transaction-scoped lock on the log table, taken
before the chain's head is read, so concurrent signers never fork the chain; the unique constraints are a second
line of defence. The schema carries a version (`readiness_schema`, SCHEMA_VERSION); an older one is upgraded by
adding tables, a newer one is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dashboard.core.errors import InputRefused
from dashboard.core.gates import GateDecision
from dashboard.core.reviews import GENESIS, LogEntry, entry_hash, envelope_hash, next_log_entry
from dashboard.store.db import Store, StoreUnavailable

SCHEMA_VERSION = 2  # 1: the review log; 2: + the team store's tables (dashboard/store/team.py)
PG_DDL = [
    "CREATE TABLE IF NOT EXISTS readiness_schema (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS log_meta (log_id TEXT PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS review_log (
        seq BIGINT PRIMARY KEY,
        release_id TEXT NOT NULL,
        prev_hash TEXT NOT NULL UNIQUE,
        envelope BYTEA NOT NULL,
        envelope_hash TEXT NOT NULL UNIQUE,
        received_at TIMESTAMPTZ NOT NULL,
        entry_hash TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        statement_id TEXT NOT NULL UNIQUE,
        reviewer TEXT,
        reviewed_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        size BIGINT NOT NULL,
        head TEXT NOT NULL,
        envelope BYTEA NOT NULL,
        issued_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_digest TEXT PRIMARY KEY,
        release_id TEXT NOT NULL,
        decision_json TEXT NOT NULL,
        stored_at TIMESTAMPTZ NOT NULL
    )""",
]


def shared_store_url(explicit: str | None = None) -> str | None:
    """--store, else $READINESS_STORE; None (or a path) means the embedded file alone."""
    import os

    url = explicit or os.environ.get("READINESS_STORE") or None
    if url is None or not url.startswith(("postgresql://", "postgres://")):
        return None
    return url


class PostgresReviewLog:
    """The review log, its checkpoints and the reviewed decisions in one PostgreSQL database."""

    def __init__(self, url: str):
        import psycopg

        self.url = url
        try:
            self.con = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except (psycopg.Error, ValueError) as e:  # a malformed URL too: never an internal error echoing it
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if isinstance(e, (psycopg.ProgrammingError, ValueError)):
                why = "the URL is not a valid PostgreSQL connection URL"
            raise StoreUnavailable(f"cannot reach the shared store at {_redacted(url)}: {why}") from e
        self.migrate()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction. A lock another machine holds (the review log's, the publish lock) is waited for up to
        $READINESS_LOCK_TIMEOUT seconds, like the embedded file's writers, then refused with a sentence."""
        import psycopg

        from dashboard.store import connections

        wait = connections.lock_timeout()
        try:
            with self.con.transaction(), self.con.cursor() as cur:
                cur.execute(f"SET LOCAL lock_timeout = {max(1, int(wait * 1000))}")  # an int: no injection
                yield cur
        except psycopg.errors.LockNotAvailable as e:
            raise StoreUnavailable(f"the shared store at {_redacted(self.url)} is busy: another process holds its "
                                   f"write lock; gave up after {wait:g} s (READINESS_LOCK_TIMEOUT)") from e

    def migrate(self) -> int:
        """Create (or check) the schema; returns its version. A newer schema than this code knows is refused.
        Runs on every connection (each dashboard rerun): a current schema costs one read, no lock and no DDL."""
        with self._tx() as cur:
            cur.execute("SELECT to_regclass('readiness_schema') IS NOT NULL")
            row = cur.fetchone()
            if row and row[0]:
                cur.execute("SELECT max(version) FROM readiness_schema")
                row = cur.fetchone()
                if row and row[0] == SCHEMA_VERSION:
                    return SCHEMA_VERSION
        with self._tx() as cur:
            from dashboard.store.team import team_ddl

            cur.execute("SELECT pg_advisory_xact_lock(hashtext('readiness-schema'))")
            cur.execute(PG_DDL[0])
            cur.execute("SELECT max(version) FROM readiness_schema")
            row = cur.fetchone()
            version = row[0] if row and row[0] is not None else None
            if version is None or version < SCHEMA_VERSION:  # create, or migrate 1 -> 2 (new tables only)
                for ddl in PG_DDL[1:] + team_ddl():
                    cur.execute(ddl)
                cur.execute("DELETE FROM readiness_schema")
                cur.execute("INSERT INTO readiness_schema VALUES (%s)", [SCHEMA_VERSION])
                version = SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"the shared store at {_redacted(self.url)} has schema version {version}; this "
                                   f"readiness knows up to {SCHEMA_VERSION}: upgrade readiness")
        return int(version)

    def _read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(sql, params or [])
            rows: list[tuple[Any, ...]] = cur.fetchall()
        return rows

    def log_id(self, read_only: bool) -> str:
        rows = self._read("SELECT log_id FROM log_meta")
        if rows:
            return str(rows[0][0])
        if read_only:
            return "unnamed"
        with self._tx() as cur:
            cur.execute("LOCK TABLE log_meta IN EXCLUSIVE MODE")
            cur.execute("SELECT log_id FROM log_meta")
            row = cur.fetchone()
            if row:
                return str(row[0])
            new = "readiness-log:" + uuid.uuid4().hex
            cur.execute("INSERT INTO log_meta VALUES (%s)", [new])
            return new

    def append(self, release_id: str, envelope: bytes, received_at: datetime | None, *, kind: str,
               statement_id: str, reviewer: str | None, reviewed_at: datetime | None,
               expect_previous: str | None, block: bool) -> LogEntry:
        """Store.append_review's rules, with the chain's head read under a lock every appender takes."""
        when = (received_at or datetime.now(UTC)).astimezone(UTC)
        env_hash = envelope_hash(envelope)
        with self._tx() as cur:
            # Readers go on; a second appender (any process, any machine) waits here until this one commits.
            cur.execute("LOCK TABLE review_log IN SHARE ROW EXCLUSIVE MODE")
            cur.execute("SELECT seq FROM review_log WHERE statement_id = %s OR envelope_hash = %s",
                        [statement_id, env_hash])
            dup = cur.fetchall()
            newer: list[tuple[Any, ...]] = []
            if reviewer is not None and reviewed_at is not None:
                cur.execute("SELECT seq, reviewed_at FROM review_log WHERE kind = 'review' AND reviewer = %s "
                            "AND release_id = %s AND (reviewed_at > %s OR (reviewed_at = %s AND NOT %s)) "
                            "ORDER BY reviewed_at DESC LIMIT 1", [reviewer, release_id, reviewed_at, reviewed_at, block])
                newer = cur.fetchall()
            cur.execute("SELECT seq, entry_hash, received_at FROM review_log ORDER BY seq DESC LIMIT 1")
            last = cur.fetchall()
            entry = next_log_entry(release_id, envelope, when, duplicate_of=dup[0][0] if dup else None,
                                   newer=newer[0] if newer else None, last=last[0] if last else None,
                                   reviewer=reviewer, reviewed_at=reviewed_at, expect_previous=expect_previous)
            when = entry.received_at
            cur.execute("INSERT INTO review_log (seq, release_id, prev_hash, envelope, envelope_hash, received_at, "
                        "entry_hash, kind, statement_id, reviewer, reviewed_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [entry.seq, release_id, entry.prev_hash, envelope, env_hash, when, entry.entry_hash, kind,
                         statement_id, reviewer, reviewed_at])
        return entry

    def entries(self) -> list[LogEntry]:
        rows = self._read("SELECT seq, release_id, prev_hash, envelope, envelope_hash, received_at, entry_hash "
                          "FROM review_log ORDER BY seq")
        keys = ("seq", "release_id", "prev_hash", "envelope", "envelope_hash", "received_at", "entry_hash")
        return [LogEntry.model_validate(dict(zip(keys, (*r[:3], bytes(r[3]), *r[4:]), strict=True))) for r in rows]

    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM review_log")[0][0])

    def put_checkpoint(self, size: int, head: str, envelope: bytes, issued_at: datetime) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO checkpoints VALUES (%s, %s, %s, %s)", [size, head, envelope, issued_at])

    def checkpoints(self) -> list[bytes]:
        return [bytes(r[0]) for r in self._read("SELECT envelope FROM checkpoints ORDER BY issued_at")]

    def put_decision(self, decision: GateDecision) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO decisions VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [decision.digest, decision.candidate.release_id, decision.model_dump_json(),
                         datetime.now(UTC)])

    def decisions(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._read("SELECT decision_digest, decision_json FROM decisions")}


class SharedLogStore(Store):
    """The embedded store for releases and case data, with the review log in PostgreSQL."""

    shared = True

    def __init__(self, path: str | Path, url: str, read_only: bool = False):
        super().__init__(path, read_only=read_only)
        try:
            self.log = PostgresReviewLog(url)
        except BaseException:
            super().close()
            raise

    def close(self) -> None:
        try:
            self.log.close()
        finally:
            super().close()

    def generation(self) -> str:
        return super().generation() + f"/pg:{self.log.count()}"

    def log_id(self) -> str:
        return self.log.log_id(self.read_only)

    def append_review(self, release_id: str, envelope: bytes, received_at: datetime | None = None, *,
                      kind: str = "review", statement_id: str, reviewer: str | None = None,
                      reviewed_at: datetime | None = None, expect_previous: str | None = None,
                      block: bool = False) -> LogEntry:
        return self.log.append(release_id, envelope, received_at, kind=kind, statement_id=statement_id,
                               reviewer=reviewer, reviewed_at=reviewed_at, expect_previous=expect_previous,
                               block=block)

    def review_entries(self) -> list[LogEntry]:
        return self.log.entries()

    def put_checkpoint(self, size: int, head: str, envelope: bytes, issued_at: datetime) -> None:
        self.log.put_checkpoint(size, head, envelope, issued_at)

    def checkpoints(self) -> list[bytes]:
        return self.log.checkpoints()

    def put_decision(self, decision: GateDecision) -> None:
        self.log.put_decision(decision)

    def decisions(self) -> dict[str, str]:
        return self.log.decisions()



def open_store(path: str | Path, read_only: bool = False, url: str | None = None, data: str | None = None) -> Store:
    """The store a command or the dashboard uses: the embedded file; with a PostgreSQL `url` (or $READINESS_STORE)
    and a data location (`data` or $READINESS_DATA) the team store, of which the file is this machine's copy
    (dashboard/store/team.py); with the URL alone, the embedded file with the review log in PostgreSQL."""
    from dashboard.store.team import open_team_store

    shared = shared_store_url(url)
    if shared is None:
        return Store(path, read_only=read_only)
    team = team_store_location(url, data)
    if team is not None:
        return open_team_store(path, *team, read_only=read_only)
    return SharedLogStore(path, shared, read_only=read_only)


def team_store_location(url: str | None = None, data: str | None = None) -> tuple[str, str] | None:
    """(PostgreSQL URL, data location) when these settings (or $READINESS_STORE and $READINESS_DATA) name a team
    store, else None."""
    from dashboard.store.team import shared_data_location

    shared, location = shared_store_url(url), shared_data_location(data)
    return (shared, location) if shared is not None and location is not None else None


def _redacted(url: str) -> str:
    """The URL for messages: host, port and database only (never a password, in the user part or as a
    `password=` parameter); a URL that cannot be parsed is not echoed at all."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - malformed: say nothing of it
        return "(an unparsable PostgreSQL URL)"
    host, port, db = str(parts.get("host") or "localhost"), parts.get("port"), str(parts.get("dbname") or "")
    user = str(parts.get("user") or "") + (":***" if parts.get("password") else "")
    user = f"{user}@" if user else ""
    return f"postgresql://{user}{host}{':' + str(port) if port else ''}/{db}"


class CopyReport(BaseModel):
    """What `readiness store copy` copied into PostgreSQL, every entry re-hashed and read back."""

    log_id: str = Field(description="The review log's id (kept: admin events and checkpoints are bound to it).")
    entries: int = Field(description="Review-log entries copied.")
    head: str = Field(description="The entry hash of the last entry (the same in both stores).")
    checkpoints: int = Field(description="Checkpoints copied.")
    decisions: int = Field(description="Reviewed gate decisions copied (each re-hashed to its digest).")


def copy_review_log(source: Store, target: PostgresReviewLog) -> CopyReport:
    """Copy an embedded store's review log, checkpoints and reviewed decisions into an empty PostgreSQL log.

    Every entry is checked before anything is written (its envelope hash, its entry hash, its link to the one
    before) and every decision against its digest; after the commit the copy is read back and compared entry by
    entry. Refused: a PostgreSQL log that already has entries or another log id."""
    from dashboard.core.gates import load_decision

    rows = source.query("SELECT seq, release_id, prev_hash, envelope, envelope_hash, received_at, entry_hash, kind, "
                        "statement_id, reviewer, reviewed_at FROM review_log ORDER BY seq")
    prev = GENESIS
    for i, r in enumerate(rows, start=1):
        seq, _rel, prev_hash, envelope, env_hash, received_at, ehash = r[:7]
        if seq != i or prev_hash != prev or envelope_hash(bytes(envelope)) != env_hash \
                or entry_hash(seq, prev_hash, env_hash, received_at.astimezone(UTC)) != ehash:
            raise InputRefused(f"{source.path}: review-log entry {seq} does not verify (hash or chain link): "
                               "nothing was copied; run `readiness review verify` on it")
        prev = ehash
    decisions = source.query("SELECT decision_digest, release_id, decision_json, stored_at FROM decisions")
    for d in decisions:
        if load_decision(d[2], f"{source.path}: decision {d[0]}").digest != d[0]:
            raise InputRefused(f"{source.path}: decision {d[0]} does not match its digest: nothing was copied")
    checkpoints = source.query("SELECT size, head, envelope, issued_at FROM checkpoints ORDER BY issued_at")
    meta = source.query("SELECT log_id FROM log_meta")
    log_id = str(meta[0][0]) if meta else "readiness-log:" + uuid.uuid4().hex
    with target._tx() as cur:
        cur.execute("LOCK TABLE review_log IN SHARE ROW EXCLUSIVE MODE")
        cur.execute("LOCK TABLE log_meta IN EXCLUSIVE MODE")
        cur.execute("SELECT count(*) FROM review_log")
        row = cur.fetchone()
        if row and row[0]:
            raise InputRefused(f"{_redacted(target.url)} already has a review log ({row[0]} entries): "
                               "copy only into an empty one")
        cur.execute("SELECT log_id FROM log_meta")
        have = cur.fetchone()
        if have and have[0] != log_id:
            raise InputRefused(f"{_redacted(target.url)} already has log id {have[0]}, not {log_id}")
        if not have:
            cur.execute("INSERT INTO log_meta VALUES (%s)", [log_id])
        for r in rows:
            cur.execute("INSERT INTO review_log (seq, release_id, prev_hash, envelope, envelope_hash, received_at, "
                        "entry_hash, kind, statement_id, reviewer, reviewed_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", [*r[:3], bytes(r[3]), *r[4:]])
        for c in checkpoints:
            cur.execute("INSERT INTO checkpoints VALUES (%s, %s, %s, %s)", [c[0], c[1], bytes(c[2]), c[3]])
        for d in decisions:
            cur.execute("INSERT INTO decisions VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", list(d))
    copied = target.entries()
    original = source.review_entries()
    if [(e.seq, e.entry_hash, e.envelope) for e in copied] != [(e.seq, e.entry_hash, e.envelope) for e in original]:
        raise InputRefused("the copy does not read back identical: check the PostgreSQL server's time zone and "
                           "encoding settings")
    return CopyReport(log_id=log_id, entries=len(copied), head=copied[-1].entry_hash if copied else GENESIS,
                      checkpoints=len(checkpoints), decisions=len(decisions))
