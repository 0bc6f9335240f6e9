"""Importing what real eval tools wrote (tests/fixtures/tools/README.md says how each file was made)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from dashboard import demo, ingesting
from dashboard.core.errors import InputRefused
from dashboard.core.policy import parse_policy
from dashboard.importers.tools import detect_tool
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.conftest import REPO

TOOLS = REPO / "tests" / "fixtures" / "tools"
PROMPTFOO = TOOLS / "promptfoo" / "results.json"
INSPECT_EVAL = Path(glob.glob(str(TOOLS / "inspect" / "logs" / "*.eval"))[0])
INSPECT_JSON = Path(glob.glob(str(TOOLS / "inspect" / "logs" / "*.json"))[0])
LM_EVAL = Path(glob.glob(str(TOOLS / "lm-eval" / "out" / "*" / "samples_*.jsonl"))[0])
DEEPEVAL = Path(glob.glob(str(TOOLS / "deepeval" / "results" / "test_run_*.json"))[0])
BASE = demo.manifest_for(demo.STORIES[0])


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "i.duckdb")
    s.put_manifest(BASE)
    yield s
    s.close()


def ingest(store, path, **kw):
    return ingesting.ingest(store, [path], BASE.release_id, dataset="case_policy_golden", **kw)


def outcomes(store) -> tuple[int, int]:
    row = store.query("SELECT count(*) FILTER (WHERE passed), count(*) FILTER (WHERE NOT passed) FROM cases")[0]
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("path, tool", [(PROMPTFOO, "promptfoo"), (INSPECT_EVAL, "inspect"), (INSPECT_JSON, "inspect"),
                                        (LM_EVAL, "lm-eval"), (DEEPEVAL, "deepeval")])
def test_formats_are_detected_from_content(path, tool):
    assert detect_tool(path) == tool


def test_promptfoo_matches_its_own_summary(store):
    stats = json.loads(PROMPTFOO.read_text())["results"]["stats"]
    report = ingest(store, PROMPTFOO)
    assert report.files[0].format == "promptfoo" and report.files[0].records == 10
    assert outcomes(store) == (stats["successes"], stats["failures"])
    row = store.query("""SELECT risk, slices['task'], slices['prompt'], checks['cites_policy'], scores['score']
                         FROM cases WHERE case_id = 'refund-window|prompt.policy_answer.v7|echo-model'""")[0]
    assert row == ("high", "policy_qa", "prompt.policy_answer.v7", False, 0.5)
    hostile = store.query("SELECT input FROM cases WHERE case_id LIKE 'html-in-output|%' LIMIT 1")[0][0]
    assert "<script>alert(1)</script>" in hostile  # stored as text, shown as text


@pytest.mark.parametrize("path", [INSPECT_EVAL, INSPECT_JSON])
def test_inspect_matches_its_own_summary_per_sample_and_epoch(store, path):
    log = json.loads(INSPECT_JSON.read_text())
    report = ingest(store, path)
    assert report.files[0].records == log["results"]["total_samples"] == 10
    assert len(report.files[0].runs) == 2  # one run per epoch
    expected_passed = sum(all(v["value"] == "C" for v in s["scores"].values()) for s in log["samples"])
    assert outcomes(store) == (expected_passed, 10 - expected_passed) == (8, 2)
    accuracy = log["results"]["scores"][0]["metrics"]["accuracy"]["value"]
    assert store.query("SELECT avg(scores['match']) FROM cases")[0][0] == pytest.approx(accuracy)
    row = store.query("SELECT risk, slices['task'], input_tokens, trace.model_version FROM cases "
                      "WHERE case_id = 'status-update' ORDER BY run_id LIMIT 1")[0]
    assert row[0] == "critical" and row[1] == "status_update" and row[2] > 0 and "case-assistant-v1" in row[3]


def test_inspect_epochs_show_up_as_flaky_cases(store):
    ingest(store, INSPECT_EVAL)
    policy = parse_policy("policy_id: t\nversion: '1'\ngates:\n  - {id: flaky, name: flaky, category: quality, "
                          "severity: warning, metric: flaky_case_rate, condition: '== 0'}\n")
    gate = gate_release(store, policy, BASE.release_id, no_baseline=True).gates[0]
    assert gate.observed == pytest.approx(2 / 5) and gate.status == "fail"


def test_lm_eval_matches_its_results_file(store):
    results = json.loads(next(LM_EVAL.parent.glob("results_*.json")).read_text())["results"]["case_policy_mc"]
    report = ingest(store, LM_EVAL)
    assert report.files[0].records == results["sample_len"] == 6
    passed, failed = outcomes(store)
    assert passed / 6 == pytest.approx(results["acc,none"])
    assert store.query("SELECT count(*) FROM cases WHERE content_digest LIKE 'lm-eval:%' AND risk = 'critical'")[0][0] == 3


def test_deepeval_matches_its_own_summary(store):
    data = json.loads(DEEPEVAL.read_text())
    ingest(store, DEEPEVAL)
    assert outcomes(store) == (data["testPassed"], data["testFailed"])
    row = store.query("SELECT risk, slices['task'], slices['slice'], checks['Brevity'] FROM cases "
                      "WHERE case_id = 'html-output'")[0]
    assert row == ("medium", "injection_probe", "red-team", True)
    assert store.query("SELECT risk FROM cases WHERE case_id = 'status-update'")[0][0] == "critical"


def test_reimport_is_a_no_op(store):
    ingest(store, PROMPTFOO)
    counts = store.table_counts()
    assert ingest(store, PROMPTFOO).files[0].status == "unchanged"
    assert store.table_counts() == counts


@pytest.mark.parametrize("path, fmt", [(PROMPTFOO, "promptfoo"), (INSPECT_EVAL, "inspect"), (INSPECT_JSON, "inspect"),
                                       (LM_EVAL, "lm-eval"), (DEEPEVAL, "deepeval")])
def test_truncated_files_are_refused_clearly(store, tmp_path, path, fmt):
    cut = tmp_path / path.name
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    before = store.table_counts()
    with pytest.raises(InputRefused) as e:
        ingest(store, cut, fmt=fmt)
    assert str(cut) in str(e.value) and ("truncated" in str(e.value) or "corrupt" in str(e.value))
    assert store.table_counts() == before


@pytest.mark.parametrize("path, fmt", [(PROMPTFOO, "inspect"), (DEEPEVAL, "promptfoo"), (LM_EVAL, "deepeval"),
                                       (INSPECT_JSON, "lm-eval")])
def test_a_file_of_another_tool_is_refused(store, path, fmt):
    with pytest.raises(InputRefused, match=f"this is not a {fmt} file: it looks like"):
        ingest(store, path, fmt=fmt)
    assert store.table_counts()["cases"] == 0


def test_unsupported_versions_are_refused(store, tmp_path):
    """An untested version whose structure differs is refused (issue 18: one whose structure matches is read,
    tests/test_importers_formats.py)."""
    pf = json.loads(PROMPTFOO.read_text())
    pf["results"]["version"] = 2
    pf["results"]["results"] = [{"table": r} for r in pf["results"]["results"]]
    (tmp_path / "pf.json").write_text(json.dumps(pf))
    with pytest.raises(InputRefused, match="promptfoo results version 2 is not supported: its structure differs"):
        ingest(store, tmp_path / "pf.json")
    log = json.loads(INSPECT_JSON.read_text())
    log["version"] = 9
    log["samples"] = [{"sample": s} for s in log["samples"]]
    (tmp_path / "log.json").write_text(json.dumps(log))
    with pytest.raises(InputRefused, match="Inspect AI log version 9 is not supported: its structure differs"):
        ingest(store, tmp_path / "log.json")
    assert store.table_counts()["cases"] == 0


def test_tool_files_need_a_dataset_when_the_manifest_has_several(store):
    with pytest.raises(InputRefused, match="does not say which eval dataset it ran: name it"):
        ingesting.ingest(store, [PROMPTFOO], BASE.release_id)


def test_cli_ingests_a_tool_file(tmp_path, capsys):
    from dashboard.cli import main

    db = str(tmp_path / "c.duckdb")
    manifest = str(REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml")
    assert main(["ingest", str(PROMPTFOO), "--release", "rel-2026.10.0", "--manifest", manifest, "--db", db,
                 "--dataset", "case_policy_golden"]) == 0
    assert "(promptfoo): ingested 10 cases" in capsys.readouterr().out
    assert main(["ingest", str(DEEPEVAL), "--release", "rel-2026.10.0", "--db", db, "--format", "promptfoo",
                 "--dataset", "case_policy_golden"]) == 1
    assert "it looks like deepeval output" in capsys.readouterr().err


# ----- hostile input (issue 12 items 4 and 8) ---------------------------------------------------------------------
def _zip_with_methods(path: Path, members: dict[str, tuple[int, bytes]], declared: dict[str, int] | None = None):
    """A zip whose members carry the given compression method (93 = Zstandard, as Inspect writes) and bytes as
    stored; zipfile cannot write method 93, so members are stored and the method fields patched afterwards."""
    import struct
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, (_, data) in members.items():
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        start = zf.start_dir  # type: ignore[attr-defined]
    for info in infos:
        method = members[info.filename][0]
        struct.pack_into("<H", raw, info.header_offset + 8, method)
    pos = start
    for info in infos:
        assert raw[pos:pos + 4] == b"PK\x01\x02"
        struct.pack_into("<H", raw, pos + 10, members[info.filename][0])
        if declared and info.filename in declared:
            struct.pack_into("<I", raw, pos + 24, declared[info.filename])  # uncompressed size it claims
        n, m, k = struct.unpack_from("<HHH", raw, pos + 28)
        pos += 46 + n + m + k
    path.write_bytes(bytes(raw))


def _zstd_zeros(size: int) -> bytes:
    """A Zstandard frame of `size` zero bytes that declares its size, made in 1 MiB steps (low memory)."""
    import zstandard

    cobj = zstandard.ZstdCompressor(level=1, write_content_size=True).compressobj(size=size)
    block, parts, left = bytes(1 << 20), [], size
    while left:
        parts.append(cobj.compress(block[: min(left, len(block))]))
        left -= min(left, len(block))
    parts.append(cobj.flush())
    return b"".join(parts)


def test_a_zstd_bomb_that_declares_its_size_is_refused_under_the_cap(tmp_path):
    """A small `.eval` whose zstd member declares (and holds) more than the per-member cap: refused as a stream,
    never allocated whole (on the old code the frame's own size overrode max_output_size)."""
    import time

    from dashboard.importers import tools

    bomb = _zstd_zeros(tools.MAX_ZIP_MEMBER_BYTES + (1 << 20))
    assert len(bomb) < 100_000
    path = tmp_path / "bomb.eval"
    _zip_with_methods(path, {"header.json": (93, bomb)}, declared={"header.json": 64})
    t0 = time.perf_counter()
    with pytest.raises(InputRefused, match="header.json: the member decompresses to more than the limit"):
        tools.read_inspect(path, tools.ImportContext("d", "v"))
    assert time.perf_counter() - t0 < 20


@pytest.mark.parametrize("method", [8, 93])  # deflate, Zstandard
def test_zip_caps_per_member_in_all_and_on_member_count(tmp_path, monkeypatch, method):
    import zipfile

    from dashboard.importers import tools

    def write(path: Path, members: dict[str, bytes]) -> None:
        if method == 93:
            import zstandard

            _zip_with_methods(path, {k: (93, zstandard.ZstdCompressor().compress(v)) for k, v in members.items()})
        else:  # zipfile writes deflate members (with their true sizes) itself
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
                for k, v in members.items():
                    zf.writestr(k, v)

    ctx = tools.ImportContext("d", "v")
    monkeypatch.setattr(tools, "MAX_ZIP_MEMBER_BYTES", 1 << 20)
    path = tmp_path / "member.eval"
    write(path, {"header.json": bytes(4 << 20)})
    with pytest.raises(InputRefused, match="more than the limit of 1,048,576 bytes"):
        tools.read_inspect(path, ctx)

    monkeypatch.setattr(tools, "MAX_ZIP_TOTAL_BYTES", 2 << 20)
    path = tmp_path / "total.eval"
    write(path, {f"samples/{i}.json": bytes(900_000) for i in range(3)})
    with pytest.raises(InputRefused, match="samples/2.json: the zip decompresses to more than the limit"):
        tools.read_inspect(path, ctx)

    monkeypatch.setattr(tools, "MAX_ZIP_MEMBERS", 10)
    path = tmp_path / "count.eval"
    write(path, {f"samples/{i}.json": b"{}" for i in range(11)})
    with pytest.raises(InputRefused, match="11 members, more than the limit of 10"):
        tools.read_inspect(path, ctx)


def _mutated(doc, path: tuple, value):
    import copy

    doc = copy.deepcopy(doc)
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("fmt, source, where, value, expected", [
    ("promptfoo", PROMPTFOO, ("results", "results", 0, "testCase"), "x", "results.results[0]: testCase: expected an object"),
    ("promptfoo", PROMPTFOO, ("results", "results", 0, "gradingResult", "componentResults"), {"a": 1},
     "results.results[0]: gradingResult.componentResults: expected an array"),
    ("promptfoo", PROMPTFOO, ("results", "results", 1, "namedScores"), [1], "results.results[1]: namedScores"),
    ("promptfoo", PROMPTFOO, ("results", "results", 0), 7, "results.results[0]: expected an object"),
    ("deepeval", DEEPEVAL, ("testCases", 0, "metricsData"), {"a": 1}, "testCases[0]"),
    ("deepeval", DEEPEVAL, ("testCases", 0, "metricsData", 0), "m", "metricsData[0]: expected an object"),
    ("deepeval", DEEPEVAL, ("testCases", 0, "tags"), 5, "tags: expected an array"),
    ("inspect", INSPECT_JSON, ("samples", 0, "scores"), [], "scores: expected an object"),
    ("inspect", INSPECT_JSON, ("samples", 0, "model_usage"), {"m": 3}, "model_usage.m: expected an object"),
    ("inspect", INSPECT_JSON, ("samples", 0, "output"), "text", "output: expected an object"),
    ("inspect", INSPECT_JSON, ("eval",), [], "eval: expected an object"),
])
def test_tool_fields_of_the_wrong_type_are_refused_naming_record_and_field(tmp_path, fmt, source, where, value,
                                                                         expected):
    from dashboard.importers.tools import READERS, ImportContext

    path = tmp_path / source.name
    path.write_text(json.dumps(_mutated(_load(source), where, value)), encoding="utf-8")
    with pytest.raises(InputRefused) as e:
        READERS[fmt](path, ImportContext("case_policy_golden", "v9"))
    assert expected in str(e.value) and str(path) in str(e.value)


def test_lm_eval_lines_of_the_wrong_shape_are_refused_naming_the_line(tmp_path):
    from dashboard.importers.tools import READERS, ImportContext

    lines = LM_EVAL.read_text(encoding="utf-8").splitlines()
    for bad, expected in (({"doc_id": 1, "doc": "x", "acc": 1}, "line 2: doc: expected an object"),
                          ({"doc_id": 1, "doc": {}, "acc": 1, "metrics": "acc"}, "line 2: metrics: expected an array"),
                          ([1, 2], "line 2: not an lm-evaluation-harness samples line"),
                          ("[" * 100_000, "line 2")):
        path = tmp_path / LM_EVAL.name
        path.write_text(lines[0] + "\n" + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n", encoding="utf-8")
        with pytest.raises(InputRefused, match=expected.replace("[", r"\[")):
            READERS["lm-eval"](path, ImportContext("case_policy_golden", "v9"))


@pytest.mark.parametrize("source, fmt", [(PROMPTFOO, "promptfoo"), (DEEPEVAL, "deepeval"), (INSPECT_JSON, "inspect")])
def test_deeply_nested_tool_files_are_refused_not_a_recursion_error(tmp_path, source, fmt):
    from dashboard.importers.tools import READERS, ImportContext

    path = tmp_path / source.name
    path.write_text(source.read_text(encoding="utf-8")[:-1].rstrip() + ', "deep": ' + "[" * 200_000 + "}",
                    encoding="utf-8")
    with pytest.raises(InputRefused, match="nested more than"):
        READERS[fmt](path, ImportContext("case_policy_golden", "v9"))


def test_refusals_of_a_converted_tool_file_name_the_tool_file_not_a_temporary_one(store, tmp_path):
    data = _load(PROMPTFOO)
    data["results"]["results"].append(data["results"]["results"][0])  # the same test twice: one case id twice
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputRefused) as e:
        ingest(store, path)
    message = str(e.value)
    assert message.startswith(f"{path}:record 11: case_id: duplicate case_id") and "converted.jsonl" not in message
    assert "(first at record 1)" in message
