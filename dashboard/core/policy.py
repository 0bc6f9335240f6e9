"""Gate policies as code: a versioned YAML file of gates, profiles and change requirements.

A policy that does not parse, or names an unknown metric, profile, artifact kind or gate, is
refused before anything is judged, with the YAML line and the reason. docs/policy.md is the reference.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from dashboard.core.canary_policy import CanaryPolicy
from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused, Problem, parse_yaml, read_input_text
from dashboard.core.metrics import is_known_metric, metric_def, tool_metric, tool_metric_name
from dashboard.core.models import ARTIFACT_KINDS, RISK_LEVELS
from dashboard.core.rollout import RolloutPolicy

Category = Literal["quality", "rag", "agent", "tool", "security", "privacy_governance", "performance", "cost",
                   "observability", "rollback", "human_approval"]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
Severity = Literal["blocker", "warning", "informational"]
SEVERITY_ORDER = {"blocker": 0, "warning": 1, "informational": 2}
Op = Literal[">=", "<=", ">", "<", "==", "!="]
Statistic = Literal["value", "lower95", "upper95"]
PairedTest = Literal["no_regression", "non_inferior"]
PAIRED_METRICS = ("pass_rate", "critical_pass_rate", "high_risk_pass_rate")

# Limits on what a policy may ask for (docs/policy.md, "Limits"): a policy is read, parsed and judged in bounded
# time and memory, and anything larger is refused with the file and line.
MAX_POLICY_BYTES = 1 << 20  # 1 MiB of YAML
MAX_GATES = 1000  # gates in one policy
MAX_CONDITION_CHARS = 200  # characters in one condition
MAX_SLICES_PER_GATE = 1000  # values one for_each gate may expand into on the judged releases (more fails the gate)
MAX_EXPANDED_GATES = 20_000  # gate results one decision may hold after for_each expansion (more is refused)

_CONDITION_EXAMPLES = ("write e.g. '>= 0.98', '== 0', '>= baseline - 0.02', '<= baseline + 10%', "
                       "'<= baseline * 1.3', 'lower95 >= 0.95', 'no_regression 0.02' or 'non_inferior 0.02'")
_OPS = (">=", "<=", "==", "!=", ">", "<")


class _ConditionError(ValueError):
    pass


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:60]) + f"... ({len(text)} characters)"


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split a condition into (kind, text) tokens in one left-to-right pass (no backtracking): kinds are
    'op' (>= <= == != > <), 'sign' (+ - *), 'pct', 'word' ([a-z0-9_], starting with a letter) and 'num'
    (digits, an optional fraction, an optional exponent)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "<>=!":
            two = text[i:i + 2]
            if two in _OPS:
                out.append(("op", two))
                i += 2
            elif ch in "<>":
                out.append(("op", ch))
                i += 1
            else:
                raise _ConditionError(f"unexpected {ch!r}")
        elif ch in "+-*":
            out.append(("sign", ch))
            i += 1
        elif ch == "%":
            out.append(("pct", ch))
            i += 1
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(("word", text[i:j]))
            i = j
        elif ch.isascii() and (ch.isdigit() or ch == "."):
            j = i
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            digits = j - i
            if j < n and text[j] == ".":
                j += 1
                k = j
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
                digits += j - k
            if digits == 0:
                raise _ConditionError("a number needs digits")
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                m = k
                while m < n and text[m].isascii() and text[m].isdigit():
                    m += 1
                if m == k:
                    raise _ConditionError("an exponent needs digits")
                j = m
            out.append(("num", text[i:j]))
            i = j
        else:
            raise _ConditionError(f"unexpected {ch!r}")
    return out


def _number(sign: str | None, token: str) -> float:
    x = float(token)
    if not math.isfinite(x):
        raise _ConditionError(f"{_shown(token)} is not a finite number")
    return -x if sign == "-" else x


class Condition(BaseModel):
    """A parsed condition such as '>= 0.98', '== 0', '>= baseline - 0.02', '<= baseline + 10%', or a paired
    test on the cases both releases ran: 'no_regression', 'no_regression 0.02', 'non_inferior 0.02'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    op: Op
    statistic: Statistic = "value"
    threshold: float | None = None  # absolute threshold
    baseline_delta: float | None = None  # candidate OP baseline + delta
    baseline_ratio: float | None = None  # candidate OP baseline * ratio
    test: PairedTest | None = None  # paired test against the baseline instead of a threshold
    margin: float = 0.0

    @property
    def relative(self) -> bool:
        return self.threshold is None

    def bound(self, baseline: float | None) -> float | None:
        """The threshold the observed value is compared with (None: no baseline to compare with)."""
        if self.threshold is not None:
            return self.threshold
        if baseline is None:
            return None
        if self.baseline_ratio is not None:
            return baseline * self.baseline_ratio
        return baseline + (self.baseline_delta or 0.0)

    def holds(self, observed: float, bound: float) -> bool:
        eps = 1e-12 * max(1.0, abs(bound))  # tolerate float noise at the boundary, never more
        return {
            ">=": observed >= bound - eps, "<=": observed <= bound + eps, ">": observed > bound + eps,
            "<": observed < bound - eps, "==": abs(observed - bound) <= eps, "!=": abs(observed - bound) > eps,
        }[self.op]


def parse_condition(text: str) -> Condition:
    """Read a condition with a small grammar over its tokens (linear time in its length):

        condition := ("no_regression" | "non_inferior") [number]
                   | ["lower95" | "upper95"] op (["+" | "-"] number | "baseline" [("+" | "-" | "*") number ["%"]])
    """
    if len(text) > MAX_CONDITION_CHARS:
        raise ValueError(f"cannot read condition {_shown(text)}: longer than {MAX_CONDITION_CHARS} characters")
    try:
        return _parse_condition(text)
    except _ConditionError as e:
        raise ValueError(f"cannot read condition {_shown(text)}: {e}; {_CONDITION_EXAMPLES}") from None


def _parse_condition(text: str) -> Condition:
    toks = _tokens(text)
    pos = 0

    def peek(kind: str, value: str | None = None) -> bool:
        return pos < len(toks) and toks[pos][0] == kind and (value is None or toks[pos][1] == value)

    def take(kind: str, what: str) -> str:
        nonlocal pos
        if not peek(kind):
            got = repr(toks[pos][1]) if pos < len(toks) else "the end"
            raise _ConditionError(f"expected {what}, found {got}")
        pos += 1
        return toks[pos - 1][1]

    def end() -> None:
        if pos != len(toks):
            raise _ConditionError(f"unexpected {toks[pos][1]!r}")

    clean = text.strip()
    if peek("word") and toks[0][1] in ("no_regression", "non_inferior"):
        test = take("word", "a test")
        margin = 0.0
        if pos < len(toks):
            sign = take("sign", "a margin") if peek("sign") else None
            if sign == "*":
                raise _ConditionError("unexpected '*'")
            margin = _number(sign, take("num", "a margin"))
        end()
        if test == "non_inferior" and margin <= 0:
            raise ValueError(f"cannot read condition {_shown(text)}: non_inferior needs a margin, e.g. "
                             "'non_inferior 0.02'")
        if not 0 <= margin < 1:
            raise ValueError(f"cannot read condition {_shown(text)}: the margin is a difference of rates in [0, 1)")
        return Condition(text=clean, op=">=", test=test, margin=margin)
    stat = "value"
    if peek("word", "lower95") or peek("word", "upper95"):
        stat = take("word", "a statistic")
    op = take("op", "an operator (>=, <=, >, <, ==, !=)")
    if peek("word", "baseline"):
        pos += 1
        if pos == len(toks):
            return Condition(text=clean, op=op, statistic=stat, baseline_delta=0.0)
        sign = take("sign", "+, - or * after baseline")
        x = _number(None, take("num", "a number"))
        pct = peek("pct")
        if pct:
            pos += 1
        end()
        if sign == "*":
            if pct:
                raise ValueError(f"cannot read condition {_shown(text)}: use 'baseline * 1.1' or 'baseline + 10%'")
            return Condition(text=clean, op=op, statistic=stat, baseline_ratio=x)
        signed = x if sign == "+" else -x
        if pct:
            return Condition(text=clean, op=op, statistic=stat,
                             baseline_ratio=1.0 + signed / 100.0)
        return Condition(text=clean, op=op, statistic=stat, baseline_delta=signed)
    sign = take("sign", "a number or baseline") if peek("sign") else None
    if sign == "*":
        raise _ConditionError("unexpected '*'")
    value = _number(sign, take("num", "a number or baseline"))
    end()
    return Condition(text=clean, op=op, statistic=stat, threshold=value)


class SliceSpec(BaseModel):
    """Which cases a gate judges: filters over risk, suite and slice dimensions, optionally expanded
    into one gate per value of a dimension (`for_each`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk: list[str] | None = Field(default=None, description="Risk levels to keep.")
    suite: list[str] | None = Field(default=None, description="Eval suites to keep.")
    where: dict[str, list[str]] = Field(default_factory=dict, description="Slice dimension -> values to keep.")
    for_each: str | None = Field(default=None, description="Expand into one gate per value of this dimension "
                                                           "(risk, suite or a slice dimension).")

    @field_validator("risk")
    @classmethod
    def _known_risks(cls, v: list[str] | None) -> list[str] | None:
        for r in v or []:
            if r not in RISK_LEVELS:
                raise ValueError(f"unknown risk level {r!r} (use {', '.join(RISK_LEVELS)})")
        return v

    def label(self, value: str | None = None) -> str:
        parts = []
        if self.risk:
            parts.append("risk=" + "|".join(self.risk))
        if self.suite:
            parts.append("suite=" + "|".join(self.suite))
        parts += [f"{k}=" + "|".join(v) for k, v in sorted(self.where.items())]
        if self.for_each:
            parts.append(f"{self.for_each}={value if value is not None else '*'}")
        return ", ".join(parts) or "all cases"


class Gate(BaseModel):
    """One release condition (seed §9)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", description="Stable id, used in waivers and reports.")
    name: str = Field(min_length=1)
    category: Category
    severity: Severity
    metric: str
    condition: Condition
    slice: SliceSpec = Field(default_factory=SliceSpec)
    profiles: list[str] | None = Field(default=None, description="Profiles that run the gate; default all.")
    when_changed: list[str] | None = Field(default=None, description="Run only when these artifacts changed.")
    min_samples: int | None = Field(default=None, ge=1, description="Fewer cases: too small to judge (fails).")
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _tool_metric_keys(cls, data: Any) -> Any:
        """`score: exact_match` (with `stat: mean | pass_rate` and `at: <t>`) or `check: contains` name what an
        eval tool measured; they become the metric `score:exact_match`, `score:exact_match>=0.8` or
        `check:contains` (core/metrics.py), so the parsed policy and its digest have one form."""
        if not isinstance(data, dict) or not ({"score", "check", "stat", "at"} & data.keys()):
            return data
        data = dict(data)
        score, check = data.pop("score", None), data.pop("check", None)
        stat, at = data.pop("stat", None), data.pop("at", None)
        if "metric" in data or (score is None) == (check is None):
            raise ValueError("a gate names one of metric, score or check")
        if check is not None:
            if stat is not None or at is not None:
                raise ValueError("stat and at go with score: a check's metric is the share of cases it passed")
            data["metric"] = tool_metric_name("checks", str(check))
            return data
        if stat not in (None, "mean", "pass_rate"):
            raise ValueError(f"stat {stat!r}: use mean (the default) or pass_rate (with at: <threshold>)")
        if stat == "pass_rate" and at is None:
            raise ValueError("stat: pass_rate needs at: <threshold> (a case passes when its score is at least it)")
        if stat == "mean" and at is not None:
            raise ValueError("at: <threshold> goes with stat: pass_rate, not mean")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)):
            raise ValueError(f"at {at!r}: expected a number")
        data["metric"] = tool_metric_name("scores", str(score), float(at) if at is not None else None)
        return data

    @field_validator("condition", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        return parse_condition(v) if isinstance(v, str) else v

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if not is_known_metric(v):
            raise ValueError(f"unknown metric {v!r} (see `readiness metrics`)")
        return v

    @field_validator("when_changed")
    @classmethod
    def _known_kinds(cls, v: list[str] | None) -> list[str] | None:
        for k in v or []:
            if k not in ARTIFACT_KINDS:
                raise ValueError(f"unknown artifact kind {k!r} (use {', '.join(ARTIFACT_KINDS)})")
        return v

    @model_validator(mode="after")
    def _evidence_metric_condition(self) -> Gate:
        if self.metric.startswith("evidence.") and self.condition.relative:
            raise ValueError("an evidence metric is judged on its own (1 passed, 0 failed): use '== 1'")
        found = metric_def(self.metric)
        kind = found.kind if found is not None else "evidence"
        if self.condition.statistic != "value" and kind not in ("rate", "quantile", "ratio"):
            raise ValueError(f"{self.condition.statistic} needs a metric with an interval (a rate, percentile or "
                             f"cost per success); {self.metric} is a {kind}")
        tool = tool_metric(self.metric)
        if self.condition.test and self.metric not in PAIRED_METRICS and (tool is None or kind != "rate"):
            raise ValueError(f"{self.condition.test} compares per-case pass/fail on shared cases: use it with "
                             f"{', '.join(PAIRED_METRICS)}, a tool's check (check: name) or a score's pass rate "
                             "(score: name, stat: pass_rate, at: t)")
        return self


class ReviewPolicy(BaseModel):
    """Who must approve a release, by the application's risk level, and who may waive a failed blocker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk_level: Literal["low", "medium", "high", "critical"] = "high"
    quorum: dict[str, list[str]] = Field(default_factory=lambda: {
        "critical": ["engineering", "security", "risk"], "high": ["engineering", "security", "risk"],
        "medium": ["engineering", "product"], "low": ["engineering"]})
    waiver_roles: list[str] = Field(default_factory=lambda: ["risk", "security"])

    def required_roles(self) -> list[str]:
        return self.quorum.get(self.risk_level, [])


class GatePolicy(BaseModel):
    """A versioned gate policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str | None = None
    profiles: list[str] = Field(default_factory=lambda: ["release"], min_length=1)
    default_profile: str | None = None
    min_samples: int = Field(default=1, ge=1, description="Default minimum slice size for every gate.")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Significance level of paired tests.")
    dataset_governance_severity: Severity = Field(
        default="blocker", description="Severity of the built-in gate on removed or downgraded critical cases.")
    gates: list[Gate] = Field(min_length=1)
    change_requirements: dict[str, list[str]] = Field(
        default_factory=dict, description="Artifact kind -> evidence kinds a change of that kind requires.")
    change_requirement_severity: Severity = "blocker"
    suite_evidence: dict[str, list[str]] = Field(
        default_factory=dict, description="Evidence kind -> eval suites whose presence provides it.")
    review: ReviewPolicy = Field(default_factory=ReviewPolicy, description="Readiness-review quorum and waivers.")
    rollout: RolloutPolicy | None = Field(default=None, description="Rollout safety gates and the release train "
                                                                    "(docs/policy.md, Rollout safety).")
    # Not part of the gate policy's digest (exclude): the canary section judges production traffic after the gate
    # (core/canary.py), never the release decision, so adding one changes no decision digest.
    canary: CanaryPolicy | None = Field(default=None, exclude=True, description="How a canary of the release is "
                                        "judged in production (docs/canary.md).")

    @model_serializer(mode="wrap")
    def _omit_absent_rollout(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A policy without a rollout section keeps the bytes, and so the digest, it had before the section existed.
        data = handler(self)
        if data.get("rollout") is None:
            data.pop("rollout", None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> GatePolicy:
        dupes = sorted(i for i, k in Counter(g.id for g in self.gates).items() if k > 1)
        if dupes:
            raise ValueError(f"duplicate gate id {dupes[0]!r}")
        if self.default_profile is not None and self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not among profiles")
        for g in self.gates:
            for p in g.profiles or []:
                if p not in self.profiles:
                    raise ValueError(f"gate {g.id!r} names unknown profile {p!r} (profiles: {', '.join(self.profiles)})")
        for kind in self.change_requirements:
            if kind not in ARTIFACT_KINDS:
                raise ValueError(f"change_requirements names unknown artifact kind {kind!r}")
        for tier in self.rollout.tiers if self.rollout else []:
            if tier.profile is not None and tier.profile not in self.profiles:
                raise ValueError(f"tier {tier.name!r} names unknown profile {tier.profile!r} "
                                 f"(profiles: {', '.join(self.profiles)})")
        for rg in self.rollout.gates if self.rollout else []:
            if rg.id in {g.id for g in self.gates}:
                raise ValueError(f"rollout gate id {rg.id!r} is also a gate id")
            for p in rg.profiles or []:
                if p not in self.profiles:
                    raise ValueError(f"rollout gate {rg.id!r} names unknown profile {p!r} "
                                     f"(profiles: {', '.join(self.profiles)})")
        return self

    def gates_for(self, profile: str | None) -> list[Gate]:
        """The gates a profile runs (all gates when no profile is chosen and there is no default)."""
        chosen = profile or self.default_profile
        if chosen is not None and chosen not in self.profiles:
            raise InputRefused(f"unknown profile {chosen!r}: this policy has {', '.join(self.profiles)}")
        if chosen is None:
            return list(self.gates)
        return [g for g in self.gates if g.profiles is None or chosen in g.profiles]

    @property
    def digest(self) -> str:
        return digest(self.model_dump(mode="json"))


def _yaml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a Pydantic error location, or of its nearest parent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    if node is not None:
        line = node.start_mark.line + 1
    return line


def parse_policy(text: str, source: str = "<policy>") -> GatePolicy:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise InputRefused([Problem(source, "", "", f"the policy is larger than {MAX_POLICY_BYTES >> 20} MiB "
                                    "(docs/policy.md, Limits)")])
    data = parse_yaml(text, source)  # bounded depth; a parse error names the line
    if not isinstance(data, dict):
        raise InputRefused([Problem(source, "", "", "a policy must be a YAML mapping")])
    gates = data.get("gates")
    if isinstance(gates, list) and len(gates) > MAX_GATES:
        line = _yaml_line(text, ("gates",))
        raise InputRefused([Problem(source, f"line {line}" if line else "", "gates",
                                    f"{len(gates)} gates: a policy may hold at most {MAX_GATES} (docs/policy.md, "
                                    "Limits)")])
    try:
        return GatePolicy.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line = _yaml_line(text, loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (see docs/policy.md)"
            problems.append(Problem(source, f"line {line}" if line else "", ".".join(map(str, loc)), msg))
        raise InputRefused(problems) from e


def load_policy(path: str | Path) -> GatePolicy:
    """A policy file: a bounded regular file (refused before it is read when larger than the limit), parsed."""
    return parse_policy(read_input_text(path, "policy", MAX_POLICY_BYTES), str(path))

