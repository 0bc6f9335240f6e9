"""Load data: a manifest, eval files and evidence, validated and stored all or nothing, with progress."""

import os
import tempfile
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused
from dashboard.core.manifests import load_manifest, load_structured, pydantic_problems
from dashboard.core.models import ReleaseEvidence
from dashboard.core.rollout import parse_rollout
from dashboard.ingesting import ingest
from dashboard.store.rollout import put_rollout, rollout_evidence
from dashboard.ui import components as ui
from dashboard.ui import data

# One upload's total size (every file together); Streamlit's server.maxUploadSize caps each file.
MAX_TOTAL_MB = int(os.environ.get("READINESS_MAX_UPLOAD_MB", "300"))


def user_message(text: str) -> str:
    """Store messages written for the command line, in the words of this page."""
    return (text.replace("pass its manifest with --manifest", "upload its manifest with the eval files")
            .replace("--manifest", "the manifest field"))


st.title("Load data")
st.caption("Eval files in the native format (JSONL, CSV or Parquet; `readiness schema` prints it) or as promptfoo, "
           "Inspect AI, lm-evaluation-harness, DeepEval or Ragas wrote them (MLflow run folders, side-by-side "
           "splits and Ragas' --dataset-file: `readiness ingest`). The first upload for a release needs its "
           f"manifest. Everything is validated first and stored in one step: on any error nothing is stored. "
           f"Up to {MAX_TOTAL_MB} MB per upload.")
with st.form("load_form", clear_on_submit=False):
    release = st.text_input("Release id", key="load_release")
    manifest_file = st.file_uploader("Release manifest (YAML or JSON)", type=["yaml", "yml", "json"],
                                     key="load_manifest")
    eval_files = st.file_uploader("Eval-run files: native, or promptfoo / Inspect AI / lm-eval / DeepEval / Ragas "
                                  "output",
                                  type=["jsonl", "ndjson", "json", "csv", "parquet", "eval"],
                                  accept_multiple_files=True, key="load_files")
    c1, c2 = st.columns([2, 1])
    dataset = c1.text_input("Eval dataset an eval tool's files ran (as named in the manifest; empty: its only one)",
                            key="load_dataset")
    default_risk = c2.selectbox("Risk of tool cases without a `risk` tag", ["medium", "low", "high", "critical"],
                                key="load_risk")
    evidence_file = st.file_uploader("Evidence file (optional)", type=["yaml", "yml", "json"], key="load_evidence",
                                     help="Non-eval evidence, or a rollout evidence file (one with `records`: "
                                          "rollback drills, flags, experiments, incidents, tier runs).")
    submitted = st.form_submit_button("Validate and store", type="primary")

outcome = st.session_state.pop("load_outcome", None)
if outcome is not None:  # after the rerun that shows the new release in the sidebar
    st.success(outcome["message"], icon=":material/check_circle:")
    ui.show_table(outcome["files"])

if submitted:
    if not release:
        st.error("Give the release id the files belong to.")
        st.stop()
    uploads = [f for f in [manifest_file, *(eval_files or []), evidence_file] if f is not None]
    total = sum(f.size for f in uploads)
    if total > MAX_TOTAL_MB << 20:
        st.error(f"Refused; nothing was stored. This upload is {total / (1 << 20):.0f} MB; one upload may hold "
                 f"at most {MAX_TOTAL_MB} MB in total. Load large runs with `readiness ingest`.",
                 icon=":material/error:")
        st.stop()
    with tempfile.TemporaryDirectory() as tmp, st.status("Validating and storing ...", expanded=True) as status:
        try:
            progress = st.progress(0.0, text="Reading the manifest")
            manifest = None
            if manifest_file is not None:
                mpath = Path(tmp) / Path(manifest_file.name).name
                mpath.write_bytes(manifest_file.getvalue())
                manifest = load_manifest(mpath)
            # Evidence is checked before anything is written, so the upload stays all or nothing.
            evidence = None
            rollout = None  # a rollout evidence file (a file with `records`, issue 17) in the same slot
            if evidence_file is not None:
                progress.progress(0.15, text="Checking the evidence file")
                epath = Path(tmp) / Path(evidence_file.name).name
                epath.write_bytes(evidence_file.getvalue())
                raw = load_structured(epath)
                if isinstance(raw, dict) and "records" in raw:
                    rollout = parse_rollout(raw, evidence_file.name)
                    if rollout.release_id != release:
                        raise InputRefused(f"{evidence_file.name}: the rollout evidence is for release "
                                           f"{rollout.release_id!r}, not {release!r}")
                    held_rollout = rollout_evidence(data.store(), release)
                    if held_rollout is not None and held_rollout[1] != digest(rollout):
                        raise InputRefused(f"{evidence_file.name}: release {release!r} already has other rollout "
                                           f"evidence ({held_rollout[1]}); it never changes")
                    if manifest is None and data.store().manifest(release) is None:
                        raise InputRefused(f"release {release!r} is not in the store: upload its manifest too")
            if evidence_file is not None and rollout is None:
                try:
                    evidence = ReleaseEvidence.model_validate(raw)
                except ValidationError as e:
                    raise InputRefused(pydantic_problems(evidence_file.name, "", e)) from e
                if evidence.release_id != release:
                    raise InputRefused(f"{evidence_file.name}: the evidence is for release {evidence.release_id!r}, "
                                       f"not {release!r}")
                held = data.store().evidence(release)
                if held is not None and held[1] != digest(evidence):
                    raise InputRefused(f"{evidence_file.name}: release {release!r} already has other evidence "
                                       f"({held[1]}); evidence never changes")
                if manifest is None and data.store().manifest(release) is None:
                    raise InputRefused(f"release {release!r} is not in the store: upload its manifest too")
            paths = []
            for f in eval_files or []:
                p = Path(tmp) / Path(f.name).name
                p.write_bytes(f.getvalue())
                paths.append(p)
            progress.progress(0.3, text=f"Validating and storing {len(paths)} eval file(s), "
                                        f"{total / (1 << 20):.1f} MB (one transaction)")
            with data.writer() as store:  # opened for this one transaction (other processes wait, bounded)
                report = ingest(store, paths, release, manifest, dataset=dataset.strip() or None,
                                default_risk=str(default_risk))
        except InputRefused as e:
            status.update(label="Refused; nothing was stored", state="error", expanded=False)
            refused = [user_message(str(p).replace(tmp + "/", "")) for p in e.problems]
        else:
            refused = []
    if refused:  # outside the (collapsed) status box, so the reasons are in view
        st.error("Refused; nothing was stored. Fix these and upload again:", icon=":material/error:")
        st.code("\n".join(refused), language=None)
        st.stop()
    stored = "no evidence"
    if evidence is not None:
        try:
            with data.writer() as store:
                stored = "evidence " + store.put_evidence(evidence)
        except InputRefused as e:  # only if another writer attached evidence in between
            stored = "the evidence was NOT stored: " + user_message(str(e))
    if rollout is not None:
        try:
            with data.writer() as store:
                stored = "rollout evidence " + put_rollout(store, rollout, evidence_file.name if evidence_file
                                                           else "rollout evidence")
        except InputRefused as e:  # another writer in between, or an incident id stored with other content
            stored = "the rollout evidence was NOT stored: " + user_message(str(e))
    st.cache_data.clear()
    files = [{"file": Path(f.path).name, "status": f.status, "records": f.records, "runs": ", ".join(f.runs),
              "sha256": f.source_digest, "notes": " ".join(f.notes)} for f in report.files]
    st.session_state["load_outcome"] = {
        "message": ui.esc(f"Stored in release {release}: manifest {report.manifest}; {len(files)} eval file(s); "
                          f"{stored}."),
        "files": files}
    st.rerun()  # the sidebar lists the new release at once
