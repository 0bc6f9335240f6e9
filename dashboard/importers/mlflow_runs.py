"""MLflow evaluation runs (`mlflow.evaluate` / `mlflow.models.evaluate`) from a file-store tree, as native records.

Input: one run folder (`mlruns/<experiment>/<run>/`), an experiment folder, or a whole `mlruns/` tree. A run is
read when it holds `artifacts/eval_results_table.json` (pandas "split" orientation: `{columns, data}`): the
user's columns, `predictions`, one `<metric>/score` (and optional `<metric>/justification`) per metric. The run's
`meta.yaml`, `params/`, `tags/` and `metrics/` give its id, name, model and prompt versions; a tag or param
`readiness.release` (or `release`) may name the release the run belongs to.

Tested with mlflow 3.18.0 (file store, `MLFLOW_ALLOW_FILE_STORE=true`). The file store carries no MLflow version,
so a run is read when its structure matches (meta.yaml with a run_id, the split table with a `predictions`
column and at least one `<metric>/score`), and refused naming the file when it does not.

Verdicts (verdicts.py): a metric whose scores in a run are all 0 or 1 (exact_match, a custom pass/fail metric) is
a check, and so is each `--pass-if` threshold; a case passes when all its checks pass. A run with no check has no
verdict: it is refused (a case that cannot fail would pass every gate), naming the metrics it has.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from dashboard.core.errors import (
    MAX_TOOL_FILE_BYTES,
    InputRefused,
    Problem,
    decode_text,
    parse_json,
    parse_yaml,
    read_input_bytes,
)
from dashboard.importers.verdicts import binary_metrics, judged, no_verdict_message

MLFLOW_TESTED = "mlflow 3.18.0"
TABLE = Path("artifacts") / "eval_results_table.json"
MAX_RUNS = 10_000
MAX_SMALL_FILE = 1 << 20
RELEASE_KEYS = ("readiness.release", "release")
_ID_COLUMNS = ("case_id", "id", "example_id", "request_id")
_INPUT_COLUMNS = ("inputs", "input", "question", "request", "prompt", "user_input")
_TARGET_COLUMNS = ("ground_truth", "targets", "target", "expected", "expected_response", "reference", "answer")
_MODEL_KEYS = ("model", "model_name", "model_version", "llm", "model_uri")
_PROMPT_KEYS = ("prompt_version", "prompt", "prompt_name", "prompt_template")


def _refuse(path: Path, where: str, message: str, field: str = "") -> InputRefused:
    return InputRefused([Problem(str(path), where, field, message)])


def is_run_folder(path: Path) -> bool:
    return (path / "meta.yaml").is_file() and (path / TABLE).is_file()


def run_folders(path: Path) -> list[Path]:
    """The evaluation runs under `path`: itself (a run folder), an experiment's runs, or every experiment's in an
    `mlruns/` tree. Deleted runs (`.trash`, lifecycle_stage deleted) are left out; runs without an evaluation
    table (training runs) too. None found is a refusal naming the folder."""
    if is_run_folder(path):
        return [path]
    if not path.is_dir() or path.is_symlink():
        raise _refuse(path, "", "not an MLflow run: give the run folder (mlruns/<experiment>/<run>), an experiment "
                      f"folder or a whole mlruns/ tree (layout tested with {MLFLOW_TESTED})")
    found: list[Path] = []
    for depth in (1, 2):  # experiment folder: <exp>/<run>; mlruns tree: <mlruns>/<exp>/<run>
        pattern = "/".join(["*"] * depth)
        for candidate in sorted(path.glob(pattern)):
            if candidate.is_symlink() or any(p.startswith(".") for p in candidate.relative_to(path).parts):
                continue
            if candidate.is_dir() and is_run_folder(candidate) and not _deleted(candidate):
                found.append(candidate)
                if len(found) > MAX_RUNS:
                    raise _refuse(path, "", f"more than {MAX_RUNS:,} runs in one folder: ingest experiments one "
                                  "at a time")
        if found:
            break
    if not found:
        raise _refuse(path, "", "cannot read eval file: it is a directory; only regular files are read, or a "
                      "folder of MLflow runs, and this is not an MLflow run, experiment or mlruns folder with "
                      f"evaluation results (no <run>/meta.yaml with {TABLE.as_posix()}; layout tested with "
                      f"{MLFLOW_TESTED})")
    return found


def _deleted(run: Path) -> bool:
    try:
        meta = _yaml(run / "meta.yaml")
    except InputRefused:
        return False  # read (and refused clearly) when the run itself is read
    return isinstance(meta, dict) and meta.get("lifecycle_stage") == "deleted"


def run_digest(run: Path) -> str:
    """'sha256:<hex>' of what the import reads from a run folder (relative names and bytes of meta.yaml, params,
    tags, metrics and the evaluation table): the same run is the same source, whatever folder it was found in."""
    h = hashlib.sha256()
    for f in _run_files(run):
        h.update(f.relative_to(run).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(read_input_bytes(f, "file", MAX_TOOL_FILE_BYTES)).digest())
    return "sha256:" + h.hexdigest()


def _run_files(run: Path) -> list[Path]:
    files = [run / "meta.yaml", run / TABLE]
    for sub in ("params", "tags", "metrics"):
        files.extend(sorted(p for p in (run / sub).rglob("*") if p.is_file() and not p.is_symlink()))
    return files


def _yaml(path: Path) -> Any:
    return parse_yaml(decode_text(read_input_bytes(path, "file", MAX_SMALL_FILE), path), path)


def _key_values(folder: Path) -> dict[str, str]:
    """params/ or tags/: one file per name (names with '/' are nested folders), the value is the file's text."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.is_symlink():
            out[f.relative_to(folder).as_posix()] = decode_text(read_input_bytes(f, "file", MAX_SMALL_FILE), f)
    return out


def run_release(run: Path) -> str | None:
    """The release a run names (tag, else param `readiness.release` or `release`), if any."""
    tags, params = _key_values(run / "tags"), _key_values(run / "params")
    for source in (tags, params):
        for key in RELEASE_KEYS:
            if source.get(key, "").strip():
                return source[key].strip()
    return None


def read_mlflow(path: Path, ctx: Any) -> list[dict[str, Any]]:
    """Every evaluation run under `path` as native records (see the module's docstring)."""
    from dashboard.importers.tools import _record, _slices_and_risk, _validated

    records: list[dict[str, Any]] = []
    for run in run_folders(path):
        records.extend(_read_run(run, ctx, _record, _slices_and_risk, _validated))
    return records


def _read_run(run: Path, ctx: Any, record: Any, slices_and_risk: Any, validated: Any) -> list[dict[str, Any]]:
    meta_path, table_path = run / "meta.yaml", run / TABLE
    meta = _yaml(meta_path)
    if not isinstance(meta, dict) or not meta.get("run_id"):
        raise _refuse(meta_path, "", f"not an MLflow run's meta.yaml (no run_id; layout tested with {MLFLOW_TESTED})",
                      "run_id")
    run_id = str(meta["run_id"])
    tags, params = _key_values(run / "tags"), _key_values(run / "params")
    experiment = _experiment_name(run)
    table = parse_json(decode_text(read_input_bytes(table_path, "file", MAX_TOOL_FILE_BYTES), table_path),
                       table_path, walk=False)
    if not isinstance(table, dict) or not isinstance(table.get("columns"), list) or not isinstance(
            table.get("data"), list):
        raise _refuse(table_path, "", "not an MLflow evaluation table (expected pandas split orientation "
                      f"{{columns, data}}; layout tested with {MLFLOW_TESTED})")
    columns = [str(c) for c in table["columns"]]
    metrics = [c.removesuffix("/score") for c in columns if c.endswith("/score")]
    if not metrics or "predictions" not in columns:
        raise _refuse(table_path, "columns", "an MLflow evaluation table has a 'predictions' column and at least one "
                      f"'<metric>/score' column; this one has {', '.join(columns[:20]) or 'none'} (layout tested "
                      f"with {MLFLOW_TESTED})")
    rows = table["data"]
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise _refuse(table_path, f"data[{i}]", f"expected a row of {len(columns)} values, got "
                          f"{len(row) if isinstance(row, list) else type(row).__name__}")
    score_rows = [{m: row[columns.index(f"{m}/score")] for m in metrics} for row in rows]
    binary = binary_metrics(metrics, score_rows)
    unknown = [m for m, _, _ in ctx.pass_if if m not in metrics]
    if unknown:
        raise _refuse(table_path, "columns", f"--pass-if names {', '.join(unknown)}, which this run did not measure "
                      f"(its metrics: {', '.join(metrics)})")
    if rows and not binary and not ctx.pass_if:
        raise _refuse(table_path, "columns", no_verdict_message(metrics))
    id_col = next((c for c in _ID_COLUMNS if c in columns), None)
    input_col = next((c for c in _INPUT_COLUMNS if c in columns), None)
    target_col = next((c for c in _TARGET_COLUMNS if c in columns), None)
    used = {id_col, input_col, target_col, "predictions", *(c for c in columns if "/" in c)}
    extra = [c for c in columns if c not in used]
    user_tags = {k: v for k, v in tags.items() if not k.startswith("mlflow.") and k not in RELEASE_KEYS}
    model = next((params.get(k) or tags.get(k) for k in _MODEL_KEYS if params.get(k) or tags.get(k)), None)
    prompt = next((params.get(k) or tags.get(k) for k in _PROMPT_KEYS if params.get(k) or tags.get(k)), None)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = f"{TABLE.as_posix()} data[{i}]"
        values = dict(zip(columns, row, strict=True))
        with record(table_path, where):
            content = {c: values[c] for c in (input_col, target_col, *extra) if c is not None}
            key = str(values[id_col]) if id_col else f"row-{_digest(content)}"
            seen[key] = seen.get(key, 0) + 1
            case_id = key if seen[key] == 1 else f"{key}#{seen[key]}"
            row_tags = {c: values[c] for c in extra if isinstance(values[c], str | int | bool)
                        and len(str(values[c])) <= 200}  # short scalar columns: slice dimensions (risk: the risk)
            slices, risk = slices_and_risk(row_tags, ctx)
            for k, v in user_tags.items():
                slices.setdefault(f"tag.{k}", v[:200])
            scores: dict[str, float] = {}
            for m in metrics:
                v = values[f"{m}/score"]
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    scores[m] = float(v)
            checks, passed, error = judged(scores, binary, ctx.pass_if, ())
            rec = {
                "run_id": run_id, "case_id": case_id, "suite": experiment,
                "content_digest": f"mlflow:{_digest(content)}",
                "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
                "passed": passed, "scores": scores, "checks": checks,
                "scorer_version": f"mlflow evaluate ({', '.join(metrics)})"[:200],
                "error": error,
                "input": _text(values.get(input_col)) if input_col else None,
                "output": _text(values.get("predictions")),
                "expected": _text(values.get(target_col)) if target_col else None,
                "trace": {"model_version": model, "prompt_version": prompt,
                          "request_id": f"{run_id}/{i}"},
            }
            out.append(validated(table_path, where, rec))
    if not out:
        raise _refuse(table_path, "data", "the evaluation table holds no rows")
    _check_summary(run, metrics, out)
    return out


def _check_summary(run: Path, metrics: list[str], records: list[dict[str, Any]]) -> None:
    """The run's own `metrics/<metric>/mean` (what mlflow logged) must equal the mean of the imported scores: a
    table that does not belong to its run, or rows lost in between, are refused."""
    for m in metrics:
        f = run / "metrics" / m / "mean"
        if not f.is_file():
            continue
        lines = [ln for ln in decode_text(read_input_bytes(f, "file", MAX_SMALL_FILE), f).splitlines() if ln.strip()]
        try:  # one line per logged value: '<timestamp ms> <value> <step>[ ...]'; the last one logged counts
            logged = float(lines[-1].split()[1])
        except (IndexError, ValueError) as e:
            raise _refuse(f, f"line {len(lines)}", "not an MLflow metric line '<timestamp> <value> <step>'") from e
        values = [r["scores"][m] for r in records if m in r.get("scores", {})]
        if values and math.isfinite(logged) and not math.isclose(sum(values) / len(values), logged, rel_tol=1e-9, abs_tol=1e-12):
            raise _refuse(run / TABLE, "", f"the table's mean {m} is {sum(values) / len(values):.6g}, the run "
                          f"logged {logged:.6g} ({f.relative_to(run).as_posix()}): the table does not match its run")


def _experiment_name(run: Path) -> str:
    meta_path = run.parent / "meta.yaml"
    if meta_path.is_file():
        meta = _yaml(meta_path)
        if isinstance(meta, dict) and meta.get("name"):
            return str(meta["name"])[:200]
    return "mlflow"


def _digest(value: Any) -> str:
    from dashboard.core.canonical import canonical_json

    return hashlib.sha256(canonical_json(value)).hexdigest()[:16]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)

