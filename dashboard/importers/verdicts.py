"""A case's verdict from a tool that scores but does not judge (MLflow, Ragas).

A metric whose scores in a file are all 0 or 1 (exact_match, string_present, a custom pass/fail metric) is a
check. `--pass-if 'faithfulness>=0.8,answer_relevancy>=0.7'` adds a check per condition. A case passes when all
its checks pass; a file with no check at all is refused (a case that cannot fail would pass every gate).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from dashboard.core.errors import InputRefused

PassIf = tuple[tuple[str, str, float], ...]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_CONDITION = re.compile(r"^\s*(?P<metric>[^<>=\s][^<>=]*?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?\d+(\.\d+)?)\s*$")


def parse_pass_if(text: str | None) -> PassIf:
    """'m>=0.8,n<0.2' as ((m, '>=', 0.8), (n, '<', 0.2)); a clear refusal for anything else."""
    if not text:
        return ()
    out = []
    for part in text.split(","):
        m = _CONDITION.match(part)
        if not m:
            raise InputRefused(f"--pass-if {part.strip()!r}: expected <metric><op><number>, op one of >=, >, <=, <"
                               " (e.g. 'faithfulness>=0.8')")
        out.append((m["metric"], m["op"], float(m["value"])))
    return tuple(out)


def condition_name(metric: str, op: str, value: float) -> str:
    return f"{metric}{op}{value:g}"


def binary_metrics(metrics: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics whose every present value is 0 or 1 (and which have at least one value)."""
    out = []
    for m in metrics:
        values = [r[m] for r in rows if isinstance(r.get(m), int | float) and not isinstance(r.get(m), bool)]
        if values and all(v in (0, 1) for v in values) and len(values) == sum(
                1 for r in rows if r.get(m) is not None):
            out.append(m)
    return out


def judged(scores: dict[str, float], binary: Sequence[str], pass_if: PassIf,
           expected: Sequence[str]) -> tuple[dict[str, bool], bool, str | None]:
    """(checks, passed, error) of one case: a missing or non-finite score of a metric the verdict needs fails the
    case and says which."""
    checks = {m: scores[m] == 1.0 for m in binary if m in scores}
    for metric, op, value in pass_if:
        if metric in scores:
            checks[condition_name(metric, op, value)] = _OPS[op](scores[metric], value)
    needed = [*binary, *(m for m, _, _ in pass_if)]
    missing = sorted({m for m in needed if m not in scores or not math.isfinite(scores[m])} |
                     {m for m in expected if m not in scores})
    error = f"no score for {', '.join(missing)}" if missing else None
    return checks, bool(checks) and all(checks.values()) and not missing, error


def no_verdict_message(metrics: Sequence[str]) -> str:
    return ("no metric is pass/fail (every score 0 or 1), so no case has a verdict; its metrics: "
            f"{', '.join(metrics) or 'none'}. Add a 0/1 metric (e.g. exact_match) or name thresholds with "
            "--pass-if 'metric>=0.8'")
