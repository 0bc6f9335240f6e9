"""The Canary & shadow page's way to the store: the same operations as `readiness canary judge` and
`readiness shadow compare` (dashboard/canarying.py), cached per observation generation."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.canarying import LOOK_EVERY, compare_shadow, judge_canary
from dashboard.core.canary import CanaryJudgement
from dashboard.core.canary_policy import CanaryPolicy
from dashboard.core.shadow import ShadowReport
from dashboard.store.observations import observation_counts, observation_generation, shadow_pair
from dashboard.ui import data


def generation() -> str:
    return observation_generation(data.store())


@st.cache_data(show_spinner=False)
def counts(gen: str) -> list[dict[str, Any]]:
    return observation_counts(data.store())


@st.cache_data(show_spinner="Judging the canary ...")
def canary(gen: str, policy_json: str, release: str, baseline: str) -> tuple[CanaryJudgement, list[dict[str, Any]]]:
    policy = CanaryPolicy.model_validate_json(policy_json)
    return judge_canary(data.store(), policy, release, baseline, look_every=LOOK_EVERY)


@st.cache_data(show_spinner="Comparing the shadow with production ...")
def shadow(gen: str, release: str, baseline: str, min_agreement: float) -> ShadowReport:
    return compare_shadow(data.store(), release, baseline, min_agreement, top=50)


@st.cache_data(show_spinner=False)
def pair(gen: str, release: str, baseline: str, request_id: str) -> dict[str, Any]:
    return shadow_pair(data.store(), release, baseline, request_id)
