"""Gate decisions as text (terminal), JSON (machines), Markdown (PR comment / step summary) and JUnit XML.

Every rendering names the decision digest, the policy id/version/digest and the releases judged.
Untrusted text never reaches these renderings unescaped: Markdown cells are escaped, XML is built
with ElementTree and holds only characters XML 1.0 allows (others are written as visible \\uXXXX), and text
meant for a terminal has its control characters escaped (`terminal_safe`).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from dashboard.core.gates import GateDecision, GateResult
from dashboard.core.numbers import fmt_interval, fmt_value
from dashboard.core.plain import md_text

STATUS_WORDS = {"approved": "APPROVED", "approved_with_warnings": "APPROVED WITH WARNINGS", "blocked": "BLOCKED"}
STATUS_ICONS = {"approved": "✅", "approved_with_warnings": "⚠️", "blocked": "⛔"}
GATE_ICONS = {"pass": "✅", "fail": "❌", "skipped": "⏭️"}


# What a terminal could interpret: C0 controls but tab and newline, DEL, C1 controls (CSI 0x9b, OSC 0x9d, ...),
# line/paragraph separators and the bidi overrides that reorder what is shown.
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                              "\u2066-\u2069]")
# What XML 1.0 forbids (and C1 controls, which it only discourages).
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape_char(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def terminal_safe(text: str) -> str:
    """`text` with every control character a terminal could act on written as a visible `\\uXXXX` (also
    valid inside a JSON string), and lone surrogates as `\\udXXX`, so printing it can neither colour, link,
    retitle, rewrite nor reorder the screen, nor fail to encode."""
    text = _TERMINAL_UNSAFE.sub(_escape_char, text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def xml_safe(text: str) -> str:
    """`text` holding only characters XML 1.0 allows; anything else is written as a visible `\\uXXXX`."""
    return _XML_UNSAFE.sub(_escape_char, text)


def to_json(decision: GateDecision) -> str:
    return terminal_safe(json.dumps(decision.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False))


def _header_lines(d: GateDecision) -> list[str]:
    base = f"{d.baseline.release_id} ({d.baseline.manifest_digest})" if d.baseline else "none"
    return [
        f"candidate: {d.candidate.release_id} ({d.candidate.manifest_digest})",
        f"baseline:  {base}",
        f"policy:    {d.policy.policy_id} v{d.policy.version} ({d.policy.digest})"
        + (f", profile {d.profile}" if d.profile else ""),
        f"decision digest: {d.digest}",
    ]


def to_text(d: GateDecision, regressions: tuple[int, int, list[dict]] | None = None) -> str:
    lines = [f"{STATUS_WORDS[d.status]}: {d.candidate.release_id}", *_header_lines(d)]
    if d.changed_artifacts:
        lines.append("changed: " + "; ".join(f"{c.kind}/{c.name} {c.baseline or '-'} -> {c.candidate or '-'}"
                                             for c in d.changed_artifacts))
    for note in d.comparability:
        lines.append(f"COMPARABILITY: {note}")
    for note in d.notes:
        lines.append(f"note: {note}")
    for ch in d.dataset_changes:
        lines.append(f"eval dataset {ch.dataset}: {ch.added} added, {ch.removed} removed, {ch.changed} changed, "
                     f"{ch.downgraded} downgraded since the baseline")
    if d.policy_comparison:
        pc = d.policy_comparison
        lines.append(f"previous policy v{pc.previous_version} ({pc.previous_digest}) decides {pc.previous_status}; "
                     f"{len(pc.loosened)} loosened, {len(pc.outcome_changes)} gate outcome(s) differ")
        lines.extend(f"  loosened {x.gate_id}: {x.change}" for x in pc.loosened)
        lines.extend(f"  {gid}: {old} under v{pc.previous_version} -> {new} now" for gid, old, new in pc.outcome_changes)
    lines.append("")
    for g in d.gates:
        mark = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP"}[g.status]
        iv = f" 95% {fmt_interval(g.interval)}" if g.interval else ""
        lines.append(f"[{mark}] {g.severity:<13} {g.gate_id}  ({g.slice}; n={g.n}{iv})")
        lines.append(f"       {g.name}: {g.reason}")
        if g.paired and g.paired.diff_interval:
            lines.append(f"       paired: diff {g.paired.diff:+.4f} 95% {fmt_interval(g.paired.diff_interval)}, "
                         f"two-sided exact McNemar p={g.paired.mcnemar_p:.3g}")
    if regressions is not None:
        lines.append("")
        lines.append(f"paired cases: {regressions[0]} regressions (pass->fail), {regressions[1]} fixes (fail->pass)")
    lines.append("")
    lines.append(f"blockers: {len(d.blockers)}  warnings: {len(d.warnings)}  gates: {len(d.gates)}")
    return terminal_safe("\n".join(lines) + "\n")


def md_escape(text: str) -> str:
    """Untrusted text inside the PR-comment Markdown (table cells included): the one rendering path of
    core/plain.py, a code span that cannot become a link, e-mail link, math, HTML or emphasis."""
    return md_text(text, table_cell=True)


def _md_gate_row(g: GateResult) -> str:
    base = fmt_value(g.baseline) if g.baseline is not None else "–"
    if g.paired is not None and g.paired.p_value is not None:
        adj = f", adj. {g.paired.p_adjusted:.3g}" if g.paired.slices_tested > 1 else ""
        base += f" (p={g.paired.p_value:.3g}{adj})"
    thr = fmt_value(g.threshold, g.observed) if g.threshold is not None else "–"
    return (f"| {GATE_ICONS[g.status]} | {md_escape(g.gate_id)} | {md_escape(g.slice)} | {fmt_value(g.observed, g.threshold)} "
            f"{fmt_interval(g.interval)} | {base} | {md_escape(g.condition)} ({thr}) | {g.n} | {md_escape(g.reason)} |")


def to_markdown(d: GateDecision, regressions: tuple[int, int, list[dict]] | None = None) -> str:
    """A compact PR comment / GitHub step summary: decision, blockers, warnings, top regressions."""
    out = [f"## {STATUS_ICONS[d.status]} Release readiness: **{STATUS_WORDS[d.status]}** — "
           f"{md_escape(d.candidate.release_id)}", ""]
    base = md_escape(d.baseline.release_id) if d.baseline else "none"
    out.append(f"Baseline {base} · policy {md_escape(d.policy.policy_id)} v{md_escape(d.policy.version)}"
               + (f" · profile {md_escape(d.profile)}" if d.profile else ""))
    out.append(f"Decision digest `{d.digest}`")
    out.append("")
    if d.changed_artifacts:
        out.append("**Changed:** " + ", ".join(
            f"{md_escape(c.kind)}/{md_escape(c.name)} {md_escape(c.baseline or '–')} → {md_escape(c.candidate or '–')}"
            for c in d.changed_artifacts))
        out.append("")
    for note in d.comparability:
        out.append(f"> ⚠️ **Comparability:** {md_escape(note)}")
    for note in d.notes:
        out.append(f"> ⚠️ {md_escape(note)}")
    if d.comparability or d.notes:
        out.append("")
    changed_sets = [c for c in d.dataset_changes if c.added or c.removed or c.changed or c.downgraded]
    if changed_sets:
        out.append("**Eval dataset changes:** " + "; ".join(
            f"{md_escape(c.dataset)}: {c.added} added, {c.removed} removed, {c.changed} changed, "
            f"{c.downgraded} downgraded" for c in changed_sets))
        out.append("")
    if d.policy_comparison and (d.policy_comparison.loosened or d.policy_comparison.outcome_changes):
        pc = d.policy_comparison
        out.append(f"**Policy v{md_escape(pc.previous_version)} → v{md_escape(d.policy.version)}:** under the previous "
                   f"version the decision is **{STATUS_WORDS[pc.previous_status]}**. Loosened: "
                   + (", ".join(f"{md_escape(x.gate_id)} ({md_escape(x.change)})" for x in pc.loosened) or "nothing"))
        out.append("")
    header = ["| | gate | slice | observed (95% CI) | baseline | condition | n | reason |",
              "|---|---|---|---|---|---|---|---|"]
    failed = [g for g in d.gates if g.status == "fail"]
    for title, severity in (("Blockers", "blocker"), ("Warnings", "warning")):
        rows = [g for g in failed if g.severity == severity]
        out.append(f"### {title} ({len(rows)})")
        out.extend(header + [_md_gate_row(g) for g in rows] if rows else ["None."])
        out.append("")
    if regressions is not None:
        n_reg, n_fix, top = regressions
        out.append(f"### Top regressions ({n_reg} pass→fail, {n_fix} fail→pass)")
        if top:
            out.append("| case | suite | risk | task |")
            out.append("|---|---|---|---|")
            out.extend(f"| {md_escape(r['case_id'])} | {md_escape(r['suite'])} | {md_escape(r['risk'])} | "
                       f"{md_escape(str(r['task'] or ''))} |" for r in top)
        else:
            out.append("None.")
        out.append("")
    passed = sum(g.status == "pass" for g in d.gates)
    skipped = sum(g.status == "skipped" for g in d.gates)
    out.append(f"<details><summary>All {len(d.gates)} gates ({passed} passed, {len(failed)} failed, "
               f"{skipped} skipped)</summary>")
    out.append("")
    out.extend(header + [_md_gate_row(g) for g in d.gates])
    out.append("")
    out.append("</details>")
    return "\n".join(out) + "\n"


def to_junit(d: GateDecision) -> str:
    """One test case per gate; failed blockers and warnings are failures, skipped gates are skipped."""
    suite = ET.Element("testsuite", {
        "name": f"readiness:{d.candidate.release_id}", "tests": str(len(d.gates)),
        "failures": str(sum(g.status == "fail" and g.severity != "informational" for g in d.gates)),
        "skipped": str(sum(g.status == "skipped" for g in d.gates)), "errors": "0",
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("status", d.status), ("digest", d.digest), ("policy", f"{d.policy.policy_id}@{d.policy.version}"),
                        ("policy_digest", d.policy.digest),
                        ("baseline", d.baseline.release_id if d.baseline else "")):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for g in d.gates:
        case = ET.SubElement(suite, "testcase", {"classname": f"readiness.{g.category}", "name": g.gate_id})
        if g.status == "skipped":
            ET.SubElement(case, "skipped", {"message": g.reason})
        elif g.status == "fail" and g.severity != "informational":
            fail = ET.SubElement(case, "failure", {"message": f"{g.severity}: {g.reason}", "type": g.severity})
            fail.text = f"{g.name}\nslice: {g.slice}\ncondition: {g.condition}\nobserved: {fmt_value(g.observed, g.threshold)}"
        elif g.status == "fail":
            out = ET.SubElement(case, "system-out")
            out.text = f"informational: {g.reason}"
    suites = ET.Element("testsuites", {"name": "readiness"})
    suites.append(suite)
    for el in suites.iter():  # every value, whoever set it: only what XML 1.0 allows
        el.attrib = {k: xml_safe(v) for k, v in el.attrib.items()}
        if el.text:
            el.text = xml_safe(el.text)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
