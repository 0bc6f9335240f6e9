"""`readiness store migrate` and `readiness store copy`: the review log shared through PostgreSQL
(dashboard/store/postgres.py). Registered by dashboard/cli.py."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from dashboard.core.errors import UsageError

STORE_HELP = ("team store: a postgresql://… URL; with --data it is the system of record and --db this machine's "
              "copy, without it only the review log is kept there (default: $READINESS_STORE; none: the --db file "
              "alone)")
DATA_HELP = ("with --store: where the team store keeps case data, a shared directory or s3://bucket/prefix "
             "(default: $READINESS_DATA)")


def _url(args: argparse.Namespace) -> str:
    from dashboard.store.postgres import shared_store_url

    url = shared_store_url(getattr(args, "store", None))
    if url is None:
        raise UsageError("name the PostgreSQL store: --store postgresql://USER@HOST/DB or $READINESS_STORE")
    return url


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from dashboard.cli import EXIT_OK, _out
    from dashboard.store.postgres import SCHEMA_VERSION, PostgresReviewLog

    log = PostgresReviewLog(_url(args))  # creates or checks the schema
    try:
        version = log.migrate()
    finally:
        log.close()
    _out(f"shared store schema version {version} (this readiness: {SCHEMA_VERSION})")
    return EXIT_OK


def cmd_store_copy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dashboard.cli import EXIT_OK, _out
    from dashboard.store.db import Store, default_db_path
    from dashboard.store.postgres import PostgresReviewLog, copy_review_log

    path = default_db_path(args.db)
    if not Path(path).exists():
        raise UsageError(f"no store at {path}: pass --db / set READINESS_DB")
    from dashboard.store.team import copy_to_team, shared_data_location

    data = shared_data_location(getattr(args, "data", None))
    team = copy_to_team(path, _url(args), data) if data is not None else None  # releases and case data first
    log = PostgresReviewLog(_url(args))
    try:
        with Store(path, read_only=True) as source:
            report = copy_review_log(source, log)
    finally:
        log.close()
    if args.format == "json":
        out = report.model_dump(mode="json")
        if team is not None:
            out["team"] = team.model_dump(mode="json")
        _out(json.dumps(out, indent=2, sort_keys=True))
        return EXIT_OK
    if team is not None:
        _out(f"published {team.releases} releases, {team.sources} eval-run files ({team.cases:,} cases) and "
             f"{team.observation_sources} observation files to the team store; read back through a fresh copy and "
             f"compared: {', '.join(team.verified)}")
    _out(f"copied {report.entries} review-log entries (head {report.head}, every entry hash re-checked and read "
         f"back), {report.checkpoints} checkpoints and {report.decisions} reviewed decisions; log id {report.log_id}")
    return EXIT_OK


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `store` command group."""
    parser = sub.add_parser("store", help="The shared store: the review log in PostgreSQL for a team.")
    store_sub = parser.add_subparsers(dest="store_command", required=True, metavar="SUBCOMMAND")
    sp = add("migrate", cmd_store_migrate, "Create or upgrade the shared store's schema in PostgreSQL (--store / "
             "$READINESS_STORE) and print its version.", db=False, under=store_sub)
    sp.add_argument("--store", help=STORE_HELP)
    sp = add("copy", cmd_store_copy, "Copy the --db file into the team store: with --data its releases, runs, case "
             "data, evidence and policies (read back through a fresh copy and compared), and its review log, "
             "checkpoints and reviewed decisions into an empty PostgreSQL log, every entry hash re-checked and read "
             "back.", under=store_sub)
    sp.add_argument("--format", choices=["text", "json"], default="text", help="output format")
