"""Canary & shadow: after the gate. The canary judge's verdict with its reasons, each signal's timeline (canary vs
baseline, with the allowed and critical limits), and the shadow comparison with its most-disagreeing requests
opened side by side. The same functions as `readiness canary judge` and `readiness shadow compare`."""

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.core.canary import VERDICT_WORDS
from dashboard.ui import canary_data as cd
from dashboard.ui import components as ui
from dashboard.ui.state import require_selection
from dashboard.ui.textdiff import show_text_diff

sel = require_selection()
st.title("Canary & shadow")
gen = cd.generation()
rows = cd.counts(gen)
qp = st.query_params


def releases_of(variant: str) -> list[str]:
    return [r["release_id"] for r in rows if r["variant"] == variant]


def reset_when_changed(key: str, chosen: list[str]) -> None:
    """A widget that belongs to a choice (the timeline's signal to a canary) starts afresh when that choice changes."""
    marker = f"_{key}_for"
    previous = st.session_state.get(marker)
    if previous is not None and previous != chosen:
        st.session_state.pop(key, None)
        qp.pop(key, None)
    st.session_state[marker] = chosen


def pick(label: str, options: list[str], key: str, preferred: str | None, help_: str) -> str:
    """A selectbox seeded from the URL, else the sidebar's release when it has observations, else the first."""
    wanted = qp.get(key)
    if key not in st.session_state or st.session_state[key] not in options:
        st.session_state[key] = wanted if wanted in options else (preferred if preferred in options else options[0])
    value = str(st.selectbox(label, options, key=key, help=help_))
    qp[key] = value
    return value


if not rows:
    st.info("No production observations are stored. Load them with `readiness observe FILE --release ID "
            "--variant baseline|canary|shadow` (JSONL, Parquet or OTLP JSON lines); see docs/canary.md.",
            icon=":material/info:")
    st.stop()

canary_tab, shadow_tab = st.tabs(["Canary", "Shadow"])
BANNERS = {"promote": (st.success, ":material/check_circle:"), "continue": (st.warning, ":material/pause_circle:"),
           "rollback": (st.error, ":material/undo:")}

with canary_tab:
    canaries, baselines = releases_of("canary"), releases_of("baseline")
    section = sel.policy.canary
    if not canaries or not baselines:
        st.info("A canary needs observations of variant `canary` and production observations of variant "
                "`baseline`.", icon=":material/info:")
    elif section is None:
        st.info(f"The policy {ui.esc(sel.policy_label)} has no `canary` section: choose one that has (the bundled "
                "case-management.yaml does); see docs/canary.md.", icon=":material/info:")
    else:
        c1, c2 = st.columns(2)
        with c1:
            release = pick("Canary release", canaries, "canary_release", sel.candidate,
                           "The release serving a share of production traffic.")
        with c2:
            baseline = pick("Production release", baselines, "canary_baseline", sel.baseline,
                            "The release in production; its requests in the canary's time window are the baseline.")
        judgement, timeline = cd.canary(gen, section.model_dump_json(), release, baseline)
        show, icon = BANNERS[judgement.verdict]
        lines = [f"## {icon} {VERDICT_WORDS[judgement.verdict]}",
                 f"Canary **{ui.esc(release)}** against **{ui.esc(baseline)}** · {judgement.canary_requests:,} canary "
                 f"and {judgement.baseline_requests:,} baseline requests · score {judgement.score_low:.0f}–"
                 f"{judgement.score_high:.0f} (promote at {judgement.pass_score:g}, roll back below "
                 f"{judgement.marginal_score:g})", ""]
        lines += [f"- {ui.esc(r)}" for r in judgement.reasons[:8]]
        show("\n".join(lines))
        if judgement.rollback:
            st.subheader("Roll back")
            ui.show_table([{"artifact": f"{t.kind} {t.name}", "canary version": t.canary_version or "(none)",
                            "roll back to": t.rollback_to or "(remove)", "method": t.method}
                           for t in judgement.rollback])
        st.subheader("Signals")
        order = {"critical": 0, "fail": 1, "no data": 2, "undecided": 3, "waiting": 4, "pass": 5, "ignored": 6}
        ranked = sorted(judgement.signals, key=lambda s: (order.get(s.status, 9), s.signal))

        def fmt(x: float | None, rate: bool, signed: bool = False) -> str:
            if x is None:
                return "n/a"
            if rate:
                return f"{100 * x:+.2f} pts" if signed else f"{100 * x:.2f}%"
            return f"{x:+.4g}" if signed else f"{x:.4g}"

        ui.show_table([{
            "status": s.status, "signal": s.signal, "group": s.group,
            "canary": fmt(s.canary, s.kind == "rate"), "baseline": fmt(s.baseline, s.kind == "rate"),
            "worse by": fmt(s.worse_by, s.kind == "rate", True),
            "always-valid interval": f"{fmt(s.worse_low, s.kind == 'rate', True)} to "
                                     f"{fmt(s.worse_high, s.kind == 'rate', True)}",
            "allowed": fmt(s.allowed, s.kind == "rate", True),
            "critical": fmt(s.critical, s.kind == "rate", True) if s.critical is not None else "",
            "n (canary / baseline)": f"{s.canary_n:,} / {s.baseline_n:,}"} for s in ranked])
        st.caption("Worse by: how much worse the canary is than the baseline in the signal's unit (positive = worse). "
                   "The interval stays valid however often the canary is judged (docs/canary.md), so a signal fails "
                   "only once the whole interval lies beyond its allowed effect.")

        st.subheader("Timeline")
        names = [s.signal for s in ranked]
        reset_when_changed("canary_signal", [release, baseline])
        signal = pick("Signal", names, "canary_signal", names[0] if names else None,
                      "Canary vs baseline at every look (every 500 canary requests).")
        points = [p for p in timeline if p["signal"] == signal]
        rate = next(s.kind == "rate" for s in judgement.signals if s.signal == signal)
        scale = 100.0 if rate else 1.0
        frame = pd.DataFrame(points)
        fig = go.Figure()
        if not frame.empty:
            x = frame["requests"]

            def y(col: str) -> list[float | None]:
                values = [None if v is None or pd.isna(v) else v * scale for v in frame[col]]
                if rate:  # a share lies in 0..100%: the interval's band is drawn within it
                    values = [None if v is None else min(100.0, max(0.0, v)) for v in values]
                return values

            fig.add_scatter(x=x, y=y("canary_high"), mode="lines", line={"width": 0}, showlegend=False,
                            hoverinfo="skip")
            fig.add_scatter(x=x, y=y("canary_low"), mode="lines", line={"width": 0}, fill="tonexty",
                            fillcolor="rgba(31,99,180,0.15)", name="canary, always-valid interval")
            fig.add_scatter(x=x, y=y("baseline"), mode="lines+markers", name="baseline",
                            line={"color": ui.BASELINE_COLOR, "width": 3, "dash": "dash"})
            fig.add_scatter(x=x, y=y("canary"), mode="lines+markers", name="canary",
                            line={"color": ui.CANDIDATE_COLOR, "width": 3})
            fig.add_scatter(x=x, y=y("allowed_line"), mode="lines", name="allowed limit",
                            line={"color": "#e69f00", "width": 2, "dash": "dot"})
            if frame["critical_line"].notna().any():
                fig.add_scatter(x=x, y=y("critical_line"), mode="lines", name="critical limit",
                                line={"color": "#d62728", "width": 2, "dash": "dashdot"})
            for verdict, colour in (("rollback", "#d62728"), ("promote", "#2ca02c")):
                first = frame[frame["verdict"] == verdict]
                if not first.empty:
                    fig.add_vline(x=int(first["requests"].iloc[0]), line={"color": colour, "width": 1},
                                  annotation_text=f"first {verdict} verdict", annotation_position="top left")
        fig.update_layout(title={"text": f"{ui.label(signal)}: canary vs baseline as traffic arrives",
                                 "font": {"size": 18}},
                          height=420, font={"size": 14}, xaxis_title="canary requests judged",
                          yaxis_title="% of requests" if rate else ui.label(signal),
                          margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25})
        st.plotly_chart(fig, width="stretch", key="canary_timeline")

with shadow_tab:
    shadows, baselines = releases_of("shadow"), releases_of("baseline")
    if not shadows or not baselines:
        st.info("A shadow comparison needs observations of variant `shadow` and production observations of variant "
                "`baseline` with the same request ids.", icon=":material/info:")
    else:
        c1, c2, c3 = st.columns([2, 2, 1])
        with c1:
            shadow_release = pick("Shadow release", shadows, "shadow_release", None,
                                  "The release that answered beside production without showing its answers.")
        with c2:
            shadow_base = pick("Production release", baselines, "shadow_baseline", sel.baseline,
                               "The release in production, paired by request id.")
        with c3:
            min_agreement = st.number_input("Minimum agreement", 0.0, 1.0, 0.9, 0.05, key="shadow_min",
                                            help="A slice shown below this (its 95% interval) is a warning.")
        report = cd.shadow(gen, shadow_release, shadow_base, float(min_agreement))
        blockers = [f for f in report.findings if f.severity == "blocker"]
        head = ("## :material/block: BLOCKED\n\n" if blockers else "## :material/check_circle: No blocker\n\n")
        summary = (f"Shadow **{ui.esc(shadow_release)}** against **{ui.esc(shadow_base)}** · "
                   f"{report.overall.pairs:,} paired requests ({report.unpaired_shadow_requests:,} unpaired)")
        (st.error if blockers else st.success)(head + summary)
        for f in report.findings:
            text = ui.esc(f.message) + (f" · requests {', '.join(ui.esc(r) for r in f.request_ids[:10])}"
                                        if f.request_ids else "")
            (st.error if f.severity == "blocker" else st.warning)(text)
        o = report.overall
        m1, m2, m3, m4, m5 = st.columns(5)
        m1.metric("exact agreement", "n/a" if o.exact.value is None else f"{100 * o.exact.value:.1f}%")
        m2.metric("normalised agreement", "n/a" if o.normalised.value is None else f"{100 * o.normalised.value:.1f}%")
        m3.metric("retrieval RBO", "n/a" if o.rbo.value is None else f"{o.rbo.value:.3f}",
                  help="Rank-biased overlap of the retrieved ids (p = 0.9); 1 = same ranking.")
        m4.metric("latency Δ", "n/a" if o.latency_delta_ms.value is None else f"{o.latency_delta_ms.value:+.0f} ms",
                  help="Shadow − production, mean over pairs"
                       + (f"; 95% interval {o.latency_delta_ms.low:+.0f} to {o.latency_delta_ms.high:+.0f} ms"
                          if o.latency_delta_ms.low is not None and o.latency_delta_ms.high is not None else ""))
        m5.metric("cost Δ", "n/a" if o.cost_relative is None else f"{100 * o.cost_relative:+.1f}%",
                  help="Shadow − production mean cost, relative to production's")

        def pct(v: float | None) -> float | None:
            return None if v is None else round(100 * v, 1)

        st.subheader("Per slice")
        ui.show_table([{
            "slice": f"{s.dimension}={s.value}", "pairs": s.pairs, "exact %": pct(s.exact.value),
            "normalised %": pct(s.normalised.value), "95% interval": "" if s.normalised.low is None
            else f"{100 * s.normalised.low:.0f}–{100 * (s.normalised.high or 0):.0f}%",
            "Jaccard": None if s.jaccard.value is None else round(s.jaccard.value, 3),
            "RBO": None if s.rbo.value is None else round(s.rbo.value, 3),
            "latency Δ ms": None if s.latency_delta_ms.value is None else round(s.latency_delta_ms.value),
            "cost Δ %": pct(s.cost_relative)} for s in [o, *report.slices]])

        if report.scores:
            st.subheader("Evaluator scores")
            ui.show_table([{"score": sc["score"], "pairs": sc["n"],
                            "shadow − production": None if sc["delta"] is None else round(sc["delta"], 4),
                            "95% interval": "" if sc["low"] is None or sc["high"] is None
                            else f"{sc['low']:+.4f} to {sc['high']:+.4f}"} for sc in report.scores])
        st.subheader("Most disagreeing requests")
        worst = report.most_disagreeing
        ui.show_table([{"request": w["request_id"], "slices": ", ".join(f"{k}={v}" for k, v in w["slices"].items()),
                        "same answer": "yes" if w["normalised"] else "no",
                        "answer similarity": None if w["answer_similarity"] is None else round(w["answer_similarity"], 2),
                        "retrieval RBO": None if w["rbo"] is None else round(w["rbo"], 2)} for w in worst])
        if worst:
            ids = [w["request_id"] for w in worst]
            reset_when_changed("shadow_pair", [shadow_release, shadow_base])
            request_id = pick("Open a request pair", ids, "shadow_pair", None,
                              "Production's and the shadow's answer side by side, with a text diff.")
            pair = cd.pair(gen, shadow_release, shadow_base, request_id)
            prod, shad = pair["production"] or {}, pair["shadow"] or {}
            if prod.get("answer") is not None and shad.get("answer") is not None:
                with st.expander("Answer: production → shadow (text diff)", expanded=prod["answer"] != shad["answer"]):
                    if prod["answer"] == shad["answer"]:
                        st.write("The answers are identical.")
                    else:
                        show_text_diff(prod["answer"], shad["answer"], "production", "shadow")
            left, right = st.columns(2)
            for col, who, rec in ((left, "Production", prod), (right, "Shadow", shad)):
                with col:
                    st.markdown(f"#### {who}")
                    if not rec:
                        st.write("No record.")
                        continue
                    ui.plain("Answer", rec.get("answer"))
                    st.caption("Retrieved evidence (rank order)")
                    other = shad if who == "Production" else prod
                    shared = set(other.get("retrieved_ids") or [])
                    ui.show_table([{"rank": i + 1, "evidence id": e, "also retrieved by the other": "yes" if e in shared
                                    else ""} for i, e in enumerate(rec.get("retrieved_ids") or [])])
                    st.caption("Tool calls, scores, latency and cost")
                    st.code(json.dumps({"tool_calls": rec.get("tool_calls"), "scores": rec.get("scores"),
                                        "latency_ms": rec.get("latency_ms"), "cost_usd": rec.get("cost_usd")},
                                       indent=2, default=str), language="json")
