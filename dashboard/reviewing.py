"""Readiness reviews, shared by the CLI and the dashboard: sign, add to the log, verify, checkpoint, status."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dashboard.core.canonical import canonical_json
from dashboard.core.errors import InputRefused, read_input_bytes
from dashboard.core.gates import GateDecision
from dashboard.core.policy import GatePolicy
from dashboard.core.reviews import (
    Checkpoint,
    LogEntry,
    ReviewPredicate,
    StatusReport,
    TrustedReviewers,
    VerifyReport,
    Waiver,
    binding_findings,
    check_envelope,
    release_status,
    verify_log,
)
from dashboard.core.signing import (
    CHECKPOINT_PAYLOAD_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    REVIEW_PREDICATE_TYPE,
    SigningError,
    sign_envelope,
    statement,
)
from dashboard.service import gate_release
from dashboard.store.db import Store

BUNDLE_FORMAT = "readiness.review-bundle/v1"


def review_predicate(decision: GateDecision, reviewer: str, role: str, choice: str, *, comment: str = "",
                     conditions: list[str] | None = None, accepted_risks: list[str] | None = None,
                     release_owner: str | None = None, rollback_owner: str | None = None,
                     waivers: list[Waiver] | None = None, now: datetime | None = None) -> ReviewPredicate:
    """What the reviewer saw (the decision and all its digests) and what they decided."""
    failed = set(decision.blockers) | set(decision.warnings)
    for w in waivers or []:
        if w.gate_id not in failed:
            raise InputRefused(f"waiver for {w.gate_id!r}: that gate did not fail in the reviewed decision")
    if choice == "approve_with_conditions" and not conditions:
        raise InputRefused("approve_with_conditions needs at least one condition")
    return ReviewPredicate(
        reviewer=reviewer, role=role, decision=choice,
        reviewed_at=(now or datetime.now(UTC)).replace(microsecond=0),
        candidate_release_id=decision.candidate.release_id,
        baseline_release_id=decision.baseline.release_id if decision.baseline else None,
        candidate_manifest_digest=decision.candidate.manifest_digest, gate_decision_digest=decision.digest,
        gate_status=decision.status, policy_id=decision.policy.policy_id, policy_version=decision.policy.version,
        policy_digest=decision.policy.digest, evidence_digest=decision.evidence_digest,
        data_digests=[d.data_digest for d in decision.data_digests], comment=comment,
        conditions=conditions or [], accepted_risks=accepted_risks or [], release_owner=release_owner,
        rollback_owner=rollback_owner, waivers=waivers or [])


def sign_review(store: Store, decision: GateDecision, predicate: ReviewPredicate, key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope over an in-toto statement whose subject is the candidate manifest's digest. The decision
    it names is stored, so the review can later be checked against exactly what was reviewed."""
    store.put_decision(decision)
    payload = statement(predicate.candidate_release_id, predicate.candidate_manifest_digest.removeprefix("sha256:"),
                        REVIEW_PREDICATE_TYPE, predicate.model_dump(mode="json"))
    return sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, key)


def add_review(store: Store, envelope: bytes, trusted: TrustedReviewers, now: datetime | None = None) -> LogEntry:
    """Check an envelope (signature first), its signer and its bindings, then append it to the log."""
    when = now or datetime.now(UTC)
    try:
        _key, predicate, subject = check_envelope(envelope, trusted, when)
    except SigningError as e:
        raise InputRefused(f"review refused: {e}") from e
    problems = [f for f in binding_findings(None, predicate.candidate_release_id, predicate, subject,
                                            store.manifest_digests(), store.decisions(), when) if f.level == "error"]
    if problems:
        raise InputRefused("review refused: " + "; ".join(f.message for f in problems))
    return store.append_review(predicate.candidate_release_id, envelope, when)


def verify_store(store: Store, trusted: TrustedReviewers, extra_checkpoints: list[bytes] | None = None,
                 now: datetime | None = None) -> VerifyReport:
    return verify_log(store.review_entries(), trusted, store.manifest_digests(), store.decisions(),
                      now or datetime.now(UTC), store.checkpoints() + (extra_checkpoints or []), store.log_id())


def make_checkpoint(store: Store, log_key: Ed25519PrivateKey, now: datetime | None = None) -> bytes:
    """A checkpoint (log size and head hash) signed by the log key; publish it to catch truncation later."""
    entries = store.review_entries()
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    cp = Checkpoint(log_id=store.log_id(), size=len(entries), head=entries[-1].entry_hash if entries else "0" * 64,
                    issued_at=when)
    envelope = sign_envelope(canonical_json(cp.model_dump(mode="json")), CHECKPOINT_PAYLOAD_TYPE, log_key)
    if not store.read_only:
        store.put_checkpoint(cp.size, cp.head, envelope, when)
    return envelope


def export_bundle(store: Store, trusted: TrustedReviewers) -> dict[str, Any]:
    """Everything needed to verify the log on another machine, offline."""
    return {
        "format": BUNDLE_FORMAT, "log_id": store.log_id(),
        "entries": [{"seq": e.seq, "release_id": e.release_id, "prev_hash": e.prev_hash,
                     "envelope": base64.b64encode(e.envelope).decode(), "envelope_hash": e.envelope_hash,
                     "received_at": e.received_at.isoformat(), "entry_hash": e.entry_hash}
                    for e in store.review_entries()],
        "trusted_reviewers": trusted.model_dump(mode="json"),
        "checkpoints": [base64.b64encode(c).decode() for c in store.checkpoints()],
        "decisions": store.decisions(), "manifest_digests": store.manifest_digests(),
    }


def verify_bundle(bundle: dict[str, Any], extra_checkpoints: list[bytes] | None = None,
                  trusted: TrustedReviewers | None = None, now: datetime | None = None) -> VerifyReport:
    if bundle.get("format") != BUNDLE_FORMAT:
        raise InputRefused(f"not a review bundle ({BUNDLE_FORMAT})")
    entries = [LogEntry(seq=e["seq"], release_id=e["release_id"], prev_hash=e["prev_hash"],
                        envelope=base64.b64decode(e["envelope"]), envelope_hash=e["envelope_hash"],
                        received_at=datetime.fromisoformat(e["received_at"]), entry_hash=e["entry_hash"])
               for e in bundle["entries"]]
    keys = trusted or TrustedReviewers.model_validate(bundle["trusted_reviewers"])
    checkpoints = [base64.b64decode(c) for c in bundle.get("checkpoints", [])] + (extra_checkpoints or [])
    return verify_log(entries, keys, bundle["manifest_digests"], bundle["decisions"], now or datetime.now(UTC),
                      checkpoints, bundle["log_id"])


def status(store: Store, policy: GatePolicy, release_id: str, trusted: TrustedReviewers,
           baseline_id: str | None = None, profile: str | None = None, now: datetime | None = None,
           no_baseline: bool = False, decision: GateDecision | None = None) -> tuple[StatusReport, GateDecision,
                                                                                    VerifyReport]:
    """Readiness = the current gate decision + the verified reviews + the policy's quorum and waiver roles.
    Pass `decision` when the caller already judged the release with the same inputs."""
    when = now or datetime.now(UTC)
    if decision is None:
        decision = gate_release(store, policy, release_id, baseline_id, profile, no_baseline=no_baseline)
    report = verify_store(store, trusted, now=when)
    result = release_status(decision, report.reviews, policy.review.required_roles(), policy.review.waiver_roles, when)
    if not report.ok:
        result.reasons.insert(0, "the review log does not verify: " + "; ".join(
            str(f) for f in report.findings if f.level == "error"))
        result.ready = False
    return result, decision, report


def read_envelope(path: str | Path) -> bytes:
    try:
        data = read_input_bytes(path, "envelope")  # a bounded regular file
        json.loads(data)
    except (OSError, ValueError) as e:
        raise InputRefused(f"{path}: not a readable envelope: {e}") from e
    return data
