"""Gate policies as code: a versioned YAML file of gates, profiles and change requirements.

A policy that does not parse, or names an unknown metric, profile, artifact kind or gate, is
refused before anything is judged, with the YAML line and the reason. docs/policy.md is the reference.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dashboard.core.canonical import digest
from dashboard.core.errors import InputRefused, Problem, parse_yaml, read_text
from dashboard.core.metrics import CATALOGUE, is_known_metric
from dashboard.core.models import ARTIFACT_KINDS, RISK_LEVELS

Category = Literal["quality", "rag", "agent", "tool", "security", "privacy_governance", "performance", "cost",
                   "observability", "rollback", "human_approval"]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
Severity = Literal["blocker", "warning", "informational"]
SEVERITY_ORDER = {"blocker": 0, "warning": 1, "informational": 2}
Op = Literal[">=", "<=", ">", "<", "==", "!="]
Statistic = Literal["value", "lower95", "upper95"]
PairedTest = Literal["no_regression", "non_inferior"]
PAIRED_METRICS = ("pass_rate", "critical_pass_rate", "high_risk_pass_rate")

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COND = re.compile(
    rf"^\s*(?:(?P<stat>lower95|upper95)\s+)?(?P<op>>=|<=|==|!=|>|<)\s*"
    rf"(?:(?P<abs>{_NUM})|baseline(?:\s*(?P<sign>[-+*])\s*(?P<amount>{_NUM})\s*(?P<pct>%)?)?)\s*$"
)


_PAIRED = re.compile(rf"^\s*(?P<test>no_regression|non_inferior)(?:\s+(?P<margin>{_NUM}))?\s*$")


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
    paired = _PAIRED.match(text)
    if paired:
        margin = float(paired["margin"]) if paired["margin"] else 0.0
        if paired["test"] == "non_inferior" and margin <= 0:
            raise ValueError(f"cannot read condition {text!r}: non_inferior needs a margin, e.g. 'non_inferior 0.02'")
        if not 0 <= margin < 1:
            raise ValueError(f"cannot read condition {text!r}: the margin is a difference of rates in [0, 1)")
        return Condition(text=text.strip(), op=">=", test=paired["test"], margin=margin)
    m = _COND.match(text)
    if not m:
        raise ValueError(
            f"cannot read condition {text!r}: write e.g. '>= 0.98', '== 0', '>= baseline - 0.02', "
            "'<= baseline + 10%', '<= baseline * 1.3', 'lower95 >= 0.95', 'no_regression 0.02' or "
            "'non_inferior 0.02'"
        )
    stat = m["stat"] or "value"
    if m["abs"] is not None:
        return Condition(text=text.strip(), op=m["op"], statistic=stat, threshold=float(m["abs"]))
    sign, amount, pct = m["sign"], m["amount"], m["pct"]
    if sign is None:
        return Condition(text=text.strip(), op=m["op"], statistic=stat, baseline_delta=0.0)
    x = float(amount)
    if sign == "*":
        if pct:
            raise ValueError(f"cannot read condition {text!r}: use 'baseline * 1.1' or 'baseline + 10%'")
        return Condition(text=text.strip(), op=m["op"], statistic=stat, baseline_ratio=x)
    signed = x if sign == "+" else -x
    if pct:
        return Condition(text=text.strip(), op=m["op"], statistic=stat, baseline_ratio=1.0 + signed / 100.0)
    return Condition(text=text.strip(), op=m["op"], statistic=stat, baseline_delta=signed)


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
        kind = CATALOGUE[self.metric].kind if self.metric in CATALOGUE else "evidence"
        if self.condition.statistic != "value" and kind not in ("rate", "quantile", "ratio"):
            raise ValueError(f"{self.condition.statistic} needs a metric with an interval (a rate, percentile or "
                             f"cost per success); {self.metric} is a {kind}")
        if self.condition.test and self.metric not in PAIRED_METRICS:
            raise ValueError(f"{self.condition.test} compares per-case pass/fail on shared cases: use it with "
                             f"{', '.join(PAIRED_METRICS)}")
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

    @model_validator(mode="after")
    def _consistent(self) -> GatePolicy:
        ids = [g.id for g in self.gates]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
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
    data = parse_yaml(text, source)  # bounded depth; a parse error names the line
    if not isinstance(data, dict):
        raise InputRefused([Problem(source, "", "", "a policy must be a YAML mapping")])
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
    return parse_policy(read_text(path, "policy"), str(path))

