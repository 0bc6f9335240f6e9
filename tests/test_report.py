"""The release report: sections and figures match the gate decision, HTML is self-contained, PDF renders,
regeneration gives identical bytes, untrusted text is escaped."""

from __future__ import annotations

import io
import re
import shutil

import pytest

from dashboard.core.plain import md_text
from dashboard.core.policy import load_policy
from dashboard.ingesting import ingest
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
        assert md_text(gate_id) in md
    assert (f"| {md_text('prompts')} | {md_text('policy_answer')} | {md_text('prompt.policy_answer.v7')} | "
            "switch the prompt version back |") in md
    assert "| Pass rate | 95.50% |" in md


def test_both_formats_render_the_one_section_model_in_the_same_order(rc2):
    from dashboard.core.report import sections

    assert [s.title for s in sections(rc2)] == SECTIONS
    md = render(rc2, "md").decode()
    page = render(rc2, "html").decode()
    assert re.findall(r"^## (.+)$", md, re.M) == SECTIONS
    assert re.findall(r"<h2>(.+?)</h2>", page) == SECTIONS


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
    ingest(store, [write_jsonl(tmp_path / "b.jsonl", recs)], base.release_id)
    ingest(store, [write_jsonl(tmp_path / "c.jsonl", recs)], evil)
    data = report_data(store, POLICY, evil)
    page = render(data, "html").decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    md = render(data, "md").decode()
    outside_code = re.sub(r"(`+) .*? \1", "", md)  # untrusted text only ever appears inside code spans
    assert "<script>" not in outside_code and "<img" not in outside_code and "javascript" not in outside_code
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


LINK_CORPUS = ["https://evil.example/a", "www.evil.example", "eve@evil.example", "$x^2$", "$$y$$",
               "<a href='https://evil.example'>a</a>", "[l](https://evil.example)", "<https://evil.example>",
               "<script>alert(1)</script>", ":red[alarm]", "**bold**", "a|b", "`code`"]


@pytest.mark.parametrize("payload", [*LINK_CORPUS, "``x`` ` y", " lead and trail "])
def test_one_path_for_untrusted_markdown_is_a_code_span_holding_exactly_the_text(payload):
    """Test that md_text (the dashboard's and the Markdown report's one path for untrusted text) writes the text
    as one code span, whose content CommonMark never parses for links, e-mail links, math or HTML, and that the
    span shows exactly the text (issue 12, item 13)."""
    out = md_text(payload)
    fence = re.match(r"`+", out).group(0)
    assert out.endswith(" " + fence) and out.startswith(fence + " ")
    assert not re.search(f"`{{{len(fence)},}}", payload)  # no backtick run in the text can close the span
    assert out[len(fence) + 1:-len(fence) - 1] == payload
    assert "\n" not in md_text(payload + "\n# heading")
    assert md_text("a|b", table_cell=True) == "` a\\|b `"


def test_markdown_report_escapes_reviewer_comments_and_comparability(rc2):
    """Test that the Markdown report passes comments and comparability notes through the same path."""
    from dashboard.core.report import to_markdown

    hostile = "ship it eve@evil.example https://evil.example $x$ <b>x</b>"
    data = rc2.model_copy(update={"decision": rc2.decision.model_copy(update={"comparability": [hostile]})})
    md = to_markdown(data)
    assert md_text(hostile) in md
    assert hostile not in re.sub(r"(`+) .*? \1", "", md)
