"""Loading release manifests and diffing a candidate against its baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from dashboard.core.errors import InputRefused, Problem, parse_json, parse_yaml, read_text
from dashboard.core.models import ARTIFACT_KINDS, ReleaseManifest


def pydantic_problems(source: str, location: str, err: ValidationError) -> list[Problem]:
    """One Problem per Pydantic error, with the dotted field path."""
    out = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (not part of the format)"
        out.append(Problem(source, location, field, msg))
    return out


def load_structured(path: str | Path) -> Any:
    """JSON or YAML content of a file (a bounded regular file); a parse error names the file and line."""
    p = Path(path)
    text = read_text(p)
    if p.suffix.lower() == ".json":
        return parse_json(text, p)
    return parse_yaml(text, p)


def load_manifest(path: str | Path) -> ReleaseManifest:
    data = load_structured(path)
    if not isinstance(data, dict):
        raise InputRefused([Problem(str(path), "", "", "a manifest must be a JSON/YAML object")])
    try:
        return ReleaseManifest.model_validate(data)
    except ValidationError as e:
        raise InputRefused(pydantic_problems(str(path), "", e)) from e


# Seed §25: how each kind of artifact is rolled back.
ROLLBACK_METHOD = {
    "code": "deploy the previous image", "image": "deploy the previous image",
    "prompts": "switch the prompt version back", "model_routes": "switch the route config back",
    "indexes": "promote the previous active index", "tools": "disable or revert the tool version",
    "workflows": "route new runs to the previous workflow version", "eval_datasets": "no rollback: review the gate change",
    "config": "revert the config version", "governance_policy": "revert the governance policy version",
}


class ArtifactChange(BaseModel):
    """One artifact whose version differs between baseline and candidate."""

    kind: str = Field(description="The artifact kind: code, image, prompts, model_routes, indexes, tools, ...")
    name: str = Field(description="The artifact's name in the manifest.")
    baseline: str | None = Field(description="Its version in the baseline; null: added by the candidate.")
    candidate: str | None = Field(description="Its version in the candidate; null: removed.")

    @property
    def change(self) -> str:
        if self.baseline is None:
            return "added"
        if self.candidate is None:
            return "removed"
        return "changed"


def diff_manifests(baseline: ReleaseManifest | None, candidate: ReleaseManifest) -> list[ArtifactChange]:
    """Every artifact version that changed, by kind (code, prompts, model_routes, ...), sorted."""
    changes: list[ArtifactChange] = []
    for kind, field in ARTIFACT_KINDS.items():
        new = getattr(candidate, field)
        old = getattr(baseline, field) if baseline is not None else ({} if isinstance(new, dict) else None)
        if isinstance(new, dict) and isinstance(old, dict):
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    changes.append(ArtifactChange(kind=kind, name=name, baseline=old.get(name), candidate=new.get(name)))
        elif old != new:
            changes.append(ArtifactChange(kind=kind, name=field, baseline=old, candidate=new))
    return changes

