"""OpenTelemetry traces exported to files (OTLP JSON lines: one `TracesData` per line, as the OpenTelemetry
Collector's file exporter and the Python SDK's JSON file exporter write them) read as production observations.

One observation per trace (spans of one trace may be spread over several lines):
- request: the trace's root span (no parent in the file): time = its start, latency = its duration, error = its
  status is ERROR (code 2) or it carries `error.type`; `request_id` = its attribute `readiness.request_id`, else the
  trace id (a shadow's trace must carry the id of the production request it mirrors);
- GenAI semantic conventions: the root span's `gen_ai.operation.name` as the operation, `gen_ai.usage.input_tokens` / `output_tokens` summed over the trace's spans,
  `gen_ai.response.model` (else `gen_ai.request.model`) as the model, every `execute_tool` span
  (`gen_ai.operation.name`) as a tool call named by `gen_ai.tool.name` (side effect: `readiness.tool.side_effect`,
  error: its status), and every `gen_ai.evaluation.result` event as a score (`gen_ai.evaluation.name` ->
  `gen_ai.evaluation.score.value`);
- the application's own attributes on any span: `readiness.<signal>` for the §22 flags (citation_failure,
  refusal, safety_alert, ...), `readiness.cost_usd`, `readiness.tenant`, `readiness.slice.<name>`,
  `readiness.answer`, `readiness.retrieved_ids`, `readiness.feedback`;
- release and variant: resource attributes, `service.version` and `deployment.variant` by default
  (`readiness observe --release-attribute / --variant-attribute`).

In OTLP JSON `traceId` and `spanId` are hex strings (not base64 as protobuf's generic JSON mapping would have them);
a base64 id is refused with the line. Each problem names the file, the line and the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard.core.errors import InputRefused, Problem, decode_text, parse_json
from dashboard.core.observations import FLAG_SIGNALS

DEFAULT_RESOURCE_KEYS = ("service.version", "deployment.variant")
_HEX = {"traceId": re.compile(r"^[0-9a-fA-F]{32}$"), "spanId": re.compile(r"^[0-9a-fA-F]{16}$"),
        "parentSpanId": re.compile(r"^([0-9a-fA-F]{16})?$")}
TOOL_OPERATION = "execute_tool"
EVALUATION_EVENT = "gen_ai.evaluation.result"


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def any_value(v: Any, field: str) -> Any:
    """An OTLP AnyValue as a Python value (int64 arrives as a JSON string)."""
    if not isinstance(v, dict):
        raise _Bad(field, "an attribute value must be an object such as {\"stringValue\": ...}")
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            raise _Bad(field, f"intValue {v['intValue']!r} is not an integer") from None
    if "doubleValue" in v:
        x = v["doubleValue"]
        if isinstance(x, str) and x in ("NaN", "Infinity", "-Infinity"):
            return float(x.replace("Infinity", "inf"))
        if not isinstance(x, int | float) or isinstance(x, bool):
            raise _Bad(field, f"doubleValue {x!r} is not a number")
        return float(x)
    if "arrayValue" in v:
        values = _list(_obj(v["arrayValue"], field, {}).get("values"), field)
        return [any_value(x, field) for x in values]
    if "kvlistValue" in v:
        return attributes(_list(_obj(v["kvlistValue"], field, {}).get("values"), field), field)
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None


def attributes(items: Any, field: str) -> dict[str, Any]:
    if not isinstance(items, list):
        raise _Bad(field, "attributes must be a list of {key, value}")
    out: dict[str, Any] = {}
    for i, kv in enumerate(items):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Bad(f"{field}.{i}", "an attribute needs a string key")
        out[kv["key"]] = any_value(kv.get("value"), f"{field}.{i}.value")
    return out


def _nanos(v: Any, field: str) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise _Bad(field, f"{v!r} is not a time in nanoseconds since the epoch") from None
    if n <= 0:
        raise _Bad(field, "missing or zero")
    return n


def _obj(v: Any, field: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
    if v is None and default is not None:
        return default
    if not isinstance(v, dict):
        raise _Bad(field, "must be an object")
    return v


def _list(v: Any, field: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Bad(field, "must be a list")
    return v


def _spans(line: dict[str, Any], keys: tuple[str, str]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(path, span, resource attributes) of every span in one TracesData, each checked for shape: ids, times,
    status, attributes and events; anything malformed raises _Bad with its path."""
    rs = line.get("resourceSpans")
    if not isinstance(rs, list):
        raise _Bad("resourceSpans", "missing: one OTLP TracesData object per line")
    out = []
    for i, r in enumerate(rs):
        r = _obj(r, f"resourceSpans.{i}")
        resource = _obj(r.get("resource"), f"resourceSpans.{i}.resource", {})
        res = attributes(_list(resource.get("attributes"), f"resourceSpans.{i}.resource.attributes"),
                         f"resourceSpans.{i}.resource.attributes")
        for j, ss in enumerate(_list(r.get("scopeSpans"), f"resourceSpans.{i}.scopeSpans")):
            ss = _obj(ss, f"resourceSpans.{i}.scopeSpans.{j}")
            for k, span in enumerate(_list(ss.get("spans"), f"resourceSpans.{i}.scopeSpans.{j}.spans")):
                path = f"resourceSpans.{i}.scopeSpans.{j}.spans.{k}"
                span = dict(_obj(span, path))
                for idf, pattern in _HEX.items():
                    value = span.get(idf, "")
                    if idf != "parentSpanId" or value:
                        if not isinstance(value, str) or not pattern.match(value):
                            raise _Bad(f"{path}.{idf}", f"{value!r} is not a hex id (OTLP JSON writes trace and span "
                                       f"ids as hex: {32 if idf == 'traceId' else 16} hex digits, not base64)")
                start = _nanos(span.get("startTimeUnixNano"), f"{path}.startTimeUnixNano")
                end = _nanos(span.get("endTimeUnixNano"), f"{path}.endTimeUnixNano")
                if end < start:
                    raise _Bad(f"{path}.endTimeUnixNano", "the span ends before it starts")
                if start >= 10**19:
                    raise _Bad(f"{path}.startTimeUnixNano", "not a time in nanoseconds since the epoch")
                span["_start"], span["_end"] = start, end
                status = _obj(span.get("status"), f"{path}.status", {})
                span["_error"] = status.get("code") in (2, "2", "STATUS_CODE_ERROR")
                span["_attrs"] = attributes(_list(span.get("attributes"), f"{path}.attributes"), f"{path}.attributes")
                events = []
                for e_i, event in enumerate(_list(span.get("events"), f"{path}.events")):
                    event = _obj(event, f"{path}.events.{e_i}")
                    if event.get("name") == EVALUATION_EVENT:
                        events.append(attributes(_list(event.get("attributes"), f"{path}.events.{e_i}.attributes"),
                                                 f"{path}.events.{e_i}.attributes"))
                span["_evaluations"] = events
                out.append((path, span, res))
    return out


def _observation(trace_id: str, spans: list[dict[str, Any]], res: dict[str, Any], keys: tuple[str, str],
                 where: str) -> dict[str, Any]:
    ids = {s["spanId"] for s in spans}
    roots = [s for s in spans if not s.get("parentSpanId") or s["parentSpanId"] not in ids]
    root = min(roots or spans, key=lambda s: (s["_start"], s["spanId"]))
    start, end = root["_start"], root["_end"]
    merged: dict[str, Any] = {}
    for s in sorted(spans, key=lambda s: s is not root):  # the root's attributes win
        for k, v in s["_attrs"].items():
            merged.setdefault(k, v)
    rec: dict[str, Any] = {"request_id": str(root["_attrs"].get("readiness.request_id") or trace_id),
                           "time": datetime.fromtimestamp(start / 1e9, UTC).isoformat(),
                           "latency_ms": max(0.0, (end - start) / 1e6), "trace_id": trace_id.lower(),
                           "span_id": root["spanId"].lower()}
    if keys[0] in res:
        rec["release_id"] = str(res[keys[0]])
    if keys[1] in res:
        rec["variant"] = str(res[keys[1]])
    rec["error"] = root["_error"] or "error.type" in root["_attrs"]
    for side in ("input", "output"):
        tokens = [s["_attrs"][f"gen_ai.usage.{side}_tokens"] for s in spans
                  if isinstance(s["_attrs"].get(f"gen_ai.usage.{side}_tokens"), int)]
        if tokens:
            rec[f"{side}_tokens"] = sum(tokens)
    model = merged.get("gen_ai.response.model") or merged.get("gen_ai.request.model")
    if model is not None:
        rec["model"] = str(model)
    operation = root["_attrs"].get("gen_ai.operation.name")
    if operation is not None:
        rec["operation"] = str(operation)
    for flag in FLAG_SIGNALS:
        if f"readiness.{flag}" in merged and flag != "error":
            rec[flag] = merged[f"readiness.{flag}"]
    for key, field in (("readiness.cost_usd", "cost_usd"), ("readiness.tenant", "tenant"),
                       ("readiness.answer", "answer"), ("readiness.retrieved_ids", "retrieved_ids"),
                       ("readiness.feedback", "feedback")):
        if key in merged:
            rec[field] = merged[key]
    slices = {k.removeprefix("readiness.slice."): str(v) for k, v in merged.items() if k.startswith("readiness.slice.")}
    if slices:
        rec["slices"] = slices
    tools = []
    for s in sorted(spans, key=lambda s: (s["_start"], s["spanId"])):
        if s["_attrs"].get("gen_ai.operation.name") == TOOL_OPERATION:
            tools.append({"name": str(s["_attrs"].get("gen_ai.tool.name") or s.get("name") or "tool"),
                          "side_effect": s["_attrs"].get("readiness.tool.side_effect", False),
                          "error": s["_error"]})
    if tools:
        rec["tool_calls"] = tools
    scores: dict[str, Any] = {}
    for s in spans:
        for attrs in s["_evaluations"]:
            name, value = attrs.get("gen_ai.evaluation.name"), attrs.get("gen_ai.evaluation.score.value")
            if name is not None and value is not None:
                scores[str(name)] = value
    if scores:
        rec["scores"] = scores
    return rec


def otlp_records(path: Path, data: bytes, resource_keys: tuple[str, str] | None = None,
                 release_id: str | None = None) -> list[tuple[str, Any]]:
    """[(where, observation dict)] of an OTLP JSON-lines file, one per trace, in the order traces first appear.
    With `release_id`, traces whose resource names another release are left out (`readiness observe` is called
    once per release); those of no release are kept (the --release given)."""
    keys = resource_keys or DEFAULT_RESOURCE_KEYS
    text = decode_text(data, path, "OTLP file")
    traces: dict[str, list[dict[str, Any]]] = {}
    first: dict[str, str] = {}
    resources: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        value = parse_json(line, path, where)
        if not isinstance(value, dict):
            raise InputRefused([Problem(str(path), where, "", "one OTLP TracesData object per line")])
        try:
            for _, span, res in _spans(value, keys):
                tid = span["traceId"].lower()
                traces.setdefault(tid, []).append(span)
                first.setdefault(tid, where)
                resources.setdefault(tid, res)
        except _Bad as e:
            raise InputRefused([Problem(str(path), where, e.field, e.message)]) from None
    out: list[tuple[str, Any]] = []
    for tid, spans in traces.items():
        try:
            rec = _observation(tid, spans, resources[tid], keys, first[tid])
        except _Bad as e:
            raise InputRefused([Problem(str(path), first[tid], e.field, e.message)]) from None
        if release_id is not None and rec.get("release_id", release_id) != release_id:
            continue
        out.append((f"{first[tid]} (trace {tid})", rec))
    return out
