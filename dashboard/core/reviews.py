"""Signed readiness reviews: the review record, trusted reviewers, the hash-chained log's verification,
and the release status (gate decision + reviews + quorum + waivers). Pure: the store supplies the rows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused, Problem, UnknownFormat, parse_yaml, read_text
from dashboard.core.gates import GateDecision, load_decision
from dashboard.core.manifests import pydantic_problems
from dashboard.core.policy import GatePolicy
from dashboard.core.signing import (
    ADMIN_PAYLOAD_TYPE,
    CHECKPOINT_PAYLOAD_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    OLD_REVIEW_PREDICATE_TYPES,
    REVIEW_PREDICATE_TYPE,
    STATEMENT_TYPE,
    OpenedEnvelope,
    SigningError,
    key_id,
    open_envelope,
    parse_public_key,
    statement_id,
    verify_signature,
)

ReviewDecision = Literal["approve", "approve_with_conditions", "block"]
REVIEW_ROLES = ("engineering", "product", "security", "risk")
ReviewRole = Literal["engineering", "product", "security", "risk"]
# `log` signs checkpoints, `admin` signs trust-root changes and governing policies. A key holds either
# reviewer roles, or `log`, or `admin`: never two of these classes (a log key cannot sign a review).
ROLES = (*REVIEW_ROLES, "log", "admin")
Role = Literal["engineering", "product", "security", "risk", "log", "admin"]
TRUSTED_SCHEMA_VERSION = 2
LOG_DOMAIN = b"readiness-review-log/v2\n"
CLOCK_SKEW = timedelta(minutes=5)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Waiver(_Frozen):
    """Accepting one failed gate, for a while, with a reason and a ticket."""

    gate_id: str = Field(min_length=1, description="The failed gate accepted (its expanded id).")
    justification: str = Field(min_length=1, description="Why it is acceptable.")
    expires_at: AwareDatetime = Field(description="When the waiver stops counting (exclusive).")
    ticket: str = Field(min_length=1, description="The ticket tracking the fix.")


def make_waiver(gate_id: str, justification: str, expires: str | date | datetime, ticket: str) -> Waiver:
    """The one way a waiver is written (CLI and Review page). `expires`: an ISO 8601 time with its zone, or a
    day (a date, or "YYYY-MM-DD"), meaning through the end of that day in UTC. Raises InputRefused."""
    where = f"waiver for {gate_id or '(no gate)'}"
    if isinstance(expires, str):
        text = expires.strip()
        try:
            expires = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError as e:
            raise InputRefused([Problem(where, "", "expires", f"{text[:40]!r} is not an ISO 8601 date or time")]) from e
    if not isinstance(expires, datetime):  # a day: valid through its end, UTC (expiry is exclusive)
        expires = datetime.combine(expires + timedelta(days=1), time(0, 0), tzinfo=UTC)
    if expires.tzinfo is None:
        raise InputRefused([Problem(where, "", "expires", "give the time zone, e.g. 2026-12-01T00:00:00+00:00, "
                                                          "or a day: 2026-12-01")])
    for field, value in (("gate_id", gate_id), ("justification", justification), ("ticket", ticket)):
        if not str(value).strip():
            raise InputRefused([Problem(where, "", field, "required")])
    return Waiver(gate_id=gate_id.strip(), justification=str(justification).strip(), expires_at=expires,
                  ticket=str(ticket).strip())


class SignInIdentity(_Frozen):
    """Who was signed in to the dashboard (through the company's identity provider) when a review was signed there;
    recorded inside the signed statement. The trusted-reviewers file, not this, decides whose review counts."""

    issuer: str = Field(min_length=1, description="The identity provider's issuer (the ID token's `iss`).")
    subject: str = Field(min_length=1, description="The user's subject at that issuer (the ID token's `sub`).")
    email: str = Field(description="The user's email (the ID token's `email`); the key's principal must match it.")


class ReviewPredicate(_Frozen):
    """What a reviewer saw and decided: every digest that binds the review to exactly that, and the trust
    root (trusted-reviewers file) it was signed under."""

    reviewer: str = Field(min_length=3, description="The reviewer's principal (email).")
    role: ReviewRole = Field(description="The role signed as (engineering, product, security, risk); the "
                                         "trusted-reviewers file must grant it to the key.")
    decision: ReviewDecision = Field(description="approve, approve_with_conditions or block.")
    reviewed_at: AwareDatetime = Field(description="When the reviewer signed; orders a reviewer's reviews of a "
                                                   "release (an older statement never supersedes a newer one).")
    candidate_release_id: str = Field(description="The release reviewed.")
    baseline_release_id: str | None = Field(description="The baseline of the decision reviewed.")
    candidate_manifest_digest: str = Field(description="The reviewed release's manifest digest.")
    gate_decision_digest: str = Field(description="The digest of the gate decision the reviewer saw.")
    gate_status: str = Field(description="That decision's status.")
    policy_id: str = Field(description="The gate policy judged.")
    policy_version: str = Field(description="Its version.")
    policy_digest: str = Field(description="Its digest.")
    evidence_digest: str | None = Field(description="The evidence file's digest; null: none attached.")
    data_digests: list[str] = Field(description="The data digests of every eval run judged.")
    trusted_reviewers_digest: str = Field(description="Digest of the trust root in effect when signed.")
    comment: str = Field("", description="Free text; shown as text, never rendered.")
    conditions: list[str] = Field(default_factory=list, description="Conditions of approve_with_conditions.")
    accepted_risks: list[str] = Field(default_factory=list, description="Risks the reviewer accepts by name.")
    release_owner: str | None = Field(None, description="Who owns the release.")
    rollback_owner: str | None = Field(None, description="Who rolls it back if needed.")
    waivers: list[Waiver] = Field(default_factory=list, description="Failed gates accepted for a while.")
    identity: SignInIdentity | None = Field(None, description="Who was signed in to the dashboard through the "
                                                               "identity provider when it signed this review; absent "
                                                               "for reviews signed elsewhere (and before this field).")


class TrustedKey(_Frozen):
    """One entry of the trusted-reviewers file (in the spirit of OpenSSH allowed_signers)."""

    key_id: str
    principal: str
    roles: list[Role] = Field(min_length=1)
    public_key: str  # OpenSSH line
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_class(self) -> TrustedKey:
        if ("log" in self.roles or "admin" in self.roles) and len(set(self.roles)) > 1:
            raise ValueError("a log or admin key holds no other role (log, admin and reviewer keys are disjoint)")
        return self

    def window_problem(self, at: datetime) -> str | None:
        if at < self.valid_from:
            return f"key {self.key_id[:19]}… is valid only from {self.valid_from.isoformat()}"
        if self.valid_until is not None and at >= self.valid_until:  # valid_from <= t < valid_until
            return f"key {self.key_id[:19]}… expired at {self.valid_until.isoformat()}"
        if self.revoked_at is not None and at >= self.revoked_at:
            return f"key {self.key_id[:19]}… was revoked at {self.revoked_at.isoformat()}"
        return None


def _role_class(roles: list[str]) -> str:
    return "log" if "log" in roles else "admin" if "admin" in roles else "reviewer"


class TrustedReviewers(_Frozen):
    """The trust root: every key that may sign reviews, checkpoints and trust changes. Versioned: each new
    version names the digest of the one it replaces and is recorded in the log, signed by an admin key of
    the version before it."""

    schema_version: Literal[2]
    version: int = Field(ge=1, description="Increases by one with every change of the trust root.")
    previous: str | None = Field(default=None, description="Digest of the version this one replaces.")
    reviewers: list[TrustedKey]

    @model_validator(mode="after")
    def _disjoint(self) -> TrustedReviewers:
        classes: dict[str, str] = {}
        for k in self.reviewers:
            c = _role_class(list(k.roles))
            if classes.setdefault(k.key_id, c) != c:
                raise ValueError(f"key {k.key_id} is listed both as a {classes[k.key_id]} key and as a {c} key: "
                                 "log, admin and reviewer keys must be different keys")
        return self

    @property
    def digest(self) -> str:
        return digest(self.model_dump(mode="json"))

    def keys_with(self, roles: tuple[str, ...]) -> list[TrustedKey]:
        return [k for k in self.reviewers if any(r in roles for r in k.roles)]


def parse_trusted(data: object, source: str) -> TrustedReviewers:
    """Validate a trusted-reviewers document; every problem names the source, entry and field."""
    if isinstance(data, dict) and "schema_version" not in data:
        raise InputRefused([Problem(source, "", "schema_version", "missing: this is a version-1 trusted-reviewers "
                                    "file; add `schema_version: 2`, `version: 1` (and `previous: null`), then "
                                    "record it with `readiness trust set` (README, Reviews)")])
    try:
        trusted = TrustedReviewers.model_validate(data)
    except ValidationError as e:
        raise InputRefused(pydantic_problems(source, "", e)) from e
    for i, k in enumerate(trusted.reviewers):
        try:
            actual = key_id(parse_public_key(k.public_key))
        except SigningError as e:
            raise InputRefused([Problem(source, f"entry {i + 1}", "public_key", str(e))]) from e
        if actual != k.key_id:
            raise InputRefused([Problem(source, f"entry {i + 1}", "key_id", f"does not match the public key ({actual})")])
    return trusted


def load_trusted(path: str | Path) -> TrustedReviewers:
    p = Path(path)
    try:
        data = parse_yaml(read_text(p, "trusted-reviewers file"), p)  # a bounded regular file, bounded depth
    except OSError as e:
        raise InputRefused([Problem(str(p), "", "", f"cannot read the trusted-reviewers file: {e}")]) from e
    return parse_trusted(data, str(p))


def trusted_entry(principal: str, roles: list[str], public_key_line: str, valid_from: datetime) -> dict:
    return {"key_id": key_id(parse_public_key(public_key_line)), "principal": principal, "roles": roles,
            "public_key": public_key_line, "valid_from": valid_from.isoformat(), "valid_until": None,
            "revoked_at": None}


class AdminEvent(_Frozen):
    """A change of trust, signed by an admin key and recorded in the log: a new trust root, or the gate policy
    that governs releases of a governance-policy version (and with it their review quorum)."""

    schema_version: Literal[2]
    kind: Literal["trust_root", "governing_policy"]
    issuer: str
    issued_at: AwareDatetime
    log_id: str = Field(min_length=1, description="The one log this event belongs to (refused in any other).")
    previous_entry: str = Field(min_length=64, max_length=64, description="The entry hash of the log entry this "
                                "event follows (GENESIS for the first): it is valid only at that place of that log.")
    under_trust_root: str = Field(description="Digest of the trust root in effect when signed (for the first "
                                  "trust root: its own digest).")
    trusted_reviewers: TrustedReviewers | None = None
    governance_policy_version: str | None = None
    policy: dict | None = None
    policy_digest: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AdminEvent:
        if self.kind == "trust_root" and self.trusted_reviewers is None:
            raise ValueError("a trust_root event carries trusted_reviewers")
        if self.kind == "governing_policy" and not (self.governance_policy_version and self.policy
                                                    and self.policy_digest):
            raise ValueError("a governing_policy event carries governance_policy_version, policy and policy_digest")
        return self


# ----- the log -------------------------------------------------------------------------------------------
class LogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    release_id: str
    prev_hash: str
    envelope: bytes
    envelope_hash: str
    received_at: AwareDatetime
    entry_hash: str


GENESIS = "0" * 64


def envelope_hash(envelope: bytes) -> str:
    return hashlib.sha256(envelope).hexdigest()


def entry_hash(seq: int, prev_hash: str, env_hash: str, received_at: datetime) -> str:
    when = received_at.astimezone(UTC).isoformat(timespec="microseconds")
    return hashlib.sha256(LOG_DOMAIN + f"{seq}\n{prev_hash}\n{env_hash}\n{when}".encode()).hexdigest()



def next_log_entry(release_id: str, envelope: bytes, when: datetime, *, duplicate_of: int | None,
                   newer: tuple[int, datetime] | None, last: tuple[int, str, datetime] | None,
                   reviewer: str | None, reviewed_at: datetime | None, expect_previous: str | None) -> LogEntry:
    """The rules of appending to the review log, from what the store found under its append lock: the entry
    already holding this statement (`duplicate_of`: a replay, however encoded), the reviewer's review of the release
    that is not older than this one (`newer`), and the chain's last entry (seq, hash, time). Every store that keeps
    a review log appends exactly this entry."""
    if duplicate_of is not None:
        raise InputRefused(f"replay refused: this signed statement is already in the log as entry {duplicate_of} "
                           "(a copy, however it is encoded, is not a new review)")
    if newer is not None and reviewed_at is not None:
        raise InputRefused(f"review refused (out of order): {reviewer} already has a review of {release_id} signed at "
                           f"{newer[1].astimezone(UTC).isoformat()} (entry {newer[0]}); a review signed at "
                           f"{reviewed_at.astimezone(UTC).isoformat()} is not newer and cannot supersede it")
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    if expect_previous is not None and prev != expect_previous:
        raise InputRefused("the review log changed while the admin event was signed: run the command again")
    when = when.astimezone(UTC)
    if last and when < last[2]:
        when = last[2].astimezone(UTC)  # the log's times never go backwards
    env_hash = envelope_hash(envelope)
    return LogEntry(seq=seq, release_id=release_id, prev_hash=prev, envelope=envelope, envelope_hash=env_hash,
                    received_at=when, entry_hash=entry_hash(seq, prev, env_hash, when))

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
    statement_id: str
    received_at: datetime
    key_id: str
    predicate: ReviewPredicate


def _json_object(payload: bytes, what: str) -> dict:
    try:
        value = json.loads(payload)
    except RecursionError as e:
        raise SigningError(f"the signed {what} is nested too deeply") from e
    except ValueError as e:
        raise SigningError(f"the signed {what} is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise SigningError(f"the signed {what} is not a JSON object")
    return value


def _validation_text(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()[:5])


def _signer(opened: OpenedEnvelope, keys: list[TrustedKey]) -> TrustedKey | None:
    keys = sorted(keys, key=lambda k: k.key_id != opened.keyid)  # the keyid is only a hint
    return next((k for k in keys if verify_signature(opened, parse_public_key(k.public_key))), None)


def check_envelope(envelope: bytes, trusted: TrustedReviewers, at: datetime) -> tuple[TrustedKey, ReviewPredicate, str]:
    """Signature first (with any trusted reviewer key; the keyid is only a hint), then the statement and the
    signer's principal, role and validity when it signed and when it reached the log. Returns (key, predicate,
    subject digest) or raises SigningError."""
    opened = open_envelope(envelope)
    return check_review(opened, trusted, at)


def check_review(opened: OpenedEnvelope, trusted: TrustedReviewers, at: datetime) -> tuple[TrustedKey, ReviewPredicate,
                                                                                          str]:
    if opened.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SigningError(f"unexpected payload type {opened.payload_type!r}")
    signer = _signer(opened, trusted.keys_with(REVIEW_ROLES))
    if signer is None:
        raise SigningError("the signature does not verify with any trusted reviewer key (unknown key, a log or "
                           "admin key, or an edited envelope)")
    stmt = _json_object(opened.payload, "statement")
    if stmt.get("predicateType") in OLD_REVIEW_PREDICATE_TYPES:
        raise SigningError(f"a {stmt.get('predicateType')} statement (older format, not bound to a trust root): "
                           "sign the review again")
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != REVIEW_PREDICATE_TYPE:
        raise SigningError("not a readiness-review statement")
    try:
        predicate = ReviewPredicate.model_validate(stmt.get("predicate"))
        subject = stmt["subject"][0]["digest"]["sha256"]
        if not isinstance(subject, str):
            raise TypeError("subject digest is not a string")
    except ValidationError as e:
        raise SigningError(f"the signed statement is malformed: {_validation_text(e)}") from e
    except (KeyError, IndexError, TypeError) as e:
        raise SigningError(f"the signed statement has no subject digest: {type(e).__name__} {e}") from e
    if signer.principal != predicate.reviewer:
        raise SigningError(f"signed with {signer.principal}'s key, but the review claims reviewer "
                           f"{predicate.reviewer}")
    if predicate.identity is not None and predicate.identity.email.casefold() != predicate.reviewer.casefold():
        raise SigningError(f"the review records a sign-in as {predicate.identity.email}, but the reviewer is "
                           f"{predicate.reviewer}")
    if predicate.role not in signer.roles:
        raise SigningError(f"{predicate.reviewer} may not sign as {predicate.role} (trusted roles: "
                           f"{', '.join(signer.roles)})")
    if predicate.trusted_reviewers_digest != trusted.digest:
        raise SigningError(f"signed under trust root {predicate.trusted_reviewers_digest[:19]}…, but the trust root "
                           f"in effect is version {trusted.version} ({trusted.digest[:19]}…)")
    if predicate.reviewed_at > at + CLOCK_SKEW:
        raise SigningError(f"reviewed_at {predicate.reviewed_at.isoformat()} is after the review reached the log")
    # The key must be valid when the review was written and when it reached the (tamper-evident) log.
    problem = signer.window_problem(predicate.reviewed_at) or signer.window_problem(at)
    if problem:
        raise SigningError(problem)
    return signer, predicate, subject


def check_admin_event(opened: OpenedEnvelope, current: TrustedReviewers | None, at: datetime, log_id: str,
                      previous_entry: str) -> tuple[AdminEvent, TrustedKey]:
    """An admin event is signed by an admin key of the trust root in effect (the first trust root: by an admin
    key of itself), valid when it signed and when it was logged; a new root follows the one in effect. It is
    bound to one place of one log: the log id and the hash of the entry before it are in the signed payload
    (an event signed for another log with the same trust root, e.g. staging, is refused here)."""
    data = _json_object(opened.payload, "admin event")
    if data.get("schema_version") == 1:
        raise SigningError("an admin event of format 1 (made by an older readiness, not bound to a log): an "
                           "administrator records it again")
    event = AdminEvent.model_validate(data)
    if event.log_id != log_id:
        raise SigningError(f"signed for log {event.log_id[:60]}, not this log ({log_id}): an admin event from "
                           "another log is not valid here")
    if event.previous_entry != previous_entry:
        raise SigningError(f"signed to follow entry hash {event.previous_entry[:16]}…, but it follows "
                           f"{previous_entry[:16]}… here: an admin event is valid only where it was signed to be")
    root = current
    if event.kind == "trust_root":
        new = event.trusted_reviewers
        assert new is not None
        try:  # the same checks as a trusted-reviewers file (each key id is its public key's)
            parse_trusted(new.model_dump(mode="json"), "the trust root in the admin event")
        except InputRefused as e:
            raise SigningError(str(e)) from e
        if current is None:
            if new.previous is not None:
                raise SigningError("the first trust root of a log names no previous version")
            root = new
        else:
            if new.previous != current.digest:
                raise SigningError(f"trust root version {new.version} does not name the root in effect "
                                   f"({current.digest[:19]}…) as its previous version")
            if new.version != current.version + 1:
                raise SigningError(f"trust root version {new.version} does not follow version {current.version}")
    elif current is None:
        raise SigningError("a governing policy before any trust root was recorded")
    assert root is not None
    if event.under_trust_root != root.digest:
        raise SigningError(f"signed under trust root {event.under_trust_root[:19]}…, not the one in effect "
                           f"({root.digest[:19]}…)")
    signer = _signer(opened, root.keys_with(("admin",)))
    if signer is None:
        raise SigningError("the admin event's signature does not verify with an admin key of the trust root in "
                           "effect")
    if signer.principal != event.issuer:
        raise SigningError(f"signed with {signer.principal}'s key, but the event claims issuer {event.issuer}")
    if event.issued_at > at + CLOCK_SKEW:
        raise SigningError(f"issued_at {event.issued_at.isoformat()} is after the event reached the log")
    problem = signer.window_problem(event.issued_at) or signer.window_problem(at)
    if problem:
        raise SigningError(problem)
    if event.kind == "governing_policy":
        try:
            policy = GatePolicy.model_validate(event.policy)
        except ValidationError as e:
            raise SigningError(f"the governing policy is not a valid gate policy: {_validation_text(e)}") from e
        if policy.digest != event.policy_digest:
            raise SigningError("the governing policy does not have the digest the event names")
    return event, signer


class VerifyReport(BaseModel):
    entries: int
    head: str
    findings: list[Finding]
    reviews: list[VerifiedReview]
    trust_roots: list[str] = Field(default_factory=list, description="Digests of the trust roots, in log order.")
    trust_root: str | None = Field(default=None, description="The trust root in effect at the head of the log.")
    pinned: str | None = Field(default=None, description="The trust root the verifier supplied (its anchor).")
    governing: dict[str, str] = Field(default_factory=dict,
                                      description="governance policy version -> governing policy JSON")
    current_root: TrustedReviewers | None = Field(default=None, exclude=True)
    key_ids: list[str] = Field(default_factory=list, description="Every key id of every trust root in the log.")

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def governing_policy(self, governance_version: str) -> GatePolicy | None:
        text = self.governing.get(governance_version)
        return GatePolicy.model_validate_json(text) if text is not None else None


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[2]
    log_id: str
    size: int = Field(ge=0)
    head: str
    issued_at: AwareDatetime
    trusted_reviewers_digest: str


def verify_log(entries: list[LogEntry], trusted: TrustedReviewers, manifest_digests: dict[str, str],
               decisions: dict[str, str], now: datetime, checkpoints: list[bytes] | None = None,
               log_id: str | None = None, run_digests: dict[tuple[str, str], str] | None = None) -> VerifyReport:
    """Check the chain, the trust-root history (anchored at `trusted`, the root the verifier chose), every
    envelope, replays, each review's binding to its release and gate decision, and every checkpoint.

    `decisions` maps decision digest -> stored decision JSON; `manifest_digests` release id -> digest;
    `run_digests` (release id, run id) -> data digest of the store's runs (None: not checked, e.g. a bundle).
    """
    findings: list[Finding] = []
    reviews: list[VerifiedReview] = []
    roots: list[TrustedReviewers] = []
    root_after: dict[int, TrustedReviewers] = {}
    root_index: dict[int, int] = {}
    parsed: dict[str, GateDecision | None] = {}
    admin_signed: list[tuple[int, str, list[datetime], int]] = []
    governing: dict[str, str] = {}
    seen: dict[str, int] = {}
    latest: dict[tuple[str, str], tuple[datetime, int]] = {}
    prev, prev_received = GENESIS, None
    ordered = sorted(entries, key=lambda x: x.seq)
    for expected_seq, e in enumerate(ordered, start=1):
        def err(message: str, e: LogEntry = e) -> None:
            findings.append(Finding(seq=e.seq, level="error", message=message))

        if e.seq != expected_seq:
            err(f"expected entry {expected_seq} here: an entry was deleted or the entries were reordered")
        if envelope_hash(e.envelope) != e.envelope_hash:
            err("the envelope bytes were changed after they were logged")
        if e.prev_hash != prev:
            err("the chain is broken: prev_hash does not match the previous entry (an entry was removed, inserted "
                "or reordered)")
        if entry_hash(e.seq, e.prev_hash, e.envelope_hash, e.received_at) != e.entry_hash:
            err("the entry hash does not match its contents")
        if prev_received is not None and e.received_at < prev_received:
            err(f"received_at {e.received_at.isoformat()} is before the previous entry's "
                f"({prev_received.isoformat()}): the log's times go backwards")
        if e.received_at > now + CLOCK_SKEW:
            err(f"received_at {e.received_at.isoformat()} is in the future")
        prev, prev_received = e.entry_hash, max(e.received_at, prev_received or e.received_at)
        current = roots[-1] if roots else None
        root_after[e.seq] = current  # type: ignore[assignment]
        root_index[e.seq] = len(roots) - 1
        try:
            opened = open_envelope(e.envelope)
        except SigningError as problem:
            err(str(problem))
            continue
        sid = statement_id(opened)
        if sid in seen:
            err(f"replays entry {seen[sid]}: the same signed statement was logged twice")
            continue
        seen[sid] = e.seq
        if opened.payload_type == ADMIN_PAYLOAD_TYPE:
            try:
                event, admin = check_admin_event(opened, current, e.received_at, log_id or "", e.prev_hash)
            except ValidationError as problem:
                err(f"admin event is malformed: {_validation_text(problem)}")
                continue
            except SigningError as problem:
                err(f"admin event: {problem}")
                continue
            admin_signed.append((e.seq, admin.key_id, [event.issued_at, e.received_at], max(len(roots) - 1, 0)))
            if event.kind == "trust_root":
                assert event.trusted_reviewers is not None
                roots.append(event.trusted_reviewers)
                root_after[e.seq] = event.trusted_reviewers
            else:
                assert event.governance_policy_version is not None
                governing[event.governance_policy_version] = GatePolicy.model_validate(event.policy).model_dump_json()
            continue
        if current is None:
            err("a review before any trust root was recorded in the log")
            continue
        try:
            signer, predicate, subject = check_review(opened, current, e.received_at)
        except SigningError as problem:
            err(str(problem))
            continue
        binding = binding_findings(e.seq, e.release_id, predicate, subject, manifest_digests, decisions, now, parsed,
                                   run_digests)
        findings.extend(binding)
        who = (predicate.reviewer, predicate.candidate_release_id)
        if who in latest and (predicate.reviewed_at < latest[who][0] or (
                predicate.reviewed_at == latest[who][0] and predicate.decision != "block")):
            findings.append(Finding(seq=e.seq, level="warning", message=f"reviewed_at {predicate.reviewed_at.isoformat()}"
                                    f" is not after {predicate.reviewer}'s review in entry {latest[who][1]}: it does "
                                    "not supersede it"))
        else:
            latest[who] = (predicate.reviewed_at, e.seq)
        if not any(f.level == "error" for f in binding):
            reviews.append(VerifiedReview(seq=e.seq, envelope_hash=e.envelope_hash, statement_id=sid,
                                          received_at=e.received_at, key_id=signer.key_id, predicate=predicate))
    # A revocation recorded in a later trust root also covers what the key signed before it was recorded.
    for r in list(reviews):
        revoked = _revoked_later(r.key_id, [r.predicate.reviewed_at, r.received_at], roots, root_index[r.seq])
        if revoked:  # the review stops counting; the log itself is intact (not tampering)
            findings.append(Finding(seq=r.seq, level="warning", message=revoked + ": the review does not count"))
            reviews.remove(r)
    for seq, kid, times, index in admin_signed:
        revoked = _revoked_later(kid, times, roots, index)
        if revoked:
            findings.append(Finding(seq=seq, level="error", message="admin event: " + revoked))
    digests = [r.digest for r in roots]
    if trusted.digest not in digests and (entries or checkpoints):
        findings.append(Finding(seq=None, level="error", message=(
            f"the trusted-reviewers file you trust (version {trusted.version}, {trusted.digest}) is not in this log's "
            "trust-root history" + (f" ({', '.join(d[:19] + '…' for d in digests)})" if digests else " (it records "
            "none)") + ": the log was made under other keys, or its trust root was replaced without an admin "
            "signature")))
    findings += _checkpoint_findings(checkpoints or [], ordered, root_after, roots, log_id, now)
    return VerifyReport(entries=len(entries), head=prev, findings=findings, reviews=reviews, trust_roots=digests,
                        trust_root=digests[-1] if digests else None, pinned=trusted.digest, governing=governing,
                        current_root=roots[-1] if roots else None,
                        key_ids=sorted({k.key_id for r in [trusted, *roots] for k in r.reviewers}))


def _revoked_later(kid: str, times: list[datetime], roots: list[TrustedReviewers], index: int) -> str | None:
    for later in roots[index + 1:]:
        for k in later.reviewers:
            if k.key_id == kid and k.revoked_at is not None and any(t >= k.revoked_at for t in times):
                return (f"key {kid[:19]}… was revoked at {k.revoked_at.isoformat()} (trust root version "
                        f"{later.version}), before it signed this")
    return None


def binding_findings(seq: int | None, logged_release: str, p: ReviewPredicate, subject: str,
                     manifest_digests: dict[str, str], decisions: dict[str, str], now: datetime,
                     parsed: dict[str, GateDecision | None] | None = None,
                     run_digests: dict[tuple[str, str], str] | None = None) -> list[Finding]:
    """Is the review bound to what the store holds: its release, manifest, gate decision, and (with
    `run_digests`) every eval run that decision judged, with the same data; are waivers live?"""
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
    decision = None
    unreadable = None
    if parsed is not None and p.gate_decision_digest in parsed:
        decision = parsed[p.gate_decision_digest]
    elif stored is not None:
        try:
            decision = load_decision(stored, f"the reviewed gate decision {p.gate_decision_digest}")
            if not decision.verify_digest():
                decision = None
        except UnknownFormat as e:  # not readable here, which is not the same as tampered
            unreadable = str(e)
            decision = None
        except InputRefused:
            decision = None
        if parsed is not None:
            parsed[p.gate_decision_digest] = decision
    if unreadable:
        out.append(Finding(seq=seq, level="error", message=unreadable))
    elif stored is None:
        out.append(Finding(seq=seq, level="error", message=f"the reviewed gate decision {p.gate_decision_digest} "
                           "is not stored"))
    elif decision is None or decision.digest != p.gate_decision_digest:
        out.append(Finding(seq=seq, level="error", message="the stored gate decision was changed after the "
                           "review: its content no longer has the reviewed digest"))
    elif decision.candidate.release_id != p.candidate_release_id or decision.policy.digest != p.policy_digest:
        out.append(Finding(seq=seq, level="error", message="the review's release or policy differs from the "
                           "gate decision it names"))
    elif run_digests is not None:
        gone = [r for r in decision.data_digests if run_digests.get((r.release_id, r.run_id)) != r.data_digest]
        if gone:
            out.append(Finding(seq=seq, level="error", message=f"the store no longer holds run {gone[0].run_id} of "
                               f"release {gone[0].release_id} as the reviewed gate decision judged it"
                               f"{f' (and {len(gone) - 1} more)' if len(gone) > 1 else ''}: deleted or changed "
                               "since the review"))
    for w in p.waivers:
        if w.expires_at <= now:
            out.append(Finding(seq=seq, level="warning", message=f"the waiver for gate {w.gate_id} expired at "
                               f"{w.expires_at.isoformat()}"))
    return out


def _checkpoint_findings(raws: list[bytes], entries: list[LogEntry], root_after: dict[int, TrustedReviewers],
                         roots: list[TrustedReviewers], log_id: str | None, now: datetime) -> list[Finding]:
    """Each checkpoint: signed by a log key of the trust root in effect at its size, valid when it was issued,
    issued after the entries it covers; the log still holds it; and the checkpoints agree with each other
    (a later checkpoint never covers fewer entries, one size has one head)."""
    out: list[Finding] = []
    good: list[Checkpoint] = []
    by_seq = {e.seq: e for e in entries}

    def bad(message: str, seq: int | None = None) -> None:
        out.append(Finding(seq=seq, level="error", message="checkpoint: " + message))

    for raw in raws:
        try:
            opened = open_envelope(raw)
            if opened.payload_type != CHECKPOINT_PAYLOAD_TYPE:
                raise SigningError(f"unexpected payload type {opened.payload_type!r}")
            cp = Checkpoint.model_validate(_json_object(opened.payload, "checkpoint"))
        except SigningError as e:
            bad(str(e))
            continue
        except ValidationError as e:
            bad(f"malformed (made by an older readiness?): {_validation_text(e)}")
            continue
        when = cp.issued_at.isoformat()
        if 0 < cp.size <= len(entries):
            root = root_after.get(cp.size)
        else:  # an empty log's checkpoint, or one past the end (truncation): the first / latest root
            root = (roots[-1] if cp.size else roots[0]) if roots else None
        if root is None:
            bad(f"of {when} covers {cp.size} entries: no trust root is in effect there (or the log is shorter)")
            continue
        signer = _signer(opened, root.keys_with(("log",)))
        if signer is None:
            bad(f"of {when}: the signature does not verify with a log key of the trust root in effect")
            continue
        problem = signer.window_problem(cp.issued_at) or _revoked_later(
            signer.key_id, [cp.issued_at], roots, next(i for i, r in enumerate(roots) if r is root))
        if problem:
            bad(f"of {when}: {problem}")
            continue
        if cp.trusted_reviewers_digest != root.digest:
            bad(f"of {when} names trust root {cp.trusted_reviewers_digest[:19]}…, not the one in effect")
            continue
        if cp.issued_at > now + CLOCK_SKEW:
            bad(f"of {when} is issued in the future")
            continue
        if log_id is not None and cp.log_id != log_id:
            bad(f"is for log {cp.log_id}, not {log_id}")
            continue
        good.append(cp)  # authentic: it must agree with every other one, and the log must still hold it
        if cp.size > len(entries):
            out.append(Finding(seq=None, level="error", message=f"the log was truncated: a checkpoint of {when} covers "
                               f"{cp.size} entries, the log has {len(entries)}"))
            continue
        if cp.size and (cp.size not in by_seq or by_seq[cp.size].entry_hash != cp.head):
            out.append(Finding(seq=cp.size, level="error", message="the log diverges from the checkpoint at this "
                               "entry (rewritten history)"))
            continue
        if cp.size and cp.issued_at + CLOCK_SKEW < by_seq[cp.size].received_at:
            bad(f"of {when} is older than entry {cp.size} it covers")
    good.sort(key=lambda c: (c.issued_at, c.size))
    heads: dict[int, str] = {}
    for c in good:
        if heads.setdefault(c.size, c.head) != c.head:
            bad(f"two checkpoints of {c.size} entries name different heads: the log was forked")
    for a, b in zip(good, good[1:], strict=False):
        if b.size < a.size:
            bad(f"of {b.issued_at.isoformat()} covers {b.size} entries, fewer than the earlier checkpoint of "
                f"{a.issued_at.isoformat()} ({a.size}): the log was rolled back between them")
    return out


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
    governing_policy: str | None = None
    trust_root: str | None = None
    trust_root_in_effect: str | None = Field(default=None, description="The log's trust root in effect at its "
                                             "head (version and digest), which may be later than the pinned one.")
    demo_keys: bool = False


def _newest_first(r: VerifiedReview) -> tuple[datetime, bool, int]:
    # by the signed review time; at the same time a block wins (fail closed); then log order
    return (r.predicate.reviewed_at, r.predicate.decision == "block", r.seq)


def release_status(decision: GateDecision, reviews: list[VerifiedReview], quorum: list[str],
                   waiver_roles: list[str], now: datetime) -> StatusReport:
    """Ready when the gate decision is not blocked (or each blocker has a valid, unexpired waiver from a role
    allowed to waive it) and the quorum of roles approved; a reviewer's signed block holds until that same
    reviewer signs a newer review (newer by its signed review time, never by its place in the log)."""
    mine = [r for r in reviews if r.predicate.candidate_release_id == decision.candidate.release_id]
    current = [r for r in mine if r.predicate.gate_decision_digest == decision.digest]
    stale = []
    for r in mine:
        if r in current:
            continue
        p = r.predicate
        if p.policy_digest != decision.policy.digest:
            stale.append(f"{p.reviewer} ({p.role}) signed against policy {p.policy_id} v{p.policy_version} "
                         f"({p.policy_digest[:19]}…), not the governing policy {decision.policy.policy_id} "
                         f"v{decision.policy.version}: it does not count toward quorum")
        else:
            stale.append(f"{p.reviewer} ({p.role}) reviewed decision {p.gate_decision_digest[:19]}…, not the current "
                         f"{decision.digest[:19]}…")
    latest: dict[str, VerifiedReview] = {}
    for r in sorted(mine, key=_newest_first):
        latest[r.predicate.reviewer] = r  # a newer signed review by the same reviewer supersedes older ones
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
