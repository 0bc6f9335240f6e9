"""The operations on production observations that the CLI and the dashboard share: judge a canary, compare a
shadow. Statistics come from the store's SQL (store/observations.py), rules from the pure core (core/canary.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dashboard.core.canary import CanaryJudgement, judge, timeline
from dashboard.core.canary_policy import CanaryPolicy
from dashboard.core.errors import InputRefused
from dashboard.core.manifests import diff_manifests
from dashboard.core.policy import GatePolicy
from dashboard.core.shadow import DEFAULT_MIN_AGREEMENT, ShadowReport, build_report
from dashboard.store.db import Store
from dashboard.store.observations import canary_looks, shadow_comparison

LOOK_EVERY = 500  # canary requests between two looks of the dashboard's timeline


def canary_section(policy: GatePolicy, source: str = "the policy") -> CanaryPolicy:
    if policy.canary is None:
        raise InputRefused(f"{source}: has no `canary` section (see docs/canary.md)")
    return policy.canary


def judge_canary(store: Store, policy: CanaryPolicy, canary_release: str, baseline_release: str,
                 since: datetime | None = None, look_every: int | None = None,
                 ) -> tuple[CanaryJudgement, list[dict[str, Any]]]:
    """The judgement at the latest look, and (with `look_every`) the judge at every look before it."""
    signals = [s.signal for s in policy.signals]
    data = canary_looks(store, canary_release, baseline_release, signals, since, look_every)
    base_m, cand_m = store.manifest(baseline_release), store.manifest(canary_release)
    changes = diff_manifests(base_m, cand_m) if base_m is not None and cand_m is not None else None
    looks = data["looks"]
    if looks:
        stats = looks[-1]["stats"]
    else:
        stats = {}
    judgement = judge(policy, stats, canary_release, baseline_release, data["canary_requests"],
                      data["baseline_requests"], changes, (data["start"], data["end"]))
    return judgement, timeline(policy, looks) if look_every else []


def compare_shadow(store: Store, shadow_release: str, baseline_release: str,
                   min_agreement: float = DEFAULT_MIN_AGREEMENT, top: int = 20) -> ShadowReport:
    """The shadow release's answers, retrieval, cost and latency against production's, request by request."""
    raw = shadow_comparison(store, shadow_release, baseline_release, top)
    if raw["shadow_requests"] == 0:
        raise InputRefused(f"no shadow observations for release {shadow_release!r}: store them with "
                           "`readiness observe FILE --release ID --variant shadow`")
    return build_report(raw, shadow_release, baseline_release, min_agreement)
