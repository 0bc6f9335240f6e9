"""The canary judge: promote, continue or roll back a canary from production observations (seed §22, §25).

A canary is judged again and again as traffic arrives, so every interval here is an *always-valid* confidence
sequence: the chance that any look, ever, shows a difference the canary does not have is at most alpha. Method
(docs/canary.md): for each signal, the difference canary − baseline of means (a rate is a mean of 0/1) is
compared with the mixture sequential probability ratio test of Johari, Pekelis and Walsh (2017; Robbins' normal
mixture), in its confidence-sequence form

    half-width = sqrt( v (v + tau^2) / tau^2 * (2 log(1/alpha_k) + log((v + tau^2) / v)) ),

where v = var_c / n_c + var_b / n_b is the variance of the observed difference and tau the mixture's scale (the
signal's critical, else allowed, effect, at least a tenth of the baseline's standard deviation). alpha_k is alpha
split evenly over the policy's signals (Bonferroni), so the canary's whole life, every look and every signal
together, rolls back an unchanged canary at most alpha of the time. tests/test_canary_sim.py measures it.

Each signal is then *pass* (shown within its allowed effect), *fail* (shown beyond it), *critical* (shown beyond
its critical effect), *undecided*, *waiting* (fewer than min_n observations) or *no data*. The score (Kayenta's
scorer: per group the share of passed signals, weighted) is computed twice: undecided signals counted as failed
(low) and as passed (high). Promote when low >= pass_score; roll back on any critical breach or when high <
marginal_score; otherwise continue. A critical signal must pass before a promotion. Everything here is pure and vectorised over looks and simulated canaries.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from dashboard.core.canary_policy import CanaryPolicy, CanarySignal
from dashboard.core.manifests import ROLLBACK_METHOD, ArtifactChange
from dashboard.core.plain import md_text

Verdict = Literal["promote", "continue", "rollback"]
EXIT_CODES: dict[str, int] = {"promote": 0, "rollback": 1, "continue": 3}
PASS, UNDECIDED, FAIL, CRITICAL, NODATA, IGNORED, WAITING = range(7)
STATUS_NAMES = ("pass", "undecided", "fail", "critical", "no data", "ignored", "waiting")
V_PROMOTE, V_CONTINUE, V_ROLLBACK = 0, 1, 2
VERDICTS: tuple[Verdict, ...] = ("promote", "continue", "rollback")



class Moments(BaseModel):
    """Sufficient statistics of one signal in one variant: observations, sum and sum of squares."""

    n: float = Field(description="Requests that carry the signal.")
    total: float = Field(description="Sum of the signal's values (for a rate: how many were true).")
    squares: float = Field(description="Sum of the squared values.")


class SignalResult(BaseModel):
    """One signal's judgement at the latest look."""

    signal: str = Field(description="The signal's name.")
    group: str = Field(description="Its scoring group.")
    kind: str = Field(description="rate or mean.")
    direction: str = Field(description="The direction that is bad: increase or decrease.")
    status: str = Field(description="pass, undecided, fail, critical, no data, ignored or waiting.")
    canary_n: int = Field(description="Canary requests carrying the signal.")
    baseline_n: int = Field(description="Baseline requests carrying it (same time window).")
    canary: float | None = Field(description="The canary's mean (a rate: share of requests).")
    baseline: float | None = Field(description="The baseline's mean.")
    worse_by: float | None = Field(description="How much worse the canary is (positive = worse), in the signal's "
                                   "unit.")
    worse_low: float | None = Field(description="Lower end of the always-valid interval of worse_by.")
    worse_high: float | None = Field(description="Upper end of the always-valid interval of worse_by.")
    allowed: float | None = Field(description="The allowed worsening in the signal's unit (relative effects "
                                  "resolved against the baseline).")
    critical: float | None = Field(description="The critical worsening in the signal's unit; null: not critical.")
    min_n: int = Field(description="Observations needed in each variant before it is judged.")
    alpha: float = Field(description="This signal's share of the policy's alpha.")
    reason: str = Field(description="What the numbers mean, in words.")


class RollbackTarget(BaseModel):
    """One artifact the canary changed, and how to roll it back (seed §25)."""

    kind: str = Field(description="Artifact kind: code, image, prompts, model_routes, indexes, tools, ...")
    name: str = Field(description="The artifact's name in the manifest.")
    canary_version: str | None = Field(description="Its version in the canary (null: the canary removed it).")
    rollback_to: str | None = Field(description="The version to go back to: the baseline's (null: remove it).")
    method: str = Field(description="How it is rolled back.")


class CanaryJudgement(BaseModel):
    """The canary judge's verdict and everything it is based on."""

    verdict: Verdict = Field(description="promote, continue (not enough evidence either way) or rollback.")
    exit_code: int = Field(description="0 promote, 3 continue, 1 rollback.")
    canary_release: str = Field(description="The canary's release id.")
    baseline_release: str = Field(description="The baseline (production) release id.")
    window_start: datetime | None = Field(default=None, description="First request judged.")
    window_end: datetime | None = Field(default=None, description="Last request judged.")
    canary_requests: int = Field(description="Canary requests in the window.")
    baseline_requests: int = Field(description="Baseline requests in the window.")
    score_low: float = Field(description="Score (0-100) counting undecided signals as failed.")
    score_high: float = Field(description="Score counting undecided signals as passed.")
    pass_score: float = Field(description="The policy's pass score.")
    marginal_score: float = Field(description="The policy's marginal score.")
    reasons: list[str] = Field(description="Why, in plain words, most important first.")
    signals: list[SignalResult] = Field(description="Every signal's judgement.")
    rollback: list[RollbackTarget] = Field(default_factory=list, description="Rollback target and method per "
                                           "artifact the canary changed (on rollback; from the manifest diff).")
    manifests_known: bool = Field(default=True, description="False when a manifest was missing, so the rollback "
                                  "targets could not be listed.")


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def judge_arrays(policy: CanaryPolicy, n_c: Any, s_c: Any, ss_c: Any, n_b: Any, s_b: Any, ss_b: Any,
                 canary_requests: Any) -> dict[str, np.ndarray]:
    """The judge on arrays: statistics of shape (..., K) for the policy's K signals (in policy order) and the
    canary's request count of shape (...). Returns means, worsening and its interval, limits, status codes
    (..., K), the two scores and the verdict code (...). The one implementation of the rules: the CLI, the
    dashboard and the simulation all call it."""
    sig = policy.signals
    k = len(sig)
    n_c, s_c, ss_c, n_b, s_b, ss_b = (_arr(x) for x in (n_c, s_c, ss_c, n_b, s_b, ss_b))
    requests = _arr(canary_requests)
    is_rate = np.array([s.kind == "rate" for s in sig])
    sign = np.array([1.0 if s.bad_direction == "increase" else -1.0 for s in sig])
    relative = np.array([s.effect == "relative" for s in sig])
    allowed = np.array([s.allowed for s in sig])
    critical = np.array([np.nan if s.critical is None else s.critical for s in sig])
    min_n = np.array([s.min_n or policy.min_n for s in sig], dtype=float)
    must = np.array([s.must_have_data for s in sig])
    alpha_k = policy.alpha / k

    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c = np.where(n_c > 0, s_c / np.maximum(n_c, 1), np.nan)
        mean_b = np.where(n_b > 0, s_b / np.maximum(n_b, 1), np.nan)

        def variance(n: np.ndarray, s: np.ndarray, ss: np.ndarray, mean: np.ndarray) -> np.ndarray:
            p = (s + 0.5) / (n + 1.0)  # a rate's variance, kept away from 0 on few events
            rate_var = p * (1 - p)
            sample = (ss - s * s / np.maximum(n, 1)) / np.maximum(n - 1, 1)
            mean_var = np.maximum(sample, 0.0) + 1e-12 * (1.0 + np.nan_to_num(mean) ** 2)
            return np.where(is_rate, rate_var, mean_var)

        var_c = variance(n_c, s_c, ss_c, mean_c)
        var_b = variance(n_b, s_b, ss_b, mean_b)
        v = var_c / np.maximum(n_c, 1) + var_b / np.maximum(n_b, 1)
        scale = np.where(relative, np.abs(np.nan_to_num(mean_b)), 1.0)
        allowed_abs = allowed * scale
        critical_abs = critical * scale
        effect = np.where(np.isnan(critical_abs), allowed_abs, critical_abs)
        tau2 = np.maximum(np.maximum(effect, 0.1 * np.sqrt(var_b)), 1e-12) ** 2
        half = np.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha_k) + np.log((v + tau2) / v)))
        worse = sign * (mean_c - mean_b)
        low, high = worse - half, worse + half

    enough = (n_c >= min_n) & (n_b >= min_n)
    # No data: the canary served min_n requests and none carries the signal (its telemetry is broken or the signal
    # is not emitted at all): fails closed. A baseline without the signal only keeps it waiting (nothing to compare
    # with is not the canary's fault).
    nodata = (n_c == 0) & (requests[..., None] >= min_n)
    status = np.full(np.broadcast_shapes(n_c.shape, n_b.shape), UNDECIDED, dtype=np.int8)
    status[high <= allowed_abs] = PASS
    status[low > allowed_abs] = FAIL
    status[~np.isnan(critical_abs) & (low > critical_abs)] = CRITICAL
    status[~enough] = WAITING
    status[nodata & must] = NODATA
    status[nodata & ~must] = IGNORED

    groups = list(policy.groups)
    member = np.array([[s.group == g for s in sig] for g in groups])  # (G, K)
    weights = np.array([policy.groups[g] for g in groups])
    judged = (status != IGNORED)[..., None, :] & member  # (..., G, K)
    passed = (status == PASS)[..., None, :] & member
    undecided = np.isin(status, (UNDECIDED, WAITING))[..., None, :] & member
    n_judged = judged.sum(-1)
    has = n_judged > 0
    w = np.where(has, weights, 0.0)
    total_w = w.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        low_g = passed.sum(-1) / np.maximum(n_judged, 1)
        high_g = (passed.sum(-1) + undecided.sum(-1)) / np.maximum(n_judged, 1)
        score_low = np.where(total_w > 0, 100 * (w * low_g).sum(-1) / total_w, 0.0)
        score_high = np.where(total_w > 0, 100 * (w * high_g).sum(-1) / total_w, 100.0)
    any_critical = (status == CRITICAL).any(-1)
    # A critical signal must itself be shown within its allowed effect before a promotion (a score alone would let
    # an undecided critical signal through when the others pass).
    is_critical = ~np.isnan(critical)
    critical_cleared = (np.isin(status, (PASS, IGNORED)) | ~is_critical).all(-1)
    verdict = np.full(score_low.shape, V_CONTINUE, dtype=np.int8)
    verdict[(score_low >= policy.pass_score - 1e-9) & critical_cleared] = V_PROMOTE
    verdict[score_high < policy.marginal_score - 1e-9] = V_ROLLBACK
    verdict[any_critical] = V_ROLLBACK
    verdict[requests <= 0] = V_CONTINUE
    return {"canary": mean_c, "baseline": mean_b, "worse": worse, "low": low, "high": high,
            "allowed": allowed_abs, "critical": critical_abs, "status": status, "score_low": score_low,
            "score_high": score_high, "verdict": verdict, "alpha_k": np.full(k, alpha_k)}


def _num(x: float | None, rate: bool) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if rate:
        return f"{100 * x:.2f}%"
    return f"{x:,.4g}"


def _diff(x: float | None, rate: bool) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:+.2f} points" if rate else f"{x:+,.4g}"


def _finite(x: Any) -> float | None:
    f = float(x)
    return f if math.isfinite(f) else None


def _signal_reason(s: CanarySignal, r: dict[str, Any], min_n: int) -> str:
    rate = s.kind == "rate"
    status = r["status"]
    seen = f"canary {_num(r['canary'], rate)} vs baseline {_num(r['baseline'], rate)}"
    interval = (f"worse by {_diff(r['worse'], rate)} (always-valid interval {_diff(r['low'], rate)} to "
                f"{_diff(r['high'], rate)})")
    if status == "waiting":
        return f"waiting: {r['canary_n']:,} canary / {r['baseline_n']:,} baseline observations, {min_n:,} needed"
    if status in ("no data", "ignored"):
        return ("no data: the canary served enough requests but none carries this signal"
                + (" (fails closed)" if status == "no data" else " (ignored: must_have_data is false)"))
    limit = f"allowed {_diff(r['allowed'], rate)}"
    if status == "critical":
        return f"CRITICAL: {seen}; {interval} is beyond the critical limit {_diff(r['critical'], rate)}"
    if status == "fail":
        return f"fails: {seen}; {interval} is beyond the {limit}"
    if status == "pass":
        return f"passes: {seen}; {interval} is within the {limit}"
    return f"undecided: {seen}; {interval} still straddles the {limit}"


def rollback_targets(changes: list[ArtifactChange]) -> list[RollbackTarget]:
    """Every artifact the canary changed, with the version to go back to and the §25 method."""
    out = []
    for c in changes:
        method = ROLLBACK_METHOD.get(c.kind, "revert to the baseline's version")
        if c.baseline is None:
            method = f"remove it (new in the canary); {method}"
        out.append(RollbackTarget(kind=c.kind, name=c.name, canary_version=c.candidate, rollback_to=c.baseline,
                                  method=method))
    return out


def judge(policy: CanaryPolicy, stats: dict[str, tuple[Moments, Moments]], canary_release: str,
          baseline_release: str, canary_requests: int, baseline_requests: int,
          changes: list[ArtifactChange] | None, window: tuple[datetime | None, datetime | None] = (None, None),
          ) -> CanaryJudgement:
    """Judge a canary at its latest look. `stats`: signal -> (canary, baseline) moments; `changes`: the manifest
    diff baseline -> canary (None when a manifest is missing: the rollback targets are then unknown)."""
    empty = Moments(n=0, total=0, squares=0)
    rows = [stats.get(s.signal, (empty, empty)) for s in policy.signals]
    a = judge_arrays(policy, [c.n for c, _ in rows], [c.total for c, _ in rows], [c.squares for c, _ in rows],
                     [b.n for _, b in rows], [b.total for _, b in rows], [b.squares for _, b in rows],
                     canary_requests)
    results: list[SignalResult] = []
    for i, s in enumerate(policy.signals):
        vals: dict[str, Any] = {key: _finite(a[key][i]) for key in ("canary", "baseline", "worse", "low", "high",
                                                                   "allowed", "critical")}
        vals["status"] = STATUS_NAMES[int(a["status"][i])]
        vals["canary_n"], vals["baseline_n"] = int(rows[i][0].n), int(rows[i][1].n)
        min_n = s.min_n or policy.min_n
        results.append(SignalResult(
            signal=s.signal, group=s.group, kind=s.kind, direction=s.bad_direction, status=vals["status"],
            canary_n=vals["canary_n"], baseline_n=vals["baseline_n"], canary=vals["canary"],
            baseline=vals["baseline"], worse_by=vals["worse"], worse_low=vals["low"], worse_high=vals["high"],
            allowed=vals["allowed"], critical=vals["critical"], min_n=min_n, alpha=float(a["alpha_k"][i]),
            reason=_signal_reason(s, vals, min_n)))
    verdict = VERDICTS[int(a["verdict"])]
    lo, hi = float(a["score_low"]), float(a["score_high"])
    reasons: list[str] = []
    critical = [r for r in results if r.status == "critical"]
    for r in critical:
        reasons.append(f"Critical signal {r.signal} breached after {canary_requests:,} canary requests: {r.reason}.")
    if canary_requests == 0:
        reasons.append("No canary observations in the window: nothing to judge yet.")
    elif baseline_requests == 0:
        reasons.append(f"No baseline observations of {baseline_release} in the canary's time window: nothing to "
                       "compare with (store production's observations with --variant baseline).")
    elif verdict == "rollback" and not critical:
        reasons.append(f"Score at most {hi:.0f} (undecided signals counted as passed) is below the marginal score "
                       f"{policy.marginal_score:g}.")
    elif verdict == "promote":
        reasons.append(f"Score {lo:.0f} (undecided signals counted as failed) reaches the pass score "
                       f"{policy.pass_score:g}, and every critical signal is shown within its allowed effect.")
    elif verdict == "continue":
        reasons.append(f"Not enough evidence either way: score between {lo:.0f} and {hi:.0f} (pass at "
                       f"{policy.pass_score:g}, roll back below {policy.marginal_score:g}); keep the canary where "
                       "it is.")
    for r in results:
        if r.status in ("fail", "no data") or (verdict == "continue" and r.status in ("undecided", "waiting")):
            reasons.append(f"{r.signal}: {r.reason}.")
    targets = rollback_targets(changes or []) if verdict == "rollback" else []
    if verdict == "rollback" and changes is None:
        reasons.append("Rollback targets unknown: the canary's or the baseline's manifest is not in the store; roll "
                       "back the whole release to the baseline.")
    elif verdict == "rollback" and not targets:
        reasons.append("The manifests show no artifact change: roll traffic back to the baseline.")
    return CanaryJudgement(
        verdict=verdict, exit_code=EXIT_CODES[verdict], canary_release=canary_release,
        baseline_release=baseline_release, window_start=window[0], window_end=window[1],
        canary_requests=canary_requests, baseline_requests=baseline_requests, score_low=lo, score_high=hi,
        pass_score=policy.pass_score, marginal_score=policy.marginal_score, reasons=reasons, signals=results,
        rollback=targets, manifests_known=changes is not None)


def timeline(policy: CanaryPolicy, looks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The judge at every look. `looks`: [{"requests": canary requests so far, "time": ..., "stats": signal ->
    (canary, baseline) moments (cumulative)}]. Returns one row per look and signal: values, interval, limits
    (in the signal's unit, as thresholds on the canary's value: baseline + allowed in the bad direction), status,
    and the look's verdict."""
    if not looks:
        return []
    empty = Moments(n=0, total=0, squares=0)
    cols: dict[str, list[list[float]]] = {k: [] for k in ("nc", "sc", "ssc", "nb", "sb", "ssb")}
    for look in looks:
        rows = [look["stats"].get(s.signal, (empty, empty)) for s in policy.signals]
        cols["nc"].append([c.n for c, _ in rows])
        cols["sc"].append([c.total for c, _ in rows])
        cols["ssc"].append([c.squares for c, _ in rows])
        cols["nb"].append([b.n for _, b in rows])
        cols["sb"].append([b.total for _, b in rows])
        cols["ssb"].append([b.squares for _, b in rows])
    a = judge_arrays(policy, cols["nc"], cols["sc"], cols["ssc"], cols["nb"], cols["sb"], cols["ssb"],
                     [look["requests"] for look in looks])
    out = []
    for j, look in enumerate(looks):
        for i, s in enumerate(policy.signals):
            sign = 1.0 if s.bad_direction == "increase" else -1.0
            base = _finite(a["baseline"][j, i])
            allowed, crit = _finite(a["allowed"][j, i]), _finite(a["critical"][j, i])
            out.append({
                "requests": int(look["requests"]), "time": look.get("time"), "signal": s.signal,
                "canary": _finite(a["canary"][j, i]), "baseline": base,
                "allowed_line": None if base is None or allowed is None else base + sign * allowed,
                "critical_line": None if base is None or crit is None else base + sign * crit,
                "canary_low": None if base is None or _finite(a["low"][j, i]) is None
                else base + sign * float(a["low"][j, i]),
                "canary_high": None if base is None or _finite(a["high"][j, i]) is None
                else base + sign * float(a["high"][j, i]),
                "status": STATUS_NAMES[int(a["status"][j, i])], "verdict": VERDICTS[int(a["verdict"][j])]})
    return out


# ----- renderings ----------------------------------------------------------------------------------------------
VERDICT_WORDS = {"promote": "PROMOTE", "continue": "CONTINUE (keep the canary where it is)", "rollback": "ROLLBACK"}


def to_text(j: CanaryJudgement) -> str:
    lines = [f"{VERDICT_WORDS[j.verdict]}: canary {j.canary_release} against {j.baseline_release}",
             f"window: {j.window_start} .. {j.window_end}; {j.canary_requests:,} canary and {j.baseline_requests:,} "
             f"baseline requests; score {j.score_low:.0f}..{j.score_high:.0f} (pass {j.pass_score:g}, marginal "
             f"{j.marginal_score:g})", ""]
    lines += [f"- {r}" for r in j.reasons]
    if j.rollback:
        lines += ["", "roll back:"]
        lines += [f"  {t.kind} {t.name}: {t.canary_version} -> {t.rollback_to}: {t.method}" for t in j.rollback]
    lines += ["", "signals:"]
    for s in j.signals:
        lines.append(f"  {s.status:<9} {s.signal} [{s.group}] {s.reason}")
    return "\n".join(lines) + "\n"


def to_markdown(j: CanaryJudgement) -> str:
    """Markdown for a PR or chat: untrusted text (ids, signal names) only as code spans (core/plain.py)."""
    lines = [f"## Canary: {VERDICT_WORDS[j.verdict]}", "",
             f"Canary {md_text(j.canary_release)} against {md_text(j.baseline_release)} · "
             f"{j.canary_requests:,} canary / {j.baseline_requests:,} baseline requests · score "
             f"{j.score_low:.0f}–{j.score_high:.0f} (pass {j.pass_score:g}, marginal {j.marginal_score:g})", ""]
    lines += [f"- {md_text(r)}" for r in j.reasons]
    if j.rollback:
        lines += ["", "### Roll back", "", "| artifact | canary | roll back to | method |", "|---|---|---|---|"]
        lines += [f"| {md_text(t.kind + ' ' + t.name, True)} | {md_text(t.canary_version, True)} | "
                  f"{md_text(t.rollback_to, True)} | "
                  f"{t.method} |" for t in j.rollback]
    lines += ["", "### Signals", "", "| status | signal | canary | baseline | worse by (interval) | allowed |",
              "|---|---|---|---|---|---|"]
    for s in j.signals:
        rate = s.kind == "rate"
        lines.append(f"| {s.status} | {md_text(s.signal, True)} | {_num(s.canary, rate)} | {_num(s.baseline, rate)} | "
                     f"{_diff(s.worse_by, rate)} ({_diff(s.worse_low, rate)} to {_diff(s.worse_high, rate)}) | "
                     f"{_diff(s.allowed, rate)} |")
    return "\n".join(lines) + "\n"
