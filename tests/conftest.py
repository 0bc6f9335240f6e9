"""Shared fixtures: a store loaded with the bundled demo, and helpers to write native files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard import demo
from dashboard.store.db import Store

REPO = Path(__file__).resolve().parent.parent
BASELINE = demo.BASELINE_ID


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Store:
    """A read-mostly store with every demo release (2,000 cases per run). Do not write to it."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    store = Store(path)
    from dashboard.cli import load_bundled_demo

    load_bundled_demo(store)
    return store


@pytest.fixture
def store(tmp_path) -> Store:
    """An empty store holding only the baseline's manifest."""
    s = Store(tmp_path / "t.duckdb")
    s.put_manifest(demo.manifest_for(demo.STORIES[0]))
    yield s
    s.close()


def good_case(**overrides) -> dict:
    case = {
        "case_id": "c1", "suite": "rag_policy_qa", "dataset": "case_policy_golden",
        "dataset_version": "eval.case_policy_golden.v9", "risk": "high", "passed": True,
        "latency_ms": 1200.5, "scores": {"groundedness": 0.91}, "slices": {"task": "policy_qa"},
    }
    case.update(overrides)
    return case


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path
