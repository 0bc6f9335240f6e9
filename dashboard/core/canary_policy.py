"""The `canary` section of a gate policy: which production signals judge a canary, how much worse each may be,
which breaches roll it back at once, and how signal results add up to a score (docs/canary.md).

Kept apart from policy.py so that policy.py can hold it without an import cycle; the judge is core/canary.py.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dashboard.core.observations import FLAG_SIGNALS, NUMERIC_SIGNALS

Direction = Literal["increase", "decrease"]
Effect = Literal["absolute", "relative"]
SignalKind = Literal["rate", "mean"]

# Built-in signals: name -> (kind, the direction that is bad, what it is).
BUILTIN_SIGNALS: dict[str, tuple[SignalKind, Direction, str]] = {
    "error": ("rate", "increase", "share of requests that failed"),
    "citation_failure": ("rate", "increase", "share of answers with an unsupported or missing citation"),
    "refusal": ("rate", "increase", "share of requests refused"),
    "tool_error": ("rate", "increase", "share of requests with a failed tool call"),
    "safety_alert": ("rate", "increase", "share of requests raising a safety alert"),
    "schema_failure": ("rate", "increase", "share of outputs that broke the output schema"),
    "approval_bypass": ("rate", "increase", "share of requests running an approval-gated action without approval"),
    "fallback": ("rate", "increase", "share of requests served by a fallback"),
    "negative_feedback": ("rate", "increase", "share of negative feedback among requests with feedback"),
    "latency_ms": ("mean", "increase", "mean latency (ms); outliers weigh in: prefer latency_over.<ms>"),
    "cost_usd": ("mean", "increase", "mean cost per request (USD)"),
    "input_tokens": ("mean", "increase", "mean input tokens per request"),
    "output_tokens": ("mean", "increase", "mean output tokens per request"),
}
assert set(FLAG_SIGNALS) <= set(BUILTIN_SIGNALS) and set(NUMERIC_SIGNALS) <= set(BUILTIN_SIGNALS)
_SCORE = re.compile(r"^score\.([A-Za-z0-9_.\-]{1,100})$")
_LATENCY_OVER = re.compile(r"^latency_over\.([0-9]{1,7})$")


def signal_kind(name: str) -> tuple[SignalKind, Direction, str] | None:
    """(kind, bad direction, description) of a signal name, or None when it is not a known signal."""
    if name in BUILTIN_SIGNALS:
        return BUILTIN_SIGNALS[name]
    if _SCORE.match(name):
        return "mean", "decrease", f"mean online evaluator score {name[6:]!r}"
    m = _LATENCY_OVER.match(name)
    if m:
        return "rate", "increase", f"share of requests slower than {int(m.group(1))} ms (robust to outliers)"
    return None


def latency_bound(name: str) -> int | None:
    m = _LATENCY_OVER.match(name)
    return int(m.group(1)) if m else None


def score_name(name: str) -> str | None:
    m = _SCORE.match(name)
    return m.group(1) if m else None


class CanarySignal(BaseModel):
    """One signal the canary is judged on."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    signal: str = Field(description="error, citation_failure, refusal, tool_error, safety_alert, schema_failure, "
                        "approval_bypass, fallback, negative_feedback, latency_ms, cost_usd, input_tokens, "
                        "output_tokens, latency_over.<ms> or score.<evaluator>.")
    group: str = Field(default="default", min_length=1, description="The group it scores in (see groups).")
    direction: Direction | None = Field(default=None, description="Which change is bad: increase (error rates, "
                                        "latency, cost) or decrease (scores). Default: the signal's own.")
    effect: Effect = Field(default="absolute", description="absolute: allowed/critical are differences in the "
                           "signal's unit (0.01 = one point of a rate); relative: fractions of the baseline's value "
                           "(0.1 = 10% worse).")
    allowed: float = Field(ge=0, description="How much worse than the baseline the canary may be: the signal "
                           "passes once it is shown to be within this, fails once shown to be beyond it.")
    critical: float | None = Field(default=None, ge=0, description="A breach shown beyond this rolls the canary "
                                   "back at once, whatever the score. Null: not a critical signal.")
    must_have_data: bool = Field(default=True, description="Fail the signal when the canary has served enough "
                                 "requests but none carries it (fail closed). False: ignore it then.")
    min_n: int | None = Field(default=None, ge=1, description="Observations needed in both canary and baseline "
                              "before it is judged (default: the section's min_n).")

    @model_validator(mode="after")
    def _known(self) -> CanarySignal:
        if signal_kind(self.signal) is None:
            raise ValueError(f"unknown signal {self.signal!r} (use {', '.join(BUILTIN_SIGNALS)}, latency_over.<ms> "
                             "or score.<evaluator>)")
        return self

    @property
    def kind(self) -> SignalKind:
        known = signal_kind(self.signal)
        assert known is not None
        return known[0]

    @property
    def bad_direction(self) -> Direction:
        known = signal_kind(self.signal)
        assert known is not None
        return self.direction or known[1]


class CanaryPolicy(BaseModel):
    """How a canary is judged, again and again as traffic arrives (docs/canary.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="The chance, over the canary's whole life, of "
                         "rolling back a canary that is no worse than the baseline (split over the signals).")
    min_n: int = Field(default=500, ge=1, description="Default observations per signal before it is judged.")
    pass_score: float = Field(default=90.0, ge=0, le=100, description="Promote when the score, counting every "
                              "undecided signal as failed, is at least this.")
    marginal_score: float = Field(default=60.0, ge=0, le=100, description="Roll back when the score, counting "
                                  "every undecided signal as passed, is below this.")
    groups: dict[str, float] = Field(default_factory=lambda: {"default": 1.0}, description="Group -> weight of "
                                     "its share of passed signals in the score.")
    signals: list[CanarySignal] = Field(min_length=1, description="The signals judged.")

    @model_validator(mode="after")
    def _consistent(self) -> CanaryPolicy:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not be above pass_score")
        dupes = sorted(s for s, k in Counter(s.signal for s in self.signals).items() if k > 1)
        if dupes:
            raise ValueError(f"signal {dupes[0]!r} is listed twice")
        for name, weight in self.groups.items():
            if not weight > 0:
                raise ValueError(f"group {name!r}: a weight must be > 0")
        for s in self.signals:
            if s.group not in self.groups:
                raise ValueError(f"signal {s.signal!r} names unknown group {s.group!r} (groups: "
                                 f"{', '.join(self.groups)})")
        return self
