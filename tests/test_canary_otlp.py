"""OTLP JSON lines written by the real OpenTelemetry SDK (tests/fixtures/otlp) read as production observations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.core.errors import InputRefused
from dashboard.ingesting import observe
from dashboard.store.db import Store
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "otlp"
CANARY, SHADOW = FIXTURES / "canary.jsonl", FIXTURES / "shadow.jsonl"


def test_sdk_fixtures_import_with_genai_conventions(tmp_path: Path, capsys) -> None:
    """Test that the SDK's export imports per release: spans, token usage, evaluation events, tool calls, hex ids."""
    db = str(tmp_path / "s.duckdb")
    assert main(["observe", str(CANARY), "--release", "rel-2026.10.0", "--db", db]) == 0
    assert main(["observe", str(CANARY), "--release", "rel-2026.11.0-rc2", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "(otlp): ingested 6 observations for rel-2026.10.0 (6 baseline)" in out
    assert "ingested 6 observations for rel-2026.11.0-rc2 (6 canary)" in out
    assert main(["observe", str(CANARY), "--release", "rel-2026.11.0-rc2", "--db", db]) == 0
    assert "already ingested" in capsys.readouterr().out
    with Store(db) as s:
        rows = s.query("""SELECT request_id, variant, latency_ms, error, input_tokens, output_tokens, model,
                                 citation_failure, scores, tool_calls[1].name, trace_id, span_id, tenant,
                                 slices['task'], cost_usd, retrieved_ids, operation
                          FROM observations WHERE release_id = 'rel-2026.11.0-rc2' ORDER BY request_id""")
    assert [r[0] for r in rows] == [f"req-c{i}" for i in range(6)]
    c0, c5 = rows[0], rows[5]
    assert c0[1] == "canary" and c0[2] == pytest.approx(2000.0) and c0[3] is False
    assert c0[4:8] == (2400, 280, "gpt-x-2026-06-0613", True)
    assert c0[8] == {"groundedness": 0.55} and c0[9] == "search_policies"
    assert len(c0[10]) == 32 and int(c0[10], 16) and len(c0[11]) == 16 and int(c0[11], 16)
    assert c0[12:] == ("globex", "policy_qa", 0.0123, ["POL-0042", "POL-0107"], "chat")
    assert c5[3] is True  # ERROR status
    assert main(["canary", "judge", "--release", "rel-2026.11.0-rc2", "--baseline", "rel-2026.10.0", "--policy",
                 str(REPO / "data" / "policies" / "case-management.yaml"), "--db", db, "--format", "json"]) == 3
    judged = json.loads(capsys.readouterr().out)
    assert judged["canary_requests"] == 6 and judged["verdict"] == "continue"  # 6 requests: too few to judge


def test_shadow_fixture_side_effect_is_a_blocker(tmp_path: Path, capsys) -> None:
    """Test that a shadow trace whose execute_tool span has a side effect blocks the shadow comparison."""
    db = str(tmp_path / "s.duckdb")
    assert main(["observe", str(SHADOW), "--release", "rel-2026.10.0", "--db", db]) == 0
    assert main(["observe", str(SHADOW), "--release", "rel-2026.11.0-index-v4", "--db", db]) == 0
    capsys.readouterr()
    assert main(["shadow", "compare", "--release", "rel-2026.11.0-index-v4", "--baseline", "rel-2026.10.0",
                 "--db", db]) == 1
    out = capsys.readouterr().out
    assert "3 paired by request id" in out and "update_case_status" in out and "req-s1" in out


def _edited(tmp_path: Path, name: str, old: str, new: str, line: int = 2) -> Path:
    lines = CANARY.read_text().splitlines()
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_base64_ids_and_broken_lines_are_refused_with_line_and_field(tmp_path: Path) -> None:
    """Test that a base64 trace id, a bad attribute value and a line without resourceSpans name line and field."""
    first_trace = json.loads(CANARY.read_text().splitlines()[1])["resourceSpans"][0]["scopeSpans"][0]["spans"][0][
        "traceId"]
    cases = [
        (_edited(tmp_path, "b64.jsonl", first_trace, "AKvN7wAAAAAAAAAAAAAD6Q=="),
         "b64.jsonl:line 2: resourceSpans.0.scopeSpans.0.spans.0.traceId: 'AKvN7wAAAAAAAAAAAAAD6Q==' is not a hex id"),
        (_edited(tmp_path, "int.jsonl", '{"intValue":"2400"}', '{"intValue":"many"}'),
         "int.jsonl:line 2: resourceSpans.0.scopeSpans.0.spans.0.attributes.4.value: intValue 'many'"),
        (_edited(tmp_path, "nors.jsonl", '{"resourceSpans":', '{"resourceSpanz":'),
         "nors.jsonl:line 2: resourceSpans: missing"),
    ]
    with Store(tmp_path / "s.duckdb") as s:
        for path, message in cases:
            with pytest.raises(InputRefused) as e:
                observe(s, [path], "rel-2026.10.0")
            assert message in str(e.value)
        assert s.query("SELECT count(*) FROM observations") == [(0,)]


def test_no_trace_of_the_release(tmp_path: Path) -> None:
    """Test that observing an OTLP file for a release it does not hold is refused, not silently empty."""
    with Store(tmp_path / "s.duckdb") as s, pytest.raises(InputRefused, match="no trace in the file is of release"):
        observe(s, [CANARY], "rel-other")
