"""Signed readiness reviews: the review record, trusted reviewers, the hash-chained log's verification,
and the release status (gate decision + reviews + quorum + waivers). Pure: the store supplies the rows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dashboard.core.errors import InputRefused, Problem, read_text
from dashboard.core.gates import GateDecision
from dashboard.core.manifests import pydantic_problems
from dashboard.core.signing import (
    CHECKPOINT_PAYLOAD_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    REVIEW_PREDICATE_TYPE,
    STATEMENT_TYPE,
    SigningError,
    key_id,
    open_envelope,
    parse_public_key,
    verify_signature,
)

ReviewDecision = Literal["approve", "approve_with_conditions", "block"]
ROLES = ("engineering", "product", "security", "risk", "log")
LOG_DOMAIN = b"readiness-review-log/v1\n"
CLOCK_SKEW = timedelta(minutes=5)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Waiver(_Frozen):
    """Accepting one failed gate, for a while, with a reason and a ticket."""

    gate_id: str = Field(min_length=1)
    justification: str = Field(min_length=1)
    expires_at: datetime
    ticket: str = Field(min_length=1)


class ReviewPredicate(_Frozen):
    """What a reviewer saw and decided: every digest that binds the review to exactly that."""

    reviewer: str = Field(min_length=3, description="The reviewer's principal (email).")
    role: str
    decision: ReviewDecision
    reviewed_at: datetime
    candidate_release_id: str
    baseline_release_id: str | None
    candidate_manifest_digest: str
    gate_decision_digest: str
    gate_status: str
    policy_id: str
    policy_version: str
    policy_digest: str
    evidence_digest: str | None
    data_digests: list[str]
    comment: str = ""
    conditions: list[str] = Field(default_factory=list)
    accepted_risks: list[str] = Field(default_factory=list)
    release_owner: str | None = None
    rollback_owner: str | None = None
    waivers: list[Waiver] = Field(default_factory=list)


class TrustedKey(_Frozen):
    """One entry of the trusted-reviewers file (in the spirit of OpenSSH allowed_signers)."""

    key_id: str
    principal: str
    roles: list[str]
    public_key: str  # OpenSSH line
    valid_from: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None

    def window_problem(self, at: datetime) -> str | None:
        if at < self.valid_from:
            return f"key {self.key_id[:19]}… is valid only from {self.valid_from.isoformat()}"
        if self.valid_until is not None and at > self.valid_until:
            return f"key {self.key_id[:19]}… expired at {self.valid_until.isoformat()}"
        if self.revoked_at is not None and at >= self.revoked_at:
            return f"key {self.key_id[:19]}… was revoked at {self.revoked_at.isoformat()}"
        return None


class TrustedReviewers(_Frozen):
    reviewers: list[TrustedKey]


def load_trusted(path: str | Path) -> TrustedReviewers:
    p = Path(path)
    try:
        data = yaml.safe_load(read_text(p, "trusted-reviewers file"))  # a bounded regular file
    except (OSError, yaml.YAMLError) as e:
        raise InputRefused([Problem(str(p), "", "", f"cannot read the trusted-reviewers file: {e}")]) from e
    try:
        trusted = TrustedReviewers.model_validate(data)
    except ValidationError as e:
        raise InputRefused(pydantic_problems(str(p), "", e)) from e
    for i, k in enumerate(trusted.reviewers):
        try:
            actual = key_id(parse_public_key(k.public_key))
        except SigningError as e:
            raise InputRefused([Problem(str(p), f"entry {i + 1}", "public_key", str(e))]) from e
        if actual != k.key_id:
            raise InputRefused([Problem(str(p), f"entry {i + 1}", "key_id", f"does not match the public key ({actual})")])
    return trusted


def trusted_entry(principal: str, roles: list[str], public_key_line: str, valid_from: datetime) -> dict:
    return {"key_id": key_id(parse_public_key(public_key_line)), "principal": principal, "roles": roles,
            "public_key": public_key_line, "valid_from": valid_from.isoformat(), "valid_until": None,
            "revoked_at": None}


# ----- the log -------------------------------------------------------------------------------------------
class LogEntry(BaseModel):
    seq: int
    release_id: str
    prev_hash: str
    envelope: bytes
    envelope_hash: str
    received_at: datetime
    entry_hash: str


GENESIS = "0" * 64


def envelope_hash(envelope: bytes) -> str:
    return hashlib.sha256(envelope).hexdigest()


def entry_hash(seq: int, prev_hash: str, env_hash: str, received_at: datetime) -> str:
    when = received_at.astimezone(UTC).isoformat(timespec="microseconds")
    return hashlib.sha256(LOG_DOMAIN + f"{seq}\n{prev_hash}\n{env_hash}\n{when}".encode()).hexdigest()


class Finding(BaseModel):
    seq: int | None
    level: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "log"
        return f"{self.level.upper()} {where}: {self.message}"


class VerifiedReview(BaseModel):
    seq: int
    envelope_hash: str
    received_at: datetime
    key_id: str
    predicate: ReviewPredicate


def check_envelope(envelope: bytes, trusted: TrustedReviewers, at: datetime) -> tuple[TrustedKey, ReviewPredicate, str]:
    """Signature first (with any trusted key; the keyid is only a hint), then the statement and the signer's
    principal, role and validity at `at`. Returns (key, predicate, subject digest) or raises SigningError."""
    opened = open_envelope(envelope)
    if opened.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SigningError(f"unexpected payload type {opened.payload_type!r}")
    keys = sorted(trusted.reviewers, key=lambda k: k.key_id != opened.keyid)
    signer = next((k for k in keys if verify_signature(opened, parse_public_key(k.public_key))), None)
    if signer is None:
        raise SigningError("the signature does not verify with any trusted key (unknown key or edited envelope)")
    try:
        stmt = json.loads(opened.payload)
        if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != REVIEW_PREDICATE_TYPE:
            raise SigningError("not a readiness-review statement")
        predicate = ReviewPredicate.model_validate(stmt["predicate"])
        subject = stmt["subject"][0]["digest"]["sha256"]
    except (ValueError, KeyError, IndexError, TypeError, ValidationError) as e:
        raise SigningError(f"the signed statement is malformed: {e}") from e
    if signer.principal != predicate.reviewer:
        raise SigningError(f"signed with {signer.principal}'s key, but the review claims reviewer "
                           f"{predicate.reviewer}")
    if predicate.role not in signer.roles:
        raise SigningError(f"{predicate.reviewer} may not sign as {predicate.role} (trusted roles: "
                           f"{', '.join(signer.roles)})")
    if predicate.reviewed_at > at + CLOCK_SKEW:
        raise SigningError(f"reviewed_at {predicate.reviewed_at.isoformat()} is after the review reached the log")
    # The key must be valid when the review was written and when it reached the (tamper-evident) log.
    problem = signer.window_problem(predicate.reviewed_at) or signer.window_problem(at)
    if problem:
        raise SigningError(problem)
    return signer, predicate, subject


class VerifyReport(BaseModel):
    entries: int
    head: str
    findings: list[Finding]
    reviews: list[VerifiedReview]

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)


class Checkpoint(BaseModel):
    log_id: str
    size: int
    head: str
    issued_at: datetime


def verify_log(entries: list[LogEntry], trusted: TrustedReviewers, manifest_digests: dict[str, str],
               decisions: dict[str, str], now: datetime, checkpoints: list[bytes] | None = None,
               log_id: str | None = None) -> VerifyReport:
    """Check the chain, every envelope, and each review's binding to its release and gate decision.

    `decisions` maps decision digest -> stored decision JSON; `manifest_digests` release id -> digest.
    """
    findings: list[Finding] = []
    reviews: list[VerifiedReview] = []
    prev = GENESIS
    for expected_seq, e in enumerate(sorted(entries, key=lambda x: x.seq), start=1):
        if e.seq != expected_seq:
            findings.append(Finding(seq=e.seq, level="error", message=f"expected entry {expected_seq} here: an entry "
                                    "was deleted or the entries were reordered"))
        actual_env = envelope_hash(e.envelope)
        if actual_env != e.envelope_hash:
            findings.append(Finding(seq=e.seq, level="error", message="the envelope bytes were changed after they "
                                    "were logged"))
        if e.prev_hash != prev:
            findings.append(Finding(seq=e.seq, level="error", message="the chain is broken: prev_hash does not match "
                                    "the previous entry (an entry was removed, inserted or reordered)"))
        if entry_hash(e.seq, e.prev_hash, e.envelope_hash, e.received_at) != e.entry_hash:
            findings.append(Finding(seq=e.seq, level="error", message="the entry hash does not match its contents"))
        prev = e.entry_hash
        try:
            signer, predicate, subject = check_envelope(e.envelope, trusted, e.received_at)
        except SigningError as err:
            findings.append(Finding(seq=e.seq, level="error", message=str(err)))
            continue
        findings += binding_findings(e.seq, e.release_id, predicate, subject, manifest_digests, decisions, now)
        if not any(f.seq == e.seq and f.level == "error" for f in findings):
            reviews.append(VerifiedReview(seq=e.seq, envelope_hash=e.envelope_hash, received_at=e.received_at,
                                          key_id=signer.key_id, predicate=predicate))
    head = prev
    for raw in checkpoints or []:
        findings += _checkpoint_findings(raw, trusted, entries, log_id)
    return VerifyReport(entries=len(entries), head=head, findings=findings, reviews=reviews)


def binding_findings(seq: int | None, logged_release: str, p: ReviewPredicate, subject: str,
                     manifest_digests: dict[str, str], decisions: dict[str, str], now: datetime) -> list[Finding]:
    """Is the review bound to what the store holds: its release, manifest, gate decision; are waivers live?"""
    out = []
    if logged_release != p.candidate_release_id:
        out.append(Finding(seq=seq, level="error", message=f"logged for release {logged_release}, but the signed "
                           f"review is for {p.candidate_release_id} (replayed onto another release)"))
    manifest = manifest_digests.get(p.candidate_release_id)
    if manifest is None:
        out.append(Finding(seq=seq, level="error", message=f"release {p.candidate_release_id} is not in the store"))
    elif f"sha256:{subject}" != manifest or p.candidate_manifest_digest != manifest:
        out.append(Finding(seq=seq, level="error", message=f"the review is bound to manifest sha256:{subject}, but "
                           f"{p.candidate_release_id}'s manifest is {manifest}"))
    stored = decisions.get(p.gate_decision_digest)
    if stored is None:
        out.append(Finding(seq=seq, level="error", message=f"the reviewed gate decision {p.gate_decision_digest} "
                           "is not stored"))
    else:
        decision = GateDecision.model_validate_json(stored)
        if not decision.verify_digest() or decision.digest != p.gate_decision_digest:
            out.append(Finding(seq=seq, level="error", message="the stored gate decision was changed after the "
                               "review: its content no longer has the reviewed digest"))
        elif decision.candidate.release_id != p.candidate_release_id or decision.policy.digest != p.policy_digest:
            out.append(Finding(seq=seq, level="error", message="the review's release or policy differs from the "
                               "gate decision it names"))
    for w in p.waivers:
        if w.expires_at <= now:
            out.append(Finding(seq=seq, level="warning", message=f"the waiver for gate {w.gate_id} expired at "
                               f"{w.expires_at.isoformat()}"))
    return out


def _checkpoint_findings(raw: bytes, trusted: TrustedReviewers, entries: list[LogEntry],
                         log_id: str | None) -> list[Finding]:
    try:
        opened = open_envelope(raw)
    except SigningError as e:
        return [Finding(seq=None, level="error", message=f"checkpoint: {e}")]
    log_keys = [k for k in trusted.reviewers if "log" in k.roles]
    if opened.payload_type != CHECKPOINT_PAYLOAD_TYPE or not any(
            verify_signature(opened, parse_public_key(k.public_key)) for k in log_keys):
        return [Finding(seq=None, level="error", message="checkpoint signature does not verify with a trusted log key")]
    cp = Checkpoint.model_validate_json(opened.payload)
    if log_id is not None and cp.log_id != log_id:
        return [Finding(seq=None, level="error", message=f"checkpoint is for log {cp.log_id}, not {log_id}")]
    by_seq = {e.seq: e for e in entries}
    if cp.size > len(entries):
        return [Finding(seq=None, level="error", message=f"the log was truncated: a checkpoint of "
                        f"{cp.issued_at.isoformat()} covers {cp.size} entries, the log has {len(entries)}")]
    if cp.size and (cp.size not in by_seq or by_seq[cp.size].entry_hash != cp.head):
        return [Finding(seq=cp.size, level="error", message="the log diverges from the checkpoint at this entry "
                        "(rewritten history)")]
    return []


# ----- release status ----------------------------------------------------------------------------------
class StatusReport(BaseModel):
    release_id: str
    ready: bool
    gate_status: str
    decision_digest: str
    reasons: list[str]
    approvals: list[str]
    blocks: list[str]
    waived: list[str]
    stale_reviews: list[str]


def release_status(decision: GateDecision, reviews: list[VerifiedReview], quorum: list[str],
                   waiver_roles: list[str], now: datetime) -> StatusReport:
    """Ready when the gate decision is not blocked (or each blocker has a valid, unexpired waiver from a role
    allowed to waive it) and the quorum of roles approved; a reviewer's signed block holds until that same
    reviewer supersedes it with a later review."""
    mine = [r for r in reviews if r.predicate.candidate_release_id == decision.candidate.release_id]
    current = [r for r in mine if r.predicate.gate_decision_digest == decision.digest]
    stale = [f"{r.predicate.reviewer} ({r.predicate.role}) reviewed decision {r.predicate.gate_decision_digest[:19]}…, "
             f"not the current {decision.digest[:19]}…" for r in mine if r not in current]
    latest: dict[str, VerifiedReview] = {}
    for r in sorted(mine, key=lambda r: r.seq):
        latest[r.predicate.reviewer] = r  # later reviews by the same reviewer supersede earlier ones
    reasons: list[str] = []
    blocks = [f"{r.predicate.reviewer} ({r.predicate.role}) blocked: {r.predicate.comment or 'no comment'}"
              for r in latest.values() if r.predicate.decision == "block"]
    reasons += blocks
    approving = [r for r in latest.values() if r.predicate.decision != "block" and r in current]
    approvals = [f"{r.predicate.reviewer} ({r.predicate.role}) {r.predicate.decision}" for r in approving]
    have = {r.predicate.role for r in approving}
    missing = [role for role in quorum if role not in have]
    if missing:
        reasons.append("quorum not met: no current approval from " + ", ".join(missing))
    waived = []
    for gate_id in decision.blockers:
        valid = [w for r in approving if r.predicate.role in waiver_roles for w in r.predicate.waivers
                 if w.gate_id == gate_id and w.expires_at > now]
        expired = [w for r in approving for w in r.predicate.waivers if w.gate_id == gate_id and w.expires_at <= now]
        if valid:
            waived.append(f"{gate_id} (until {min(w.expires_at for w in valid).isoformat()}, {valid[0].ticket})")
        elif expired:
            reasons.append(f"blocker {gate_id}: its waiver expired at {max(w.expires_at for w in expired).isoformat()}")
        else:
            reasons.append(f"blocker {gate_id} failed and has no valid waiver from {', '.join(waiver_roles)}")
    return StatusReport(release_id=decision.candidate.release_id, ready=not reasons, gate_status=decision.status,
                        decision_digest=decision.digest, reasons=reasons, approvals=approvals, blocks=blocks,
                        waived=waived, stale_reviews=stale)
