"""Ragas results: `EvaluationResult.to_pandas()` saved as CSV (`to_csv(index=False)`) or JSONL
(`to_json(orient="records", lines=True)`), as native records.

Columns: the sample's fields (`user_input`, `response`, `reference`, `retrieved_contexts`, ...) and one float
column per metric. Ragas keeps no id or metadata per row, so `--dataset-file` (the JSONL/CSV given to `evaluate`,
with the team's `id`, `risk` and slice columns beside the sample fields) gives them back by row order, checked row
by row (the dataset row's `user_input` must equal the result row's). Without it a row's id is its position
(`row-1`, ...) and the ingest output says so.

Tested with ragas 0.4.3. Ragas writes no version into the frame: a file is read when its structure matches (a
`user_input` column and at least one metric column), and refused naming the file, line and column when it does
not (e.g. the `question`/`answer`/`contexts` columns of ragas before 0.2).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import math
from pathlib import Path
from typing import Any

from dashboard.core.canonical import canonical_json
from dashboard.core.errors import MAX_TOOL_FILE_BYTES, InputRefused, Problem, decode_text, read_input_bytes
from dashboard.importers.verdicts import binary_metrics, judged, no_verdict_message

RAGAS_TESTED = "ragas 0.4.3"
# SingleTurnSample / MultiTurnSample fields and the testset generator's columns: text, never metrics.
SAMPLE_FIELDS = frozenset({
    "user_input", "retrieved_contexts", "reference_contexts", "retrieved_context_ids", "reference_context_ids",
    "response", "multi_responses", "reference", "rubrics", "persona_name", "query_style", "query_length",
    "synthesizer_name", "reference_tool_calls",
})
_OLD_COLUMNS = frozenset({"question", "answer", "contexts", "ground_truth", "ground_truths"})
_ID_COLUMNS = ("id", "case_id", "sample_id", "example_id")
MAX_LIST_TEXT = 100_000


def _refuse(path: Path, where: str, message: str, field: str = "") -> InputRefused:
    return InputRefused([Problem(str(path), where, field, message)])


def _rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """(columns, [(where, row)]) of a CSV or JSONL file; JSONL values keep their JSON types, CSV values are text."""
    from dashboard.importers.tools import _json_lines

    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        rows: list[tuple[str, dict[str, Any]]] = []
        columns: list[str] = []
        for number, obj in _json_lines(path):
            if not isinstance(obj, dict):
                raise _refuse(path, f"line {number}", "expected a JSON object per line")
            for k in obj:
                if k not in columns:
                    columns.append(str(k))
            rows.append((f"line {number}", obj))
        return columns, rows
    text = decode_text(read_input_bytes(path, "file", MAX_TOOL_FILE_BYTES), path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    out = []
    try:
        header = list(reader.fieldnames or [])
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise _refuse(path, where, f"the row does not have the header's {len(header)} cells (truncated?)")
            out.append((where, dict(row)))
    except csv.Error as e:
        raise _refuse(path, f"line {reader.line_num}", f"not a readable CSV file (truncated or corrupt): {e}") from e
    return header, out


def _number(path: Path, where: str, column: str, value: Any) -> float | None:
    """A metric cell: a number, or empty/null/NaN (the metric failed on this row: None)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputRefused([Problem(str(path), where, column, "expected a number, got a boolean")])
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value))
    except ValueError as e:
        raise InputRefused([Problem(str(path), where, column, f"expected a metric score (a number), got "
                                    f"{str(value)[:60]!r}")]) from e
    return number if math.isfinite(number) else None


def _text_list(value: Any) -> list[str] | None:
    """A list column: a JSON list (JSONL) or pandas' repr of a Python list (CSV), read with literal_eval only."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value.startswith("[") and len(value) <= MAX_LIST_TEXT:
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            return None
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _dataset_rows(ctx: Any, count: int, results_path: Path) -> list[dict[str, Any]] | None:
    if ctx.dataset_file is None:
        return None
    path = Path(ctx.dataset_file)
    columns, rows = _rows(path)
    if "user_input" not in columns:
        raise _refuse(path, "line 1", "the dataset file has no user_input column (it is the file given to "
                      "ragas.evaluate, one sample a row)")
    if len(rows) != count:
        raise _refuse(path, "", f"the dataset file has {len(rows)} rows, the results file {results_path} "
                      f"{count}: they are joined by row order, so they must be the same evaluation")
    return [r for _, r in rows]


def read_ragas(path: Path, ctx: Any) -> list[dict[str, Any]]:
    from dashboard.importers.tools import _file_run_id, _record, _slices_and_risk, _validated

    columns, rows = _rows(path)
    if "user_input" not in columns:
        old = sorted(_OLD_COLUMNS & set(columns))
        hint = (f" (columns {', '.join(old)} are ragas before 0.2's; save the result with ragas >= 0.2)" if old
                else "")
        raise _refuse(path, "line 1", f"not a Ragas result (no user_input column{hint}; layout tested with "
                      f"{RAGAS_TESTED})")
    metrics = [c for c in columns if c not in SAMPLE_FIELDS and c not in _ID_COLUMNS and c != "risk"]
    if not metrics:
        raise _refuse(path, "line 1", f"no metric column: this looks like the dataset given to evaluate, not its "
                      f"result (layout tested with {RAGAS_TESTED})")
    if not rows:
        raise _refuse(path, "", "the Ragas result holds no rows")
    scored = []
    for where, row in rows:
        scored.append({m: _number(path, where, m, row.get(m)) for m in metrics})
    binary = binary_metrics(metrics, scored)
    unknown = [m for m, _, _ in ctx.pass_if if m not in metrics]
    if unknown:
        raise _refuse(path, "line 1", f"--pass-if names {', '.join(unknown)}, which this result did not measure "
                      f"(its metrics: {', '.join(metrics)})")
    if not binary and not ctx.pass_if:
        raise _refuse(path, "line 1", no_verdict_message(metrics))
    dataset = _dataset_rows(ctx, len(rows), path)
    if dataset is None:
        ctx.notes.append(f"Ragas rows carry no ids: the {len(rows)} cases are named by position (row-1 ... "
                         f"row-{len(rows)}); pass --dataset-file (the dataset given to evaluate, with id/risk/slice "
                         "columns) to join ids, slices and risk back")
    run = _file_run_id("ragas", path)
    records = []
    seen: set[str] = set()
    for i, ((where, row), scores_or_none) in enumerate(zip(rows, scored, strict=True)):
        with _record(path, where):
            extra: dict[str, Any] = {}
            case_id = f"row-{i + 1}"
            if dataset is not None:
                drow = dataset[i]
                if str(drow.get("user_input")) != str(row.get("user_input")):
                    raise InputRefused([Problem(str(ctx.dataset_file), f"row {i + 1}", "user_input",
                                                f"does not match {path} {where}: the files are joined by row order, "
                                                f"so they must come from the same evaluation (dataset: "
                                                f"{str(drow.get('user_input'))[:60]!r}, result: "
                                                f"{str(row.get('user_input'))[:60]!r})")])
                id_col = next((c for c in _ID_COLUMNS if drow.get(c) not in (None, "")), None)
                if id_col:
                    case_id = str(drow[id_col])
                extra = {k: v for k, v in drow.items() if k not in SAMPLE_FIELDS and k not in _ID_COLUMNS
                         and isinstance(v, str | int | bool) and len(str(v)) <= 200}
            if case_id in seen:
                raise _refuse(Path(ctx.dataset_file or path), f"row {i + 1}", f"duplicate id {case_id!r}", "id")
            seen.add(case_id)
            slices, risk = _slices_and_risk(extra, ctx)
            scores = {m: v for m, v in scores_or_none.items() if v is not None}
            checks, passed, error = judged(scores, binary, ctx.pass_if, metrics)
            content = {"user_input": _text(row.get("user_input")), "reference": _text(row.get("reference"))}
            retrieved_ids = _text_list(row.get("retrieved_context_ids"))
            relevant_ids = _text_list(row.get("reference_context_ids"))
            record: dict[str, Any] = {
                "run_id": run, "case_id": case_id, "suite": "ragas", "risk": risk, "slices": slices,
                "content_digest": "ragas:" + hashlib.sha256(canonical_json(content)).hexdigest()[:16],
                "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "passed": passed,
                "scores": scores, "checks": checks, "error": error, "scorer_version": "ragas",
                "input": content["user_input"], "output": _text(row.get("response")),
                "expected": content["reference"],
            }
            if retrieved_ids is not None or relevant_ids is not None:
                record["retrieval"] = {"retrieved_ids": retrieved_ids or [], "relevant_ids": relevant_ids or []}
            records.append(_validated(path, where, record))
    return records
