"""`readiness`: the command line. Exit codes everywhere: 0 ok, 1 refused (a data problem), 2 usage error."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dashboard.core.errors import InputRefused

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
REPO_DATA = Path(__file__).resolve().parent.parent / "data"


class UsageError(Exception):
    """The command was called wrongly (exit 2)."""


def _open_store(args: argparse.Namespace, read_only: bool = False, must_exist: bool = False):
    from dashboard.store.db import Store, default_db_path

    path = default_db_path(getattr(args, "db", None))
    if (read_only or must_exist) and not Path(path).exists():
        raise UsageError(f"no store at {path}: ingest something first, or pass --db / set READINESS_DB")
    import duckdb

    try:
        return Store(path, read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise UsageError(f"the store {path} is open in another process (the dashboard?): stop it or use "
                             "another --db") from e
        raise UsageError(f"cannot open the store {path}: {e}") from e


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


# ----- commands ----------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    from dashboard.core.manifests import load_manifest

    manifest = load_manifest(args.manifest) if args.manifest else None
    store = _open_store(args)
    try:
        report = store.ingest(args.files, args.release, manifest, progress=sys.stderr.isatty())
    finally:
        store.close()
    if args.format == "json":
        _print_json(report.model_dump(mode="json"))
        return EXIT_OK
    if manifest is not None:
        print(f"manifest {args.release}: {report.manifest}")
    for f in report.files:
        if f.status == "unchanged":
            print(f"{f.path}: already ingested ({f.source_digest}), nothing to do")
        else:
            print(f"{f.path}: ingested {f.records} cases in {len(f.runs)} run(s): {', '.join(f.runs)}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Check native files record by record without storing anything."""
    from dashboard.core.canonical import file_digest
    from dashboard.importers.native import detect_format, diagnose

    bad = 0
    for f in args.files:
        if not Path(f).is_file():
            print(f"{f}: no such file", file=sys.stderr)
            bad += 1
            continue
        problems = diagnose(f, detect_format(f), file_digest(f))
        for p in problems:
            print(p, file=sys.stderr)
        bad += bool(problems)
        if not problems:
            print(f"{f}: valid")
    return EXIT_REFUSED if bad else EXIT_OK


def cmd_releases(args: argparse.Namespace) -> int:
    store = _open_store(args, read_only=True)
    try:
        rows = store.releases()
    finally:
        store.close()
    if args.format == "json":
        _print_json([r.model_dump(mode="json") for r in rows])
        return EXIT_OK
    if not rows:
        print("no releases stored")
    for r in rows:
        base = f" baseline={r.baseline_release_id}" if r.baseline_release_id else ""
        print(f"{r.release_id}  {r.environment}  v{r.application_version}  runs={r.runs} cases={r.cases}"
              f"{base}  manifest={r.manifest_digest}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    store = _open_store(args, read_only=True)
    try:
        if store.manifest(args.release) is None:
            raise InputRefused(f"release {args.release!r} is not in the store")
        rows = store.runs(args.release)
    finally:
        store.close()
    if args.format == "json":
        _print_json([{k: v for k, v in r.model_dump().items()
                      if k in ("run_id", "suite", "dataset_version", "cases", "passed", "failed", "source_digest")}
                     for r in rows])
        return EXIT_OK
    for r in rows:
        print(f"{r.run_id}  {r.suite}  {r.dataset_version}  cases={r.cases} passed={r.passed} failed={r.failed}"
              f"  source={r.source_digest}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from dashboard.core.models import EvalCase, ReleaseManifest

    schema = {"eval_case": EvalCase.model_json_schema(), "release_manifest": ReleaseManifest.model_json_schema()}
    _print_json(schema[args.record] if args.record != "all" else schema)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from dashboard import demo

    if args.cases < 1:
        raise UsageError("--cases must be at least 1")
    if args.out:
        files = demo.write_demo(Path(args.out), args.cases, args.file_format)
        print(f"wrote {len(files)} files under {args.out}")
        return EXIT_OK
    store = _open_store(args)
    try:
        loaded = demo.load_demo(store, args.cases)
    finally:
        store.close()
    print(f"loaded {len(loaded)} releases ({args.cases} cases per run) into {store.path}: {', '.join(loaded)}")
    return EXIT_OK


def load_bundled_demo(store) -> list[str]:
    """The demo shipped under data/demo (generated afresh if this install has no data folder)."""
    from dashboard import demo
    from dashboard.core.manifests import load_manifest

    folder = REPO_DATA / "demo"
    if not folder.is_dir():
        return demo.load_demo(store)
    loaded = []
    for release_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        manifest = load_manifest(release_dir / "manifest.yaml")
        store.ingest(sorted(release_dir.glob("*.parquet")), manifest.release_id, manifest)
        loaded.append(manifest.release_id)
    return loaded


def cmd_serve(args: argparse.Namespace) -> int:
    from dashboard.store.db import default_db_path

    path = default_db_path(args.db)
    store = _open_store(args)
    try:
        if not store.releases():
            print(f"empty store {path}: loading the bundled demo ...")
            print("loaded " + ", ".join(load_bundled_demo(store)))
    finally:
        store.close()
    app = Path(__file__).resolve().parent / "ui" / "app.py"
    env = {**os.environ, "READINESS_DB": str(Path(path).resolve())}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
           "--server.address", args.address, "--browser.gatherUsageStats", "false"]
    if args.headless:
        cmd += ["--server.headless", "true"]
    print(f"Readiness dashboard on http://{args.address}:{args.port}  (store: {path})")
    return subprocess.call(cmd, env=env)


def cmd_gate(args: argparse.Namespace) -> int:
    from dashboard.core import render
    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release

    policy = load_policy(args.policy)
    store = _open_store(args, must_exist=True)
    try:
        no_baseline = args.baseline == "none"
        decision = gate_release(store, policy, args.candidate, None if no_baseline else args.baseline, args.profile,
                                no_baseline=no_baseline)
        regressions = (store.regressions(decision.candidate.release_id, decision.baseline.release_id)
                       if decision.baseline else None)
    finally:
        store.close()
    renderers: dict[str, Callable[[], str]] = {
        "text": lambda: render.to_text(decision, regressions),
        "json": lambda: render.to_json(decision),
        "markdown": lambda: render.to_markdown(decision, regressions),
        "junit": lambda: render.to_junit(decision),
    }
    text = renderers[args.format]()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{decision.status}: {decision.candidate.release_id} (digest {decision.digest}) -> {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_REFUSED if decision.status == "blocked" else EXIT_OK


def cmd_policy_check(args: argparse.Namespace) -> int:
    from dashboard.core.policy import load_policy

    policy = load_policy(args.file)
    print(f"{args.file}: valid. {policy.policy_id} v{policy.version} ({policy.digest})")
    for profile in policy.profiles:
        gates = policy.gates_for(profile)
        print(f"profile {profile}{' (default)' if profile == policy.default_profile else ''}: {len(gates)} gates")
        for g in gates:
            extra = f"  when {', '.join(g.when_changed)} change" if g.when_changed else ""
            print(f"  {g.severity:<13} {g.id}: {g.metric} {g.condition.text} on {g.slice.label()}{extra}")
    if policy.change_requirements:
        print("change requirements:")
        for kind, reqs in sorted(policy.change_requirements.items()):
            print(f"  {kind}: {', '.join(reqs)} ({policy.change_requirement_severity})")
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace) -> int:
    from dashboard.core.metrics import CATALOGUE

    if args.format == "json":
        _print_json([{"name": d.name, "kind": d.kind, "category": d.category, "description": d.description,
                      "needs": d.needs, "higher_is_better": d.higher_is_better, "unit": d.unit}
                     for d in CATALOGUE.values()])
        return EXIT_OK
    for d in CATALOGUE.values():
        arrow = "higher is better" if d.higher_is_better else "lower is better"
        print(f"{d.name}  [{d.category}, {d.kind}, {arrow}]\n    {d.description}\n    needs: {d.needs}")
    print("evidence.<kind>  [evidence]\n    1 when the release's evidence file has a passed item of that kind, "
          "0 when failed; missing fails closed. evidence.owners_named: release and rollback owners named.")
    return EXIT_OK


def cmd_evidence(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from dashboard.core.manifests import load_structured, pydantic_problems
    from dashboard.core.models import ReleaseEvidence

    data = load_structured(args.file)
    try:
        evidence = ReleaseEvidence.model_validate(data)
    except ValidationError as e:
        raise InputRefused(pydantic_problems(args.file, "", e)) from e
    if evidence.release_id != args.release:
        raise InputRefused(f"{args.file}: the evidence is for release {evidence.release_id!r}, not {args.release!r}")
    store = _open_store(args, must_exist=True)
    try:
        status = store.put_evidence(evidence)
    finally:
        store.close()
    print(f"evidence for {args.release}: {status}")
    return EXIT_OK


# ----- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="readiness", description="Release-readiness gates for AI applications.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str, db: bool = True):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        if db:
            sp.add_argument("--db", help="store path (default: $READINESS_DB, else ./readiness.duckdb)")
        return sp

    sp = add("ingest", cmd_ingest, "Validate eval-run files and store them for a release (one transaction).")
    sp.add_argument("files", nargs="+", metavar="FILE", help="native JSONL, CSV or Parquet files")
    sp.add_argument("--release", required=True, help="release id the runs belong to")
    sp.add_argument("--manifest", help="the release's manifest (JSON or YAML); needed the first time")
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    sp = add("validate", cmd_validate, "Check native files record by record; store nothing.", db=False)
    sp.add_argument("files", nargs="+", metavar="FILE")

    sp = add("releases", cmd_releases, "List stored releases.")
    sp.add_argument("--format", choices=["text", "json"], default="text")

    sp = add("runs", cmd_runs, "List the eval runs stored for a release.")
    sp.add_argument("--release", required=True)
    sp.add_argument("--format", choices=["text", "json"], default="text")

    sp = add("schema", cmd_schema, "Print the JSON Schema of the native formats.", db=False)
    sp.add_argument("record", nargs="?", choices=["eval_case", "release_manifest", "all"], default="eval_case")

    sp = add("demo", cmd_demo, "Write the demo data set as files (--out) or load it into a store (--db).")
    sp.add_argument("--cases", type=int, default=2000, help="cases per eval run (default 2000)")
    sp.add_argument("--out", help="folder to write manifests and eval files to")
    sp.add_argument("--file-format", choices=["jsonl", "csv", "parquet"], default="jsonl",
                    help="file format with --out (default jsonl)")

    sp = add("gate", cmd_gate, "Judge a candidate against its baseline under a gate policy. "
             "Exit 0 approved / approved_with_warnings, 1 blocked, 2 usage or input error.")
    sp.add_argument("--candidate", required=True, help="release id of the candidate")
    sp.add_argument("--baseline", help="baseline release id (default: the one the candidate's manifest names; "
                    "'none' judges the candidate on its own)")
    sp.add_argument("--policy", required=True, help="gate policy YAML")
    sp.add_argument("--profile", help="policy profile (pr, nightly, release, ...); default: the policy's")
    sp.add_argument("--format", choices=["text", "json", "markdown", "junit"], default="text")
    sp.add_argument("--out", help="write the output to this file instead of stdout")

    policy_parser = sub.add_parser("policy", help="Gate policy tools.")
    policy_sub = policy_parser.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    sp = policy_sub.add_parser("check", help="Validate a policy and list the gates each profile runs.")
    sp.set_defaults(func=cmd_policy_check)
    sp.add_argument("file", metavar="FILE")

    sp = add("metrics", cmd_metrics, "List the metric catalogue: definitions and the case fields each needs.",
             db=False)
    sp.add_argument("--format", choices=["text", "json"], default="text")

    sp = add("evidence", cmd_evidence, "Attach a non-eval evidence file (secrets scan, rollback plan, ...) "
             "to a stored release.")
    sp.add_argument("file", metavar="FILE", help="evidence JSON or YAML")
    sp.add_argument("--release", required=True)

    sp = add("serve", cmd_serve, "Launch the dashboard (loads the bundled demo into an empty store).")
    sp.add_argument("--port", type=int, default=8501)
    sp.add_argument("--address", default="127.0.0.1")
    sp.add_argument("--headless", action="store_true", help="do not open a browser")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except UsageError as e:
        print(f"readiness: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silence the interpreter's flush at exit)
        return EXIT_OK
    except InputRefused as e:
        print("refused, nothing was written:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
