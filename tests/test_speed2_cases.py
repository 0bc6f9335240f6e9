"""The Cases page's list at scale (issue 15, third pass): with one record per case the per-case GROUP BY is skipped,
failures and all cases are counted without the baseline and paged before the join, regressions and fixes are counted
and paged in one pass. Every page and count must be exactly what the previous query (grouped, counted apart) gives,
on a store with repeated runs and on one without."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.core.policy import SliceSpec
from dashboard.store import cases
from dashboard.store.cases import CaseQuery
from dashboard.store.db import Store
from tests.test_speed_stats import BASE, RC2, _build

GROUPED = (False, False)


@pytest.fixture(scope="module", params=["repeats", "one record per case"])
def store(request, tmp_path_factory) -> Store:
    tmp = tmp_path_factory.mktemp("cases")
    s = _build(tmp / "c.duckdb", tmp, repeat=request.param == "repeats")
    yield s
    s.close()


def _previous(store: Store, q: CaseQuery, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    """The query as it was before the third pass: the grouped per-case SQL, counted, then paged, separately."""
    if q.kind in ("regressions", "fixes") and not q.baseline:
        return 0, []
    params: dict[str, Any] = {}
    sql = cases._sql(q, params, GROUPED)
    total = store.query(f"SELECT count(*) FROM ({sql})", params)[0][0]  # noqa: S608
    rows = store.query(f"{sql} LIMIT $limit OFFSET $offset", {**params, "limit": limit, "offset": offset})
    return int(total), [dict(zip(cases.COLUMNS, r, strict=True)) for r in rows]


QUERIES = [
    *(dict(kind=k, sort=s, descending=d) for k in cases.OUTCOMES for s in ("risk", "score change", "latency", "runs")
      for d in (False, True)),
    dict(kind="all", sort="cost", descending=True, spec=SliceSpec(risk=["critical", "high"])),
    dict(kind="failed", spec=SliceSpec(suite=["rag_policy_qa"], where={"task": ["policy_qa"]})),
    dict(kind="all", check="citation_supported", check_value=False),
    dict(kind="regressions", check="grounded", check_value=False),
    dict(kind="all", search="polqa-00001"),
    dict(kind="failed", search="Could Not find"),
    dict(kind="all", gate_metric="pass_rate"),
    dict(kind="all", gate_metric="latency_p95_ms", gate_threshold=3000.0, sort="latency", descending=True),
    dict(kind="failed", gate_metric="recall_at_10", gate_threshold=0.9),
    dict(kind="all", gate_metric="flaky_case_rate"),  # over a case's repeats: the grouped query
    dict(kind="all", gate_metric="check:citation_supported"),
    dict(kind="all", gate_metric="score:answer_style>=0.8", sort="score"),
    dict(kind="all", gate_metric="evidence.sbom_present"),  # no case carries it: nothing
]


@pytest.mark.parametrize("spec", QUERIES, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_case_pages_are_the_same_with_and_without_the_shortcuts(store, spec):
    """Test that every page (first, middle, past the end) and count of the Cases list, with the one-record shortcut
    and the new count/paging, equals the previous query's, for the candidate with repeats and without, both ways."""
    seen = 0
    for cand, base in ((RC2.release_id, BASE.release_id), (BASE.release_id, RC2.release_id), (RC2.release_id, None)):
        q = CaseQuery(candidate=cand, baseline=base, score="answer_style", **spec)
        for limit, offset in ((50, 0), (7, 13), (50, 10_000)):
            want = _previous(store, q, limit, offset)
            assert cases.case_list(store, q, limit, offset) == want, (cand, base, limit, offset)
            assert cases.case_list(store, q, limit, offset, GROUPED) == want, (cand, base, limit, offset)
            seen += len(want[1])
    if spec.get("gate_metric") not in ("flaky_case_rate", "evidence.sbom_present"):
        assert seen, "the query matched nothing: the comparison would prove nothing"


def test_the_shortcut_is_taken_only_where_each_case_is_one_record(store):
    """Test that the direct read is chosen per release (the repeated run keeps the grouped query) and never for a
    gate predicate over a case's repeats."""
    repeated = not store._one_run_per_suite(RC2.release_id)
    assert store._one_run_per_suite(BASE.release_id)
    q = CaseQuery(candidate=RC2.release_id, baseline=BASE.release_id)
    assert cases._one_record(store, q) == (not repeated, True)
    assert cases._one_record(store, CaseQuery(candidate=BASE.release_id, baseline=None)) == (True, False)
    flaky = CaseQuery(candidate=BASE.release_id, baseline=BASE.release_id, gate_metric="flaky_case_rate")
    assert cases._one_record(store, flaky) == GROUPED
    if repeated:  # the repeated run's cases are listed once, with both records counted
        rows = cases.case_list(store, CaseQuery(candidate=RC2.release_id, baseline=None, spec=SliceSpec(
            suite=["rag_policy_qa"])), 500, 0)[1]
        assert rows and all(r["repeats"] == 2 for r in rows)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_is_the_same_with_and_without_the_shortcut(store, fmt, monkeypatch):
    """Test that the whole-list export (the page's full query) gives the same bytes through the direct read."""
    q = CaseQuery(candidate=RC2.release_id, baseline=BASE.release_id, kind="all", score="answer_style",
                  sort="score change")
    fast = cases.export_cases(store, q, fmt)
    monkeypatch.setattr(Store, "_one_run_per_suite", lambda *_a: False)
    assert cases.export_cases(store, q, fmt) == fast


@pytest.mark.parametrize("limit", [cases.MAX_DIMENSIONS, 2])
def test_filter_options_from_the_statistics_are_those_of_the_cases(store, limit, monkeypatch):
    """Test that the Cases page's filter options (slice dimensions by how many cases carry them, their values, the
    risks and suites) read from `run_stats` are exactly those read from every case, the bounded ranking included."""
    monkeypatch.setattr(cases, "MAX_DIMENSIONS", limit)
    for releases in ([RC2.release_id, BASE.release_id], [BASE.release_id], [RC2.release_id]):
        assert cases._from_stats(store, releases)
        dims = cases.slice_dimensions(store, releases)
        assert dims == cases.slice_dimensions(store, releases, use_stats=False)
        assert len(dims) == 2 + min(limit, 3)
        for dim in dims + ["no-such-dimension"]:
            assert cases.slice_values(store, releases, dim) == cases.slice_values(store, releases, dim, False)
        assert cases.slice_values(store, releases, "task")


def test_filter_options_without_statistics_read_the_cases(store, monkeypatch):
    """Test that a release without usable statistics (a store written before them) is read from the cases."""
    from dashboard.store import stats

    want = cases.slice_dimensions(store, [RC2.release_id]), cases.slice_values(store, [RC2.release_id], "task")
    monkeypatch.setattr(stats, "usable", lambda *_a: False)
    assert not cases._from_stats(store, [RC2.release_id])
    assert (cases.slice_dimensions(store, [RC2.release_id]), cases.slice_values(store, [RC2.release_id], "task")) == want
