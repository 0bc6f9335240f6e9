"""Property-based fuzzing of the observation readers (native JSONL and OTLP JSON lines): any input is stored or
refused with a message, never a traceback. Deterministic (derandomized) and small, like tests/test_fuzz.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.core.errors import ReadinessError
from dashboard.ingesting import observe
from dashboard.store.db import Store
from tests.conftest import REPO
from tests.test_fuzz import fuzz, mutated, only_success_or_refusal

GOOD = {"request_id": "r1", "time": "2026-11-20T10:00:00Z", "variant": "canary", "tenant": "acme",
        "slices": {"task": "qa"}, "error": False, "latency_ms": 12.5, "cost_usd": 0.01, "input_tokens": 3,
        "feedback": "negative", "citation_failure": True, "scores": {"g": 0.5}, "answer": "a",
        "retrieved_ids": ["D1"], "tool_calls": [{"name": "t", "side_effect": False, "error": None}],
        "trace_id": "0" * 32}
OTLP_LINE = json.loads((REPO / "tests" / "fixtures" / "otlp" / "canary.jsonl").read_text().splitlines()[1])


@pytest.fixture(scope="module")
def obs_store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("obsfuzz") / "f.duckdb")
    yield s
    s.close()


def _observe(store: Store, path: Path) -> Any:
    result = only_success_or_refusal(observe, store, [path], "rel-2026.10.0")
    if not isinstance(result, ReadinessError):
        store.query("DELETE FROM observations"), store.query("DELETE FROM observation_sources")
    return result


@fuzz(120)
@given(mutated([GOOD, {**GOOD, "request_id": "r2"}]))
def test_observation_jsonl_with_any_node_replaced_is_stored_or_refused(obs_store, tmp_path_factory, records):
    path = tmp_path_factory.mktemp("obs") / "obs.jsonl"
    lines = records if isinstance(records, list) else [records]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    _observe(obs_store, path)


@fuzz(120)
@given(mutated(OTLP_LINE))
def test_otlp_lines_with_any_node_replaced_are_stored_or_refused(obs_store, tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("otlp") / "traces.jsonl"
    path.write_text(json.dumps(OTLP_LINE) + "\n" + json.dumps(doc) + "\n", encoding="utf-8")
    _observe(obs_store, path)


@fuzz(60)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_observation_files_are_refused(obs_store, tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("raw")
    for name in ("x.jsonl", "x.parquet"):
        (folder / name).write_bytes(raw)
        assert isinstance(_observe(obs_store, folder / name), ReadinessError)
