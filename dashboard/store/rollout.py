"""Rollout evidence in the store: one append-only file per release, and the queries the rollout gates need."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.core.canonical import canonical_json, digest
from dashboard.core.errors import InputRefused, Problem
from dashboard.core.rollout import ArtifactDigest, CaseOutcome, Incident, RolloutEvidence
from dashboard.store.db import Store

_RECORDS_OF_KIND = """
    SELECT release_id, CAST(r AS VARCHAR) FROM (
        SELECT release_id, unnest(CAST(json_extract(evidence_json, '$.records') AS JSON[])) AS r
        FROM rollout_evidence)
    WHERE json_extract_string(r, '$.kind') = ?
    ORDER BY release_id"""


def put_rollout(store: Store, evidence: RolloutEvidence, source: str) -> str:
    """Attach a release's rollout evidence (one transaction; the same file again is a no-op). An incident id that
    is stored with other content (in any release's file) is refused, naming the record."""
    d = digest(evidence)
    with store._transaction() as cur:  # noqa: SLF001 (the store's one write path)
        if not cur.execute("SELECT 1 FROM releases WHERE release_id = ?", [evidence.release_id]).fetchall():
            raise InputRefused(f"release {evidence.release_id!r} is not in the store")
        row = cur.execute("SELECT evidence_digest FROM rollout_evidence WHERE release_id = ?",
                          [evidence.release_id]).fetchall()
        if row and row[0][0] == d:
            return "unchanged"
        if row:
            raise InputRefused(f"release {evidence.release_id!r} already has rollout evidence ({row[0][0]}); "
                               "rollout evidence is append-only: attach it to a new release id")
        stored = {i.incident_id: i for _, i in _incidents(cur.execute(_RECORDS_OF_KIND, ["incident"]).fetchall())}
        for n, r in enumerate(evidence.records):
            if isinstance(r, Incident) and r.incident_id in stored and stored[r.incident_id] != r:
                raise InputRefused([Problem(source, f"record {n + 1}", "incident_id",
                                            f"incident {r.incident_id!r} is already stored with other content")])
        cur.execute("INSERT INTO rollout_evidence VALUES (?, ?, ?, ?)",
                    [evidence.release_id, canonical_json(evidence).decode(), d, datetime.now(UTC)])
    return "stored"


def _present(store: Store) -> bool:
    """False on a read-only store written before rollout evidence existed (it has no table, so no evidence)."""
    return bool(store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'rollout_evidence'"))


def _incidents(rows: list[tuple[str, str]]) -> list[tuple[str, Incident]]:
    return [(rel, Incident.model_validate_json(text)) for rel, text in rows]


def rollout_evidence(store: Store, release_id: str) -> tuple[RolloutEvidence, str] | None:
    if not _present(store):
        return None
    row = store.query("SELECT evidence_json, evidence_digest FROM rollout_evidence WHERE release_id = ?", [release_id])
    return (RolloutEvidence.model_validate_json(row[0][0]), str(row[0][1])) if row else None


def all_rollout_evidence(store: Store) -> dict[str, RolloutEvidence]:
    if not _present(store):
        return {}
    return {str(r[0]): RolloutEvidence.model_validate_json(r[1])
            for r in store.query("SELECT release_id, evidence_json FROM rollout_evidence ORDER BY release_id")}


def incidents(store: Store) -> list[Incident]:
    """Every stored incident, once each (the same id is the same content, see put_rollout), sorted by id."""
    if not _present(store):
        return []
    out = {i.incident_id: i for _, i in _incidents(store.query(_RECORDS_OF_KIND, ["incident"]))}
    return [out[k] for k in sorted(out)]


def artifact_digests(store: Store) -> list[tuple[str, ArtifactDigest]]:
    if not _present(store):
        return []
    rows = store.query(_RECORDS_OF_KIND, ["artifact_digest"])
    got = {(rel, ArtifactDigest.model_validate_json(text)) for rel, text in rows}
    return sorted(got, key=lambda x: (x[0], x[1].artifact_kind, x[1].artifact, x[1].version, x[1].content_digest))


def case_outcomes(store: Store, release_id: str, case_ids: list[str]) -> list[CaseOutcome]:
    """How many records each named case has in the release's eval runs, and how many passed."""
    if not case_ids:
        return []
    rows = store.query("""SELECT case_id, count(*), count(*) FILTER (WHERE passed) FROM cases
                          WHERE release_id = ? AND list_contains(?, case_id) GROUP BY case_id ORDER BY case_id""",
                       [release_id, sorted(set(case_ids))])
    return [CaseOutcome(case_id=r[0], records=r[1], passed=r[2]) for r in rows]
