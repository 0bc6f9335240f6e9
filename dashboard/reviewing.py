"""Readiness reviews, shared by the CLI and the dashboard: sign, add to the log, verify, checkpoint, status."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Base64Bytes, BaseModel, ConfigDict, ValidationError

from dashboard.core.canonical import canonical_json, digest
from dashboard.core.errors import InputRefused, read_input_bytes
from dashboard.core.gates import GateDecision
from dashboard.core.policy import GatePolicy
from dashboard.core.reviews import (
    GENESIS,
    REVIEW_ROLES,
    AdminEvent,
    Checkpoint,
    Finding,
    LogEntry,
    ReviewPredicate,
    SignInIdentity,
    StatusReport,
    TrustedReviewers,
    VerifyReport,
    Waiver,
    binding_findings,
    check_admin_event,
    check_review,
    load_trusted,
    release_status,
    verify_log,
)
from dashboard.core.signing import (
    ADMIN_PAYLOAD_TYPE,
    CHECKPOINT_PAYLOAD_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    REVIEW_PREDICATE_TYPE,
    SigningError,
    open_envelope,
    parse_public_key,
    sign_envelope,
    statement,
    statement_id,
    verify_signature,
)
from dashboard.service import gate_release
from dashboard.store.db import Store

BUNDLE_FORMAT = "readiness.review-bundle/v2"
DATA = Path(__file__).resolve().parent.parent / "data"
DEMO_TRUSTED = DATA / "reviewers" / "trusted_reviewers.yaml"
DEMO_ADMIN_KEY = DATA / "reviewers" / "admin_example.com.key"
DEMO_PASSPHRASE = b"readiness-demo"
DEMO_POLICY = DATA / "policies" / "case-management.yaml"
DEMO_GOVERNANCE = "gov.case-ai.v3"
DEMO_LABEL = "DEMO KEYS (public passphrase; not for real releases)"


def demo_root_digest() -> str | None:
    try:
        return load_trusted(DEMO_TRUSTED).digest
    except InputRefused:
        return None


def review_predicate(decision: GateDecision, reviewer: str, role: str, choice: str, *, trust_root: str,
                     comment: str = "", conditions: list[str] | None = None, accepted_risks: list[str] | None = None,
                     release_owner: str | None = None, rollback_owner: str | None = None,
                     waivers: list[Waiver] | None = None, now: datetime | None = None,
                     identity: SignInIdentity | None = None) -> ReviewPredicate:
    """What the reviewer saw (the decision and all its digests), under which trust root, and what they decided."""
    failed = set(decision.blockers) | set(decision.warnings)
    for w in waivers or []:
        if w.gate_id not in failed:
            raise InputRefused(f"waiver for {w.gate_id!r}: that gate did not fail in the reviewed decision")
    if choice == "approve_with_conditions" and not conditions:
        raise InputRefused("approve_with_conditions needs at least one condition")
    if role not in REVIEW_ROLES:
        raise InputRefused(f"role {role!r}: a review is signed as one of {', '.join(REVIEW_ROLES)}")
    try:
        return ReviewPredicate(
            reviewer=reviewer, role=role, decision=choice,
            reviewed_at=(now or datetime.now(UTC)).replace(microsecond=0),
            candidate_release_id=decision.candidate.release_id,
            baseline_release_id=decision.baseline.release_id if decision.baseline else None,
            candidate_manifest_digest=decision.candidate.manifest_digest, gate_decision_digest=decision.digest,
            gate_status=decision.status, policy_id=decision.policy.policy_id, policy_version=decision.policy.version,
            policy_digest=decision.policy.digest, evidence_digest=decision.evidence_digest,
            data_digests=[d.data_digest for d in decision.data_digests], trusted_reviewers_digest=trust_root,
            comment=comment, conditions=conditions or [], accepted_risks=accepted_risks or [],
            release_owner=release_owner, rollback_owner=rollback_owner, waivers=waivers or [], identity=identity)
    except ValidationError as e:
        raise InputRefused("review: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}"
                                                  for x in e.errors())) from e


def sign_review(store: Store, decision: GateDecision, predicate: ReviewPredicate, key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope over an in-toto statement whose subject is the candidate manifest's digest. The decision
    it names is stored, so the review can later be checked against exactly what was reviewed."""
    store.put_decision(decision)
    payload = statement(predicate.candidate_release_id, predicate.candidate_manifest_digest.removeprefix("sha256:"),
                        REVIEW_PREDICATE_TYPE,
                        # without a sign-in the statement has no identity key: the same bytes as before it existed
                        predicate.model_dump(mode="json", exclude={"identity"} if predicate.identity is None else None))
    return sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, key)


# ----- trust: the root the verifier chose, and the log's trust-root history ----------------------------------
def log_trust_roots(store: Store) -> list[TrustedReviewers]:
    """The trust roots recorded in the log, in order, NOT verified (for choosing a default and for display;
    verification anchors them at the root the verifier supplies)."""
    out = []
    for e in store.review_entries():
        try:
            opened = open_envelope(e.envelope)
            if opened.payload_type == ADMIN_PAYLOAD_TYPE:
                event = AdminEvent.model_validate_json(opened.payload)
                if event.trusted_reviewers is not None:
                    out.append(event.trusted_reviewers)
        except (SigningError, ValidationError, ValueError, RecursionError):
            continue
    return out


def demo_key_ids() -> set[str]:
    try:
        return {k.key_id for k in load_trusted(DEMO_TRUSTED).reviewers}
    except InputRefused:
        return set()


def uses_demo_keys(trusted: TrustedReviewers, report: VerifyReport) -> bool:
    """The pinned root or any root of the log is the demo root or lists a demo key (public passphrase): every
    output says DEMO KEYS then."""
    demo = demo_root_digest()
    ids = demo_key_ids()
    return (trusted.digest == demo or demo in report.trust_roots or any(k.key_id in ids for k in trusted.reviewers)
            or bool(ids.intersection(report.key_ids)))


def is_demo_store(store: Store) -> bool:
    """A store whose log starts with the demo trust root (what `readiness serve` / `readiness demo --db` load)."""
    roots = log_trust_roots(store)
    return bool(roots) and roots[0].digest == demo_root_digest()


def resolve_trusted(store: Store | None, explicit: str | None) -> tuple[TrustedReviewers, bool]:
    """The trust root the verifier chose: the named file; only a demo store defaults to the demo's keys.
    Returns (root, is_demo). Never the keys of what is being verified."""
    if explicit:
        trusted = load_trusted(explicit)
        ids = demo_key_ids()
        return trusted, trusted.digest == demo_root_digest() or any(k.key_id in ids for k in trusted.reviewers)
    if store is not None and is_demo_store(store):
        return load_trusted(DEMO_TRUSTED), True
    raise InputRefused("no trust root: pass --trusted FILE or set READINESS_TRUSTED to the trusted-reviewers file "
                       "you trust (there is no default outside the demo store; see README, Reviews)")


def _admin_entries(entries: list[LogEntry]) -> list[LogEntry]:
    out = []
    for e in entries:
        try:
            if open_envelope(e.envelope).payload_type == ADMIN_PAYLOAD_TYPE:
                out.append(e)
        except SigningError:
            continue
    return out


def _trust_state(entries: list[LogEntry], anchor: TrustedReviewers, now: datetime, log_id: str) -> VerifyReport:
    """The verified trust-root history and governing policies (admin events only: cheap, for recording)."""
    return verify_log(_admin_entries(entries), anchor, {}, {}, now, log_id=log_id)


def _log_state(store: Store, now: datetime) -> tuple[VerifyReport, list[LogEntry]]:
    """The log as it stands, for recording: the trust root in effect (its history anchored at its last root)."""
    entries = store.review_entries()
    roots = log_trust_roots(store)
    if not roots:
        return VerifyReport(entries=0, head="0" * 64, findings=[], reviews=[]), entries
    return _trust_state(entries, roots[-1], now, store.log_id()), entries


def current_root(store: Store, now: datetime | None = None) -> TrustedReviewers | None:
    return _log_state(store, now or datetime.now(UTC))[0].current_root


def record_trust_root(store: Store, trusted: TrustedReviewers, key: Ed25519PrivateKey, issuer: str,
                      now: datetime | None = None) -> LogEntry:
    """Record a new trust root in the log, signed by an admin key (of the root in effect; of itself for the
    first). Refused unless it follows the root in effect (version + 1, `previous` = its digest)."""
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    current = current_root(store, when)
    log_id, previous = _place(store)
    event = AdminEvent(schema_version=2, kind="trust_root", issuer=issuer, issued_at=when, log_id=log_id,
                       previous_entry=previous, under_trust_root=(current or trusted).digest, trusted_reviewers=trusted)
    return _append_admin(store, event, key, current, when)


def record_governing_policy(store: Store, governance_version: str, policy: GatePolicy, key: Ed25519PrivateKey,
                            issuer: str, now: datetime | None = None) -> LogEntry:
    """Make `policy` the one that governs releases whose manifest names `governance_version` (and so their
    quorum and who may waive), signed by an admin key of the trust root in effect."""
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    current = current_root(store, when)
    if current is None:
        raise InputRefused("this store has no trust root yet: record one first (`readiness trust set FILE`)")
    log_id, previous = _place(store)
    event = AdminEvent(schema_version=2, kind="governing_policy", issuer=issuer, issued_at=when, log_id=log_id,
                       previous_entry=previous, under_trust_root=current.digest, governance_policy_version=governance_version,
                       policy=policy.model_dump(mode="json"), policy_digest=policy.digest)
    store.remember_policy(policy.policy_id, policy.version, policy.digest, policy.model_dump_json())
    return _append_admin(store, event, key, current, when)


def _place(store: Store) -> tuple[str, str]:
    """Where the next admin event goes: this log's id and the hash of its last entry (what the event signs)."""
    entries = store.review_entries()
    return store.log_id(), entries[-1].entry_hash if entries else GENESIS


def _append_admin(store: Store, event: AdminEvent, key: Ed25519PrivateKey, current: TrustedReviewers | None,
                  when: datetime) -> LogEntry:
    envelope = sign_envelope(canonical_json(event.model_dump(mode="json")), ADMIN_PAYLOAD_TYPE, key)
    opened = open_envelope(envelope)
    try:
        check_admin_event(opened, current, when, event.log_id, event.previous_entry)
    except SigningError as e:
        raise InputRefused(f"admin event refused: {e}") from e
    # appended only right after the entry it was signed to follow (another append in between refuses it)
    return store.append_review("", envelope, when, kind="admin", statement_id=statement_id(opened),
                               expect_previous=event.previous_entry)


def install_demo_trust(store: Store) -> None:
    """The demo store's trust: the demo trust root and the demo's governing policy, signed by the demo admin key
    (whose passphrase is public: every output that verifies with these keys says so)."""
    if log_trust_roots(store):
        return
    from dashboard.core.policy import load_policy
    from dashboard.core.signing import load_private_key_file

    key = load_private_key_file(DEMO_ADMIN_KEY, DEMO_PASSPHRASE)
    record_trust_root(store, load_trusted(DEMO_TRUSTED), key, "admin@example.com")
    record_governing_policy(store, DEMO_GOVERNANCE, load_policy(DEMO_POLICY), key, "admin@example.com")


# ----- reviews ----------------------------------------------------------------------------------------------
def add_review(store: Store, envelope: bytes, trusted: TrustedReviewers, now: datetime | None = None) -> LogEntry:
    """Check an envelope (signature first) against the trust root in effect (which must descend from the root
    the caller trusts), its signer and its bindings, refuse replays, then append it to the log."""
    when = now or datetime.now(UTC)
    state = _trust_state(store.review_entries(), trusted, when, store.log_id())
    root = state.current_root
    if root is None:
        raise InputRefused("review refused: this store has no trust root yet (an administrator records one with "
                           "`readiness trust set FILE --key ADMIN_KEY`)")
    if trusted.digest not in state.trust_roots:
        raise InputRefused(f"review refused: the trusted-reviewers file you trust ({trusted.digest}) is not in this "
                           "store's trust-root history")
    try:
        opened = open_envelope(envelope)
        _key, predicate, subject = check_review(opened, root, when)
    except SigningError as e:
        raise InputRefused(f"review refused: {e}") from e
    problems = [f for f in binding_findings(None, predicate.candidate_release_id, predicate, subject,
                                            store.manifest_digests(), store.decisions(), when,
                                            run_digests=store.run_digests()) if f.level == "error"]
    if problems:
        raise InputRefused("review refused: " + "; ".join(f.message for f in problems))
    return store.append_review(predicate.candidate_release_id, envelope, when, kind="review",
                               statement_id=statement_id(opened), reviewer=predicate.reviewer,
                               reviewed_at=predicate.reviewed_at, block=predicate.decision == "block")


def verify_store(store: Store, trusted: TrustedReviewers, extra_checkpoints: list[bytes] | None = None,
                 now: datetime | None = None) -> VerifyReport:
    return verify_log(store.review_entries(), trusted, store.manifest_digests(), store.decisions(),
                      now or datetime.now(UTC), store.checkpoints() + (extra_checkpoints or []), store.log_id(),
                      run_digests=store.run_digests())


def make_checkpoint(store: Store, log_key: Ed25519PrivateKey, now: datetime | None = None) -> bytes:
    """A checkpoint (log size, head hash, trust root in effect) signed by the log key; publish it to catch
    truncation later."""
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    state, entries = _log_state(store, when)
    root = state.current_root
    if root is None:
        raise InputRefused("this store has no trust root yet: nothing to checkpoint")
    cp = Checkpoint(schema_version=2, log_id=store.log_id(), size=len(entries),
                    head=entries[-1].entry_hash if entries else "0" * 64, issued_at=when,
                    trusted_reviewers_digest=root.digest)
    envelope = sign_envelope(canonical_json(cp.model_dump(mode="json")), CHECKPOINT_PAYLOAD_TYPE, log_key)
    opened = open_envelope(envelope)
    signer = next((k for k in root.keys_with(("log",)) if verify_signature(opened, parse_public_key(k.public_key))),
                  None)
    if signer is None:
        raise InputRefused("this key is not a log key of the trust root in effect")
    problem = signer.window_problem(when)
    if problem:
        raise InputRefused(f"checkpoint refused: {problem}")
    if not store.read_only:
        store.put_checkpoint(cp.size, cp.head, envelope, when)
    return envelope


def export_bundle(store: Store) -> dict[str, Any]:
    """Everything needed to verify the log on another machine, offline, except the trust root: the verifier
    supplies the trusted-reviewers file it trusts (a bundle never carries keys that verify it)."""
    return {
        "format": BUNDLE_FORMAT, "log_id": store.log_id(),
        "entries": [{"seq": e.seq, "release_id": e.release_id, "prev_hash": e.prev_hash,
                     "envelope": base64.b64encode(e.envelope).decode(), "envelope_hash": e.envelope_hash,
                     "received_at": e.received_at.isoformat(), "entry_hash": e.entry_hash}
                    for e in store.review_entries()],
        "checkpoints": [base64.b64encode(c).decode() for c in store.checkpoints()],
        "decisions": store.decisions(), "manifest_digests": store.manifest_digests(),
    }


class _BundleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    release_id: str
    prev_hash: str
    envelope: Base64Bytes
    envelope_hash: str
    received_at: str
    entry_hash: str


class _Bundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["readiness.review-bundle/v2"]
    log_id: str
    entries: list[_BundleEntry]
    checkpoints: list[Base64Bytes]
    decisions: dict[str, str]
    manifest_digests: dict[str, str]


def _invalid(message: str) -> VerifyReport:
    return VerifyReport(entries=0, head="", findings=[Finding(seq=None, level="error", message=message)], reviews=[])


def verify_bundle(bundle: bytes | dict[str, Any], extra_checkpoints: list[bytes] | None = None,
                  trusted: TrustedReviewers | None = None, now: datetime | None = None) -> VerifyReport:
    """Verify an exported bundle against the trust root the verifier supplies. Any bytes give a report: every
    problem is a finding, never an exception."""
    if trusted is None:
        raise InputRefused("verifying a bundle needs the trusted-reviewers file you trust (--trusted or "
                           "$READINESS_TRUSTED): the keys of what is verified are never trusted")
    try:
        data = json.loads(bundle) if isinstance(bundle, bytes | bytearray) else bundle
    except RecursionError:
        return _invalid("bundle: nested too deeply")
    except ValueError as e:
        return _invalid(f"bundle: not JSON: {e}")
    if isinstance(data, dict) and data.get("format") != BUNDLE_FORMAT:
        return _invalid(f"bundle: format {str(data.get('format'))[:80]!r} is not {BUNDLE_FORMAT!r}"
                        + (" (an older bundle: export it again)" if data.get("format") == "readiness.review-bundle/v1"
                           else ""))
    try:
        parsed = _Bundle.model_validate(data)
    except ValidationError as e:
        return VerifyReport(entries=0, head="", reviews=[], findings=[
            Finding(seq=None, level="error", message=f"bundle: {'.'.join(map(str, x['loc'])) or '(top)'}: {x['msg']}")
            for x in e.errors()[:20]])
    entries, findings = [], []
    for i, be in enumerate(parsed.entries):
        try:
            received = datetime.fromisoformat(be.received_at)
            entries.append(LogEntry(seq=be.seq, release_id=be.release_id, prev_hash=be.prev_hash, envelope=be.envelope,
                                    envelope_hash=be.envelope_hash, received_at=received, entry_hash=be.entry_hash))
        except (ValueError, ValidationError) as err:
            findings.append(Finding(seq=None, level="error", message=f"bundle: entries.{i}.received_at: not a "
                                    f"time-zone-aware ISO 8601 time ({str(err)[:120]})"))
    if findings:
        return VerifyReport(entries=len(parsed.entries), head="", findings=findings, reviews=[])
    return verify_log(entries, trusted, parsed.manifest_digests, parsed.decisions, now or datetime.now(UTC),
                      list(parsed.checkpoints) + (extra_checkpoints or []), parsed.log_id)


def status(store: Store, policy: GatePolicy | None, release_id: str, trusted: TrustedReviewers,
           baseline_id: str | None = None, profile: str | None = None, now: datetime | None = None,
           no_baseline: bool = False, decision: GateDecision | None = None,
           checkpoints: list[bytes] | None = None) -> tuple[StatusReport, GateDecision, VerifyReport]:
    """Readiness = the gate decision under the release's governing policy + the verified reviews + that policy's
    quorum and waiver roles. The governing policy is the one an admin registered (signed, in the log) for the
    manifest's `governance_policy_version`, never one a review names. `policy`, if given, must be it (else the
    release is not ready). Pass `decision` when the caller already judged the release with `policy`.
    `checkpoints` are published checkpoints (held outside the store), verified exactly as `review verify` does:
    any error finding makes the release NOT READY. Without one, a rewritten and re-hashed log is not detected."""
    when = now or datetime.now(UTC)
    manifest = store.manifest(release_id)
    if manifest is None:
        raise InputRefused(f"release {release_id} is not in the store")
    report = verify_store(store, trusted, checkpoints, now=when)
    gov = manifest.governance_policy_version
    governing = report.governing_policy(gov)
    problems = []
    if digest(manifest) != store.manifest_digest(release_id):  # the governance version is read from this content
        problems.append(f"the stored manifest of {release_id} no longer has its digest {store.manifest_digest(release_id)}"
                        " (edited in the store): its governance_policy_version cannot be trusted")
    if governing is None:
        if policy is None:
            raise InputRefused(f"no governing policy is registered for {gov} ({release_id}'s governance_policy_version)"
                               ": an administrator registers one with `readiness trust govern`")
        problems.append(f"no governing policy is registered for {gov} ({release_id}'s governance_policy_version): "
                        "reviews count toward no quorum until an administrator registers one")
        chosen = policy
    elif policy is not None and policy.digest != governing.digest:
        problems.append(f"policy {policy.policy_id} v{policy.version} is not the governing policy of {release_id} "
                        f"({gov}: {governing.policy_id} v{governing.version}, {governing.digest[:19]}…): readiness is "
                        "judged only under the governing policy")
        chosen = policy
    else:
        chosen = governing
    if decision is None or decision.policy.digest != chosen.digest:
        decision = gate_release(store, chosen, release_id, baseline_id, profile, no_baseline=no_baseline)
    result = release_status(decision, report.reviews, chosen.review.required_roles(), chosen.review.waiver_roles, when)
    if not report.ok:
        problems.insert(0, "the review log does not verify: " + "; ".join(
            str(f) for f in report.findings if f.level == "error"))
    if problems:
        result.reasons[:0] = problems
        result.ready = False
    result.governing_policy = (f"{gov}: {governing.policy_id} v{governing.version} ({governing.digest})"
                               if governing else None)
    result.trust_root = report.pinned
    if report.current_root is not None:
        result.trust_root_in_effect = f"version {report.current_root.version} ({report.current_root.digest})"
    result.demo_keys = uses_demo_keys(trusted, report)
    return result, decision, report


def read_envelope(path: str | Path) -> bytes:
    try:
        data = read_input_bytes(path, "envelope")  # a bounded regular file
        json.loads(data)
    except (OSError, ValueError) as e:
        raise InputRefused(f"{path}: not a readable envelope: {e}") from e
    return data
