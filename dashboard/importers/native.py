"""The native eval-run format: file-format detection and the exact, per-record diagnosis.

The store ingests native files in DuckDB in one pass (fast path). When that pass refuses a
file, `diagnose` re-reads it record by record with the Pydantic model, so the error names
the file, the line (JSONL, CSV) or record (Parquet) and the field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dashboard.core.errors import InputRefused, Problem, decode_text
from dashboard.core.manifests import pydantic_problems
from dashboard.core.models import JSON_TEXT_FIELDS, MAP_FIELDS, EvalCase

__all__ = ["JSON_TEXT_FIELDS", "MAP_FIELDS", "csv_header", "detect_format", "diagnose"]
MAX_PROBLEMS = 20


def detect_format(path: str | Path) -> str:
    """'jsonl', 'csv' or 'parquet', from the name, else from the first bytes."""
    p = str(path).lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"),
                        (".parquet", "parquet"), (".pq", "parquet")):
        if p.endswith(suffix):
            return fmt
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    return "jsonl" if head.lstrip()[:1] == b"{" else "csv"


def csv_row_to_record(row: dict[str, str | None]) -> dict[str, Any]:
    """A flat CSV row (`slices.task`, `scores.groundedness`, JSON text for nested fields) as a record."""
    record: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "":
            continue
        head, _, rest = key.partition(".")
        if head in MAP_FIELDS and rest:
            record.setdefault(head, {})[rest] = value
        elif key in JSON_TEXT_FIELDS:
            try:
                record[key] = json.loads(value)
            except RecursionError as e:
                raise json.JSONDecodeError("nested too deeply", value, 0) from e
        else:
            record[key] = value
    return record


def _jsonl_records(path: Path) -> Iterator[tuple[str, bytes | dict[str, Any] | None, str | None]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield f"line {number}", line, None


def _csv_records(path: Path) -> Iterator[tuple[str, bytes | dict[str, Any] | None, str | None]]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Excel) is dropped
        reader = csv.DictReader(f)
        for row in reader:
            where = f"line {reader.line_num}"
            try:
                yield where, csv_row_to_record(row), None
            except json.JSONDecodeError as e:
                yield where, None, f"a nested field holds invalid JSON: {e.msg}"


def _parquet_records(path: Path) -> Iterator[tuple[str, bytes | dict[str, Any] | None, str | None]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            number += 1
            for name in MAP_FIELDS:  # Arrow maps come back as lists of (key, value) pairs
                if isinstance(row.get(name), list):
                    row[name] = dict(row[name])
            yield f"record {number}", {k: v for k, v in row.items() if v is not None}, None


def default_run_id(suite: str, source_digest: str) -> str:
    """The run id of records that carry none: '<suite>@<first 12 hex of the file's sha256>'."""
    return f"{suite}@{source_digest.removeprefix('sha256:')[:12]}"


def diagnose(path: str | Path, fmt: str, source_digest: str) -> list[Problem]:
    """Every problem (up to MAX_PROBLEMS) in a native file, found record by record."""
    path = Path(path)
    src = str(path)
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    readers = {"jsonl": _jsonl_records, "csv": _csv_records, "parquet": _parquet_records}
    count = 0
    try:
        for where, raw, parse_error in readers[fmt](path):
            count += 1
            if parse_error:
                problems.append(Problem(src, where, "", parse_error))
            else:
                try:
                    if isinstance(raw, bytes):
                        case = EvalCase.model_validate_json(raw)
                    else:
                        case = EvalCase.model_validate(raw)
                except RecursionError:
                    problems.append(Problem(src, where, "", "the record is nested too deeply"))
                except ValidationError as e:
                    if isinstance(raw, bytes) and any(x["type"] == "json_invalid" for x in e.errors()):
                        problems.append(Problem(src, where, "", "malformed JSON: " + e.errors()[0]["msg"]))
                    else:
                        problems.extend(pydantic_problems(src, where, e))
                else:
                    key = (case.run_id or default_run_id(case.suite, source_digest), case.case_id)
                    if key in seen:
                        problems.append(Problem(src, where, "case_id",
                                                f"duplicate case_id {case.case_id!r} in run {key[0]!r} "
                                                f"(first at {seen[key]})"))
                    else:
                        seen[key] = where
            if len(problems) >= MAX_PROBLEMS:
                break
    except UnicodeDecodeError:
        problems.append(_encoding_problem(path))
    except (OSError, csv.Error) as e:
        problems.append(Problem(src, "", "", f"cannot read file: {e}"))
    except Exception as e:  # pyarrow raises its own types for a corrupt Parquet file
        problems.append(Problem(src, "", "", f"cannot read file: {e}"))
    if count == 0 and not problems:
        problems.append(Problem(src, "", "", "the file holds no records"))
    return problems[:MAX_PROBLEMS]


def _encoding_problem(path: Path) -> Problem:
    """Where a text file stops being UTF-8: the line, read line by line in binary."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                decode_text(line if number == 1 else line.removeprefix(b"\xef\xbb\xbf"), path)
            except InputRefused as e:
                return Problem(str(path), f"line {number}", "", e.problems[0].message)
    return Problem(str(path), "", "", "cannot read file: not UTF-8 text; save it as UTF-8")


def csv_header(path: str | Path) -> list[str]:
    """The header row of a CSV file (a UTF-8 byte-order mark dropped); InputRefused if it is not UTF-8 text."""
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    try:
        return next(csv.reader(io.StringIO(decode_text(first, path).rstrip("\r\n"))), [])
    except csv.Error as e:
        raise InputRefused([Problem(str(path), "line 1", "", f"not a CSV header: {e}")]) from e
