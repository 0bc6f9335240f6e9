"""Ed25519 keys, DSSE envelopes and in-toto statements (../shared/notes/signing.md).

- Private keys are stored in the OpenSSH format, encrypted with a bcrypt-derived key (not PKCS8's
  2,048-iteration PBKDF2). A key is used in memory for one signature and never stored by Readiness.
- A key id is 'sha256:' + sha256 of the raw 32-byte public key; it is only a hint when verifying.
- DSSE signs PAE("DSSEv1", payloadType, payload): the exact payload bytes. Verification checks the
  signature before the payload is parsed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dashboard.core.canonical import canonical_json

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# v2: the predicate names the trust root it was signed under (v1 statements are refused with a clear message).
REVIEW_PREDICATE_TYPE = "https://readiness.dev/readiness-review/v2"
OLD_REVIEW_PREDICATE_TYPES = ("https://readiness.dev/readiness-review/v1",)
CHECKPOINT_PAYLOAD_TYPE = "application/vnd.readiness.log-checkpoint+json"
ADMIN_PAYLOAD_TYPE = "application/vnd.readiness.admin-event+json"


class SigningError(Exception):
    """A key or signature problem, with a message meant for the person holding the key."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def public_key_text(public: Ed25519PublicKey) -> str:
    """The OpenSSH public key line ('ssh-ed25519 AAAA...')."""
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_ssh_public_key(" ".join(text.split()[:2]).encode())
    except (ValueError, IndexError) as e:
        raise SigningError(f"not an OpenSSH public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError("only Ed25519 keys are accepted")
    return key


def new_key(passphrase: bytes) -> tuple[bytes, Ed25519PublicKey]:
    """A new Ed25519 key as encrypted OpenSSH private-key bytes, and its public key."""
    if len(passphrase) < 8:
        raise SigningError("the passphrase must have at least 8 characters")
    private = Ed25519PrivateKey.generate()
    data = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.BestAvailableEncryption(passphrase))
    return data, private.public_key()


def load_private_key(data: bytes, passphrase: bytes | None) -> Ed25519PrivateKey:
    """Decrypt a private key in memory; a wrong passphrase gives a clear error."""
    try:
        key = serialization.load_ssh_private_key(data, passphrase or None)
    except ValueError as e:
        text = str(e).lower()
        if "checksum" in text or "bad decrypt" in text or "incorrect password" in text:
            raise SigningError("wrong passphrase for this key") from e
        if "password" in text and passphrase is None:
            raise SigningError("this key is encrypted: give its passphrase") from e
        raise SigningError(f"not a readable OpenSSH private key: {e}") from e
    except TypeError as e:
        raise SigningError("this key is encrypted: give its passphrase" if passphrase is None
                           else f"cannot use this key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError("only Ed25519 keys are accepted")
    return key


def load_private_key_file(path: str | Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    from dashboard.core.errors import InputRefused, read_input_bytes

    try:
        data = read_input_bytes(path, "key file", 64 * 1024)  # a bounded regular file (no device, FIFO)
    except (OSError, InputRefused) as e:
        raise SigningError(f"cannot read key file {path}: {e}") from e
    return load_private_key(data, passphrase)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope (canonical JSON bytes) signing exactly `payload`."""
    sig = key.sign(pae(payload_type, payload))
    envelope = {"payload": base64.b64encode(payload).decode(), "payloadType": payload_type,
                "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(sig).decode()}]}
    return canonical_json(envelope)


@dataclass(frozen=True)
class OpenedEnvelope:
    payload_type: str
    payload: bytes
    keyid: str
    signature: bytes


def open_envelope(envelope: bytes) -> OpenedEnvelope:
    """The envelope's parts, without trusting anything yet (the payload is not parsed here)."""
    try:
        outer = json.loads(envelope)
        if not isinstance(outer, dict):
            raise SigningError("not a DSSE envelope: not a JSON object")
        sigs = outer["signatures"]
        if not isinstance(sigs, list) or len(sigs) != 1:
            raise SigningError("an envelope must carry exactly one signature")
        return OpenedEnvelope(payload_type=str(outer["payloadType"]), payload=base64.b64decode(outer["payload"],
                              validate=True), keyid=str(sigs[0].get("keyid", "")),
                              signature=base64.b64decode(sigs[0]["sig"], validate=True))
    except SigningError:
        raise
    except RecursionError as e:
        raise SigningError("not a DSSE envelope: nested too deeply") from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SigningError(f"not a DSSE envelope: {type(e).__name__} {e}") from e


def statement_id(opened: OpenedEnvelope) -> str:
    """A signed statement's identity: the digest of exactly what was signed (payload type and payload), so a
    re-indented or re-encoded copy of an envelope is the same statement."""
    return "sha256:" + hashlib.sha256(pae(opened.payload_type, opened.payload)).hexdigest()


def verify_signature(opened: OpenedEnvelope, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(opened.signature, pae(opened.payload_type, opened.payload))
        return True
    except InvalidSignature:
        return False


def statement(subject_name: str, subject_sha256: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    """An in-toto Statement v1 as RFC 8785 bytes (what the DSSE envelope signs)."""
    return canonical_json({"_type": STATEMENT_TYPE,
                           "subject": [{"name": subject_name, "digest": {"sha256": subject_sha256}}],
                           "predicateType": predicate_type, "predicate": predicate})
