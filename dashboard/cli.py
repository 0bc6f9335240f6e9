"""`readiness`: the command line. Exit codes everywhere: 0 ok, 1 refused (a data problem), 2 usage error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dashboard.core.errors import (
    MAX_TOOL_FILE_BYTES,
    InputRefused,
    ReadinessError,
    UsageError,
    read_input_bytes,
)
from dashboard.core.render import terminal_safe
from dashboard.ingesting import ingest, ingest_split

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pydantic import BaseModel

    from dashboard.core.reviews import TrustedReviewers, Waiver
    from dashboard.store.db import Store

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
REPO_DATA = Path(__file__).resolve().parent.parent / "data"
__all__ = ["UsageError", "main"]


def _out(*parts: Any, file: IO[str] | None = None, end: str = "\n") -> None:
    """Everything the CLI prints goes through here: control characters from eval data, manifests and names
    (ANSI colour, OSC hyperlinks and window titles, carriage returns, bidi overrides) are shown escaped, never
    interpreted by the terminal. (A test checks that cli.py prints through nothing else.)"""
    (file or sys.stdout).write(terminal_safe(" ".join(str(p) for p in parts)) + end)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage and error messages (which echo arguments) printed terminal-safe."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            _out(message, file=file or sys.stderr, end="")


def _open_store(args: argparse.Namespace, read_only: bool = False, must_exist: bool = False) -> Store:
    from dashboard.store import connections
    from dashboard.store.db import StoreUnavailable, default_db_path
    from dashboard.store.postgres import open_store, team_store_location

    connections.configure(notice=lambda message: _out(f"readiness: {message}", file=sys.stderr))

    path = default_db_path(getattr(args, "db", None))
    team = team_store_location(getattr(args, "store", None), getattr(args, "data", None))
    if (read_only or must_exist) and team is None and not Path(path).exists():  # a team store makes its copy
        raise UsageError(f"no store at {path}: ingest something first, or pass --db / set READINESS_DB")
    try:  # the team store, or the review log alone, in PostgreSQL with --store / $READINESS_STORE
        return open_store(path, read_only=read_only, url=getattr(args, "store", None), data=getattr(args, "data", None))
    except StoreUnavailable as e:
        raise UsageError(str(e)) from e


def _baseline(args: argparse.Namespace) -> tuple[str | None, bool]:
    """--baseline, as every judging command reads it: (baseline id or None for the manifest's, no_baseline)."""
    if args.baseline == "none":
        return None, True
    return args.baseline, False


def _print_json(value: object) -> None:
    _out(json.dumps(value, indent=2, sort_keys=True, default=str))


# ----- commands ----------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    from dashboard.core.manifests import load_manifest

    if args.split or args.release_map:
        return _ingest_split(args)
    if not args.release:
        raise UsageError("ingest needs --release (or --split with --release-map)")
    if args.manifest and len(args.manifest) > 1:
        raise UsageError("one --manifest per release: several only with --split")
    manifest = load_manifest(args.manifest[0]) if args.manifest else None
    with _open_store(args) as store:
        report = ingest(store, args.files, args.release, manifest, progress=sys.stderr.isatty(), fmt=args.input_format,
                              dataset=args.dataset, dataset_version=args.dataset_version,
                              default_risk=args.default_risk, dataset_file=args.dataset_file, pass_if=args.pass_if)
    if args.format == "json":
        _print_json(report.model_dump(mode="json"))
        return EXIT_OK
    if manifest is not None:
        _out(f"manifest {args.release}: {report.manifest}")
    for f in report.files:
        if f.status == "unchanged":
            _out(f"{f.path}: already ingested ({f.source_digest}), nothing to do")
        else:
            _out(f"{f.path} ({f.format}): ingested {f.records} cases in {len(f.runs)} run(s): {', '.join(f.runs)}")
        for note in f.notes:
            _out(f"  note: {note}")
    return EXIT_OK


def _ingest_split(args: argparse.Namespace) -> int:
    """`ingest FILE --split prompt --release-map 'a=rel-a,b=rel-b' --manifest A.yaml --manifest B.yaml`."""
    from dashboard.core.manifests import load_manifest
    from dashboard.importers.split import parse_release_map

    if not (args.split and args.release_map):
        raise UsageError("--split and --release-map go together (e.g. --split prompt --release-map "
                         "'support_v1=rel-a,support_v2=rel-b')")
    if args.release:
        raise UsageError("with --split the releases come from --release-map: drop --release")
    release_map = parse_release_map(args.release_map)
    manifests = [load_manifest(m) for m in args.manifest or []]
    with _open_store(args) as store:
        reports = ingest_split(store, args.files, args.split, release_map, manifests,
                                     progress=sys.stderr.isatty(), fmt=args.input_format, dataset=args.dataset,
                                     dataset_version=args.dataset_version, default_risk=args.default_risk,
                                     dataset_file=args.dataset_file, pass_if=args.pass_if)
    if args.format == "json":
        _print_json([r.model_dump(mode="json") for r in reports])
        return EXIT_OK
    for value, report in zip(release_map, reports, strict=True):
        _out(f"{args.split}={value} -> release {report.release_id} (manifest: {report.manifest})")
        for f in report.files:
            if f.status == "unchanged":
                _out(f"  {f.path}: already ingested ({f.source_digest}), nothing to do")
            else:
                _out(f"  {f.path} ({f.format}): ingested {f.records} cases in {len(f.runs)} run(s): "
                     f"{', '.join(f.runs)}")
            for note in f.notes:
                _out(f"    note: {note}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Check native files record by record without storing anything."""
    from dashboard.core.canonical import file_digest
    from dashboard.core.errors import check_input_file
    from dashboard.importers.native import detect_format, diagnose

    bad = 0
    for f in args.files:
        try:
            check_input_file(f, "file")  # a regular file: never a FIFO or a device
        except InputRefused as e:
            _out(str(e), file=sys.stderr)
            bad += 1
            continue
        problems = diagnose(f, detect_format(f), file_digest(f))
        for p in problems:
            _out(p, file=sys.stderr)
        bad += bool(problems)
        if not problems:
            _out(f"{f}: valid")
    return EXIT_REFUSED if bad else EXIT_OK


def cmd_releases(args: argparse.Namespace) -> int:
    with _open_store(args, read_only=True) as store:
        rows = store.releases()
    if args.format == "json":
        _print_json([r.model_dump(mode="json") for r in rows])
        return EXIT_OK
    if not rows:
        _out("no releases stored")
    for r in rows:
        base = f" baseline={r.baseline_release_id}" if r.baseline_release_id else ""
        _out(f"{r.release_id}  {r.environment}  v{r.application_version}  runs={r.runs} cases={r.cases}"
              f"{base}  manifest={r.manifest_digest}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    with _open_store(args, read_only=True) as store:
        if store.manifest(args.release) is None:
            raise InputRefused(f"release {args.release!r} is not in the store")
        rows = store.runs(args.release)
    if args.format == "json":
        _print_json([{k: v for k, v in r.model_dump().items()
                      if k in ("run_id", "suite", "dataset_version", "cases", "passed", "failed", "source_digest")}
                     for r in rows])
        return EXIT_OK
    for r in rows:
        _out(f"{r.run_id}  {r.suite}  {r.dataset_version}  cases={r.cases} passed={r.passed} failed={r.failed}"
              f"  source={r.source_digest}")
    return EXIT_OK


SCHEMA_RECORDS = ("eval_case", "release_manifest", "evidence", "decision", "review", "trusted_reviewers",
                  "rollout_evidence", "observation", "tool_measure")


def _schema_records() -> dict[str, type[BaseModel]]:
    """The documented record formats `readiness schema` prints (each field carries its description)."""
    from dashboard.core.gates import GateDecision
    from dashboard.core.metrics import ToolMeasure
    from dashboard.core.models import EvalCase, ReleaseEvidence, ReleaseManifest
    from dashboard.core.observations import Observation
    from dashboard.core.reviews import ReviewPredicate, TrustedReviewers
    from dashboard.core.rollout import RolloutEvidence

    models: dict[str, type[BaseModel]] = {
        "eval_case": EvalCase, "release_manifest": ReleaseManifest, "evidence": ReleaseEvidence,
        "decision": GateDecision, "review": ReviewPredicate, "trusted_reviewers": TrustedReviewers,
        "rollout_evidence": RolloutEvidence, "observation": Observation, "tool_measure": ToolMeasure}
    return {name: models[name] for name in SCHEMA_RECORDS}


def cmd_schema(args: argparse.Namespace) -> int:
    schema = {name: model.model_json_schema() for name, model in _schema_records().items()}
    _print_json(schema[args.record] if args.record != "all" else schema)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from dashboard import demo

    if args.cases < 1:
        raise UsageError("--cases must be at least 1")
    if args.out:
        files = demo.write_demo(Path(args.out), args.cases, args.file_format)
        _out(f"wrote {len(files)} files under {args.out}")
        return EXIT_OK
    from dashboard.reviewing import install_demo_trust

    with _open_store(args) as store:
        loaded = demo.load_demo(store, args.cases)
        install_demo_trust(store)
    _out(f"loaded {len(loaded)} releases ({args.cases} cases per run) into {store.path}: {', '.join(loaded)}")
    return EXIT_OK


def load_bundled_demo(store: Store) -> list[str]:
    """The demo shipped under data/demo (generated afresh if this install has no data folder)."""
    from dashboard import demo
    from dashboard.reviewing import install_demo_trust

    folder = REPO_DATA / "demo"
    loaded = demo.load_demo_folder(store, folder) if folder.is_dir() else demo.load_demo(store)
    install_demo_trust(store)  # the demo's trust root and governing policy, signed with the DEMO admin key
    return loaded


def cmd_serve(args: argparse.Namespace) -> int:
    from dashboard.store.db import default_db_path

    path = default_db_path(args.db)
    with _open_store(args) as store:
        if store.shared:
            _out("serving the shared store (its releases come from `readiness ingest` with the same --store/--data; "
                 "the bundled demo is never loaded into it)")
        elif not store.releases():
            _out(f"empty store {path}: loading the bundled demo ...")
            _out("loaded " + ", ".join(load_bundled_demo(store)))
        else:
            from dashboard.reviewing import install_demo_trust, log_trust_roots

            demo_ids = {p.name for p in (REPO_DATA / "demo").iterdir() if p.is_dir()} if (REPO_DATA / "demo").is_dir() \
                else set()
            if demo_ids and {r.release_id for r in store.releases()} <= demo_ids and not log_trust_roots(store):
                _out("demo store without a trust root (made by an older readiness): recording the DEMO trust root")
                install_demo_trust(store)
            from dashboard import demo
            from dashboard.store.observations import observation_counts

            if demo_ids and {r.release_id for r in store.releases()} <= demo_ids and not observation_counts(store):
                _out("demo store without production observations (made by an older readiness): loading them")
                demo.load_observations(store)
    app = Path(__file__).resolve().parent / "ui" / "app.py"
    env = {**os.environ, "READINESS_DB": str(Path(path).resolve())}
    if getattr(args, "store", None):
        env["READINESS_STORE"] = args.store  # the dashboard reads the team store (or its review log) too
    if getattr(args, "data", None):
        env["READINESS_DATA"] = args.data
    cmd = [sys.executable, "-m", "dashboard.ui.launch", "run", str(app), "--server.port", str(args.port),
           "--server.address", args.address, "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none",
           "--client.showErrorDetails", "none", "--client.showErrorLinks", "false",
           "--client.disableDataExport", "true"]
    if args.headless:
        cmd += ["--server.headless", "true"]
    _out(f"Readiness dashboard on http://{args.address}:{args.port}  (store: {path})")
    sys.stdout.flush()
    sys.stderr.flush()
    # Hand this process over to Streamlit: a SIGTERM/SIGINT to `readiness serve` then stops the server and
    # releases the store (a child process would outlive its parent and keep the store locked).
    os.execvpe(cmd[0], cmd, env)


def cmd_gate(args: argparse.Namespace) -> int:
    from dashboard.core import render
    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release

    policy = load_policy(args.policy)
    previous = load_policy(args.previous_policy) if args.previous_policy else None
    with _open_store(args, must_exist=True) as store:
        baseline_id, no_baseline = _baseline(args)
        decision = gate_release(store, policy, args.candidate, baseline_id, args.profile,
                                no_baseline=no_baseline, previous=previous)
        # Only the human formats list regressions; the paired join over every case is not paid for json/junit
        # (nor when the decision came from the cache).
        regressions = (store.regressions(decision.candidate.release_id, decision.baseline.release_id)
                       if decision.baseline and args.format in ("text", "markdown") else None)
    renderers: dict[str, Callable[[], str]] = {
        "text": lambda: render.to_text(decision, regressions),
        "json": lambda: render.to_json(decision),
        "markdown": lambda: render.to_markdown(decision, regressions),
        "junit": lambda: render.to_junit(decision),
    }
    text = renderers[args.format]()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        _out(f"{decision.status}: {decision.candidate.release_id} (digest {decision.digest}) -> {args.out}")
    else:
        _out(text, end="")
    return EXIT_REFUSED if decision.status == "blocked" else EXIT_OK


def cmd_policy_check(args: argparse.Namespace) -> int:
    from dashboard.core.policy import load_policy

    policy = load_policy(args.file)
    _out(f"{args.file}: valid. {policy.policy_id} v{policy.version} ({policy.digest})")
    for profile in policy.profiles:
        gates = policy.gates_for(profile)
        _out(f"profile {profile}{' (default)' if profile == policy.default_profile else ''}: {len(gates)} gates")
        for g in gates:
            extra = f"  when {', '.join(g.when_changed)} change" if g.when_changed else ""
            _out(f"  {g.severity:<13} {g.id}: {g.metric} {g.condition.text} on {g.slice.label()}{extra}")
    if policy.change_requirements:
        _out("change requirements:")
        for kind, reqs in sorted(policy.change_requirements.items()):
            _out(f"  {kind}: {', '.join(reqs)} ({policy.change_requirement_severity})")
    if policy.rollout is not None:
        _out(f"rollout: built-in rollback anti-pattern gates ({policy.rollout.anti_pattern_severity}); gates:")
        for rg in policy.rollout.gates:
            _out(f"  {rg.severity:<13} {rg.id}: {rg.kind}"
                 + (f" (profiles {', '.join(rg.profiles)})" if rg.profiles else ""))
        for tier in policy.rollout.tiers:
            _out(f"  tier {tier.name}: {tier.cadence}, profile {tier.profile or '-'}, suites "
                 f"{', '.join(tier.suites) or '-'}, evidence at most {tier.max_age_days:g} days old")
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace) -> int:
    from dashboard.core.metrics import CATALOGUE

    if args.release:
        return _release_measures(args)

    if args.format == "json":
        _print_json([{"name": d.name, "kind": d.kind, "category": d.category, "description": d.description,
                      "needs": d.needs, "higher_is_better": d.higher_is_better, "unit": d.unit}
                     for d in CATALOGUE.values()])
        return EXIT_OK
    for d in CATALOGUE.values():
        arrow = "higher is better" if d.higher_is_better else "lower is better"
        _out(f"{d.name}  [{d.category}, {d.kind}, {arrow}]\n    {d.description}\n    needs: {d.needs}")
    _out("evidence.<kind>  [evidence]\n    1 when the release's evidence file has a passed item of that kind, "
          "0 when failed; missing fails closed. evidence.owners_named: release and rollback owners named.")
    return EXIT_OK


def _release_measures(args: argparse.Namespace) -> int:
    """`readiness metrics --release ID`: the scores and checks in a release's data, and how a gate names each."""
    with _open_store(args, read_only=True, must_exist=True) as store:
        if store.manifest(args.release) is None:
            raise InputRefused(f"release {args.release!r} is not in the store")
        measures = store.tool_measures(args.release)
    if args.format == "json":
        _print_json([m.model_dump(mode="json") for m in measures])
        return EXIT_OK
    rows = [m.model_dump() for m in measures]
    if not rows:
        _out(f"release {args.release} has no scores or checks in its data")
        return EXIT_OK
    _out(f"scores and checks in the data of {args.release} (gate on them with `score: NAME` or `check: NAME`):")
    for r in rows:
        name = json.dumps(r["name"], ensure_ascii=False)
        if r["kind"] == "score":
            hint = "0/1: gate its mean, or stat: pass_rate with at: 1" if r["binary"] else \
                "stat: mean, or stat: pass_rate with at: <threshold>"
            _out(f"  score {name}  cases={r['cases']} mean={r['mean']:.4g} min={r['min']:.4g} max={r['max']:.4g}"
                 f"  ({hint})")
        else:
            _out(f"  check {name}  cases={r['cases']} passed={r['passed']} rate={r['passed'] / r['cases']:.4g}"
                 "  (rate; paired with no_regression / non_inferior)")
    return EXIT_OK


def cmd_evidence(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from dashboard.core.manifests import load_structured, pydantic_problems
    from dashboard.core.models import ReleaseEvidence

    data = load_structured(args.file)
    if isinstance(data, dict) and "records" in data:  # a rollout evidence file (docs/policy.md, Rollout safety)
        return _rollout_evidence(args, data)
    try:
        evidence = ReleaseEvidence.model_validate(data)
    except ValidationError as e:
        raise InputRefused(pydantic_problems(args.file, "", e)) from e
    if evidence.release_id != args.release:
        raise InputRefused(f"{args.file}: the evidence is for release {evidence.release_id!r}, not {args.release!r}")
    with _open_store(args, must_exist=True) as store:
        status = store.put_evidence(evidence)
    _out(f"evidence for {args.release}: {status}")
    return EXIT_OK


def _rollout_evidence(args: argparse.Namespace, data: dict[str, Any]) -> int:
    from dashboard.core.rollout import parse_rollout
    from dashboard.store.rollout import put_rollout

    evidence = parse_rollout(data, args.file)
    if evidence.release_id != args.release:
        raise InputRefused(f"{args.file}: the rollout evidence is for release {evidence.release_id!r}, "
                           f"not {args.release!r}")
    with _open_store(args, must_exist=True) as store:
        status = put_rollout(store, evidence, args.file)
    kinds = sorted({r.kind for r in evidence.records})
    _out(f"rollout evidence for {args.release}: {status} ({len(evidence.records)} records: {', '.join(kinds) or 'none'})")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """The release train: for each release, which tiers ran, when, with which result; what is missing."""
    from dashboard.core.policy import load_policy
    from dashboard.train import missing_before_judging, release_train

    policy = load_policy(args.policy)
    if policy.rollout is None or not policy.rollout.tiers:
        raise InputRefused(f"{args.policy}: the policy has no release train (rollout.tiers); see docs/policy.md")
    with _open_store(args, must_exist=True) as store:
        rows = release_train(store, policy)
    if args.release:
        rows = [r for r in rows if r["release"] == args.release]
        if not rows:
            raise InputRefused(f"release {args.release!r} is not in the store")
    if args.format == "json":
        _print_json(rows)
        return EXIT_OK
    for release in dict.fromkeys(r["release"] for r in rows):
        mine = [r for r in rows if r["release"] == release]
        _out(f"{release}  (created {mine[0]['created_at'][:16]})")
        for r in mine:
            when = f"{r['last_run'][:16]}  {r['age_days']:g} d old" if r["last_run"] else "never ran"
            _out(f"  {r['state']:<10} {r['tier']:<18} {r['cadence']:<12} {when}"
                 + ("" if r["required"] else "  (not required before release)"))
        missing = missing_before_judging(rows, release)
        _out("  missing before it can be judged: " + ("; ".join(missing) if missing else "nothing"))
    return EXIT_OK


def _passphrase(env_var: str | None, confirm: bool = False) -> bytes:
    """From the named environment variable, else asked on the terminal (never echoed)."""
    import getpass

    if env_var:
        value = os.environ.get(env_var)
        if value is None:
            raise UsageError(f"environment variable {env_var} is not set")
        return value.encode()
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask the passphrase on: pass --passphrase-env VAR")
    first = getpass.getpass("Key passphrase: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise UsageError("the passphrases differ")
    return first.encode()


def _trusted(args: argparse.Namespace, store: Store | None = None) -> TrustedReviewers:
    """The trust root the user chose (--trusted, $READINESS_TRUSTED); only a demo store defaults to the demo's."""
    from dashboard.reviewing import DEMO_LABEL, resolve_trusted

    explicit = getattr(args, "trusted", None) or os.environ.get("READINESS_TRUSTED")
    try:
        trusted, demo = resolve_trusted(store, explicit)
    except InputRefused as e:
        raise UsageError(str(e)) from e
    if demo:
        _out(f"readiness: trust root: {DEMO_LABEL}", file=sys.stderr)
    return trusted


def _trust_line(trusted: TrustedReviewers, demo: bool) -> str:
    from dashboard.reviewing import DEMO_LABEL

    return f"trust root: version {trusted.version} ({trusted.digest})" + (f" -- {DEMO_LABEL}" if demo else "")


def cmd_keys_new(args: argparse.Namespace) -> int:
    import re
    from datetime import UTC, datetime

    import yaml

    from dashboard.core.reviews import ROLES, trusted_entry
    from dashboard.core.signing import SigningError, new_key, public_key_text

    if args.role not in ROLES:
        raise UsageError(f"unknown role {args.role!r} (use {', '.join(ROLES)})")
    try:
        data, public = new_key(_passphrase(args.passphrase_env, confirm=True))
    except SigningError as e:
        raise UsageError(str(e)) from e
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", args.reviewer)
    key_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    if key_path.exists():
        raise UsageError(f"{key_path} exists: keys are never overwritten")
    key_path.write_bytes(data)
    key_path.chmod(0o600)
    pub_path.write_text(f"{public_key_text(public)} {args.reviewer}\n")
    entry = trusted_entry(args.reviewer, [args.role], public_key_text(public), datetime.now(UTC).replace(microsecond=0))
    _out(f"# private key: {key_path} (encrypted: OpenSSH format, bcrypt KDF)  public key: {pub_path}")
    _out("# add this entry under `reviewers:` in the trusted-reviewers file:")
    _out(yaml.safe_dump([entry], sort_keys=False).rstrip())
    return EXIT_OK


def _parse_waiver(text: str) -> Waiver:
    from dashboard.core.reviews import make_waiver

    parts = text.split("|")
    if len(parts) != 4:
        raise UsageError(f"--waiver {text!r}: write 'GATE_ID|JUSTIFICATION|EXPIRES|TICKET' (EXPIRES: a day, "
                         "2026-12-01, valid through its end in UTC, or an ISO 8601 time with its zone)")
    try:
        return make_waiver(*parts)
    except InputRefused as e:
        raise UsageError(f"--waiver {text!r}: {e}") from e


def _signer_identity(args: argparse.Namespace, key: Ed25519PrivateKey, root: TrustedReviewers) -> tuple[str, str]:
    """--reviewer / --role, else the principal in the key's .pub comment and the key's single role in the trust
    root in effect."""
    from dashboard.core.reviews import REVIEW_ROLES
    from dashboard.core.signing import key_id

    reviewer, role = args.reviewer, args.role
    pub = Path(args.key).with_suffix(".pub")
    if reviewer is None and pub.exists():
        parts = pub.read_text(encoding="utf-8").split()
        reviewer = parts[2] if len(parts) > 2 else None
    if role is None:
        entries = [k for k in root.reviewers if k.key_id == key_id(key.public_key())] if root else []
        roles = sorted({r for k in entries for r in k.roles if r in REVIEW_ROLES})
        role = roles[0] if len(roles) == 1 else None
    if reviewer is None or role is None:
        raise UsageError("pass --reviewer and --role (they are not in the key's .pub file / trusted entry)")
    return reviewer, role


def cmd_review_sign(args: argparse.Namespace) -> int:
    from dashboard.core.policy import load_policy
    from dashboard.core.signing import SigningError, load_private_key_file
    from dashboard.reviewing import current_root, review_predicate, sign_review, status
    from dashboard.service import gate_release

    waivers = [_parse_waiver(w) for w in args.waiver or []]
    policy_path = args.policy or os.environ.get("READINESS_POLICY")
    try:
        key = load_private_key_file(args.key, _passphrase(args.passphrase_env))
    except SigningError as e:
        raise InputRefused(f"{args.key}: {e}") from e
    policy = load_policy(policy_path) if policy_path else None
    with _open_store(args, must_exist=True) as store:
        root = current_root(store)
        if root is None:
            raise InputRefused("this store has no trust root yet (an administrator records one with "
                               "`readiness trust set FILE --key ADMIN_KEY`)")
        reviewer, role = _signer_identity(args, key, root)
        baseline_id, no_baseline = _baseline(args)
        if policy is None:  # the release's governing policy
            _result, decision, _report = status(store, None, args.release, _trusted(args, store), baseline_id,
                                                args.profile, no_baseline=no_baseline)
        else:
            decision = gate_release(store, policy, args.release, baseline_id, args.profile, no_baseline=no_baseline)
        predicate = review_predicate(decision, reviewer, role, args.decision, trust_root=root.digest,
                                     comment=args.comment or "", conditions=args.condition,
                                     accepted_risks=args.accepted_risk, release_owner=args.release_owner,
                                     rollback_owner=args.rollback_owner, waivers=waivers)
        envelope = sign_review(store, decision, predicate, key)
    Path(args.out).write_bytes(envelope)
    _out(f"signed {args.decision} of {args.release} (gate decision {decision.status}, {decision.digest}; policy "
          f"{decision.policy.policy_id} v{decision.policy.version}) -> {args.out}")
    return EXIT_OK


def cmd_review_add(args: argparse.Namespace) -> int:
    from dashboard.core.errors import Problem
    from dashboard.reviewing import add_review, read_envelope

    envelope = read_envelope(args.envelope)
    with _open_store(args, must_exist=True) as store:
        try:
            entry = add_review(store, envelope, _trusted(args, store))
        except InputRefused as e:  # name the file the refused review came from
            raise InputRefused([Problem(args.envelope, "", p.field, p.message) if not p.source else p
                                for p in e.problems]) from e
    _out(f"added as entry {entry.seq} (entry hash {entry.entry_hash}, release {entry.release_id})")
    return EXIT_OK


def cmd_review_verify(args: argparse.Namespace) -> int:
    from dashboard.reviewing import read_envelope, uses_demo_keys, verify_bundle, verify_store

    checkpoints = [read_envelope(c) for c in args.checkpoint or []]
    if args.bundle:
        if not (args.trusted or os.environ.get("READINESS_TRUSTED")):
            raise UsageError("verifying a bundle needs the trusted-reviewers file you trust (--trusted or "
                             "$READINESS_TRUSTED): the keys of what is verified are never trusted")
        trusted = _trusted(args)
        try:
            raw = read_input_bytes(args.bundle, "bundle", MAX_TOOL_FILE_BYTES)  # a bounded regular file
        except OSError as e:
            raise InputRefused(f"{args.bundle}: cannot read the bundle: {e}") from e
        report = verify_bundle(raw, checkpoints, trusted)
    else:
        with _open_store(args, read_only=True) as store:
            trusted = _trusted(args, store)
            report = verify_store(store, trusted, checkpoints)
    _out(_trust_line(trusted, uses_demo_keys(trusted, report)))
    for f in report.findings:
        _out(str(f))
    for r in report.reviews:
        p = r.predicate
        _out(f"ok entry {r.seq}: {p.reviewer} ({p.role}) {p.decision} {p.candidate_release_id} at "
              f"{p.reviewed_at.isoformat()} (gate decision {p.gate_decision_digest[:19]}…)")
    _out(f"{'VALID' if report.ok else 'INVALID'}: {report.entries} entries, head {report.head}")
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_review_checkpoint(args: argparse.Namespace) -> int:
    from dashboard.core.signing import SigningError, load_private_key_file
    from dashboard.reviewing import make_checkpoint

    log_key = args.log_key or os.environ.get("READINESS_LOG_KEY")
    if not log_key:
        raise UsageError("pass --log-key (or set READINESS_LOG_KEY): checkpoints are signed by the log key")
    try:
        key = load_private_key_file(log_key, _passphrase(args.passphrase_env))
    except SigningError as e:
        raise InputRefused(f"{log_key}: {e}") from e
    with _open_store(args, must_exist=True) as store:
        envelope = make_checkpoint(store, key)
    if args.out:
        Path(args.out).write_bytes(envelope)
        _out(f"checkpoint -> {args.out}")
    else:
        _out(envelope.decode())
    return EXIT_OK


def cmd_review_export(args: argparse.Namespace) -> int:
    from dashboard.reviewing import export_bundle

    with _open_store(args, read_only=True) as store:
        bundle = export_bundle(store)
    Path(args.out).write_text(json.dumps(bundle, indent=1, sort_keys=True), encoding="utf-8")
    _out(f"{len(bundle['entries'])} entries, {len(bundle['checkpoints'])} checkpoints -> {args.out}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from dashboard.core.policy import load_policy
    from dashboard.reviewing import read_envelope, status

    published = list(args.checkpoint or [])
    published += [p for p in os.environ.get("READINESS_CHECKPOINTS", "").split(os.pathsep) if p]
    checkpoints = [read_envelope(c) for c in published]
    with _open_store(args, must_exist=True) as store:
        trusted = _trusted(args, store)
        policy_path = args.policy or os.environ.get("READINESS_POLICY")
        policy = load_policy(policy_path) if policy_path else None
        baseline_id, no_baseline = _baseline(args)
        result, decision, _report = status(store, policy, args.release, trusted, baseline_id, args.profile,
                                           no_baseline=no_baseline, checkpoints=checkpoints)
    if args.format == "json":
        _print_json(result.model_dump(mode="json"))
    else:
        _out(f"{'READY' if result.ready else 'NOT READY'}: {args.release} (gate decision {decision.status}, "
              f"{decision.digest}; policy {decision.policy.policy_id} v{decision.policy.version})")
        _out(f"  governing policy: {result.governing_policy or 'none registered'}")
        _out(f"  pinned {_trust_line(trusted, result.demo_keys)}")
        _out(f"  trust root in effect in the log: {result.trust_root_in_effect or 'none verified'}")
        for line in result.approvals:
            _out(f"  approved: {line}")
        for line in result.waived:
            _out(f"  waived: {line}")
        for line in result.reasons:
            _out(f"  not ready: {line}")
        for line in result.stale_reviews:
            _out(f"  stale: {line}")
        if not published:
            _out("  note: no published checkpoint given (--checkpoint / $READINESS_CHECKPOINTS): a log rewritten "
                 "and re-hashed in the store cannot be detected")
    return EXIT_OK if result.ready else EXIT_REFUSED


def _admin_key(args: argparse.Namespace) -> Ed25519PrivateKey:
    from dashboard.core.signing import SigningError, load_private_key_file

    try:
        return load_private_key_file(args.key, _passphrase(args.passphrase_env))
    except SigningError as e:
        raise InputRefused(f"{args.key}: {e}") from e


def _issuer(args: argparse.Namespace) -> str:
    if args.issuer:
        return str(args.issuer)
    from dashboard.core.errors import read_input_text

    pub = Path(args.key).with_suffix(".pub")
    parts = read_input_text(pub, "public key file", 64 * 1024).split() if pub.exists() else []
    if len(parts) < 3:
        raise UsageError("pass --issuer (your principal; it is not in the key's .pub file)")
    return parts[2]


def cmd_trust_set(args: argparse.Namespace) -> int:
    from dashboard.core.reviews import load_trusted
    from dashboard.reviewing import record_trust_root

    new = load_trusted(args.file)
    key = _admin_key(args)
    with _open_store(args, must_exist=True) as store:
        entry = record_trust_root(store, new, key, _issuer(args))
    _out(f"trust root version {new.version} ({new.digest}) recorded as entry {entry.seq}")
    return EXIT_OK


def cmd_trust_govern(args: argparse.Namespace) -> int:
    from dashboard.core.policy import load_policy
    from dashboard.reviewing import record_governing_policy

    policy = load_policy(args.policy)
    key = _admin_key(args)
    with _open_store(args, must_exist=True) as store:
        entry = record_governing_policy(store, args.governance_version, policy, key, _issuer(args))
    _out(f"{args.governance_version} is governed by {policy.policy_id} v{policy.version} ({policy.digest}); "
          f"entry {entry.seq}")
    return EXIT_OK


def cmd_trust_show(args: argparse.Namespace) -> int:
    from dashboard.reviewing import uses_demo_keys, verify_store

    with _open_store(args, read_only=True) as store:
        trusted = _trusted(args, store)
        report = verify_store(store, trusted)
    _out(_trust_line(trusted, uses_demo_keys(trusted, report)))
    for i, d in enumerate(report.trust_roots, start=1):
        _out(f"  trust root #{i}: {d}" + ("  (the one you trust)" if d == trusted.digest else ""))
    for gov in sorted(report.governing):
        policy = report.governing_policy(gov)
        assert policy is not None
        _out(f"  governing policy {gov}: {policy.policy_id} v{policy.version} ({policy.digest})")
    for f in report.findings:
        _out(f"  {f}")
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_report(args: argparse.Namespace) -> int:
    from dashboard.core.policy import load_policy
    from dashboard.reporting import render, report_data

    policy = load_policy(args.policy)
    previous = load_policy(args.previous_policy) if args.previous_policy else None
    with _open_store(args, must_exist=True) as store:
        try:
            trusted = _trusted(args, store)
        except UsageError:
            trusted = None  # no trust root chosen: the report has no signed-reviews section
        baseline_id, no_baseline = _baseline(args)
        data = report_data(store, policy, args.release, baseline_id, args.profile, trusted,
                           no_baseline=no_baseline, previous=previous)
    Path(args.out).write_bytes(render(data, args.format))
    _out(f"{args.format} report of {args.release} ({data.decision.status}, decision {data.decision.digest}) -> "
          f"{args.out}")
    return EXIT_OK


def cmd_observe(args: argparse.Namespace) -> int:
    from dashboard.ingesting import observe

    keys = (args.release_attribute, args.variant_attribute)
    with _open_store(args) as store:
        report = observe(store, args.files, args.release, args.variant, keys)
    if args.format == "json":
        _print_json(report.model_dump(mode="json"))
        return EXIT_OK
    for f in report.files:
        if f.status == "unchanged":
            _out(f"{f.path}: already ingested ({f.source_digest}), nothing to do")
        else:
            per = ", ".join(f"{n} {v}" for v, n in sorted(f.variants.items()))
            _out(f"{f.path} ({f.format}): ingested {f.records} observations for {args.release} ({per})")
    return EXIT_OK


def _since(text: str | None) -> Any:
    if text is None:
        return None
    from datetime import datetime

    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise UsageError(f"--since {text!r}: not an ISO 8601 time (e.g. 2026-11-20T10:00:00Z)") from e
    if t.tzinfo is None:
        raise UsageError(f"--since {text!r}: needs a time zone (e.g. 2026-11-20T10:00:00Z)")
    return t


def cmd_canary_judge(args: argparse.Namespace) -> int:
    from dashboard.canarying import canary_section, judge_canary
    from dashboard.core import canary
    from dashboard.core.policy import load_policy

    section = canary_section(load_policy(args.policy), args.policy)
    since = _since(args.since)
    with _open_store(args, must_exist=True) as store:
        judgement, _ = judge_canary(store, section, args.release, args.baseline, since)
    if args.format == "json":
        _out(judgement.model_dump_json(indent=2))
    else:
        _out((canary.to_markdown if args.format == "markdown" else canary.to_text)(judgement), end="")
    return judgement.exit_code


def cmd_shadow_compare(args: argparse.Namespace) -> int:
    from dashboard.canarying import compare_shadow
    from dashboard.core import shadow

    if not 0 <= args.min_agreement <= 1:
        raise UsageError("--min-agreement is a share between 0 and 1")
    where = None
    if args.evidence_slice:
        dim, sep, value = args.evidence_slice.partition("=")
        if not sep or not dim:
            raise UsageError("--evidence-slice is DIMENSION=VALUE, e.g. task=policy_qa")
        where = (dim, value)
    with _open_store(args, must_exist=True) as store:
        report = compare_shadow(store, args.release, args.baseline, args.min_agreement, args.top)
    if args.evidence_out:
        item = shadow.evidence_item(report, where)
        Path(args.evidence_out).write_text(item.model_dump_json(indent=2) + "\n", encoding="utf-8")
        _out(f"evidence item shadow_agreement ({'passed' if item.passed else 'failed'}) -> {args.evidence_out}",
             file=sys.stderr)
    if args.format == "json":
        _out(report.model_dump_json(indent=2))
    else:
        _out((shadow.to_markdown if args.format == "markdown" else shadow.to_text)(report), end="")
    return EXIT_REFUSED if report.blocked else EXIT_OK


# ----- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="readiness", description="Release-readiness gates for AI applications.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an internal error "
                   "(also: READINESS_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from dashboard.cli_store import DATA_HELP, STORE_HELP
    from dashboard.cli_store import register as register_store_commands

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str, db: bool = True,
            under: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
        """A command (of `under`, for a command group such as review or trust) that runs `fn`."""
        sp = (under or sub).add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        if db:
            sp.add_argument("--db", help="store path (default: $READINESS_DB, else ./readiness.duckdb)")
            sp.add_argument("--store", help=STORE_HELP)
            sp.add_argument("--data", help=DATA_HELP)
        return sp

    sp = add("ingest", cmd_ingest, "Validate eval-run files and store them for a release (one transaction).")
    sp.add_argument("files", nargs="+", metavar="FILE",
                    help="native JSONL/CSV/Parquet, results of promptfoo, Inspect AI, lm-eval, DeepEval or Ragas, "
                    "or an MLflow run / experiment / mlruns folder")
    sp.add_argument("--release", help="release id the runs belong to (required unless --split)")
    sp.add_argument("--manifest", action="append", help="the release's manifest (JSON or YAML); needed the first "
                    "time. With --split: one per release, in the --release-map order")
    sp.add_argument("--split", metavar="DIMENSION", help="split one eval tool's file into releases by this "
                    "dimension: prompt or provider (promptfoo), tag.<name> (MLflow run tag, e.g. tag.role)")
    sp.add_argument("--release-map", metavar="MAP", help="with --split: which release each value becomes, e.g. "
                    "'support_v1=rel-a,support_v2=rel-b' (one transaction for all; cases paired by test)")
    sp.add_argument("--format", dest="input_format", default="auto",
                    choices=["auto", "native", "promptfoo", "inspect", "lm-eval", "deepeval", "mlflow", "ragas"],
                    help="input format (default: detected from the content)")
    sp.add_argument("--dataset", help="for eval-tool files: which of the manifest's eval datasets they ran "
                    "(default: the manifest's only one)")
    sp.add_argument("--dataset-version", help="for eval-tool files: its version (default: the manifest's)")
    sp.add_argument("--default-risk", default="medium", choices=["low", "medium", "high", "critical"],
                    help="risk level of eval-tool cases that carry no `risk` tag (default medium)")
    sp.add_argument("--dataset-file", help="for Ragas results: the dataset file given to evaluate (JSONL/CSV with "
                    "id, risk and slice columns); joined by row order, each row's user_input checked")
    sp.add_argument("--pass-if", help="for tools that score but do not judge (MLflow, Ragas): thresholds a case must "
                    "meet to pass, e.g. 'faithfulness>=0.8,answer_relevancy>=0.7' (0/1 metrics are checks anyway)")
    sp.add_argument("--output", dest="format", choices=["text", "json"], default="text", help="output format")

    sp = add("validate", cmd_validate, "Check native files record by record; store nothing.", db=False)
    sp.add_argument("files", nargs="+", metavar="FILE", help="native JSONL, CSV or Parquet eval-run files")

    sp = add("releases", cmd_releases, "List stored releases.")
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    sp = add("runs", cmd_runs, "List the eval runs stored for a release.")
    sp.add_argument("--release", required=True, help="release id")
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    sp = add("schema", cmd_schema, "Print the JSON Schema of the native formats.", db=False)
    sp.add_argument("record", nargs="?", choices=[*SCHEMA_RECORDS, "all"], default="eval_case",
                    help="which record: the native eval case (default), a release manifest, an evidence file, "
                         "the gate decision, the signed review's predicate, the trusted-reviewers file, a rollout "
                         "evidence file, a production observation, a score or check of `readiness metrics --release` "
                         "(tool_measure), or all")

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
    sp.add_argument("--previous-policy", help="an earlier policy to compare with: the decision names it by digest, "
                    "shows where --policy is looser and what it decides on the same data")
    sp.add_argument("--profile", help="policy profile (pr, nightly, release, ...); default: the policy's")
    sp.add_argument("--format", choices=["text", "json", "markdown", "junit"], default="text", help="output format (json: the decision record; junit: one test case per gate)")
    sp.add_argument("--out", help="write the output to this file instead of stdout")
    sp.set_defaults(verdict=True)

    policy_parser = sub.add_parser("policy", help="Gate policy tools.")
    policy_sub = policy_parser.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    sp = policy_sub.add_parser("check", help="Validate a policy and list the gates each profile runs.")
    sp.set_defaults(func=cmd_policy_check)
    sp.add_argument("file", metavar="FILE", help="gate policy YAML")

    sp = add("metrics", cmd_metrics, "List the metric catalogue: definitions and the case fields each needs.",
             db=False)
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    sp.add_argument("--release", help="list instead the scores and checks present in this release's data (what "
                    "its eval tools measured), named as a gate names them")
    sp.add_argument("--db", help="store path with --release (default: $READINESS_DB, else ./readiness.duckdb)")

    sp = add("train", cmd_train, "The release train: for each release, which tiers of the policy's train ran, when, "
             "with which result, and what is missing before it can be judged.")
    sp.add_argument("--policy", required=True, help="a gate policy with a rollout.tiers section")
    sp.add_argument("--release", help="only this release")
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    sp = add("evidence", cmd_evidence, "Attach a non-eval evidence file (secrets scan, rollback plan, ...) "
             "to a stored release.")
    sp.add_argument("file", metavar="FILE", help="evidence JSON or YAML")
    sp.add_argument("--release", required=True, help="release id the evidence belongs to")

    keys_parser = sub.add_parser("keys", help="Reviewer signing keys.")
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    sp = keys_sub.add_parser("new", help="Make an Ed25519 key (encrypted) and print its trusted-reviewers entry.")
    sp.set_defaults(func=cmd_keys_new)
    sp.add_argument("--reviewer", required=True, help="the reviewer's principal (email)")
    sp.add_argument("--role", required=True, help="engineering, product, security, risk (or log for the log key, "
                    "admin for a trust administrator)")
    sp.add_argument("--out", required=True, help="folder for <reviewer>.key and <reviewer>.pub")
    sp.add_argument("--passphrase-env", help="read the passphrase from this environment variable")

    review_parser = sub.add_parser("review", help="Signed readiness reviews and their log.")
    review_sub = review_parser.add_subparsers(dest="review_command", required=True, metavar="SUBCOMMAND")

    def radd(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
             trusted: bool = True) -> argparse.ArgumentParser:
        rp = add(name, fn, help_, under=review_sub)
        if trusted:
            rp.add_argument("--trusted", help="the trusted-reviewers file you trust (default: $READINESS_TRUSTED; "
                            "only a demo store defaults to the demo keys)")
        return rp

    sp = radd("sign", cmd_review_sign, "Sign a review of a release's current gate decision, offline.")
    sp.add_argument("--release", required=True, help="release id to review")
    sp.add_argument("--baseline", help="baseline release id (default: the manifest's; 'none' for none)")
    sp.add_argument("--policy", help="gate policy (default: $READINESS_POLICY, else the release's governing policy; "
                    "only a review against the governing policy counts)")
    sp.add_argument("--profile", help="policy profile (default: the policy's)")
    sp.add_argument("--decision", required=True, choices=["approve", "approve_with_conditions", "block"], help="your decision")
    sp.add_argument("--reviewer", help="your principal (default: the comment of the key's .pub file)")
    sp.add_argument("--role", choices=["engineering", "product", "security", "risk"],
                    help="the role you sign as (default: the key's only role in the trusted-reviewers file)")
    sp.add_argument("--key", required=True, help="your encrypted private key")
    sp.add_argument("--passphrase-env", help="read the key's passphrase from this environment variable")
    sp.add_argument("--comment", help="free-text comment (signed)")
    sp.add_argument("--condition", action="append", help="a condition of approval (repeatable)")
    sp.add_argument("--accepted-risk", action="append", help="a residual risk you accept (repeatable)")
    sp.add_argument("--release-owner", help="who owns the release (signed)")
    sp.add_argument("--rollback-owner", help="who owns the rollback (signed)")
    sp.add_argument("--waiver", action="append", help="'GATE_ID|JUSTIFICATION|EXPIRES|TICKET' (repeatable)")
    sp.add_argument("--out", required=True, help="where to write the signed envelope")

    sp = radd("add", cmd_review_add, "Check a signed review and append it to the log.")
    sp.add_argument("envelope", metavar="ENVELOPE", help="the signed review envelope (from review sign)")

    sp = radd("verify", cmd_review_verify, "Verify the review log (or an exported bundle). Exit 0 valid, 1 invalid, "
              "2 usage or input error.")
    sp.set_defaults(verdict=True)
    sp.add_argument("--bundle", help="verify this exported bundle instead of the store")
    sp.add_argument("--checkpoint", action="append", help="a published checkpoint to check against (repeatable)")

    sp = radd("checkpoint", cmd_review_checkpoint, "Sign and print a checkpoint (log size and head hash).",
              trusted=False)
    sp.add_argument("--log-key", help="the log's private key (default: $READINESS_LOG_KEY)")
    sp.add_argument("--passphrase-env", help="read the log key's passphrase from this environment variable")
    sp.add_argument("--out", help="write the checkpoint to this file (default: stdout)")

    sp = radd("export", cmd_review_export, "Write a bundle that verifies offline against a trust root you supply.",
              trusted=False)
    sp.add_argument("--out", required=True, help="the bundle file to write")

    register_store_commands(sub, add)  # readiness store migrate / copy (dashboard/cli_store.py)

    trust_parser = sub.add_parser("trust", help="Trust administration: trust roots and governing policies.")
    trust_sub = trust_parser.add_subparsers(dest="trust_command", required=True, metavar="SUBCOMMAND")

    def tadd(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
             admin: bool = True) -> argparse.ArgumentParser:
        tp = add(name, fn, help_, under=trust_sub)
        if admin:
            tp.add_argument("--key", required=True, help="your admin private key (role admin in the trust root)")
            tp.add_argument("--passphrase-env", help="read the key's passphrase from this environment variable")
            tp.add_argument("--issuer", help="your principal (default: the comment of the key's .pub file)")
        return tp

    sp = tadd("set", cmd_trust_set, "Record a trust root (trusted-reviewers file) in the log, signed by an admin "
              "key: the first one, or the next version (signed by an admin of the version in effect).")
    sp.add_argument("file", metavar="FILE", help="the trusted-reviewers file to record")
    sp = tadd("govern", cmd_trust_govern, "Register the gate policy that governs releases of a governance-policy "
              "version (their gates, quorum and waiver roles), signed by an admin key.")
    sp.add_argument("governance_version", metavar="GOVERNANCE_VERSION", help="as in manifests' governance_policy_version")
    sp.add_argument("--policy", required=True, help="gate policy YAML that governs this version")
    sp = tadd("show", cmd_trust_show, "Show the log's trust roots and governing policies, verified against the trust "
              "root you trust. Exit 0 valid, 1 invalid.", admin=False)
    sp.add_argument("--trusted", help="the trusted-reviewers file you trust (default: $READINESS_TRUSTED)")

    sp = add("status", cmd_status, "Release status: gate decision plus reviews. Exit 0 ready, 1 not ready, "
             "2 usage or input error.")
    sp.set_defaults(verdict=True)
    sp.add_argument("--release", required=True, help="release id")
    sp.add_argument("--baseline", help="baseline release id (default: the manifest's; 'none' for none)")
    sp.add_argument("--policy", help="gate policy (default: $READINESS_POLICY, else the release's governing policy; "
                    "any other policy makes the release NOT READY)")
    sp.add_argument("--profile", help="policy profile (default: the policy's)")
    sp.add_argument("--trusted", help="the trusted-reviewers file you trust (default: $READINESS_TRUSTED; only a "
                    "demo store defaults to the demo keys)")
    sp.add_argument("--checkpoint", action="append", help="a published checkpoint to check the log against, as "
                    "`review verify` does (repeatable; also every path in $READINESS_CHECKPOINTS, separated by "
                    f"{os.pathsep!r}); without one a rewritten log cannot be detected")
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    sp = add("report", cmd_report, "Write the release report as Markdown, self-contained HTML or PDF.")
    sp.add_argument("--release", required=True, help="release id")
    sp.add_argument("--baseline", help="baseline release id (default: the manifest's; 'none' for none)")
    sp.add_argument("--policy", required=True, help="gate policy YAML")
    sp.add_argument("--previous-policy", help="an earlier policy to compare with: the decision names it by digest, "
                    "shows where --policy is looser and what it decides on the same data")
    sp.add_argument("--profile", help="policy profile (default: the policy's)")
    sp.add_argument("--trusted", help="trusted-reviewers file for the signed reviews section")
    sp.add_argument("--format", choices=["md", "html", "pdf"], default="html", help="report format (pdf needs chromium)")
    sp.add_argument("--out", required=True, help="the report file to write")

    sp = add("observe", cmd_observe, "Validate production observations (JSONL, Parquet or OTLP JSON lines) and store "
             "them for a release (one transaction; a file already stored is skipped).")
    sp.add_argument("files", nargs="+", metavar="FILE", help="`readiness schema observation` records as JSONL or "
                    "Parquet, or OpenTelemetry traces exported as OTLP JSON lines")
    sp.add_argument("--release", required=True, help="the release that served these requests")
    sp.add_argument("--variant", choices=["baseline", "canary", "shadow"],
                    help="its role, for records that do not name one")
    sp.add_argument("--release-attribute", default="service.version",
                    help="OTLP: the resource attribute naming the release (default service.version)")
    sp.add_argument("--variant-attribute", default="deployment.variant",
                    help="OTLP: the resource attribute naming the variant (default deployment.variant)")
    sp.add_argument("--output", dest="format", choices=["text", "json"], default="text", help="output format")

    canary_parser = sub.add_parser("canary", help="Judge a canary from production observations.")
    canary_sub = canary_parser.add_subparsers(dest="canary_command", required=True, metavar="SUBCOMMAND")
    sp = canary_sub.add_parser("judge", help="Promote, continue or roll back a canary. Exit 0 promote, 3 continue, "
                               "1 rollback, 2 usage or input error.")
    sp.set_defaults(func=cmd_canary_judge, verdict=True)
    sp.add_argument("--db", help="store path (default: $READINESS_DB, else ./readiness.duckdb)")
    sp.add_argument("--release", required=True, help="the canary's release id (its observations of variant canary)")
    sp.add_argument("--baseline", required=True, help="the production release (its observations of variant "
                    "baseline, in the canary's time window)")
    sp.add_argument("--policy", required=True, help="gate policy with a `canary` section (docs/canary.md)")
    sp.add_argument("--since", help="judge only requests from this time on (ISO 8601 with a time zone)")
    sp.add_argument("--format", choices=["text", "json", "markdown"], default="text", help="output format")

    shadow_parser = sub.add_parser("shadow", help="Compare a shadow deployment with production.")
    shadow_sub = shadow_parser.add_subparsers(dest="shadow_command", required=True, metavar="SUBCOMMAND")
    sp = shadow_sub.add_parser("compare", help="Pair shadow and production requests by request id: answer agreement, "
                               "retrieval overlap, cost and latency deltas, per slice. Exit 0, 1 on a blocker "
                               "finding (a shadow tool call with side effects, nothing paired), 2 usage or input error.")
    sp.set_defaults(func=cmd_shadow_compare, verdict=True)
    sp.add_argument("--db", help="store path (default: $READINESS_DB, else ./readiness.duckdb)")
    sp.add_argument("--release", required=True, help="the shadow's release id (its observations of variant shadow)")
    sp.add_argument("--baseline", required=True, help="the production release (its observations of variant baseline)")
    sp.add_argument("--min-agreement", type=float, default=0.9, help="normalised answer agreement below which a "
                    "slice is a warning (default 0.9)")
    sp.add_argument("--top", type=int, default=20, help="most-disagreeing requests to list (default 20)")
    sp.add_argument("--evidence-out", help="also write the result as an evidence item (kind shadow_agreement) for "
                    "a release's evidence file, so a gate can use it (docs/canary.md)")
    sp.add_argument("--evidence-slice", help="the slice the evidence item judges, DIMENSION=VALUE (default: all pairs)")
    sp.add_argument("--format", choices=["text", "json", "markdown"], default="text", help="output format")

    sp = add("serve", cmd_serve, "Launch the dashboard (loads the bundled demo into an empty store).")
    sp.add_argument("--port", type=int, default=8501, help="port to listen on")
    sp.add_argument("--address", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    sp.add_argument("--headless", action="store_true", help="do not open a browser")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every ReadinessError is reported the same way (its message, its exit code); any other
    exception is a bug, reported in one line with exit 2 (its traceback with --debug or READINESS_DEBUG=1)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get("READINESS_DEBUG", "") not in ("", "0")
    try:
        code: int = args.func(args)
        return code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silence the interpreter's flush at exit)
        return EXIT_OK
    except InputRefused as e:
        verdict = getattr(args, "verdict", False)
        _out("input error:" if verdict else "refused, nothing was written:", file=sys.stderr)
        for problem in e.problems:
            _out(f"  {problem}", file=sys.stderr)
        # Commands whose exit code is a verdict (1 = blocked / not ready / invalid) report bad input as 2.
        return EXIT_USAGE if verdict else e.exit_code
    except ReadinessError as e:
        _out(f"readiness: {e}", file=sys.stderr)
        return EXIT_USAGE if getattr(args, "verdict", False) and e.exit_code == EXIT_REFUSED else e.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # reading or writing a file the user named (an --out folder that does not exist, ...)
        where = f"{e.filename}: " if e.filename else ""
        _out(f"readiness: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        _out(f"readiness: internal error ({type(e).__name__}{': ' + first if first else ''}). This is a bug; "
             "run with --debug (or READINESS_DEBUG=1) for the traceback", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
