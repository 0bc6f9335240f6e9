"""Docs that cannot drift: the CLI reference is generated from the parser, the README's CLI table names every
command, docs/policy.md names every policy key."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from dashboard.cli import build_parser
from dashboard.cli_reference import commands, reference
from dashboard.core.policy import GatePolicy
from tests.conftest import REPO


def test_the_committed_cli_reference_is_current():
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference(build_parser()), "run: python -m dashboard.cli_reference > docs/cli.md"


def test_every_option_has_help():
    for path, sub in commands(build_parser()):
        for action in sub._actions:
            assert action.help, f"readiness {' '.join(path)} {action.option_strings or action.dest}: no help text"


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_cli_table_names_every_command():
    table = _section((REPO / "README.md").read_text(encoding="utf-8"), "CLI")
    missing = [" ".join(path) for path, _ in commands(build_parser())
               if not re.search(rf"`(readiness )?{re.escape(' '.join(path))}[ `]", table)]
    assert not missing, f"commands missing from the README's CLI table: {missing}"


def _keys(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """Every key a YAML file of `model` may hold, nested models included."""
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                keys |= _keys(t, seen)
            stack += list(typing.get_args(t))
    return keys


def test_docs_policy_names_every_policy_key():
    # docs/policy.md, and docs/canary.md for the canary section it links to
    doc = "".join((REPO / "docs" / name).read_text(encoding="utf-8") for name in ("policy.md", "canary.md"))
    assert "canary.md" in (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    # Condition is written as one string (its grammar is documented), not as keys.
    keys = _keys(GatePolicy, set()) - {"text", "op", "statistic", "threshold", "baseline_delta", "baseline_ratio",
                                       "test", "margin"}
    missing = sorted(k for k in keys if not re.search(rf"(`{k}`|\b{k}:)", doc))
    assert not missing, f"policy keys docs/policy.md does not mention: {missing}"
