"""Statistics for gate results: intervals, paired tests and multiplicity control.

Everything here is deterministic: exact tests, closed-form intervals, and bootstraps that either
are computed exactly or draw from a fixed seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a cached decision is shown without numpy (issue 15)
    import numpy as np


# scipy.stats takes seconds to import on a loaded 2-core host: imported when a test needs it, so a decision served
# from the cache (and the dashboard's first paint) never pays for it.
def _scipy_stats() -> ModuleType:
    import scipy.stats

    return scipy.stats


def _binom_sf(k: int, n: int, p: np.ndarray) -> np.ndarray:
    """scipy.stats.binom.sf(k, n, p) for 0 <= k < n, 0 <= p <= 1: the very ufunc it calls (scipy.special's
    `_binom_sf`, Boost's binomial survival function), without importing scipy.stats (~0.4-0.8 s on this host; issue 15).
    Falls back to scipy.stats when a SciPy release moves the ufunc; tests/test_speed_stats.py compares the two."""
    import numpy as np

    try:
        from scipy.special._ufuncs import _binom_sf as sf
    except ImportError:  # pragma: no cover (another SciPy layout)
        return np.asarray(_scipy_stats().binom.sf(k, n, p))
    return np.asarray(sf(float(k), float(n), p))


def _ufuncs() -> ModuleType | None:
    """scipy.special's compiled functions behind scipy.stats.binom and scipy.stats.norm (issue 15: importing
    scipy.stats costs 0.4-0.8 s of a cold judgement on this host; scipy.special about half of that). None when a SciPy
    release moves them: the callers then use scipy.stats itself."""
    try:
        from scipy.special import _ufuncs as u
    except ImportError:  # pragma: no cover (another SciPy layout)
        return None
    return u if all(hasattr(u, f) for f in ("_binom_pmf", "_binom_cdf", "_binom_sf", "ndtr")) else None


# scipy.stats.binom.pmf / cdf / sf and norm.cdf for one point, step for step as scipy.stats' rv_discrete and
# rv_continuous compute them (support checks, floor, clip to [0, 1], the same ufunc): the same floats bit for bit
# (tests/test_speed_stats.py compares them over grids). n >= 1 an integer, 0 <= p <= 1.
def _binom_pmf1(u: ModuleType, k: float, n: int, p: float) -> float:
    import numpy as np

    if not 0 <= k <= n or math.floor(k) != k:
        return 0.0
    return float(np.clip(u._binom_pmf(float(k), float(n), float(p)), 0, 1))


def _binom_cdf1(u: ModuleType, k: float, n: int, p: float) -> float:
    import numpy as np

    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    return float(np.clip(u._binom_cdf(float(math.floor(k)), float(n), float(p)), 0, 1))


def _binom_sf1(u: ModuleType, k: float, n: int, p: float) -> float:
    import numpy as np

    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return float(np.clip(u._binom_sf(float(math.floor(k)), float(n), float(p)), 0, 1))


def _binomtest_two_sided(u: ModuleType, k: int, n: int, p: float) -> float:
    """scipy.stats.binomtest(k, n, p, alternative="two-sided").pvalue (SciPy 1.17's algorithm, unchanged)."""
    import numpy as np

    d = _binom_pmf1(u, k, n, p)
    rerr = 1 + 1e-7
    pval: float
    if k == p * n:
        pval = 1.0
    elif k < p * n:
        ix = _search_binom(lambda x1: -_binom_pmf1(u, x1, n, p), -d * rerr, float(np.ceil(p * n)), n)
        y = n - ix + int(d * rerr == _binom_pmf1(u, ix, n, p))
        pval = _binom_cdf1(u, k, n, p) + _binom_sf1(u, n - y, n, p)
    else:
        ix = _search_binom(lambda x1: _binom_pmf1(u, x1, n, p), d * rerr, 0, float(np.floor(p * n)))
        y = ix + 1
        pval = _binom_cdf1(u, y - 1, n, p) + _binom_sf1(u, k - 1, n, p)
    return min(1.0, pval)


def _search_binom(a: Callable[[float], float], d: float, lo: float, hi: float) -> float:
    """scipy.stats._binomtest._binary_search_for_binom_tst: i in [lo, hi] with a(i) <= d < a(i + 1)."""
    while lo < hi:
        mid = lo + (hi - lo) // 2
        midval = a(mid)
        if midval < d:
            lo = mid + 1
        elif midval > d:
            hi = mid - 1
        else:
            return mid
    return lo if a(lo) <= d else lo - 1


Z95 = 1.959963984540054  # float(scipy.stats.norm.ppf(0.975)), exactly (tests/test_stats.py)
BOOTSTRAP_SEED = 20261126
BOOTSTRAP_REPS = 1000
BOOTSTRAP_MAX_N = 20_000  # above this, m-out-of-n bootstrap with sqrt(m/n) rescaling


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (95% by default); None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Paired:
    """Outcomes of the cases both releases ran (same suite, case id and content digest; one designated repeat
    per case), and of the changed cases (same suite and case id, different content), which cannot be paired."""

    both_pass: int  # n11
    regressions: int  # n10: baseline passed, candidate failed
    fixes: int  # n01: baseline failed, candidate passed
    both_fail: int  # n00
    changed: int = 0  # cases whose content differs between the releases
    changed_passed: int = 0  # ... that pass in the candidate
    changed_baseline_passed: int = 0  # ... that passed in the baseline (its own version of the case)
    max_repeats: int = 1  # the most repeats any of these cases had in either release

    @property
    def n(self) -> int:
        return self.both_pass + self.regressions + self.fixes + self.both_fail

    @property
    def diff(self) -> float:
        """Candidate pass rate minus baseline pass rate on the shared cases."""
        return (self.fixes - self.regressions) / self.n if self.n else 0.0


def mcnemar_exact(regressions: int, fixes: int) -> float:
    """Two-sided exact McNemar p-value (binomial test of the discordant pairs)."""
    k = regressions + fixes
    if k == 0:
        return 1.0
    u = _ufuncs()
    if u is None:  # pragma: no cover (another SciPy layout)
        return float(_scipy_stats().binomtest(regressions, k, 0.5, alternative="two-sided").pvalue)
    return float(_binomtest_two_sided(u, regressions, k, 0.5))


def paired_diff_interval(p: Paired, z: float = Z95) -> tuple[float, float] | None:
    """95% interval of the paired difference (Agresti–Min: Wald after adding 0.5 to each cell)."""
    if p.n == 0:
        return None
    n11, n10, n01, n00 = (x + 0.5 for x in (p.both_pass, p.regressions, p.fixes, p.both_fail))
    n = n11 + n10 + n01 + n00
    d = (n01 - n10) / n
    var = ((n10 + n01) - (n01 - n10) ** 2 / n) / n**2
    half = z * math.sqrt(max(var, 0.0))
    return max(-1.0, d - half), min(1.0, d + half)


def regression_p_value(p: Paired, margin: float = 0.0) -> float:
    """One-sided p-value for 'the candidate is worse than the baseline by more than `margin`'.

    margin 0: exact McNemar (conditional binomial of discordant pairs). margin > 0: a Wald test of the
    paired difference against -margin with the Agresti–Min adjustment.
    """
    if p.n == 0:
        return 1.0
    if margin <= 0:
        k = p.regressions + p.fixes
        if not k:
            return 1.0
        u = _ufuncs()
        return float(_binom_sf1(u, p.regressions - 1, k, 0.5) if u is not None
                     else _scipy_stats().binom.sf(p.regressions - 1, k, 0.5))
    n11, n10, n01, n00 = (x + 0.5 for x in (p.both_pass, p.regressions, p.fixes, p.both_fail))
    n = n11 + n10 + n01 + n00
    d = (n01 - n10) / n
    se = math.sqrt(max(((n10 + n01) - (n01 - n10) ** 2 / n) / n**2, 1e-18))
    u = _ufuncs()
    x = (d + margin) / se
    return float(u.ndtr(x) if u is not None else _scipy_stats().norm.cdf(x))


def changed_p_value(p: Paired, margin: float = 0.0) -> float:
    """One-sided p-value for 'on the changed cases the candidate passes less often than the baseline did' (by
    more than `margin`): unpaired, since a changed case is not the same case. margin 0: Fisher's exact test;
    margin > 0: a Wald test of the difference of proportions (0.5 added to each cell) against -margin."""
    if p.changed == 0:
        return 1.0
    c_pass, b_pass, n = p.changed_passed, p.changed_baseline_passed, p.changed
    if margin <= 0:
        return float(_scipy_stats().fisher_exact([[c_pass, n - c_pass], [b_pass, n - b_pass]],
                                                 alternative="less").pvalue)
    pc, pb = (c_pass + 0.5) / (n + 1), (b_pass + 0.5) / (n + 1)
    se = math.sqrt(max(pc * (1 - pc) / (n + 1) + pb * (1 - pb) / (n + 1), 1e-18))
    return float(_scipy_stats().norm.cdf((pc - pb + margin) / se))


def changed_diff_lower(p: Paired, z: float = Z95) -> float:
    """Lower 95% bound of the candidate-minus-baseline pass rate on the changed cases (Wald, 0.5 per cell)."""
    n = p.changed + 1
    pc, pb = (p.changed_passed + 0.5) / n, (p.changed_baseline_passed + 0.5) / n
    return max(-1.0, pc - pb - z * math.sqrt(pc * (1 - pc) / n + pb * (1 - pb) / n))


def slice_p_value(p: Paired, margin: float = 0.0) -> tuple[float, float | None]:
    """The regression p-value of one slice and the changed cases' own p (None without changed cases).

    Shared cases get the paired test, changed cases the unpaired one; the two are combined by a weighted
    Bonferroni test with weights proportional to the number of cases (shared n, changed m): the slice's p is
    min(1, p_paired / w, p_changed / (1 - w)) with w = n / (n + m), so the slice keeps its level. Without
    changed cases it is the paired p itself."""
    paired = regression_p_value(p, margin)
    if p.changed == 0:
        return paired, None
    changed = changed_p_value(p, margin)
    w = p.n / (p.n + p.changed)
    combined = min(1.0, paired / w if w > 0 else 1.0, changed / (1 - w))
    return combined, changed


def holm_levels(p_values: list[float], alpha: float) -> list[float]:
    """Holm's step-down procedure across families: the level each family is judged at, in the input order.

    Families are taken in increasing p (ties in input order); the r-th (0-based) of K is tested at
    alpha / (K - r); at the first that is not below its level, it and all later families keep that level (and,
    since their p is no smaller, are not rejected). Controls the probability of rejecting any true null at alpha,
    whatever the dependence between the families."""
    k = len(p_values)
    order = sorted(range(k), key=lambda i: (p_values[i], i))
    levels = [alpha] * k
    stopped: float | None = None
    for rank, i in enumerate(order):
        level = alpha / (k - rank)
        if stopped is None and p_values[i] >= level:
            stopped = level
        levels[i] = level if stopped is None else stopped
    return levels


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """BH-adjusted p-values (step-up, monotone), in the input order."""
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = running
    return adjusted


def quantile_interval_ranks(n: int, q: float, level: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (lo, hi) of the order statistics bounding the bootstrap percentile interval of the
    q-quantile, computed exactly (the limit of infinitely many resamples): the resampled quantile is x_(j) with
    probability given by Binomial(n, j/n). They depend on n alone, so only two values need to be fetched."""
    import numpy as np

    if n <= 0:
        return None
    need = max(1, math.ceil(q * n))  # resample's q-quantile <= x_(j)  <=>  #draws <= x_(j) >= need
    spread = 8 * math.sqrt(n * q * (1 - q)) + 2
    j = np.arange(max(1, int(need - spread)), min(n, int(need + spread)) + 1)
    cdf = _binom_sf(need - 1, n, j / n)  # P(resampled quantile <= x_(j))
    lo_tail, hi_tail = (1 - level) / 2, 1 - (1 - level) / 2
    j_lo = j[np.searchsorted(cdf, lo_tail, side="left").clip(0, len(j) - 1)]
    j_hi = j[np.searchsorted(cdf, hi_tail, side="left").clip(0, len(j) - 1)]
    return int(j_lo), int(j_hi)


def quantile_interval(values: np.ndarray, q: float, level: float = 0.95) -> tuple[float, float] | None:
    """The exact bootstrap percentile interval of the q-quantile of `values` (see quantile_interval_ranks)."""
    import numpy as np

    ranks = quantile_interval_ranks(len(values), q, level)
    if ranks is None:
        return None
    x = np.sort(np.asarray(values, dtype=float))
    return float(x[ranks[0] - 1]), float(x[ranks[1] - 1])


def ratio_interval(numer: np.ndarray, denom: np.ndarray, level: float = 0.95,
                   seed: int = BOOTSTRAP_SEED, reps: int = BOOTSTRAP_REPS) -> tuple[float, float] | None:
    """Percentile bootstrap interval of sum(numer) / sum(denom) (e.g. cost per successful task), with a
    fixed seed. Above BOOTSTRAP_MAX_N cases it resamples m = BOOTSTRAP_MAX_N and rescales the deviations
    by sqrt(m/n) (m-out-of-n bootstrap, valid for this smooth statistic)."""
    import numpy as np

    a = np.asarray(numer, dtype=float)
    b = np.asarray(denom, dtype=float)
    n = len(a)
    if n == 0 or b.sum() == 0:
        return None
    point = a.sum() / b.sum()
    m = min(n, BOOTSTRAP_MAX_N)
    rng = np.random.default_rng(seed)
    # Issue 15: a 0/1 denominator (successes) is summed as a count of a one-byte copy (a gather from 1 MiB instead
    # of 8 MiB per million cases; a sum of zeros and ones is that exact integer in any order), and `take` gathers
    # the numerator into the same contiguous array `a[idx]` gives: the same floats, about twice as fast.
    zero_one = bool(np.all((b == 0) | (b == 1)))
    flags = b.astype(np.uint8) if zero_one else b
    stats = np.empty(reps)
    for r in range(reps):
        idx = rng.integers(0, n, m)
        bs = float(np.count_nonzero(flags.take(idx))) if zero_one else b.take(idx).sum()
        stats[r] = a.take(idx).sum() / bs if bs else np.nan
    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return None
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    scale = math.sqrt(m / n)
    return float(point + (lo - point) * scale), float(point + (hi - point) * scale)


def two_proportion_p(a1: float, n1: float, a2: float, n2: float) -> float | None:
    """Two-sided p-value of a pooled two-proportion z-test (independent samples); None without data."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (a1 + a2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (a1 / n1 - a2 / n2) / se
    return float(2 * _scipy_stats().norm.sf(abs(z)))
