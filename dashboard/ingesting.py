"""Ingest: an operation, not a store method. It asks the importers for records (an eval tool's file converted to
native JSONL, or a native file as it is: DuckDB reads it directly, the fast path) and hands them to the store in one
write transaction (`Store.writing`): all files or none, idempotent by each source's digest. The store never reads a
file format; the importers never write.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.core.canonical import file_digest
from dashboard.core.errors import InputRefused, Problem, check_input_file
from dashboard.core.models import RISK_LEVELS, ReleaseManifest
from dashboard.importers.mlflow_runs import run_digest, run_release
from dashboard.importers.native import csv_header, detect_format, diagnose
from dashboard.importers.split import missing_values, split_records
from dashboard.importers.tools import (
    READERS,
    TOOL_FORMATS,
    ImportContext,
    detect_tool,
    expand_input,
    to_native_jsonl,
    write_native_jsonl,
)
from dashboard.importers.verdicts import parse_pass_if
from dashboard.store.db import Batch, FileResult, IngestReport, NativeLoadFailed, Store
from dashboard.store.observations import ObserveReport, put_observation_file


@dataclass(frozen=True)
class ImportOptions:
    """How the files of one ingest are read (the CLI's --format, --dataset, ... options)."""

    fmt: str
    dataset: str | None
    dataset_version: str | None
    default_risk: str
    dataset_file: str | None = None
    pass_if: tuple[tuple[str, str, float], ...] = ()

    def check_options(self, source: str, tool: str) -> None:
        """Options that only some tools read are refused for the others (never silently ignored)."""
        if self.dataset_file and tool != "ragas":
            raise InputRefused([Problem(source, "", "", f"--dataset-file joins Ragas results with their dataset; "
                                        f"this is {tool if tool != 'native' else 'a native eval-run file'}")])
        if self.pass_if and tool not in ("mlflow", "ragas"):
            raise InputRefused([Problem(source, "", "", "--pass-if judges the cases of tools that only score (MLflow, "
                                        f"Ragas); {tool if tool != 'native' else 'a native file'} has its own "
                                        "verdicts")])

    def context(self, source: str, manifest: ReleaseManifest) -> ImportContext:
        datasets = manifest.eval_dataset_versions
        name = self.dataset
        if name is None:
            if len(datasets) != 1:
                raise InputRefused([Problem(source, "", "", "an eval tool's file does not say which eval dataset it "
                                            "ran: name it (--dataset on the command line; the manifest lists "
                                            f"{', '.join(sorted(datasets)) or 'none'})")])
            name = next(iter(datasets))
        version = self.dataset_version or datasets.get(name)
        if version is None:
            raise InputRefused([Problem(source, "", "", f"the manifest does not list eval dataset {name!r}: pass "
                                        "--dataset-version or fix the manifest")])
        if self.default_risk not in RISK_LEVELS:
            raise InputRefused(f"--default-risk {self.default_risk!r}: use {', '.join(RISK_LEVELS)}")
        return ImportContext(dataset=name, dataset_version=version, default_risk=self.default_risk,
                             dataset_file=Path(self.dataset_file) if self.dataset_file else None, pass_if=self.pass_if)


def ingest(
    store: Store,
    files: Sequence[str | Path],
    release_id: str,
    manifest: ReleaseManifest | None = None,
    progress: bool = False,
    fmt: str = "auto",
    dataset: str | None = None,
    dataset_version: str | None = None,
    default_risk: str = "medium",
    dataset_file: str | None = None,
    pass_if: str | None = None,
) -> IngestReport:
    """Store eval-run files (and optionally the release's manifest) in one transaction.

    `fmt` is auto, native, or an eval tool (promptfoo, inspect, lm-eval, deepeval); a tool's file names no
    eval dataset, so `dataset` / `dataset_version` say which of the manifest's it ran (defaults: the
    manifest's only dataset, at the manifest's version). `dataset_file` (Ragas) joins ids, slices and risk
    back by row order; `pass_if` ('metric>=0.8,...') judges cases of tools that only score (MLflow, Ragas)."""
    if fmt not in ("auto", "native", *TOOL_FORMATS):
        raise InputRefused(f"unknown format {fmt!r} (auto, native, {', '.join(TOOL_FORMATS)})")
    if manifest is not None and manifest.release_id != release_id:
        raise InputRefused(f"the manifest is for release {manifest.release_id!r}, not {release_id!r}")
    with store.writing() as batch:
        manifest_status = batch.put_manifest(release_id, manifest)
        stored = batch.manifest(release_id)
        if stored is None:
            raise InputRefused(f"release {release_id!r} is not in the store: pass its manifest with --manifest")
        imports = ImportOptions(fmt, dataset, dataset_version, default_risk, dataset_file, parse_pass_if(pass_if))
        results = [_ingest_file(batch, source, release_id, stored, progress, imports)
                   for f in files for source in expand_input(Path(f))]
    return IngestReport(release_id=release_id, manifest=manifest_status, files=results)


def ingest_split(
    store: Store,
    files: Sequence[str | Path],
    split: str,
    release_map: dict[str, str],
    manifests: Sequence[ReleaseManifest] = (),
    progress: bool = False,
    fmt: str = "auto",
    dataset: str | None = None,
    dataset_version: str | None = None,
    default_risk: str = "medium",
    dataset_file: str | None = None,
    pass_if: str | None = None,
) -> list[IngestReport]:
    """One eval tool's file(s) as several releases, in one transaction (split.py): the records whose
    `split` dimension has value v go to release `release_map[v]`; `manifests` are those releases' manifests
    in the map's order (needed the first time)."""
    releases = list(release_map.values())
    if fmt not in ("auto", *TOOL_FORMATS):
        raise InputRefused(f"--split reads eval tools' files: format {fmt!r} is not one "
                           f"({', '.join(TOOL_FORMATS)})")
    if manifests and len(manifests) != len(releases):
        raise InputRefused(f"--split with {len(releases)} releases takes {len(releases)} manifests (one per "
                           f"release, in the map's order), not {len(manifests)}")
    for m, rel in zip(manifests, releases, strict=False):
        if m.release_id != rel:
            raise InputRefused(f"the manifests follow the --release-map order: manifest {m.release_id!r} was "
                               f"given where release {rel!r} is mapped")
    with store.writing() as batch:
        given: list[ReleaseManifest | None] = list(manifests) or [None] * len(releases)
        statuses = {rel: batch.put_manifest(rel, m) for rel, m in zip(releases, given, strict=True)}
        stored: dict[str, ReleaseManifest] = {}
        for rel in releases:
            got = batch.manifest(rel)
            if got is None:
                raise InputRefused(f"release {rel!r} is not in the store: pass its manifest with --manifest "
                                   "(one per release, in the --release-map order)")
            stored[rel] = got
        imports = ImportOptions(fmt, dataset, dataset_version, default_risk, dataset_file,
                                 parse_pass_if(pass_if))
        results: dict[str, list[FileResult]] = {rel: [] for rel in releases}
        counts: dict[str, int] = {}
        for f in files:
            for source in expand_input(Path(f)):
                for rel, result in _ingest_split_source(batch, source, split, release_map, stored, progress,
                                                             imports).items():
                    results[rel].append(result)
                    counts[rel] = counts.get(rel, 0) + result.records
        empty = missing_values(release_map, counts)
        if empty:
            raise InputRefused(f"--split {split}: no record has {', '.join(map(repr, empty))} (values of the "
                               f"split in the file(s) are what --release-map must name)")
    return [IngestReport(release_id=rel, manifest=statuses[rel], files=results[rel]) for rel in releases]

def _ingest_split_source(batch: Batch, path: Path, split: str,
                         release_map: dict[str, str], stored: dict[str, ReleaseManifest], progress: bool,
                         imports: ImportOptions) -> dict[str, FileResult]:
    src = str(path)
    if not path.is_dir():
        check_input_file(path, "eval file")
    tool = detect_tool(path)
    if tool == "native" or (imports.fmt != "auto" and tool != imports.fmt):
        raise InputRefused([Problem(src, "", "", f"--split reads an eval tool's file; this looks like "
                                    f"{'a native eval-run file' if tool == 'native' else tool + ' output'}"
                                    + (f", not {imports.fmt}" if imports.fmt != "auto" else ""))])
    imports.check_options(src, tool)
    source_digest = run_digest(path) if path.is_dir() else file_digest(str(path))
    named = run_release(path) if tool == "mlflow" else None
    done = {rel: batch.already_stored(rel, source_digest, src, tool) for rel in release_map.values()}
    if all(done.values()):  # the same file again, in every release: nothing to convert
        return {rel: r for rel, r in done.items() if r is not None}
    out: dict[str, FileResult] = {}
    converted: dict[tuple[str, str], tuple[ImportContext, dict[str, list[dict[str, Any]]]]] = {}
    for rel in release_map.values():
        ctx = imports.context(src, stored[rel])
        key = (ctx.dataset, ctx.dataset_version)  # read once unless the releases' manifests differ here
        if key not in converted:
            converted[key] = (ctx, split_records(src, tool, READERS[tool](path, ctx), split, release_map))
        ctx, groups = converted[key]
        records = groups[rel]
        if not records:
            continue
        if named is not None and named != rel:
            raise InputRefused([Problem(src, "", "tags.readiness.release",
                                        f"the MLflow run names release {named!r}, but --split {split} maps it "
                                        f"to {rel!r}")])
        with tempfile.TemporaryDirectory() as tmp:
            native = Path(tmp) / "converted.jsonl"
            write_native_jsonl(records, native)
            result = _load(batch, native, "jsonl", rel, stored[rel], progress, source_digest,
                           recorded_path=path, recorded_format=tool)
        out[rel] = result.model_copy(update={"notes": list(dict.fromkeys(ctx.notes))})
    return out


def _ingest_file(batch: Batch, path: Path, release_id: str,
                 manifest: ReleaseManifest, progress: bool, imports: ImportOptions) -> FileResult:
    src = str(path)
    if not path.is_dir():  # a folder is an MLflow run (expand_input found it); its files are checked as read
        check_input_file(path, "eval file")  # a regular file: never a FIFO or a device
    detected = detect_tool(path)
    tool = detected if imports.fmt == "auto" else imports.fmt
    if imports.fmt != "auto" and detected != imports.fmt and (detected != "native" or imports.fmt == "native"):
        raise InputRefused([Problem(src, "", "", f"this is not a {imports.fmt} file: it looks like "
                                    f"{'a native eval-run file' if detected == 'native' else detected + ' output'}")])
    imports.check_options(src, tool)
    source_digest = run_digest(path) if path.is_dir() else file_digest(str(path))
    if tool == "mlflow":
        named = run_release(path)
        if named is not None and named != release_id:
            raise InputRefused([Problem(src, "", "tags.readiness.release",
                                        f"the MLflow run names release {named!r}, not {release_id!r}: ingest it "
                                        "into its own release (or split an experiment with --split)")])
    if tool != "native":
        done = batch.already_stored(release_id, source_digest, src, tool)
        if done is not None:  # the same tool file again: nothing to convert
            return done
        with tempfile.TemporaryDirectory() as tmp:
            native = Path(tmp) / "converted.jsonl"
            ctx = imports.context(src, manifest)
            to_native_jsonl(path, tool, ctx, native)
            result = _load(batch, native, "jsonl", release_id, manifest, progress, source_digest,
                           recorded_path=path, recorded_format=tool)
            return result.model_copy(update={"notes": list(ctx.notes)})
    return _load(batch, path, detect_format(path), release_id, manifest, progress, source_digest)


def _load(batch: Batch, path: Path, fmt: str, release_id: str, manifest: ReleaseManifest, progress: bool,
          source_digest: str, recorded_path: Path | None = None, recorded_format: str | None = None) -> FileResult:
    """Hand one native file to the store; when its bulk load refuses the file, say where record by record."""
    src = str(recorded_path or path)
    try:
        return batch.load_native(path, fmt, release_id, manifest, source_digest, progress=progress,
                                 csv_header=csv_header(path) if fmt == "csv" else None,
                                 recorded_path=recorded_path, recorded_format=recorded_format)
    except NativeLoadFailed as e:
        problems = diagnose(path, fmt, source_digest)
        if not problems:  # the record-level check found nothing: report what the bulk pass saw
            problems = [Problem(src, "", "", str(e))]
        if recorded_path is not None:  # a tool's file, converted: name it, never the temporary file
            problems = [Problem(src, p.location.replace("line ", "record ", 1), p.field,
                                p.message.replace(str(path), src).replace("(first at line ", "(first at record "))
                        for p in problems]
        raise InputRefused(problems) from e


def observe(store: Store, files: Sequence[str | Path], release_id: str, variant: str | None = None,
            resource_keys: tuple[str, str] | None = None) -> ObserveReport:
    """Validate and store production observation files (native JSONL/Parquet or OTLP traces) for a release in
    one transaction: all files or none."""
    from dashboard.importers.observations import read_observations

    if not release_id:
        raise InputRefused("--release must not be empty")
    with store.writing() as batch:
        results = []
        for f in files:
            fmt, rows = read_observations(Path(f), release_id, variant, resource_keys)
            results.append(put_observation_file(batch, release_id, Path(f), fmt, rows))
    return ObserveReport(release_id=release_id, files=results)
