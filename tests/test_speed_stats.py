"""Per-run sufficient statistics and the faster gate queries (issue 15): the same decision, byte for byte, whether
the gate reads `run_stats` or the cases, and stores written before `run_stats` still judge (on the fly)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dashboard import demo
from dashboard.core.errors import InputRefused
from dashboard.core.metrics import CATALOGUE
from dashboard.core.policy import SliceSpec, load_policy
from dashboard.ingesting import ingest
from dashboard.service import gate_release
from dashboard.store import stats
from dashboard.store.db import Store
from tests.conftest import REPO, good_case, write_jsonl

POLICIES = [load_policy(REPO / "benchmarks" / "policy_40.yaml"),
            load_policy(REPO / "data" / "policies" / "case-management.yaml"),
            load_policy(REPO / "data" / "policies" / "tiered.yaml")]
BASE, RC2 = demo.STORIES[0], demo.STORIES[2]
PER_SUITE = 400


def _files(tmp: Path, story: demo.Story, repeat: bool = False) -> list[Path]:
    manifest = demo.manifest_for(story)
    files = []
    for suite in demo.SUITES:
        table = demo.eval_run(story, suite, PER_SUITE, manifest)
        path = tmp / f"{story.release_id.replace('/', '_')}-{suite.name}.parquet"
        Store(":memory:").write_table(table, path, "parquet")
        files.append(path)
        if repeat and suite.name == "rag_policy_qa":
            # A second run of the same suite: every third outcome flipped, every fifth case's content changed,
            # so the designated repeat (run_id sorting first) and the grouped eval-dataset diff are exercised.
            i = pa.array(range(table.num_rows))
            flip = pc.equal(pc.bit_wise_and(i, 3), 0)
            table = table.set_column(table.schema.get_field_index("run_id"), "run_id",
                                     pa.array([f"{story.release_id}/{suite.name}/0"] * table.num_rows))
            table = table.set_column(table.schema.get_field_index("passed"), "passed",
                                     pc.if_else(flip, pc.invert(table["passed"]), table["passed"]))
            digests = table["content_digest"].to_pylist() if "content_digest" in table.column_names else None
            if digests is not None:
                digests = [d if k % 5 else "sha256:changed" + str(k) for k, d in enumerate(digests)]
                table = table.set_column(table.schema.get_field_index("content_digest"), "content_digest",
                                         pa.array(digests))
            rpath = tmp / f"{story.release_id.replace('/', '_')}-{suite.name}-repeat.parquet"
            Store(":memory:").write_table(table, rpath, "parquet")
            files.append(rpath)
    return files


def _build(path: Path, tmp: Path, repeat: bool = False) -> Store:
    store = Store(path)
    for story in (BASE, RC2):
        ingest(store, _files(tmp, story, repeat and story is RC2), story.release_id, demo.manifest_for(story))
    return store


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Store:
    tmp = tmp_path_factory.mktemp("speed")
    store = _build(tmp / "g.duckdb", tmp, repeat=True)
    yield store
    store.close()


def _decisions(store: Store) -> list[str]:
    out = []
    for policy in POLICIES:
        for profile in [None, *policy.profiles]:
            out.append(gate_release(store, policy, RC2.release_id, BASE.release_id, profile,
                                    cache=False).model_dump_json())
    return out


def test_stats_path_and_cases_path_give_byte_identical_decisions(generated, monkeypatch):
    """Test that on a generated store (with a repeated run) every decision of three policies and all their profiles
    is the same JSON (digest included) whether gates read the run statistics or aggregate the cases."""
    assert stats.usable(generated, RC2.release_id) and stats.usable(generated, BASE.release_id)
    fast = _decisions(generated)
    monkeypatch.setattr(stats, "usable", lambda *_a: False)
    assert _decisions(generated) == fast


SPECS = [SliceSpec(), SliceSpec(for_each="task"), SliceSpec(for_each="tenant"), SliceSpec(for_each="language"),
         SliceSpec(for_each="risk"), SliceSpec(for_each="suite"), SliceSpec(risk=["critical"]),
         SliceSpec(risk=["high", "critical"], where={"task": ["policy_qa"]}),
         SliceSpec(suite=["rag_policy_qa"], for_each="task"), SliceSpec(where={"tenant": ["nowhere"]}),
         SliceSpec(for_each="no_such_dimension")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model_dump_json(exclude_defaults=True))
def test_every_catalogue_metric_on_every_slice_is_the_same(generated, monkeypatch, spec):
    """Test that every catalogue metric, on filtered and expanded slices (an empty one included), has the same
    value, counts and order of slice values from the statistics as from the cases."""
    metrics = sorted(CATALOGUE)
    fast = {r: generated.slice_metrics(r, spec, metrics) for r in (BASE.release_id, RC2.release_id)}
    monkeypatch.setattr(stats, "usable", lambda *_a: False)
    slow = {r: generated.slice_metrics(r, spec, metrics) for r in (BASE.release_id, RC2.release_id)}
    for r in fast:
        assert list(fast[r]) == list(slow[r])
        assert {k: {m: mv.model_dump() for m, mv in v.items()} for k, v in fast[r].items()} == \
               {k: {m: mv.model_dump() for m, mv in v.items()} for k, v in slow[r].items()}


# The queries as they were before issue 15's rewrite: the reference the new ones must reproduce row for row.
OLD_ORDER_STATISTICS = """SELECT slice_value, rn, v FROM (
    SELECT coalesce(suite, '(none)') AS slice_value, latency_ms AS v,
           row_number() OVER (PARTITION BY coalesce(suite, '(none)') ORDER BY latency_ms) AS rn
    FROM cases WHERE release_id = $release AND latency_ms IS NOT NULL)
    WHERE list_contains($wanted, slice_value || chr(0) || rn::VARCHAR)"""
OLD_DATASET_CHANGES = """WITH c AS (SELECT dataset, suite, case_id, arg_min(risk, run_id) AS risk,
                         arg_min(content_digest, run_id) AS digest, arg_min(passed, run_id) AS passed
                  FROM cases WHERE release_id = $cand GROUP BY ALL),
            b AS (SELECT dataset, suite, case_id, arg_min(risk, run_id) AS risk,
                         arg_min(content_digest, run_id) AS digest
                  FROM cases WHERE release_id = $base GROUP BY ALL)
       SELECT coalesce(c.dataset, b.dataset), coalesce(c.suite, b.suite), coalesce(c.case_id, b.case_id),
              CASE WHEN b.case_id IS NULL THEN 'added' WHEN c.case_id IS NULL THEN 'removed'
                   WHEN list_position($order, c.risk) > list_position($order, b.risk) THEN 'downgraded'
                   WHEN c.digest <> b.digest THEN 'changed' END AS change,
              b.risk, c.risk, b.digest, c.digest, c.passed
       FROM c FULL OUTER JOIN b USING (dataset, suite, case_id)
       WHERE change IS NOT NULL ORDER BY 1, 2, 3"""


def test_order_statistics_and_dataset_changes_match_the_previous_queries(generated):
    """Test that the sorted-list order statistics and the eval-dataset diff (grouped when a release repeats a
    suite, plain when it does not) give exactly the rows the previous queries gave, in both directions."""
    spec = SliceSpec(for_each="suite")
    ranks = {"rag_policy_qa": [1, 7, 400, 799, 800, 801], "security_redteam": [1, 200, 400], "nope": [3]}
    for release in (BASE.release_id, RC2.release_id):
        wanted = [f"{v}\x00{r}" for v, rs in ranks.items() for r in rs]
        old: dict[str, dict[int, float]] = {}
        for value, rn, v in generated.query(OLD_ORDER_STATISTICS, {"release": release, "wanted": wanted}):
            old.setdefault(value, {})[int(rn)] = float(v)
        assert generated.order_statistics(release, spec, "latency_ms", ranks) == old
    assert not generated._one_run_per_dataset_suite(RC2.release_id)  # the repeated run: grouped path
    assert generated._one_run_per_dataset_suite(BASE.release_id)
    keys = ("dataset", "suite", "case_id", "change", "baseline_risk", "candidate_risk", "baseline_digest",
            "candidate_digest", "candidate_passed")
    for cand, base in ((RC2.release_id, BASE.release_id), (BASE.release_id, RC2.release_id)):
        old_rows = [dict(zip(keys, r, strict=True)) for r in generated.query(
            OLD_DATASET_CHANGES, {"cand": cand, "base": base, "order": ["critical", "high", "medium", "low"]})]
        assert generated.dataset_changes(cand, base) == old_rows
        assert old_rows  # the repeat's changed contents make the comparison non-trivial


def test_dataset_changes_plain_path_sees_added_removed_and_downgraded(tmp_path):
    """Test that the plain (one run per suite) eval-dataset diff still finds added, removed, downgraded and changed
    cases, exactly as the previous grouped query."""
    store = Store(tmp_path / "d.duckdb")
    bm = demo.manifest_for(BASE)
    store.put_manifest(bm)
    store.put_manifest(bm.model_copy(update={"release_id": "cand", "baseline_release_id": bm.release_id}))
    base = [good_case(case_id=f"c{i}", risk="critical", input=f"q{i}") for i in range(6)]
    cand = [dict(r) for r in base[1:]]  # c0 removed
    cand[0]["risk"] = "low"  # c1 downgraded
    cand[1]["input"] = "another question"  # c2 changed
    cand.append(good_case(case_id="c9", input="new"))  # added
    ingest(store, [write_jsonl(tmp_path / "b.jsonl", base)], bm.release_id)
    ingest(store, [write_jsonl(tmp_path / "c.jsonl", cand)], "cand")
    assert store._one_run_per_dataset_suite("cand")
    old = store.query(OLD_DATASET_CHANGES, {"cand": "cand", "base": bm.release_id,
                                            "order": ["critical", "high", "medium", "low"]})
    got = store.dataset_changes("cand", bm.release_id)
    assert [tuple(r.values()) for r in got] == [tuple(r) for r in old]
    assert sorted(r["change"] for r in got) == ["added", "changed", "downgraded", "removed"]
    store.close()


def test_store_written_before_run_stats_is_judged_on_the_fly(tmp_path):
    """Test that a store without the run_stats table (written before issue 15), opened read-only or writable,
    is judged from its cases with the same decision, and that a release whose runs are only partly covered is too."""
    store = _build(tmp_path / "old.duckdb", tmp_path)
    want = _decisions(store)
    store.query("DROP TABLE run_stats")
    store.close()
    with Store(tmp_path / "old.duckdb", read_only=True) as ro:
        assert not stats.usable(ro, RC2.release_id)
        assert _decisions(ro) == want
    with Store(tmp_path / "old.duckdb") as rw:  # the table is created again, empty: no release is covered
        assert rw.query("SELECT count(*) FROM run_stats")[0][0] == 0
        assert not stats.usable(rw, RC2.release_id)
        assert _decisions(rw) == want
        manifest = demo.manifest_for(RC2)
        extra = demo.eval_run(RC2, demo.SUITES[0], PER_SUITE, manifest)
        extra = extra.set_column(extra.schema.get_field_index("run_id"), "run_id",
                                 pa.array(["late-run"] * extra.num_rows))
        path = tmp_path / "late.parquet"
        rw.write_table(extra, path, "parquet")
        ingest(rw, [path], RC2.release_id)
        assert rw.query("SELECT count(DISTINCT run_id) FROM run_stats")[0][0] == 1  # only the new run
        assert not stats.usable(rw, RC2.release_id)  # 1 of 4 runs: computed from the cases


def test_stale_statistics_format_is_never_read(tmp_path, monkeypatch):
    """Test that rows written under another statistics format (the metric SQL changed) are ignored."""
    store = _build(tmp_path / "f.duckdb", tmp_path)
    want = _decisions(store)
    monkeypatch.setattr(stats, "STATS_FORMAT", "sha256:another-format")
    assert not stats.usable(store, RC2.release_id)
    assert _decisions(store) == want
    store.close()


def test_statistics_are_part_of_the_ingest_transaction_and_idempotent(store, tmp_path):
    """Test that re-ingesting a file adds no statistics, and that a refused file in the same call leaves no
    statistics of the good one behind."""
    good = write_jsonl(tmp_path / "good.jsonl", [good_case(case_id=f"c{i}", input=f"q{i}") for i in range(40)])
    bad = write_jsonl(tmp_path / "bad.jsonl", [good_case(case_id="x", risk="nope")])
    with pytest.raises(InputRefused):
        ingest(store, [good, bad], demo.BASELINE_ID)
    assert store.query("SELECT count(*) FROM run_stats")[0][0] == 0
    ingest(store, [good], demo.BASELINE_ID)
    rows = store.query("SELECT count(*) FROM run_stats")[0][0]
    assert rows == len(stats.ADDITIVE)  # one (run, risk, suite, slices) group, one row per additive metric
    assert ingest(store, [good], demo.BASELINE_ID).files[0].status == "unchanged"
    assert store.query("SELECT count(*) FROM run_stats")[0][0] == rows
    assert stats.usable(store, demo.BASELINE_ID)


def test_too_many_slice_combinations_store_no_statistics(store, tmp_path):
    """Test that a file whose cases are nearly all different slice combinations stores no statistics (they would
    not be smaller than the cases) and is judged from its cases."""
    cases = [good_case(case_id=f"c{i}", input=f"q{i}", slices={"task": "policy_qa", "user": f"u{i}"})
             for i in range(200)]
    ingest(store, [write_jsonl(tmp_path / "u.jsonl", cases)], demo.BASELINE_ID)
    assert store.query("SELECT count(*) FROM run_stats")[0][0] == 0
    assert not stats.usable(store, demo.BASELINE_ID)
    values = store.slice_metrics(demo.BASELINE_ID, SliceSpec(for_each="task"), ["pass_rate", "cases"])
    assert values["policy_qa"]["cases"].value == 200


def test_binomial_survival_without_scipy_stats_is_scipy_stats_bit_for_bit():
    """Test that the binomial survival function the exact percentile intervals use (scipy.special's ufunc, to skip
    importing scipy.stats) gives the very floats scipy.stats.binom.sf gives, and hence the same ranks."""
    import numpy as np
    import scipy.stats

    from dashboard.core import stats as core_stats

    for n in (1, 2, 7, 30, 101, 999, 12_345, 333_334, 1_000_000, 5_000_000):
        for q in (0.5, 0.95, 0.99):
            need = max(1, int(np.ceil(q * n)))
            j = np.arange(1, n + 1) if n < 2000 else np.arange(max(1, need - 3000), min(n, need + 3000) + 1)
            got = core_stats._binom_sf(need - 1, n, j / n)
            want = scipy.stats.binom.sf(need - 1, n, j / n)
            assert got.dtype == want.dtype and np.array_equal(got.view(np.uint64), want.view(np.uint64)), (n, q)


@pytest.mark.parametrize("spec", [SliceSpec(), SliceSpec(for_each="task"), SliceSpec(risk=["critical"]),
                                  SliceSpec(for_each="risk", where={"task": ["policy_qa"]})],
                         ids=lambda s: s.model_dump_json(exclude_defaults=True))
def test_paired_outcomes_and_regressions_without_the_per_case_group_by_are_the_same(generated, monkeypatch, spec):
    """Test that the paired outcomes and the regression list read the records directly when each release has one
    run per suite and give exactly what the per-case GROUP BY gives (both directions, with the repeated run on one
    side so the grouped path is mixed with the direct one)."""
    pairs = [(RC2.release_id, BASE.release_id), (BASE.release_id, RC2.release_id), (BASE.release_id, BASE.release_id)]
    fast = [(generated.paired(c, b, spec), generated.paired(c, b, spec, ["critical"]), generated.regressions(c, b))
            for c, b in pairs]
    assert generated._one_run_per_suite(BASE.release_id) and not generated._one_run_per_suite(RC2.release_id)
    monkeypatch.setattr(Store, "_one_run_per_suite", lambda *_a: False)
    slow = [(generated.paired(c, b, spec), generated.paired(c, b, spec, ["critical"]), generated.regressions(c, b))
            for c, b in pairs]
    assert fast == slow
    assert any(p.changed for paired, _c, _r in fast for p in paired.values())


def test_paired_test_p_values_without_scipy_stats_are_scipy_stats_bit_for_bit(monkeypatch):
    """Test that the exact McNemar p-value (two-sided binomial test), the one-sided binomial tail and the normal CDF
    computed through scipy.special's ufuncs are the very floats scipy.stats gives, over every k for small n and
    around the middle and the tails for large n."""
    import random

    import numpy as np
    import scipy.stats

    from dashboard.core import stats as core_stats

    u = core_stats._ufuncs()
    assert u is not None
    rnd = random.Random(15)
    pairs = [(k, n) for n in range(1, 120) for k in range(n + 1)]
    for n in (1_000, 9_999, 100_000, 1_000_003, 4_999_999):
        mid = n // 2
        pairs += [(k, n) for k in (0, 1, 2, n - 1, n, mid - 1, mid, mid + 1, *(rnd.randint(0, n) for _ in range(25)),
                                   *(mid + rnd.randint(-3 * int(n ** 0.5), 3 * int(n ** 0.5)) for _ in range(25)))
                  if 0 <= k <= n]
    for k, n in pairs:
        want = scipy.stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue
        got = core_stats._binomtest_two_sided(u, k, n, 0.5)
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), (k, n, got, want)
        assert core_stats.mcnemar_exact(k, n - k) == float(want)
        for j in (k - 1, k):
            assert np.float64(core_stats._binom_sf1(u, j, n, 0.5)).tobytes() == \
                np.float64(scipy.stats.binom.sf(j, n, 0.5)).tobytes(), (j, n)
    for x in [rnd.uniform(-40, 40) for _ in range(2000)] + [0.0, -0.0, 1e-300, -8.3, 38.5, float("inf"), -float("inf")]:
        assert np.float64(u.ndtr(x)).tobytes() == np.float64(scipy.stats.norm.cdf(x)).tobytes(), x
    paired = [core_stats.Paired(50, 9, 3, 8), core_stats.Paired(10, 0, 0, 3), core_stats.Paired(900, 40, 52, 8),
              core_stats.Paired(0, 0, 0, 0), core_stats.Paired(5, 1, 0, 0), core_stats.Paired(10**6, 120, 95, 4000)]
    margins = (0.0, 0.01, 0.05)
    fast = [(core_stats.regression_p_value(p, m), core_stats.mcnemar_exact(p.regressions, p.fixes))
            for p in paired for m in margins]
    monkeypatch.setattr(core_stats, "_ufuncs", lambda: None)  # the scipy.stats path, as before issue 15
    slow = [(core_stats.regression_p_value(p, m), core_stats.mcnemar_exact(p.regressions, p.fixes))
            for p in paired for m in margins]
    assert fast == slow
