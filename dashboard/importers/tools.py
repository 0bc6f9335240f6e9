"""Results that real eval tools write, mapped onto native eval-case records.

promptfoo (`promptfoo eval -o results.json`, results version 3), Inspect AI logs (`.eval` zip or `.json`),
lm-evaluation-harness (`--log_samples` JSONL, with its results JSON beside it), DeepEval (saved test runs).
Every record is validated with the native model here, so an error names the original file and record.
Tags such as `risk` or `slice` map onto the native slicing fields; other tags become slice dimensions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dashboard.core.canonical import canonical_json
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
from dashboard.core.models import RISK_LEVELS, EvalCase

TOOL_FORMATS = ("promptfoo", "inspect", "lm-eval", "deepeval", "mlflow", "ragas")
PROMPTFOO_VERSIONS = (3,)
INSPECT_VERSIONS = (2,)
INSPECT_TESTED = "inspect_ai 0.3.285"
LM_EVAL_TESTED = "lm_eval 0.4.13"
DEEPEVAL_TESTED = "deepeval 4.3.1"


def _untested_note(what: str, version: Any, known: tuple[int, ...], tested: str) -> str:
    return (f"{what} {version!r} is not one Readiness was tested with ({', '.join(map(str, known))}, {tested}): "
            "read because its structure matches; check the counts against the tool's own summary")

# Inspect `.eval` zips are decompressed as a stream under these caps (docs/security.md): a small
# zip must not become gigabytes in memory (a zstd frame may declare any size; deflate ratios reach 1000:1).
MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_MEMBER_BYTES = 256 << 20
MAX_ZIP_TOTAL_BYTES = 1 << 30
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportContext:
    """What the tool's file does not say: which eval dataset (and version) of the manifest it ran."""

    dataset: str
    dataset_version: str
    default_risk: str = "medium"
    notes: list[str] = field(default_factory=list)
    """What the import could not carry over and the user should know (shown in `readiness ingest`'s output)."""
    dataset_file: Path | None = None
    """For Ragas: the dataset given to `evaluate`, whose rows give ids, slices and risk back by row order."""
    pass_if: tuple[tuple[str, str, float], ...] = ()
    """For tools that score but do not judge (MLflow, Ragas): thresholds that make a case pass (verdicts.py)."""


def _refuse(path: Path, where: str, message: str) -> InputRefused:
    return InputRefused([Problem(str(path), where, "", message)])


def _load_json(path: Path) -> Any:
    """A tool's JSON file: a bounded regular file, UTF-8, valid JSON; anything else is a clear refusal."""
    text = decode_text(read_input_bytes(path, "file", MAX_TOOL_FILE_BYTES), path)
    return parse_json(text, path, walk=False)


@contextmanager
def _record(path: Path, where: str) -> Iterator[None]:
    """Map what a record of an unexpected shape raises in a reader onto a refusal naming file and record.

    The readers check the types they rely on (`_obj`, `_seq`) and name the field; this is the backstop for
    anything they did not foresee, so a tool file can never end in a traceback."""
    try:
        yield
    except InputRefused:
        raise
    except RecursionError as e:
        raise _refuse(path, where, "the record is nested too deeply") from e
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
        raise _refuse(path, where, f"a field has a type or value Readiness cannot read ({type(e).__name__}: "
                                   f"{str(e)[:200]})") from e


def _obj(path: Path, where: str, field: str, value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, {} if missing, else a refusal naming the field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputRefused([Problem(str(path), where, field, f"expected an object, got {_kind(value)}")])
    return value


def _seq(path: Path, where: str, field: str, value: Any) -> list[Any]:
    """`value` if it is a JSON array, [] if missing, else a refusal naming the field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputRefused([Problem(str(path), where, field, f"expected an array, got {_kind(value)}")])
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _number(value: Any) -> float | int | None:
    """A JSON number (not a boolean), else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _slices_and_risk(tags: dict[str, Any], ctx: ImportContext) -> tuple[dict[str, str], str]:
    """`risk` becomes the native risk level, `slice` a slice named 'slice'; other scalar tags become slices."""
    slices: dict[str, str] = {}
    risk = ctx.default_risk
    for key, value in tags.items():
        if value is None or isinstance(value, dict | list):
            continue
        text = str(value)
        if key == "risk" and text.lower() in RISK_LEVELS:
            risk = text.lower()
        elif not key.startswith("_"):
            slices[str(key)] = text[:200]
    return slices, risk


def _tag_list(tags: list[str]) -> dict[str, str]:
    """DeepEval-style tags: 'risk:critical' -> risk, 'task:policy_qa' -> task, a bare tag -> tag_<name>."""
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = str(tag).partition(":")
        if sep:
            out[key.strip()] = value.strip()
        else:
            out["slice"] = key.strip()
    return out


def _validated(path: Path, where: str, record: dict[str, Any]) -> dict[str, Any]:
    try:
        return EvalCase.model_validate(record).model_dump(mode="json", exclude_none=True)
    except ValidationError as e:
        raise InputRefused(pydantic_problems(str(path), where, e)) from e


def _short_digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()[:12]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# ----- promptfoo --------------------------------------------------------------------------------------
# Tested with promptfoo 0.121.20 (results version 3, and the `-o .jsonl` / `-o .csv` outputs of the same eval).
PROMPTFOO_TESTED = "promptfoo 0.121.20"
_PROMPTFOO_RESULT_KEYS = frozenset({"testCase", "promptIdx", "success"})


def _promptfoo_kind(path: Path) -> str:
    """'json' (the whole results document), 'jsonl' (one result a line) or 'csv', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("{"):
        return "csv"
    if '"evalId"' in text[:4096] or text.startswith('{\n  "evalId"'):
        return "json"
    first = text.split("\n", 1)[0]
    return "jsonl" if '"testCase"' in first or '"promptIdx"' in first else "json"


def read_promptfoo(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    """promptfoo's `-o results.json`, `-o results.jsonl` or `-o results.csv` (same cases and verdicts)."""
    kind = _promptfoo_kind(path)
    if kind == "jsonl":
        return _read_promptfoo_jsonl(path, ctx)
    if kind == "csv":
        return _read_promptfoo_csv(path, ctx)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "evalId" not in data:
        raise _refuse(path, "", "not a promptfoo results file (expected {evalId, results: {version, results}})")
    version = data["results"].get("version")
    if version not in PROMPTFOO_VERSIONS:
        results = data["results"].get("results")
        bad = (None if isinstance(results, list) and results else "results.results")
        if bad is None:
            bad = next((f"results.results[{i}]" for i, r in enumerate(results)
                        if not isinstance(r, dict) or not _PROMPTFOO_RESULT_KEYS <= r.keys()), None)
        if bad is not None:
            raise _refuse(path, "results.version", f"promptfoo results version {version!r} is not supported: its "
                          f"structure differs ({bad} is not a result with testCase, promptIdx and success); "
                          f"supported: version {', '.join(map(str, PROMPTFOO_VERSIONS))}, tested with "
                          f"{PROMPTFOO_TESTED}")
        ctx.notes.append(_untested_note("promptfoo results version", version, PROMPTFOO_VERSIONS, PROMPTFOO_TESTED))
    suite = str(_obj(path, "", "config", data.get("config")).get("description") or "promptfoo")
    scorer = f"promptfoo {_obj(path, '', 'metadata', data.get('metadata')).get('promptfooVersion', '?')}"
    prompts = _seq(path, "", "results.prompts", data["results"].get("prompts"))
    records = []
    for i, r in enumerate(_seq(path, "", "results.results", data["results"].get("results"))):
        where = f"results.results[{i}]"
        with _record(path, where):
            records.append(_validated(path, where, _promptfoo_record(path, where, r, str(data["evalId"]), prompts,
                                                                     suite, scorer, ctx)))
    if not records:
        raise _refuse(path, "results.results", "the promptfoo file holds no results")
    return records


def _file_run_id(tool: str, path: Path) -> str:
    """The run id of a tool file that names no run: '<tool>-<first 12 hex of the file's sha256>'."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return f"{tool}-{h.hexdigest()[:12]}"


def _read_promptfoo_jsonl(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    """`promptfoo eval -o results.jsonl`: one result a line, as in the JSON's `results.results` (no evalId, no
    config, no version: the run id is the file's digest, the suite 'promptfoo')."""
    run = _file_run_id("promptfoo", path)
    records = []
    for number, r in _json_lines(path):
        where = f"line {number}"
        if not isinstance(r, dict) or not _PROMPTFOO_RESULT_KEYS <= r.keys():
            raise _refuse(path, where, "not a promptfoo result line (expected testCase, promptIdx and success; "
                          f"layout tested with {PROMPTFOO_TESTED})")
        with _record(path, where):
            records.append(_validated(path, where, _promptfoo_record(path, where, r, run, [], "promptfoo",
                                                                     "promptfoo (jsonl)", ctx)))
    if not records:
        raise _refuse(path, "", "the promptfoo file holds no results")
    return records


_PROMPT_COLUMN = re.compile(r"^\[(?P<provider>.*?)\] (?P<label>.*)$", re.S)
_CSV_STATUS = {"PASS": True, "FAIL": False, "ERROR": False}


def _read_promptfoo_csv(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    """`promptfoo eval -o results.csv`: one row per test; per prompt an output column `[provider] label` followed
    by Status, Score, Named Scores, `Metric: <name>`..., Grader Reason, Comment. It carries no test metadata and
    no assertion results, so risk is the default and there are no checks (the output says so)."""
    text = decode_text(read_input_bytes(path, "file", MAX_TOOL_FILE_BYTES), path)
    reader = csv.reader(io.StringIO(text, newline=""))
    numbered: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            numbered.append((reader.line_num, row))
    except csv.Error as e:
        raise _refuse(path, f"line {reader.line_num}", f"not a readable CSV file (truncated or corrupt): {e}") from e
    rows = [r for _, r in numbered]
    if not rows:
        raise _refuse(path, "", "the promptfoo CSV is empty")
    header = rows[0]
    starts = [i for i, h in enumerate(header) if _PROMPT_COLUMN.match(h)]
    if not starts:
        raise _refuse(path, "line 1", "not a promptfoo CSV (no '[provider] prompt' output column)")
    groups: list[tuple[int, dict[str, int]]] = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(header)
        cols = {h: j for j, h in enumerate(header[start + 1:end], start=start + 1)}
        if not {"Status", "Score"} <= cols.keys():
            raise _refuse(path, "line 1", f"column {header[start]!r} is not followed by Status and Score: a "
                          f"promptfoo CSV layout Readiness does not know (tested with {PROMPTFOO_TESTED})")
        groups.append((start, cols))
    var_names = header[:starts[0]]
    run = _file_run_id("promptfoo", path)
    records = []
    for number, row in numbered[1:]:
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {number}"
        if len(row) != len(header):
            raise _refuse(path, where, f"the row has {len(row)} cells, the header {len(header)} (truncated?)")
        variables = dict(zip(var_names, row[:starts[0]], strict=True))
        description = variables.pop("Description", "") or None
        test_key = description or f"vars-{_short_digest(variables)}"
        for start, cols in groups:
            m = _PROMPT_COLUMN.match(header[start])
            assert m is not None
            status = row[cols["Status"]].strip().upper()
            if status not in _CSV_STATUS:
                raise InputRefused([Problem(str(path), where, "Status", f"expected PASS, FAIL or ERROR, got "
                                            f"{row[cols['Status']][:50]!r}")])
            with _record(path, where):
                record = _promptfoo_csv_record(path, where, row, start, cols, m, status, test_key, variables,
                                               run, ctx)
            records.append(_validated(path, where, record))
    if not records:
        raise _refuse(path, "", "the promptfoo CSV holds no results")
    ctx.notes.append("promptfoo's CSV carries no test metadata and no assertion results: every case has risk "
                     f"{ctx.default_risk!r} (--default-risk) and no checks; -o results.json or .jsonl carries them")
    return records


def _promptfoo_csv_record(path: Path, where: str, row: list[str], start: int, cols: dict[str, int],
                          m: re.Match[str], status: str, test_key: str, variables: dict[str, str], run: str,
                          ctx: ImportContext) -> dict[str, Any]:
    provider, label = m["provider"], m["label"]
    scores: dict[str, float] = {}
    named_cell = row[cols["Named Scores"]] if "Named Scores" in cols else ""
    if named_cell.strip():
        named = parse_json(named_cell, path, f"{where}: Named Scores", walk=False)
        scores.update({str(k): float(v) for k, v in _obj(path, where, "Named Scores", named).items()
                       if _number(v) is not None})
    if row[cols["Score"]].strip():
        scores["score"] = float(row[cols["Score"]])
    slices = {f"var.{k}": v[:200] for k, v in variables.items()}
    slices["prompt"], slices["provider"] = label, provider
    grader = row[cols["Grader Reason"]] if "Grader Reason" in cols else ""
    return {
        "content_digest": None, "run_id": run, "case_id": f"{test_key}|{label}|{provider}", "suite": "promptfoo",
        "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": ctx.default_risk,
        "slices": slices, "passed": _CSV_STATUS[status], "scores": scores, "checks": {},
        "scorer_version": "promptfoo (csv)", "error": (grader or "error") if status == "ERROR" else None,
        "output": row[start],
        "trace": {"prompt_version": label, "model_version": provider},
    }


def _promptfoo_record(path: Path, where: str, r: Any, run_id: str, prompts: list[Any], suite: str,
                      scorer: str, ctx: ImportContext) -> dict[str, Any]:
    r = _obj(path, where, "", r)
    test = _obj(path, where, "testCase", r.get("testCase"))
    variables = _obj(path, where, "testCase.vars", test.get("vars")) or _obj(path, where, "vars", r.get("vars"))
    test_key = _text(test.get("description")) or f"vars-{_short_digest(variables)}"
    prompt_idx = r.get("promptIdx")
    prompt = _obj(path, where, "prompt", r.get("prompt") or (
        prompts[prompt_idx] if isinstance(prompt_idx, int) and 0 <= prompt_idx < len(prompts) else {}))
    prompt_label = _text(prompt.get("label") or r.get("promptId") or f"prompt-{prompt_idx}")
    provider = r.get("provider") or {}
    if isinstance(provider, str):  # some promptfoo versions write the provider id alone
        provider = {"id": provider}
    provider = _obj(path, where, "provider", provider)
    provider_id = _text(provider.get("label") or provider.get("id") or "provider")
    slices, risk = _slices_and_risk(_obj(path, where, "testCase.metadata", test.get("metadata")), ctx)
    for k, v in variables.items():
        if isinstance(v, str | int | float | bool):
            slices.setdefault(f"var.{k}", str(v)[:200])
    slices["prompt"], slices["provider"] = str(prompt_label), str(provider_id)
    grading = _obj(path, where, "gradingResult", r.get("gradingResult"))
    checks: dict[str, bool] = {}
    by_type: dict[str, bool] = {}
    for j, comp in enumerate(_seq(path, where, "gradingResult.componentResults", grading.get("componentResults"))):
        comp = _obj(path, where, f"gradingResult.componentResults[{j}]", comp)
        assertion = _obj(path, where, f"gradingResult.componentResults[{j}].assertion", comp.get("assertion"))
        name = str(assertion.get("metric") or assertion.get("type") or f"assertion_{j}")
        checks[name if name not in checks else f"{name}_{j}"] = bool(comp.get("pass"))
        if assertion.get("metric") and assertion.get("type"):  # the assertion type too: all of that type passed
            kind = str(assertion["type"])
            by_type[kind] = by_type.get(kind, True) and bool(comp.get("pass"))
    for kind, ok in by_type.items():
        checks.setdefault(kind, ok)  # a metric of the same name keeps its own value
    named = _obj(path, where, "namedScores", r.get("namedScores"))
    scores = {str(k): float(v) for k, v in named.items() if _number(v) is not None}
    if _number(r.get("score")) is not None:
        scores["score"] = float(r["score"])
    response = _obj(path, where, "response", r.get("response"))
    usage = _obj(path, where, "response.tokenUsage", response.get("tokenUsage") or r.get("tokenUsage"))
    error = r.get("error") or ("error" if r.get("failureReason") == 2 else None)
    return {
        "content_digest": f"promptfoo:{_short_digest({'vars': variables, 'assert': test.get('assert')})}",
        "run_id": run_id, "case_id": f"{test_key}|{prompt_label}|{provider_id}", "suite": suite,
        "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
        "passed": bool(r.get("success")), "scores": scores, "checks": checks, "scorer_version": scorer,
        "latency_ms": r.get("latencyMs"), "cost_usd": r.get("cost"),
        "input_tokens": usage.get("prompt"), "output_tokens": usage.get("completion"),
        "error": _text(error), "input": _text(prompt.get("raw")), "output": _text(response.get("output")),
        "trace": {"prompt_version": str(prompt_label), "model_version": str(provider.get("id") or provider_id)},
    }


# ----- Inspect AI ------------------------------------------------------------------------------------------
def _zip_members(path: Path) -> dict[str, bytes]:
    """Members of an Inspect `.eval` zip, decompressed as a stream under hard caps (member count, bytes per
    member, bytes in all). Inspect compresses members with Zstandard (zip method 93), which Python's zipfile
    cannot read, so those are decompressed here; a size the member declares is never trusted."""
    import zstandard

    check_input_file(path, "file", MAX_TOOL_FILE_BYTES)
    out: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise _refuse(path, "", f"the zip holds {len(infos):,} members, more than the limit of "
                              f"{MAX_ZIP_MEMBERS:,}")
            for info in infos:
                if info.is_dir():
                    continue
                if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    stream: Any = zf.open(info)
                elif info.compress_type == 93:
                    raw.seek(info.header_offset)
                    header = raw.read(30)
                    name_len, extra_len = struct.unpack("<HH", header[26:30])
                    raw.seek(info.header_offset + 30 + name_len + extra_len)
                    compressed = raw.read(min(info.compress_size, MAX_TOOL_FILE_BYTES))
                    stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compressed),
                                                                       read_across_frames=True)
                else:
                    raise _refuse(path, info.filename, f"unsupported zip compression method {info.compress_type}")
                with stream:
                    data = _read_capped(path, info.filename, stream, MAX_ZIP_TOTAL_BYTES - total)
                total += len(data)
                out[info.filename] = data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zstandard.ZstdError, struct.error, OSError, EOFError,
            NotImplementedError, RuntimeError, ValueError) as e:
        raise _refuse(path, "", f"not a readable Inspect .eval log (truncated or corrupt zip): {e}") from e
    return out


def _read_capped(path: Path, member: str, stream: Any, total_left: int) -> bytes:
    """A member's decompressed bytes, read in chunks; refused as soon as it passes a cap."""
    chunks: list[bytes] = []
    size = 0
    while True:
        block = stream.read(_CHUNK)
        if not block:
            return b"".join(chunks)
        size += len(block)
        if size > MAX_ZIP_MEMBER_BYTES:
            raise _refuse(path, member, f"the member decompresses to more than the limit of "
                          f"{MAX_ZIP_MEMBER_BYTES:,} bytes (refused: a decompression bomb?)")
        if size > total_left:
            raise _refuse(path, member, f"the zip decompresses to more than the limit of {MAX_ZIP_TOTAL_BYTES:,} "
                          "bytes in all (refused: a decompression bomb?)")
        chunks.append(block)


def _inspect_log(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """(log header with eval/plan/results, samples) from a `.eval` zip or a `.json` log."""
    if zipfile.is_zipfile(path):
        members = _zip_members(path)
        if "header.json" not in members and "_journal/start.json" not in members:
            raise _refuse(path, "", "not an Inspect AI .eval log (no header.json)")
        name = "header.json" if "header.json" in members else "_journal/start.json"
        header = parse_json(decode_text(members[name], f"{path}:{name}"), f"{path}:{name}", walk=False)
        samples = [parse_json(decode_text(v, f"{path}:{k}"), f"{path}:{k}", walk=False)
                   for k, v in sorted(members.items()) if k.startswith("samples/")]
        if not isinstance(header, dict):
            raise _refuse(path, name, "not an Inspect AI log header (expected an object)")
        return header, samples
    data = _load_json(path)
    if not isinstance(data, dict) or "eval" not in data or "version" not in data:
        raise _refuse(path, "", "not an Inspect AI log (expected {version, eval, samples})")
    return data, _seq(path, "", "samples", data.get("samples"))


_INSPECT_VALUES = {"C": (True, 1.0), "I": (False, 0.0), "P": (False, 0.5), "N": (False, 0.0)}


def read_inspect(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    header, samples = _inspect_log(path)
    version = header.get("version")
    if version not in INSPECT_VERSIONS:
        bad = next((f"samples[{i}]" for i, smp in enumerate(samples)
                    if not isinstance(smp, dict) or not {"id", "scores"} <= smp.keys()), None)
        if bad is not None or not isinstance(header.get("eval"), dict) or not samples:
            raise _refuse(path, "version", f"Inspect AI log version {version!r} is not supported: its structure "
                          f"differs ({bad or 'eval or samples'} is not as in version "
                          f"{', '.join(map(str, INSPECT_VERSIONS))}); tested with {INSPECT_TESTED}")
        ctx.notes.append(_untested_note("Inspect AI log version", version, INSPECT_VERSIONS, INSPECT_TESTED))
    if header.get("status") not in ("success", None) and not samples:
        raise _refuse(path, "status", f"the Inspect run ended with status {header.get('status')!r} and no samples")
    ev = _obj(path, "", "eval", header.get("eval"))
    run = str(ev.get("run_id") or ev.get("eval_id") or path.stem)
    task_name = str(ev.get("task") or "inspect")
    model = str(ev.get("model") or "")
    steps = _seq(path, "", "plan.steps", _obj(path, "", "plan", header.get("plan")).get("steps"))
    solver = ",".join(str(s.get("solver")) for s in steps if isinstance(s, dict) and s.get("solver"))
    records = []
    for i, s in enumerate(samples):
        where = (f"samples[{i}] (id {s.get('id')!r}, epoch {s.get('epoch')})" if isinstance(s, dict)
                 else f"samples[{i}]")
        with _record(path, where):
            records.append(_validated(path, where, _inspect_record(path, where, s, ev, run, task_name, model,
                                                                   solver, ctx)))
    if not records:
        raise _refuse(path, "samples", "the Inspect log holds no samples")
    return records


def _inspect_record(path: Path, where: str, s: Any, ev: dict[str, Any], run: str, task_name: str, model: str,
                    solver: str, ctx: ImportContext) -> dict[str, Any]:
    s = _obj(path, where, "", s)
    verdicts, scores, checks = [], {}, {}
    for name, sc in _obj(path, where, "scores", s.get("scores")).items():
        value = sc.get("value") if isinstance(sc, dict) else sc
        if isinstance(value, str) and value in _INSPECT_VALUES:
            ok, num = _INSPECT_VALUES[value]
        elif isinstance(value, bool):
            ok, num = value, float(value)
        elif isinstance(value, int | float):
            ok, num = float(value) >= 1.0, float(value)
        else:
            raise InputRefused([Problem(str(path), where, f"scores.{name}",
                                        f"a score value Readiness cannot read: {str(value)[:100]!r}")])
        verdicts.append(ok)
        scores[str(name)], checks[str(name)] = num, ok
    error = (s.get("error") or {}).get("message") if isinstance(s.get("error"), dict) else s.get("error")
    usage = _obj(path, where, "model_usage", s.get("model_usage"))
    for m, u in usage.items():
        _obj(path, where, f"model_usage.{m}", u)
    tokens_in = sum(int(u.get("input_tokens") or 0) for u in usage.values()) if usage else None
    tokens_out = sum(int(u.get("output_tokens") or 0) for u in usage.values()) if usage else None
    cost = sum(float(u.get("total_cost") or 0) for u in usage.values()) if any(
        "total_cost" in u and u["total_cost"] is not None for u in usage.values()) else None
    slices, risk = _slices_and_risk(_obj(path, where, "metadata", s.get("metadata")), ctx)
    target = s.get("target")
    output = _obj(path, where, "output", s.get("output"))
    return {
        "run_id": f"{run}/epoch-{s.get('epoch', 1)}", "case_id": str(s.get("id")), "suite": task_name,
        "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
        "passed": bool(verdicts) and all(verdicts) and not error, "scores": scores, "checks": checks,
        "scorer_version": f"inspect_ai task v{ev.get('task_version', 0)}",
        "latency_ms": _seconds_to_ms(s.get("total_time")),
        "input_tokens": tokens_in, "output_tokens": tokens_out, "cost_usd": cost, "error": _text(error),
        "input": _message_text(s.get("input")), "output": _text(output.get("completion")),
        "expected": "\n".join(map(str, target)) if isinstance(target, list) else _text(target),
        "trace": {"model_version": model or None, "prompt_version": f"{task_name}@{ev.get('task_version', 0)}",
                  "workflow_version": solver or None},
    }


def _seconds_to_ms(value: Any) -> float | None:
    return float(value) * 1000.0 if isinstance(value, int | float) and not isinstance(value, bool) else None


def _message_text(value: Any) -> str | None:
    if isinstance(value, list):
        parts = []
        for m in value:
            content = m.get("content") if isinstance(m, dict) else m
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            parts.append(f"{m.get('role', 'user')}: {content}" if isinstance(m, dict) else str(content))
        return "\n".join(parts)
    return _text(value)


# ----- lm-evaluation-harness ----------------------------------------------------------------------------------
_SAMPLES_NAME = re.compile(r"samples_(?P<task>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}T[\d\-.]+)\.jsonl$")


def _lm_eval_lines(path: Path) -> Iterator[tuple[int, Any]]:
    return _json_lines(path)


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """A JSONL file line by line (streamed: a regular file of bounded size, UTF-8, one JSON object a line)."""
    check_input_file(path, "file", MAX_TOOL_FILE_BYTES)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise _refuse(path, f"line {number}", "not UTF-8 text; save the file as UTF-8") from e
                yield number, parse_json(line, path, f"line {number}", walk=False)


def read_lm_eval(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    m = _SAMPLES_NAME.search(path.name)
    task_name = m["task"] if m else path.stem
    results: Any = None
    if m:
        for candidate in sorted(path.parent.glob(f"results_{m['stamp']}*.json")):
            results = _load_json(candidate)
    results = _obj(path.parent / "results.json", "", "", results if isinstance(results, dict) else None)
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    versions = results.get("versions") if isinstance(results.get("versions"), dict) else {}
    model = str(config.get("model_args") or config.get("model") or "")
    version = str(versions.get(task_name, ""))
    records = []
    for number, s in _lm_eval_lines(path):
        where = f"line {number}"
        with _record(path, where):
            records.append(_validated(path, where, _lm_eval_record(path, where, s, task_name, m, model, version,
                                                                   ctx)))
    if not records:
        raise _refuse(path, "", "the samples file holds no samples")
    return records


def _lm_eval_record(path: Path, where: str, s: Any, task_name: str, m: re.Match[str] | None, model: str,
                    version: str, ctx: ImportContext) -> dict[str, Any]:
    if not isinstance(s, dict) or "doc_id" not in s or "doc" not in s:
        raise _refuse(path, where, f"not an lm-evaluation-harness samples line (no doc_id/doc; layout tested with "
                      f"{LM_EVAL_TESTED})")
    metric_names = s.get("metrics") or [k for k, v in s.items() if _number(v) is not None and k != "doc_id"]
    metric_names = _seq(path, where, "metrics", metric_names)
    scores = {str(k): float(s[k]) for k in metric_names
              if isinstance(k, str) and isinstance(s.get(k), int | float | bool)}
    if not scores:
        raise _refuse(path, where, "the sample has no metric value")
    primary = next(iter(scores))
    doc = _obj(path, where, "doc", s.get("doc") or None)
    slices, risk = _slices_and_risk({k: v for k, v in doc.items() if k in ("risk", "slice", "task", "category",
                                                                        "subject", "tenant", "language")}, ctx)
    arguments = s.get("arguments")
    first_arg = arguments.get("gen_args_0") if isinstance(arguments, dict) else None
    prompt = first_arg.get("arg_0") if isinstance(first_arg, dict) else None
    return {
        "run_id": f"{task_name}@{m['stamp'] if m else path.stem}", "case_id": f"doc-{_text(s['doc_id'])}",
        "suite": task_name, "dataset": ctx.dataset, "dataset_version": ctx.dataset_version,
        "content_digest": f"lm-eval:{_text(s['doc_hash'])}" if s.get("doc_hash") else None, "risk": risk,
        "slices": slices, "passed": scores[primary] >= 1.0, "scores": scores,
        "scorer_version": f"lm-eval {task_name} v{version}" if version else None,
        "input": _text(prompt) or _text(doc.get("question") or doc.get("input")),
        "output": _text(s.get("filtered_resps")), "expected": _text(s.get("target")),
        "trace": {"model_version": model or None},
    }


# ----- DeepEval -----------------------------------------------------------------------------------------------
def read_deepeval(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    data = _load_json(path)
    if isinstance(data, dict) and "testRunData" in data:
        data = data["testRunData"]
    if not isinstance(data, dict) or "testCases" not in data:
        raise _refuse(path, "", f"not a DeepEval test-run file (expected {{testCases: [...]}}; layout tested with "
                      f"{DEEPEVAL_TESTED})")
    with _record(path, ""):
        run = f"deepeval-{_short_digest(data)}"
    records = []
    for i, t in enumerate(_seq(path, "", "testCases", data.get("testCases"))):
        where = f"testCases[{i}] ({t.get('name')!r})" if isinstance(t, dict) else f"testCases[{i}]"
        with _record(path, where):
            records.append(_validated(path, where, _deepeval_record(path, where, t, i, run, ctx)))
    if not records:
        raise _refuse(path, "testCases", "the DeepEval run holds no test cases")
    return records


def _deepeval_record(path: Path, where: str, t: Any, i: int, run: str, ctx: ImportContext) -> dict[str, Any]:
    t = _obj(path, where, "", t)
    metadata = t.get("metadata") or t.get("additionalMetadata")
    tags = {**_tag_list(_seq(path, where, "tags", t.get("tags"))), **_obj(path, where, "metadata", metadata)}
    slices, risk = _slices_and_risk(tags, ctx)
    metrics = [_obj(path, where, f"metricsData[{j}]", m)
               for j, m in enumerate(_seq(path, where, "metricsData", t.get("metricsData")))]
    scores = {str(m.get("name")): float(m["score"]) for m in metrics if _number(m.get("score")) is not None}
    checks = {str(m.get("name")): bool(m.get("success")) for m in metrics}
    errors = [str(m["error"]) for m in metrics if m.get("error")]
    judges = sorted({str(m["evaluationModel"]) for m in metrics if m.get("evaluationModel")})
    return {
        "run_id": run, "case_id": str(t.get("name") or f"order-{t.get('order', i)}"), "suite": "deepeval",
        "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
        "passed": bool(t.get("success")) and not errors, "scores": scores, "checks": checks,
        "judge_model": ", ".join(judges) or None,
        "latency_ms": _seconds_to_ms(t.get("runDuration")),
        "input_tokens": t.get("inputTokenCount"), "output_tokens": t.get("outputTokenCount"),
        "cost_usd": t.get("tokenCost") or t.get("evaluationCost"), "error": "; ".join(errors) or None,
        "input": _text(t.get("input")), "output": _text(t.get("actualOutput")),
        "expected": _text(t.get("expectedOutput")),
    }


def _read_mlflow(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    from dashboard.importers.mlflow_runs import read_mlflow

    return read_mlflow(path, ctx)


def _read_ragas(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    from dashboard.importers.ragas_results import read_ragas

    return read_ragas(path, ctx)


READERS: dict[str, Callable[[Path, ImportContext], list[dict[str, Any]]]] = {
    "promptfoo": read_promptfoo, "inspect": read_inspect, "lm-eval": read_lm_eval, "deepeval": read_deepeval,
    "mlflow": _read_mlflow, "ragas": _read_ragas}

# What each importer was tested with (README's import table; an unknown version is read when its structure
# matches and refused naming the file and record when it does not).
TESTED_WITH = {
    "promptfoo": "promptfoo 0.121.20 (results version 3; -o .json, .jsonl, .csv)",
    "inspect": "inspect_ai 0.3.285 (log version 2; .eval and .json)",
    "lm-eval": "lm_eval 0.4.13 (--log_samples JSONL)",
    "deepeval": "deepeval 4.3.1 (saved test runs)",
    "mlflow": "mlflow 3.18.0 (file store; artifacts/eval_results_table.json)",
    "ragas": "ragas 0.4.3 (to_pandas() saved as CSV or JSONL)",
}


def expand_input(path: Path) -> list[Path]:
    """The sources in one command-line input: a file is itself; a folder is the MLflow runs under it."""
    if path.is_dir() and not path.is_symlink():
        from dashboard.importers.mlflow_runs import run_folders

        return run_folders(path)
    return [path]


def detect_tool(path: Path) -> str:
    """'native' or the tool that wrote the file, from its content (and `.eval` for Inspect's zip logs); a folder is
    an MLflow run."""
    if path.is_dir():
        return "mlflow"
    if zipfile.is_zipfile(path) or path.suffix == ".eval":
        return "inspect"
    with open(path, "rb") as f:
        head = f.read(65536)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        first_line = text.split("\n", 1)[0]
        try:
            first = json.loads(first_line)
        except (ValueError, RecursionError):
            first = None
            if '"testCase"' in first_line and '"promptIdx"' in first_line:  # a long first line, cut at 64 KiB
                return "promptfoo"
        if isinstance(first, dict) and "case_id" in first:
            return "native"
        if isinstance(first, dict) and "doc_id" in first and "doc" in first:
            return "lm-eval"
        if isinstance(first, dict) and _PROMPTFOO_RESULT_KEYS <= first.keys():
            return "promptfoo"
        if isinstance(first, dict) and "user_input" in first:
            return "ragas"
        if '"evalId"' in head.decode(errors="replace") and '"results"' in text[:65536]:
            return "promptfoo"
        if '"testCases"' in text or '"testRunData"' in text:
            return "deepeval"
        if '"eval"' in text and '"version"' in text and ('"samples"' in text or '"plan"' in text):
            return "inspect"
    elif text:
        header = text.split("\n", 1)[0]
        try:
            columns = next(csv.reader([header]), [])
        except csv.Error:
            columns = []
        if any(_PROMPT_COLUMN.match(c) for c in columns) and "Status" in columns:
            return "promptfoo"
        if "user_input" in columns and "case_id" not in columns:
            return "ragas"
    return "native"


def to_native_jsonl(path: Path, fmt: str, ctx: ImportContext, out: Path) -> int:
    """Convert a tool's file to a native JSONL file; returns the number of records."""
    return write_native_jsonl(READERS[fmt](path, ctx), out)


def write_native_jsonl(records: list[dict[str, Any]], out: Path) -> int:
    """Native records (already validated) as a JSONL file; returns the number of records."""
    with open(out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")  # ASCII: a lone surrogate cannot break the write
    return len(records)
