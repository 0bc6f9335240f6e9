"""One eval-tool file (or MLflow experiment) as several releases: a side-by-side eval is a comparison.

A promptfoo eval that runs two prompts (or two providers) over the same tests is a baseline and a candidate;
so is an MLflow experiment whose runs are tagged baseline and candidate. `--split DIMENSION` names what tells
them apart (`prompt` or `provider` for promptfoo, `tag.<name>` for MLflow run tags, or any slice dimension the
tool's records carry) and `--release-map 'value=release,...'` which release each value becomes. Each release's
cases keep the test as their identity (promptfoo's case id drops the split part), so the releases pair by test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboard.core.errors import InputRefused, Problem

MAX_RELEASES = 20


def parse_release_map(text: str) -> dict[str, str]:
    """'a=rel-a,b=rel-b' as {a: rel-a, b: rel-b} in the written order; a clear refusal for anything else."""
    out: dict[str, str] = {}
    for part in text.split(","):
        value, sep, release = part.partition("=")
        value, release = value.strip(), release.strip()
        if not sep or not value or not release:
            raise InputRefused(f"--release-map {part.strip()!r}: expected value=release (e.g. "
                               "'support_v1=rel-a,support_v2=rel-b')")
        if value in out:
            raise InputRefused(f"--release-map names {value!r} twice")
        out[value] = release
    if len(set(out.values())) != len(out):
        raise InputRefused("--release-map maps two values to one release: each value is its own release")
    if len(out) < 2 or len(out) > MAX_RELEASES:
        raise InputRefused(f"--release-map needs 2 to {MAX_RELEASES} values (a baseline and a candidate, or more)")
    return out


def split_records(source: str, tool: str, records: Sequence[dict[str, Any]], dimension: str,
                  release_map: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by release (map order; a release may get none from this source). A record without the
    dimension, or whose value the map does not name, is refused naming the record and the values seen."""
    out: dict[str, list[dict[str, Any]]] = {release: [] for release in release_map.values()}
    unmapped: dict[str, int] = {}
    for i, r in enumerate(records, start=1):
        value = (r.get("slices") or {}).get(dimension)
        if value is None:
            raise InputRefused([Problem(source, f"record {i}", f"slices.{dimension}",
                                        f"--split {dimension}: this {tool} record has no {dimension!r}; its "
                                        f"dimensions: {', '.join(sorted(r.get('slices') or {})) or 'none'}")])
        if value not in release_map:
            unmapped[value] = unmapped.get(value, 0) + 1
            continue
        out[release_map[value]].append(_rekeyed(r, tool, dimension))
    if unmapped:
        seen = ", ".join(f"{v!r} ({n} records)" for v, n in sorted(unmapped.items()))
        raise InputRefused([Problem(source, "", f"slices.{dimension}",
                                    f"--release-map does not name {seen}; every value of the split must map to a "
                                    f"release (it names {', '.join(map(repr, release_map))})")])
    return out


def _rekeyed(record: dict[str, Any], tool: str, dimension: str) -> dict[str, Any]:
    """promptfoo's case id is '<test>|<prompt>|<provider>': splitting by prompt (provider) leaves
    '<test>|<provider>' ('<test>|<prompt>'), so the same test pairs across the releases."""
    if tool != "promptfoo" or dimension not in ("prompt", "provider"):
        return record
    slices = record["slices"]
    tail = f"|{slices.get('prompt')}|{slices.get('provider')}"
    case_id = record["case_id"]
    if not case_id.endswith(tail) or len(case_id) == len(tail):
        return record
    test = case_id[: -len(tail)]
    keep = slices["provider"] if dimension == "prompt" else slices["prompt"]
    return {**record, "case_id": f"{test}|{keep}"}


def missing_values(release_map: dict[str, str], counts: dict[str, int]) -> list[str]:
    """Map values no source had a record of (a typo in --release-map must not leave a release empty)."""
    return [value for value, release in release_map.items() if counts.get(release, 0) == 0]
