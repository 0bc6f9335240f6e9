"""Results that real eval tools write, mapped onto native eval-case records.

promptfoo (`promptfoo eval -o results.json`, results version 3), Inspect AI logs (`.eval` zip or `.json`),
lm-evaluation-harness (`--log_samples` JSONL, with its results JSON beside it), DeepEval (saved test runs).
Every record is validated with the native model here, so an error names the original file and record.
Tags such as `risk` or `slice` map onto the native slicing fields; other tags become slice dimensions.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dashboard.core.canonical import canonical_json
from dashboard.core.errors import InputRefused, Problem
from dashboard.core.manifests import pydantic_problems
from dashboard.core.models import RISK_LEVELS, EvalCase

TOOL_FORMATS = ("promptfoo", "inspect", "lm-eval", "deepeval")
PROMPTFOO_VERSIONS = (3,)
INSPECT_VERSIONS = (2,)


@dataclass(frozen=True)
class ImportContext:
    """What the tool's file does not say: which eval dataset (and version) of the manifest it ran."""

    dataset: str
    dataset_version: str
    default_risk: str = "medium"


def _refuse(path: Path, where: str, message: str) -> InputRefused:
    return InputRefused([Problem(str(path), where, "", message)])


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise _refuse(path, "", f"not UTF-8 text: {e}") from e
    except json.JSONDecodeError as e:
        raise _refuse(path, f"line {e.lineno}", f"invalid or truncated JSON: {e.msg} (column {e.colno})") from e


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
def read_promptfoo(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "evalId" not in data:
        raise _refuse(path, "", "not a promptfoo results file (expected {evalId, results: {version, results}})")
    version = data["results"].get("version")
    if version not in PROMPTFOO_VERSIONS:
        raise _refuse(path, "results.version", f"promptfoo results version {version!r} is not supported "
                      f"(supported: {', '.join(map(str, PROMPTFOO_VERSIONS))})")
    suite = str((data.get("config") or {}).get("description") or "promptfoo")
    scorer = f"promptfoo {(data.get('metadata') or {}).get('promptfooVersion', '?')}"
    prompts = data["results"].get("prompts") or []
    records = []
    for i, r in enumerate(data["results"].get("results") or []):
        where = f"results.results[{i}]"
        test = r.get("testCase") or {}
        test_key = test.get("description") or f"vars-{_short_digest(test.get('vars') or r.get('vars') or {})}"
        prompt = r.get("prompt") or (prompts[r["promptIdx"]] if isinstance(r.get("promptIdx"), int)
                                     and r["promptIdx"] < len(prompts) else {})
        prompt_label = prompt.get("label") or r.get("promptId") or f"prompt-{r.get('promptIdx')}"
        provider = r.get("provider") or {}
        provider_id = provider.get("label") or provider.get("id") or "provider"
        slices, risk = _slices_and_risk({**(test.get("metadata") or {})}, ctx)
        for k, v in (test.get("vars") or r.get("vars") or {}).items():
            if isinstance(v, str | int | float | bool):
                slices.setdefault(f"var.{k}", str(v)[:200])
        slices["prompt"], slices["provider"] = str(prompt_label), str(provider_id)
        grading = r.get("gradingResult") or {}
        checks: dict[str, bool] = {}
        for j, comp in enumerate(grading.get("componentResults") or []):
            assertion = comp.get("assertion") or {}
            name = str(assertion.get("metric") or assertion.get("type") or f"assertion_{j}")
            checks[name if name not in checks else f"{name}_{j}"] = bool(comp.get("pass"))
        scores = {str(k): float(v) for k, v in (r.get("namedScores") or {}).items() if isinstance(v, int | float)}
        if isinstance(r.get("score"), int | float):
            scores["score"] = float(r["score"])
        usage = (r.get("response") or {}).get("tokenUsage") or r.get("tokenUsage") or {}
        error = r.get("error") or ("error" if r.get("failureReason") == 2 else None)
        records.append(_validated(path, where, {
            "run_id": str(data["evalId"]), "case_id": f"{test_key}|{prompt_label}|{provider_id}", "suite": suite,
            "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
            "passed": bool(r.get("success")), "scores": scores, "checks": checks, "scorer_version": scorer,
            "latency_ms": r.get("latencyMs"), "cost_usd": r.get("cost"),
            "input_tokens": usage.get("prompt"), "output_tokens": usage.get("completion"),
            "error": _text(error), "input": _text(prompt.get("raw")), "output": _text((r.get("response") or {})
                                                                                     .get("output")),
            "trace": {"prompt_version": str(prompt_label), "model_version": str(provider.get("id") or provider_id)},
        }))
    if not records:
        raise _refuse(path, "results.results", "the promptfoo file holds no results")
    return records


# ----- Inspect AI ------------------------------------------------------------------------------------------
def _zip_members(path: Path) -> dict[str, bytes]:
    """Members of an Inspect `.eval` zip. Inspect compresses them with Zstandard (zip method 93), which
    Python's zipfile cannot read, so those are decompressed here."""
    import zstandard

    out: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            for info in zf.infolist():
                if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    out[info.filename] = zf.read(info)
                    continue
                if info.compress_type != 93:
                    raise _refuse(path, info.filename, f"unsupported zip compression method {info.compress_type}")
                raw.seek(info.header_offset)
                header = raw.read(30)
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                raw.seek(info.header_offset + 30 + name_len + extra_len)
                out[info.filename] = zstandard.ZstdDecompressor().decompress(raw.read(info.compress_size),
                                                                           max_output_size=info.file_size)
    except (zipfile.BadZipFile, zstandard.ZstdError, struct.error, OSError) as e:
        raise _refuse(path, "", f"not a readable Inspect .eval log (truncated or corrupt zip): {e}") from e
    return out


def _inspect_log(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(log header with eval/plan/results, samples) from a `.eval` zip or a `.json` log."""
    if zipfile.is_zipfile(path):
        members = _zip_members(path)
        if "header.json" not in members and "_journal/start.json" not in members:
            raise _refuse(path, "", "not an Inspect AI .eval log (no header.json)")
        header = json.loads(members.get("header.json") or members["_journal/start.json"])
        samples = [json.loads(v) for k, v in sorted(members.items()) if k.startswith("samples/")]
        return header, samples
    data = _load_json(path)
    if not isinstance(data, dict) or "eval" not in data or "version" not in data:
        raise _refuse(path, "", "not an Inspect AI log (expected {version, eval, samples})")
    return data, list(data.get("samples") or [])


_INSPECT_VALUES = {"C": (True, 1.0), "I": (False, 0.0), "P": (False, 0.5), "N": (False, 0.0)}


def read_inspect(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    header, samples = _inspect_log(path)
    version = header.get("version")
    if version not in INSPECT_VERSIONS:
        raise _refuse(path, "version", f"Inspect AI log version {version!r} is not supported "
                      f"(supported: {', '.join(map(str, INSPECT_VERSIONS))})")
    if header.get("status") not in ("success", None) and not samples:
        raise _refuse(path, "status", f"the Inspect run ended with status {header.get('status')!r} and no samples")
    ev = header.get("eval") or {}
    run = str(ev.get("run_id") or ev.get("eval_id") or path.stem)
    task_name = str(ev.get("task") or "inspect")
    model = str(ev.get("model") or "")
    solver = ",".join(str(s.get("solver")) for s in ((header.get("plan") or {}).get("steps") or []) if s.get("solver"))
    records = []
    for i, s in enumerate(samples):
        where = f"samples[{i}] (id {s.get('id')!r}, epoch {s.get('epoch')})"
        verdicts, scores, checks = [], {}, {}
        for name, sc in (s.get("scores") or {}).items():
            value = sc.get("value") if isinstance(sc, dict) else sc
            if isinstance(value, str) and value in _INSPECT_VALUES:
                ok, num = _INSPECT_VALUES[value]
            elif isinstance(value, bool):
                ok, num = value, float(value)
            elif isinstance(value, int | float):
                ok, num = float(value) >= 1.0, float(value)
            else:
                raise _refuse(path, where, f"score {name!r} has a value Readiness cannot read: {value!r}")
            verdicts.append(ok)
            scores[str(name)], checks[str(name)] = num, ok
        error = (s.get("error") or {}).get("message") if isinstance(s.get("error"), dict) else s.get("error")
        usage = s.get("model_usage") or {}
        tokens_in = sum(int(u.get("input_tokens") or 0) for u in usage.values()) if usage else None
        tokens_out = sum(int(u.get("output_tokens") or 0) for u in usage.values()) if usage else None
        cost = sum(float(u.get("total_cost") or 0) for u in usage.values()) if any(
            "total_cost" in u and u["total_cost"] is not None for u in usage.values()) else None
        slices, risk = _slices_and_risk(s.get("metadata") or {}, ctx)
        target = s.get("target")
        records.append(_validated(path, where, {
            "run_id": f"{run}/epoch-{s.get('epoch', 1)}", "case_id": str(s.get("id")), "suite": task_name,
            "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
            "passed": bool(verdicts) and all(verdicts) and not error, "scores": scores, "checks": checks,
            "scorer_version": f"inspect_ai task v{ev.get('task_version', 0)}",
            "latency_ms": _seconds_to_ms(s.get("total_time")),
            "input_tokens": tokens_in, "output_tokens": tokens_out, "cost_usd": cost, "error": _text(error),
            "input": _message_text(s.get("input")), "output": _text((s.get("output") or {}).get("completion")),
            "expected": "\n".join(target) if isinstance(target, list) else _text(target),
            "trace": {"model_version": model or None, "prompt_version": f"{task_name}@{ev.get('task_version', 0)}",
                      "workflow_version": solver or None},
        }))
    if not records:
        raise _refuse(path, "samples", "the Inspect log holds no samples")
    return records


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


def _lm_eval_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as e:
                    raise _refuse(path, f"line {number}", f"invalid or truncated JSON: {e.msg}") from e


def read_lm_eval(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    m = _SAMPLES_NAME.search(path.name)
    task_name = m["task"] if m else path.stem
    results = None
    if m:
        for candidate in sorted(path.parent.glob(f"results_{m['stamp']}*.json")):
            results = _load_json(candidate)
    model = str(((results or {}).get("config") or {}).get("model_args") or
                ((results or {}).get("config") or {}).get("model") or "")
    version = str(((results or {}).get("versions") or {}).get(task_name, ""))
    records = []
    for number, s in _lm_eval_lines(path):
        where = f"line {number}"
        if "doc_id" not in s or "doc" not in s:
            raise _refuse(path, where, "not an lm-evaluation-harness samples line (no doc_id/doc)")
        metric_names = s.get("metrics") or [k for k, v in s.items() if isinstance(v, int | float) and k != "doc_id"]
        scores = {str(k): float(s[k]) for k in metric_names if isinstance(s.get(k), int | float | bool)}
        if not scores:
            raise _refuse(path, where, "the sample has no metric value")
        primary = next(iter(scores))
        doc = s.get("doc") or {}
        slices, risk = _slices_and_risk({k: v for k, v in doc.items() if k in ("risk", "slice", "task", "category",
                                                                            "subject", "tenant", "language")}, ctx)
        records.append(_validated(path, where, {
            "run_id": f"{task_name}@{m['stamp'] if m else path.stem}", "case_id": f"doc-{s['doc_id']}",
            "suite": task_name, "dataset": ctx.dataset, "dataset_version": ctx.dataset_version,
            "content_digest": f"lm-eval:{s['doc_hash']}" if s.get("doc_hash") else None, "risk": risk,
            "slices": slices, "passed": scores[primary] >= 1.0, "scores": scores,
            "scorer_version": f"lm-eval {task_name} v{version}" if version else None,
            "input": _text((s.get("arguments") or {}).get("gen_args_0", {}).get("arg_0") if isinstance(
                s.get("arguments"), dict) else None) or _text(doc.get("question") or doc.get("input")),
            "output": _text(s.get("filtered_resps")), "expected": _text(s.get("target")),
            "trace": {"model_version": model or None},
        }))
    if not records:
        raise _refuse(path, "", "the samples file holds no samples")
    return records


# ----- DeepEval -----------------------------------------------------------------------------------------------
def read_deepeval(path: Path, ctx: ImportContext) -> list[dict[str, Any]]:
    data = _load_json(path)
    if isinstance(data, dict) and "testRunData" in data:
        data = data["testRunData"]
    if not isinstance(data, dict) or "testCases" not in data:
        raise _refuse(path, "", "not a DeepEval test-run file (expected {testCases: [...]})")
    run = f"deepeval-{_short_digest(data)}"
    records = []
    for i, t in enumerate(data.get("testCases") or []):
        where = f"testCases[{i}] ({t.get('name')!r})"
        tags = {**_tag_list(t.get("tags") or []), **(t.get("metadata") or t.get("additionalMetadata") or {})}
        slices, risk = _slices_and_risk(tags, ctx)
        metrics = t.get("metricsData") or []
        scores = {str(m["name"]): float(m["score"]) for m in metrics if isinstance(m.get("score"), int | float)}
        checks = {str(m["name"]): bool(m.get("success")) for m in metrics}
        errors = [str(m["error"]) for m in metrics if m.get("error")]
        judges = sorted({str(m["evaluationModel"]) for m in metrics if m.get("evaluationModel")})
        records.append(_validated(path, where, {
            "run_id": run, "case_id": str(t.get("name") or f"order-{t.get('order', i)}"), "suite": "deepeval",
            "dataset": ctx.dataset, "dataset_version": ctx.dataset_version, "risk": risk, "slices": slices,
            "passed": bool(t.get("success")) and not errors, "scores": scores, "checks": checks,
            "judge_model": ", ".join(judges) or None,
            "latency_ms": _seconds_to_ms(t.get("runDuration")),
            "input_tokens": t.get("inputTokenCount"), "output_tokens": t.get("outputTokenCount"),
            "cost_usd": t.get("tokenCost") or t.get("evaluationCost"), "error": "; ".join(errors) or None,
            "input": _text(t.get("input")), "output": _text(t.get("actualOutput")),
            "expected": _text(t.get("expectedOutput")),
        }))
    if not records:
        raise _refuse(path, "testCases", "the DeepEval run holds no test cases")
    return records


READERS: dict[str, Callable[[Path, ImportContext], list[dict[str, Any]]]] = {
    "promptfoo": read_promptfoo, "inspect": read_inspect, "lm-eval": read_lm_eval, "deepeval": read_deepeval}


def detect_tool(path: Path) -> str:
    """'native' or the tool that wrote the file, from its content (and `.eval` for Inspect's zip logs)."""
    if zipfile.is_zipfile(path) or path.suffix == ".eval":
        return "inspect"
    with open(path, "rb") as f:
        head = f.read(65536)
    text = head.decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        first_line = text.split("\n", 1)[0]
        try:
            first = json.loads(first_line)
        except json.JSONDecodeError:
            first = None
        if isinstance(first, dict) and "case_id" in first:
            return "native"
        if isinstance(first, dict) and "doc_id" in first and "doc" in first:
            return "lm-eval"
        if '"evalId"' in head.decode(errors="replace") and '"results"' in text[:65536]:
            return "promptfoo"
        if '"testCases"' in text or '"testRunData"' in text:
            return "deepeval"
        if '"eval"' in text and '"version"' in text and ('"samples"' in text or '"plan"' in text):
            return "inspect"
    return "native"


def to_native_jsonl(path: Path, fmt: str, ctx: ImportContext, out: Path) -> int:
    """Convert a tool's file to a native JSONL file; returns the number of records."""
    records = READERS[fmt](path, ctx)
    with open(out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    return len(records)
