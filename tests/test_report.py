"""The release report: sections and figures match the gate decision, HTML is self-contained, PDF renders,
regeneration gives identical bytes, untrusted text is escaped."""

from __future__ import annotations

import io
import re
import shutil

import pytest

from dashboard.core.policy import load_policy
from dashboard.reporting import find_chromium, render, report_data
from tests.conftest import REPO

POLICY = load_policy(REPO / "data" / "policies" / "case-management.yaml")
SECTIONS = ["Decision", "Release and artifacts", "Quality", "RAG", "Agent and tools", "Security and privacy",
            "Performance and cost", "Comparability and eval-dataset governance", "Rollback plan", "Signed reviews",
            "All gates", "What this report judged"]


@pytest.fixture(scope="module")
def rc2(demo_store):
    return report_data(demo_store, POLICY, "rel-2026.11.0-rc2")


def test_markdown_has_every_section_and_the_decision(rc2):
    md = render(rc2, "md").decode()
    for section in SECTIONS:
        assert f"## {section}" in md
    d = rc2.decision
    assert "**Decision: BLOCKED**" in md and d.digest in md
    for gate_id in d.blockers:
        assert gate_id.replace("_", "\\_").replace("[", "\\[").replace("]", "\\]") in md
    assert "| prompts | policy\\_answer | prompt\\.policy\\_answer\\.v7 | switch the prompt version back |" in md
    assert "| Pass rate | 95.50% |" in md


def test_report_figures_match_the_gate_decision(rc2):
    rows = {r.metric: r for area in rc2.areas.values() for r in area}
    gates = {g.gate_id: g for g in rc2.decision.gates}
    assert rows["critical_pass_rate"].candidate == pytest.approx(gates["critical_pass_rate"].observed)
    assert rows["approval_bypasses"].candidate == gates["approval_bypass"].observed
    assert rows["pass_rate"].interval is not None and rows["latency_p95_ms"].interval is not None


def test_html_is_self_contained(rc2):
    page = render(rc2, "html").decode()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<style>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:)""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert "url(" not in page
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page


def test_regenerating_gives_identical_bytes(demo_store, rc2):
    again = report_data(demo_store, POLICY, "rel-2026.11.0-rc2")
    assert render(rc2, "md") == render(again, "md")
    assert render(rc2, "html") == render(again, "html")


@pytest.mark.skipif(find_chromium() is None, reason="needs chromium (scripts/test.sh installs it)")
def test_pdf_renders_with_extractable_text_and_is_reproducible(rc2):
    from pypdf import PdfReader

    pdf = render(rc2, "pdf")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) > 0
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "AI release report" in text and "BLOCKED" in text and "Rollback plan" in text
    assert render(rc2, "pdf") == pdf


def test_untrusted_text_is_escaped(demo_store, tmp_path):
    from dashboard import demo
    from dashboard.store.db import Store
    from tests.conftest import good_case, write_jsonl

    store = Store(tmp_path / "h.duckdb")
    base = demo.manifest_for(demo.STORIES[0])
    store.put_manifest(base)
    evil = "rc-<script>alert(1)</script>"
    store.put_manifest(base.model_copy(update={"release_id": evil, "baseline_release_id": base.release_id,
                                               "code_commit": "<img src=x onerror=alert(1)>"}))
    recs = [good_case(case_id=f"c{i}", slices={"task": "[x](javascript:alert(1))"}) for i in range(40)]
    store.ingest([write_jsonl(tmp_path / "b.jsonl", recs)], base.release_id)
    store.ingest([write_jsonl(tmp_path / "c.jsonl", recs)], evil)
    data = report_data(store, POLICY, evil)
    page = render(data, "html").decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    md = render(data, "md").decode()
    assert "<script>" not in md and "<img" not in md
    assert not re.search(r"(?<!\\)\]\(javascript", md)  # a link only ever appears escaped: \[x\](...
    store.close()


def test_report_cli_writes_each_format(tmp_path, demo_store, capsys):
    from dashboard.cli import main

    demo_store.query("CHECKPOINT")
    db = tmp_path / "r.duckdb"
    shutil.copy(demo_store.path, db)
    for fmt in ("md", "html"):
        out = tmp_path / f"r.{fmt}"
        assert main(["report", "--release", "rel-2026.11.0-rc3", "--policy", str(REPO / "data" / "policies" /
                     "case-management.yaml"), "--format", fmt, "--out", str(out), "--db", str(db)]) == 0
        assert out.stat().st_size > 1000
    assert "APPROVED WITH WARNINGS" in (tmp_path / "r.md").read_text()
