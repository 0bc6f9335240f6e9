"""Canonical JSON (RFC 8785) and the sha256 digests every decision and record is named by."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785
from pydantic import BaseModel


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON-able value or a Pydantic model (dumped in JSON mode)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """'sha256:<hex>' over the canonical JSON of `value`."""
    return "sha256:" + sha256_hex(canonical_json(value))


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    """'sha256:<hex>' of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()
