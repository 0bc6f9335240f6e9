"""Load data: a manifest and eval files, validated and stored in one transaction; nothing stored on error."""

import tempfile
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from dashboard.core.errors import InputRefused
from dashboard.core.manifests import load_manifest, load_structured, pydantic_problems
from dashboard.core.models import ReleaseEvidence
from dashboard.ui import components as ui
from dashboard.ui import data

st.title("Load data")
st.caption("Eval files in the native format (JSONL, CSV or Parquet; `readiness schema` prints it) or as promptfoo, "
           "Inspect AI, lm-evaluation-harness or DeepEval wrote them. The first upload for a release needs its "
           "manifest. Everything is validated first; on any error nothing is stored.")
with st.form("load_form", clear_on_submit=False):
    release = st.text_input("Release id", key="load_release")
    manifest_file = st.file_uploader("Release manifest (YAML or JSON)", type=["yaml", "yml", "json"],
                                     key="load_manifest")
    eval_files = st.file_uploader("Eval-run files: native, or promptfoo / Inspect AI / lm-eval / DeepEval output",
                                  type=["jsonl", "ndjson", "json", "csv", "parquet", "eval"],
                                  accept_multiple_files=True, key="load_files")
    c1, c2 = st.columns([2, 1])
    dataset = c1.text_input("Eval dataset an eval tool's files ran (as named in the manifest; empty: its only one)",
                            key="load_dataset")
    default_risk = c2.selectbox("Risk of tool cases without a `risk` tag", ["medium", "low", "high", "critical"],
                                key="load_risk")
    evidence_file = st.file_uploader("Evidence file (optional)", type=["yaml", "yml", "json"], key="load_evidence")
    submitted = st.form_submit_button("Validate and store", type="primary")

if submitted:
    if not release:
        st.error("Give the release id the files belong to.")
        st.stop()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            manifest = None
            if manifest_file is not None:
                mpath = Path(tmp) / Path(manifest_file.name).name
                mpath.write_bytes(manifest_file.getvalue())
                manifest = load_manifest(mpath)
            paths = []
            for f in eval_files or []:
                p = Path(tmp) / Path(f.name).name
                p.write_bytes(f.getvalue())
                paths.append(p)
            report = data.store().ingest(paths, release, manifest, dataset=dataset.strip() or None,
                                         default_risk=str(default_risk))
            stored = "evidence: none"
            if evidence_file is not None:
                epath = Path(tmp) / Path(evidence_file.name).name
                epath.write_bytes(evidence_file.getvalue())
                try:
                    evidence = ReleaseEvidence.model_validate(load_structured(epath))
                except ValidationError as e:
                    raise InputRefused(pydantic_problems(evidence_file.name, "", e)) from e
                if evidence.release_id != release:
                    raise InputRefused(f"{evidence_file.name}: the evidence is for {evidence.release_id!r}")
                stored = "evidence: " + data.store().put_evidence(evidence)
        except InputRefused as e:
            st.error("Refused; nothing was stored. Fix these and upload again:", icon=":material/error:")
            st.code("\n".join(str(p).replace(tmp + "/", "") for p in e.problems), language=None)
            st.stop()
    st.cache_data.clear()
    st.success(f"Stored. Manifest: {report.manifest}; {stored}.", icon=":material/check_circle:")
    ui.show_table([{"file": Path(f.path).name, "status": f.status, "records": f.records, "runs": ", ".join(f.runs),
                    "sha256": f.source_digest} for f in report.files])
