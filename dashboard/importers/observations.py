"""Reading production-observation files (JSONL or Parquet, one `Observation` per line / record) and OTLP traces.

Every record is validated with the `Observation` model; a problem names the file, the line (JSONL) or record
(Parquet) and the field. Nothing is stored here: `dashboard/store/observations.py` stores what this returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dashboard.core.errors import (
    MAX_TOOL_FILE_BYTES,
    InputRefused,
    Problem,
    check_input_file,
    decode_text,
    parse_json,
    read_input_bytes,
)
from dashboard.core.manifests import pydantic_problems
from dashboard.core.observations import VARIANTS, Observation

MAX_PROBLEMS = 20  # problems reported per call (the first ones, in file order)
PARQUET_MAGIC = b"PAR1"


def detect_observation_format(path: Path, head: bytes) -> str:
    """parquet, otlp (OpenTelemetry TracesData per line) or jsonl (native observations)."""
    if head[:4] == PARQUET_MAGIC:
        return "parquet"
    first = head.lstrip()[:4096]
    if first.startswith(b"{") and b'"resourceSpans"' in first:
        return "otlp"
    return "jsonl"


def _records_jsonl(path: Path, data: bytes) -> list[tuple[str, Any]]:
    text = decode_text(data, path, "observation file")
    out: list[tuple[str, Any]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        # No depth walk per line: a nested value can only sit in a field the model refuses (or a flat map), and
        # json.loads' own recursion limit is reported as "nested too deeply" by parse_json.
        out.append((f"line {i}", parse_json(line, path, f"line {i}", walk=False)))
    return out


def _records_parquet(path: Path) -> list[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 (any unreadable Parquet is an input problem)
        raise InputRefused([Problem(str(path), "", "", f"cannot read Parquet: {str(e).splitlines()[0][:200]}")]) from e
    rows = table.to_pylist()
    out: list[tuple[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        for key in ("slices", "scores"):  # Arrow maps come back as lists of (key, value) pairs
            if isinstance(row.get(key), list):
                row[key] = dict(row[key])
        out.append((f"record {i}", {k: v for k, v in row.items() if v is not None}))
    return out


def read_observations(path: str | Path, release_id: str, variant: str | None,
                      resource_keys: tuple[str, str] | None = None) -> tuple[str, list[tuple[str, Observation]]]:
    """(format, [(line or record, observation)]) of one file, each with release_id and variant filled in; InputRefused naming the
    file, line or record and field of every problem (the first MAX_PROBLEMS)."""
    p = Path(path)
    check_input_file(p, "observation file", MAX_TOOL_FILE_BYTES)
    data = read_input_bytes(p, "observation file", MAX_TOOL_FILE_BYTES)
    fmt = detect_observation_format(p, data[:8192])
    if fmt == "parquet":
        records = _records_parquet(p)
    elif fmt == "otlp":
        from dashboard.importers.otlp import otlp_records

        records = otlp_records(p, data, resource_keys, release_id)
        if not records:
            raise InputRefused([Problem(str(p), "", "", f"no trace in the file is of release {release_id!r} "
                                        f"(resource attribute {(resource_keys or ('service.version',))[0]})")])
    else:
        records = _records_jsonl(p, data)
    problems: list[Problem] = []
    out: list[tuple[str, Observation]] = []
    seen: dict[tuple[str, str], str] = {}
    for where, rec in records:
        if len(problems) >= MAX_PROBLEMS:
            break
        if not isinstance(rec, dict):
            problems.append(Problem(str(p), where, "", "an observation must be a JSON object"))
            continue
        try:
            obs = Observation.model_validate(rec)
        except ValidationError as e:
            problems.extend(pydantic_problems(str(p), where, e))
            continue
        if obs.release_id is not None and obs.release_id != release_id:
            problems.append(Problem(str(p), where, "release_id",
                                    f"{obs.release_id!r} is not the release being loaded ({release_id!r})"))
            continue
        v = obs.variant or variant
        if v is None:
            problems.append(Problem(str(p), where, "variant", f"missing: give it in the record or with --variant "
                                    f"({', '.join(VARIANTS)})"))
            continue
        if obs.variant is not None and variant is not None and obs.variant != variant:
            problems.append(Problem(str(p), where, "variant", f"{obs.variant!r} is not --variant {variant!r}"))
            continue
        key = (v, obs.request_id)
        if key in seen:
            problems.append(Problem(str(p), where, "request_id",
                                    f"{obs.request_id!r} ({v}) already appears at {seen[key]}"))
            continue
        seen[key] = where
        out.append((where, obs.model_copy(update={"release_id": release_id, "variant": v})))
    if problems:
        raise InputRefused(problems[:MAX_PROBLEMS])
    if not out:
        raise InputRefused([Problem(str(p), "", "", "no observations in the file")])
    return fmt, out
