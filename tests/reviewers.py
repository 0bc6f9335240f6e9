"""Reviewer keys and a trusted-reviewers file for the review tests (made once per session)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from dashboard.core.reviews import TrustedReviewers, load_trusted, trusted_entry
from dashboard.core.signing import load_private_key, new_key, public_key_text

PASS = b"correct horse battery"
PEOPLE = {"eng": ("eng@example.com", ["engineering"]), "sec": ("sec@example.com", ["security"]),
          "risk": ("risk@example.com", ["risk"]), "prod": ("prod@example.com", ["product"]),
          "log": ("log@example.com", ["log"]), "admin": ("admin@example.com", ["admin"])}
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def make_keys(folder: Path) -> tuple[dict, Path]:
    keys, entries = {}, []
    for name, (principal, roles) in PEOPLE.items():
        data, public = new_key(PASS)
        (folder / f"{name}.key").write_bytes(data)
        (folder / f"{name}.pub").write_text(f"{public_key_text(public)} {principal}\n")
        keys[name] = load_private_key(data, PASS)
        entries.append(trusted_entry(principal, roles, public_key_text(public), SINCE))
    trusted = folder / "trusted_reviewers.yaml"
    trusted.write_text(yaml.safe_dump({"schema_version": 2, "version": 1, "previous": None, "reviewers": entries},
                                      sort_keys=False))
    return keys, trusted


def trusted_with(path: Path, name: str = "trusted_changed.yaml", next_version: bool = False,
                 extra: list[dict] | None = None, **changes_by_principal) -> TrustedReviewers:
    """A changed copy of a trusted-reviewers file (as the next version of it with `next_version`)."""
    data = yaml.safe_load(path.read_text())
    for entry in data["reviewers"]:
        entry.update(changes_by_principal.get(entry["principal"], {}))
    data["reviewers"] += extra or []
    if next_version:
        data["previous"] = load_trusted(path).digest
        data["version"] += 1
    out = path.with_name(name)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_trusted(out)
