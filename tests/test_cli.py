"""The `readiness` command line: outputs and exit codes (0 ok, 1 refused, 2 usage)."""

from __future__ import annotations

import json
import re

import pytest

from dashboard.cli import main
from dashboard.core.models import EvalCase
from dashboard.store.schema import CASE_COLUMNS
from tests.conftest import REPO, good_case, write_jsonl

MANIFEST = REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_store_columns_mirror_the_native_record():
    """Test that the cases table and the Pydantic record stay in lock-step."""
    assert list(CASE_COLUMNS) == list(EvalCase.model_fields)


def test_ingest_releases_runs_round_trip(capsys, tmp_path):
    db = str(tmp_path / "s.duckdb")
    path = write_jsonl(tmp_path / "r.jsonl", [good_case(case_id=f"c{i}", passed=i != 0) for i in range(5)])
    code, out, _ = run(capsys, "ingest", str(path), "--release", "rel-2026.10.0", "--manifest", str(MANIFEST),
                       "--db", db)
    assert code == 0 and "ingested 5 cases" in out
    code, out, _ = run(capsys, "ingest", str(path), "--release", "rel-2026.10.0", "--db", db)
    assert code == 0 and "already ingested" in out
    code, out, _ = run(capsys, "runs", "--release", "rel-2026.10.0", "--format", "json", "--db", db)
    runs = json.loads(out)
    assert code == 0 and len(runs) == 1
    assert set(runs[0]) == {"run_id", "suite", "dataset_version", "cases", "passed", "failed", "source_digest"}
    assert (runs[0]["cases"], runs[0]["passed"], runs[0]["failed"]) == (5, 4, 1)
    code, out, _ = run(capsys, "releases", "--format", "json", "--db", db)
    assert json.loads(out)[0]["manifest_digest"].startswith("sha256:")


def test_refused_input_exits_1_with_the_location(capsys, tmp_path):
    db = str(tmp_path / "s.duckdb")
    bad = write_jsonl(tmp_path / "bad.jsonl", [good_case(), good_case(case_id="c2", risk="severe")])
    code, _, err = run(capsys, "ingest", str(bad), "--release", "rel-2026.10.0", "--manifest", str(MANIFEST),
                       "--db", db)
    assert code == 1
    assert "bad.jsonl:line 2: risk" in err and "nothing was written" in err


def test_usage_errors_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["ingest"])
    assert e.value.code == 2
    code, _, err = run(capsys, "runs", "--release", "x", "--db", str(tmp_path / "missing.duckdb"))
    assert code == 2 and "no store" in err


def test_schema_is_valid_json_schema(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and "case_id" in schema["properties"] and schema["additionalProperties"] is False


def test_validate_reports_nested_unknown_fields(capsys, tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [good_case(trajectory={"steps": [{"tool": "x", "oops": 1}]})])
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1 and "trajectory.steps.0.oops: unknown field" in err


def test_demo_out_writes_manifests_and_runs(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path / "d"), "--cases", "50")
    assert code == 0
    assert len(list((tmp_path / "d").rglob("*.jsonl"))) == 21  # 7 releases x 3 suites (rc5, rc6: issue 17)
    assert len(list((tmp_path / "d").rglob("manifest.yaml"))) == 7
    assert len(list((tmp_path / "d").rglob("rollout.yaml"))) == 4


def test_a_locked_store_gives_a_clear_error(tmp_path):
    import os
    import subprocess
    import sys

    from dashboard.store.db import Store

    held = Store(tmp_path / "held.duckdb")  # this process holds the write lock
    try:
        out = subprocess.run([sys.executable, "-m", "dashboard.cli", "releases", "--db", held.path],
                             capture_output=True, text=True, env={**os.environ, "READINESS_LOCK_TIMEOUT": "1"})
    finally:
        held.close()
    assert out.returncode == 2 and "open in another process" in out.stderr


def test_gate_cli_exit_codes_and_formats(tmp_path, capsys, demo_store):
    import shutil

    demo_store.query("CHECKPOINT")
    db = tmp_path / "copy.duckdb"
    shutil.copy(demo_store.path, db)
    policy = str(REPO / "data" / "policies" / "case-management.yaml")
    code, out, _ = run(capsys, "gate", "--candidate", "rel-2026.11.0-rc3", "--policy", policy, "--db", str(db))
    assert code == 0 and out.startswith("APPROVED WITH WARNINGS")
    code, out, _ = run(capsys, "gate", "--candidate", "rel-2026.11.0-rc4", "--policy", policy, "--db", str(db),
                       "--format", "markdown")
    assert code == 1 and "BLOCKED" in out and "` approval_bypass ` |" in out and "Top regressions" in out
    code, out, _ = run(capsys, "gate", "--candidate", "rel-2026.11.0-rc1", "--policy", policy, "--db", str(db),
                       "--format", "junit", "--out", str(tmp_path / "j.xml"))
    assert code == 0
    import xml.etree.ElementTree as ET

    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    code, _, err = run(capsys, "gate", "--candidate", "nope", "--policy", policy, "--db", str(db))
    assert code == 2 and "not in the store" in err  # input errors are 2, so 1 always means blocked
    code, _, err = run(capsys, "gate", "--candidate", "rel-2026.11.0-rc1", "--policy", policy, "--db", str(db),
                       "--profile", "weekly")
    assert code == 2 and "unknown profile" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy_id: x\nversion: '1'\ngates: []\n")
    code, _, err = run(capsys, "gate", "--candidate", "rel-2026.11.0-rc1", "--policy", str(bad), "--db", str(db))
    assert code == 2 and "bad.yaml" in err


def test_policy_check_names_the_line(capsys, tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("policy_id: t\nversion: '1'\ngates:\n  - id: g\n    name: n\n    category: quality\n"
                   "    severity: blocker\n    metric: pass_rat\n    condition: '>= 1'\n")
    code, _, err = run(capsys, "policy", "check", str(bad))
    assert code == 1 and "p.yaml:line 8: gates.0.metric: unknown metric 'pass_rat'" in err
    code, out, _ = run(capsys, "policy", "check", str(REPO / "data" / "policies" / "tiered.yaml"))
    assert code == 0 and "profile pr: 9 gates" in out


def test_metrics_lists_the_catalogue(capsys):
    code, out, _ = run(capsys, "metrics", "--format", "json")
    names = {m["name"] for m in json.loads(out)}
    assert code == 0 and {"cost_per_successful_task", "recall_at_10", "approval_bypasses"} <= names


def test_review_flow_end_to_end_on_the_command_line(capsys, tmp_path, demo_store, monkeypatch):
    """Test keys new -> trust set / govern -> review sign -> add -> checkpoint -> verify -> export -> verify
    bundle -> status."""
    import shutil

    from dashboard.store.db import Store

    demo_store.query("CHECKPOINT")
    db = str(tmp_path / "r.duckdb")
    shutil.copy(demo_store.path, db)
    fresh = Store(db)
    fresh.query("DROP TABLE review_log")  # a store of our own: not the demo's trust root
    fresh.close()
    monkeypatch.setenv("PW", "correct horse battery")
    keys = tmp_path / "keys"
    entries = []
    for who, role in (("eng@example.com", "engineering"), ("sec@example.com", "security"),
                      ("risk@example.com", "risk"), ("log@example.com", "log"), ("admin@example.com", "admin")):
        code, out, _ = run(capsys, "keys", "new", "--reviewer", who, "--role", role, "--out", str(keys),
                           "--passphrase-env", "PW")
        assert code == 0 and "key_id: sha256:" in out
        entries.append("\n".join("  " + line for line in out.splitlines() if not line.startswith("#")))
    trusted = tmp_path / "trusted.yaml"
    trusted.write_text("schema_version: 2\nversion: 1\nreviewers:\n" + "\n".join(entries) + "\n")
    policy = str(REPO / "data" / "policies" / "case-management.yaml")
    code, _, err = run(capsys, "status", "--release", "rel-2026.11.0-rc3", "--policy", policy, "--db", db)
    assert code == 2 and "no trust root: pass --trusted" in err  # no default trust root outside the demo
    admin = ["--key", str(keys / "admin_example.com.key"), "--passphrase-env", "PW", "--db", db]
    code, out, err = run(capsys, "trust", "set", str(trusted), *admin)
    assert code == 0 and "trust root version 1" in out, err
    code, out, err = run(capsys, "trust", "govern", "gov.case-ai.v3", "--policy", policy, *admin)
    assert code == 0 and "governed by case-management-readiness" in out, err
    code, _, err = run(capsys, "status", "--release", "rel-2026.11.0-rc3", "--policy", policy, "--trusted",
                       str(trusted), "--db", db)
    assert code == 1  # not ready: no review yet
    code, _, err = run(capsys, "status", "--release", "no-such-release", "--policy", policy, "--trusted",
                       str(trusted), "--db", db)
    assert code == 2 and "not in the store" in err
    monkeypatch.setenv("READINESS_TRUSTED", str(trusted))
    for who in ("eng", "sec", "risk"):  # reviewer from the key's .pub, role from its trusted entry, governing policy
        env = tmp_path / f"{who}.dsse"
        code, out, err = run(capsys, "review", "sign", "--release", "rel-2026.11.0-rc3", "--decision", "approve",
                             "--key", str(keys / f"{who}_example.com.key"), "--passphrase-env", "PW",
                             "--comment", "<b>looks fine</b>", "--out", str(env), "--db", db)
        assert code == 0, err
        code, out, err = run(capsys, "review", "add", str(env), "--db", db)
        assert code == 0 and "added as entry" in out, err
    code, out, err = run(capsys, "review", "add", str(tmp_path / "eng.dsse"), "--db", db)
    assert code == 1 and "replay refused" in err
    monkeypatch.setenv("READINESS_LOG_KEY", str(keys / "log_example.com.key"))
    code, out, _ = run(capsys, "review", "checkpoint", "--passphrase-env", "PW", "--out", str(tmp_path / "cp.json"),
                       "--db", db)
    assert code == 0
    code, out, _ = run(capsys, "review", "verify", "--db", db, "--checkpoint", str(tmp_path / "cp.json"))
    assert code == 0 and "VALID: 5 entries" in out and "DEMO" not in out
    code, out, _ = run(capsys, "review", "export", "--out", str(tmp_path / "bundle.json"), "--db", db)
    assert code == 0
    code, out, _ = run(capsys, "review", "verify", "--bundle", str(tmp_path / "bundle.json"))
    assert code == 0 and "VALID" in out
    monkeypatch.delenv("READINESS_TRUSTED")
    code, out, err = run(capsys, "review", "verify", "--bundle", str(tmp_path / "bundle.json"))
    assert code == 2 and "never trusted" in err
    code, out, _ = run(capsys, "status", "--release", "rel-2026.11.0-rc3", "--trusted", str(trusted), "--db", db)
    assert code == 0 and out.startswith("READY") and "governing policy: gov.case-ai.v3: case-management" in out
    monkeypatch.setenv("PW", "wrong passphrase!")
    code, _, err = run(capsys, "review", "sign", "--release", "rel-2026.11.0-rc3", "--policy", policy,
                       "--decision", "block", "--reviewer", "eng@example.com", "--role", "engineering",
                       "--key", str(keys / "eng_example.com.key"), "--passphrase-env", "PW", "--out",
                       str(tmp_path / "x.dsse"), "--db", db)
    assert code == 1 and "wrong passphrase" in err


def test_the_demo_store_verifies_with_the_demo_keys_and_says_so(capsys, tmp_path, demo_store):
    """Test that a demo store defaults to the demo trust root, and every verifying output says DEMO KEYS."""
    import shutil

    demo_store.query("CHECKPOINT")
    db = str(tmp_path / "d.duckdb")
    shutil.copy(demo_store.path, db)
    code, out, err = run(capsys, "status", "--release", "rel-2026.11.0-rc1", "--db", db)
    assert code == 1 and "DEMO KEYS" in out and "DEMO KEYS" in err
    assert "governing policy: gov.case-ai.v3: case-management-readiness" in out
    code, out, err = run(capsys, "review", "verify", "--db", db)
    assert code == 0 and "DEMO KEYS" in out


def test_every_judging_command_takes_baseline_none(capsys, tmp_path, demo_store, monkeypatch):
    """Test that --baseline none means "absolute gates only" for gate, report, status and review sign alike."""
    import shutil

    from dashboard.core.signing import open_envelope

    demo_store.query("CHECKPOINT")
    db = str(tmp_path / "d.duckdb")
    shutil.copy(demo_store.path, db)
    release = ["--db", db, "--baseline", "none"]
    policy = str(REPO / "data" / "policies" / "case-management.yaml")
    code, out, _ = run(capsys, "gate", "--candidate", "rel-2026.11.0-rc1", "--policy", policy, "--format", "json",
                       *release)
    assert json.loads(out)["baseline"] is None
    code, out, _ = run(capsys, "status", "--release", "rel-2026.11.0-rc1", "--format", "json", *release)
    with_baseline = run(capsys, "status", "--release", "rel-2026.11.0-rc1", "--format", "json", "--db", db)[1]
    assert json.loads(out)["decision_digest"] != json.loads(with_baseline)["decision_digest"]
    monkeypatch.setenv("PW", "readiness-demo")
    env = tmp_path / "r.dsse"
    code, out, err = run(capsys, "review", "sign", "--release", "rel-2026.11.0-rc1", "--decision", "approve",
                         "--key", str(REPO / "data" / "reviewers" / "eng_example.com.key"), "--passphrase-env", "PW",
                         "--out", str(env), *release)
    assert code == 0, err
    predicate = json.loads(open_envelope(env.read_bytes()).payload)["predicate"]
    assert predicate["baseline_release_id"] is None


def test_core_is_pure_and_only_the_store_speaks_sql():
    """Test the layering: core imports neither Streamlit nor DuckDB; nothing outside the store imports DuckDB or
    speaks SQL; the store reads no file format (it imports no importer: dashboard/ingesting.py hands it records)."""
    import re

    package = REPO / "dashboard"
    for path in package.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(package).as_posix()
        imports_duckdb = re.search(r"^\s*(import duckdb|from duckdb)", text, re.M)
        if rel.startswith("core/"):
            assert not imports_duckdb and not re.search(r"^\s*(import streamlit|from streamlit)", text, re.M), rel
        if rel.startswith("store/"):
            assert not re.search(r"^\s*from dashboard\.importers|^\s*import dashboard\.importers", text, re.M), rel
        if not rel.startswith("store/"):
            assert not imports_duckdb, rel
            assert not _sql_in(text), (rel, _sql_in(text))


SQL = re.compile(r"\b(SELECT\b[\s\S]*\bFROM|INSERT\s+INTO|DELETE\s+FROM|CREATE\s+(TABLE|VIEW|INDEX)|DROP\s+TABLE|"
                 r"UPDATE\s+\w+\s+SET|ALTER\s+TABLE|read_(parquet|json_auto|csv)\s*\()", re.I)


def _sql_in(source: str) -> list[str]:
    """String literals that are SQL, and calls that run SQL (`.query(`, `.execute(`, `.sql(`)."""
    import ast

    found = [node.value[:60] for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)]
    found += [f".{node.func.attr}(" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Attribute) and node.func.attr in ("query", "execute", "sql", "executemany")]
    return found


def test_the_sql_detector_finds_sql():
    assert _sql_in('x = "select a, b from t where c = ?"') and _sql_in("store.query(q)")
    assert not _sql_in('x = "the cases behind a gate"')


# ----- hostile input: one error class, one printer, no traceback (issue 11; issue 12 items 11, 12) ---------------
EVIL = "\x1b]0;pwned\x07\x1b[31mred\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\\r\x9b2J\u202egnp.exe"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\r", "\u202e")


def _hostile_store(tmp_path, capsys) -> tuple[str, str]:
    """A store whose release id, suite, run and slice names all hold terminal escapes."""
    import yaml

    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    release = "rel-" + EVIL
    manifest.update(release_id=release, baseline_release_id=None, application_version=EVIL)
    mpath = tmp_path / "m.yaml"
    mpath.write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    cases = [good_case(case_id=f"c{i}", suite="s" + EVIL, run_id="r" + EVIL, slices={"task": EVIL},
                       passed=i % 2 == 0) for i in range(4)]
    path = write_jsonl(tmp_path / "evil.jsonl", cases)
    db = str(tmp_path / "evil.duckdb")
    code, out, _ = run(capsys, "ingest", str(path), "--release", release, "--manifest", str(mpath), "--db", db)
    assert code == 0 and not any(c in out for c in RAW_CONTROLS)
    return db, release


def test_terminal_output_neutralises_control_characters(tmp_path, capsys):
    db, release = _hostile_store(tmp_path, capsys)
    policy = tmp_path / "p.yaml"
    policy.write_text("policy_id: 'p\\e]0;x\\a'\nversion: '1'\ngates:\n  - id: g\n    name: \"n\\e[31m\"\n"
                      "    category: quality\n    severity: blocker\n    metric: pass_rate\n    condition: '>= 0.9'\n"
                      "    slice: {for_each: task}\n", encoding="utf-8")
    outputs = [run(capsys, "releases", "--db", db), run(capsys, "runs", "--release", release, "--db", db),
               run(capsys, "policy", "check", str(policy)),
               run(capsys, "gate", "--candidate", release, "--baseline", "none", "--policy", str(policy), "--db", db),
               run(capsys, "gate", "--candidate", release, "--baseline", "none", "--policy", str(policy), "--db", db,
                   "--format", "markdown"),
               run(capsys, "runs", "--release", release + "x", "--db", db),  # the refusal quotes the id
               run(capsys, "ingest", str(tmp_path / ("missing" + EVIL)), "--release", release, "--db", db)]
    for _code, out, err in outputs:
        assert not any(c in out + err for c in RAW_CONTROLS), (out, err)
        assert "Traceback" not in err
    assert "\\u001b]0;pwned\\u0007" in outputs[1][1]  # shown, visibly escaped, not dropped
    code, out, _ = run(capsys, "gate", "--candidate", release, "--baseline", "none", "--policy", str(policy),
                       "--db", db, "--format", "json")
    assert json.loads(out)["candidate"]["release_id"] == release  # JSON stays valid and exact


def test_junit_is_well_formed_whatever_the_names_hold(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    db, release = _hostile_store(tmp_path, capsys)
    policy = str(REPO / "data" / "policies" / "tiered.yaml")
    code, out, _ = run(capsys, "gate", "--candidate", release, "--baseline", "none", "--policy", policy, "--db", db,
                       "--format", "junit")
    root = ET.fromstring(out)  # parses: no character XML 1.0 forbids
    assert root.find("testsuite").get("name") == "readiness:" + release.replace("\x1b", "\\u001b").replace(
        "\x07", "\\u0007").replace("\x9b", "\\u009b").replace("\u202e", "\\u202e")
    code, _, _ = run(capsys, "gate", "--candidate", release, "--baseline", "none", "--policy", policy, "--db", db,
                     "--format", "junit", "--out", str(tmp_path / "j.xml"))
    ET.parse(tmp_path / "j.xml")


def test_every_project_error_is_a_readiness_error_with_a_message_and_exit_code():
    from dashboard.cli import UsageError
    from dashboard.core.errors import InputRefused, Problem, ReadinessError
    from dashboard.store.db import StoreUnavailable

    for cls, code in ((InputRefused, 1), (UsageError, 2), (StoreUnavailable, 2)):
        assert issubclass(cls, ReadinessError) and cls.exit_code == code
    e = InputRefused([Problem("f.jsonl", "line 3", "risk", "bad")])
    assert str(e) == "f.jsonl:line 3: risk: bad" and e.exit_code == 1
    assert str(UsageError("pass --policy")) == "pass --policy"


def test_an_unexpected_error_is_one_line_and_exit_2_unless_debugging(capsys, monkeypatch):
    import dashboard.cli as cli

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_metrics", boom)
    monkeypatch.delenv("READINESS_DEBUG", raising=False)
    code, out, err = run(capsys, "metrics")
    assert code == 2 and err.count("\n") == 1 and "internal error (ZeroDivisionError: division by zero)" in err
    assert "Traceback" not in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "metrics"])
    monkeypatch.setenv("READINESS_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["metrics"])


def test_the_cli_prints_only_through_its_output_function():
    """Every line the CLI writes passes `_out` (control characters escaped): no print() or direct write elsewhere."""
    import ast

    source = (REPO / "dashboard" / "cli.py").read_text(encoding="utf-8")
    bypasses = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print":
                bypasses.append(node.lineno)
            if isinstance(f, ast.Attribute) and f.attr in ("write", "writelines") and isinstance(f.value, ast.Attribute) \
                    and f.value.attr in ("stdout", "stderr"):
                bypasses.append(node.lineno)
    assert bypasses == [], f"cli.py prints around _out at lines {bypasses}"


def test_a_file_that_cannot_be_written_is_a_clear_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "demo", "--cases", "1", "--out", str(blocker / "sub"))
    assert code == 2 and err.startswith("readiness: ") and "Not a directory" in err and "internal error" not in err
