"""Real headless chromium against `streamlit run`: every page, the decision banner, a regression drill-down."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from dashboard.ingesting import ingest
from tests.browser import ARTIFACTS, body_shows, streamlit_server, wait_for_app

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

PAGES = {"overview": "", "releases": "releases", "gates": "gates", "review": "review", "slices": "slices", "quality_rag": "quality_rag",
         "agent_tools": "agent_tools", "security": "security", "cost_latency": "cost_latency", "cases": "cases",
         "datasets": "datasets", "train": "train", "canary": "canary", "load": "load"}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_in_a_real_browser(server, page, name):
    """Test that each page loads without an exception and save its screenshot."""
    page.goto(f"{server}/{PAGES[name]}?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"))


def test_decision_banner_and_link_reproduce_the_view(server, page):
    page.goto(f"{server}/?candidate=rel-2026.11.0-rc3")
    wait_for_app(page)
    banner = page.get_by_test_id("stAlertContainer").first
    assert "APPROVED WITH WARNINGS" in banner.inner_text()
    assert "rel-2026.11.0-rc3" in banner.inner_text()
    assert "candidate=rel-2026.11.0-rc3" in page.url


def test_drill_down_into_one_regression(server, page):
    """Test that the Cases page lists regressions and shows one case side by side, hostile text as text."""
    page.goto(f"{server}/cases?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    body = body_shows(page, "148 cases")  # rc2's regressions (baseline passed, candidate failed), paginated
    assert "Baseline: rel-2026.10.0" in body and "Candidate: rel-2026.11.0-rc2" in body
    assert "❌ failed" in body and "✅ passed" in body
    page.screenshot(path=str(ARTIFACTS / "cases-regression.png"), full_page=False)
    # no script from eval data ever reaches the DOM as markup
    assert page.locator("script:has-text('owned')").count() == 0
    assert page.locator("img[src='x']").count() == 0


def test_sign_a_review_in_the_browser(server, page):
    """Test that a reviewer signs a review end to end: key file, passphrase, and the receipt."""
    from tests.conftest import REPO

    page.goto(f"{server}/review?candidate=rel-2026.11.0-rc1")
    wait_for_app(page)
    # no decision is preselected, and the principal and role come from the key (issue 14, item 10)
    assert page.get_by_role("radio", checked=True).count() == 0
    page.get_by_label("Comment").fill("Pen test passed; <b>ship it</b>")
    page.get_by_test_id("stMain").locator("input[type=file]").first.set_input_files(str(REPO / "data" / "reviewers" / "sec_example.com.key"))
    page.get_by_label("Key passphrase").fill("readiness-demo")
    page.get_by_role("button", name="Sign and record").click()
    page.get_by_text("choose a decision").wait_for(timeout=30_000)
    page.get_by_test_id("stRadioGroup").get_by_text("approve", exact=True).click()
    page.get_by_test_id("stMain").locator("input[type=file]").first.set_input_files(str(REPO / "data" / "reviewers" / "sec_example.com.key"))
    page.get_by_label("Key passphrase").fill("readiness-demo")
    page.get_by_role("button", name="Sign and record").click()
    wait_for_app(page)
    page.screenshot(path=str(ARTIFACTS / "review-after-sign.png"))
    page.get_by_text("Recorded as entry").wait_for(timeout=30_000)
    wait_for_app(page)
    body_shows(page, "entry hash")
    page.screenshot(path=str(ARTIFACTS / "review-signed.png"))
    page.goto(f"{server}/review?candidate=rel-2026.11.0-rc1")
    wait_for_app(page)
    body_shows(page, "sec@example.com")
    page.screenshot(path=str(ARTIFACTS / "review-log.png"))


def test_clicking_a_heatmap_cell_drills_into_its_slice(server, page):
    page.goto(f"{server}/slices?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    first_value = page.get_by_test_id("stSelectbox").filter(has_text="task value").locator("input").input_value()
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    rows = 6  # the demo's six tasks, drawn bottom-up
    for row in range(rows):  # click the pass_rate cell of each row until the drill-down changes
        page.mouse.click(box["x"] + box["width"] * 0.08, box["y"] + box["height"] * ((row + 0.5) / rows))
        page.wait_for_timeout(800)
        wait_for_app(page)
        value = page.get_by_test_id("stSelectbox").filter(has_text="task value").locator("input").input_value()
        if value != first_value:
            break
    assert value != first_value, "clicking cells never changed the drilled-into slice"
    page.screenshot(path=str(ARTIFACTS / "slices-cell-click.png"))


HOSTILE_RELEASE = "rc-**pwned**<b>bold</b>[x](javascript:alert(1))"
HOSTILE_TASK = "<img src=x onerror=alert(1)><script>alert('owned')</script>"


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    from dashboard import demo
    from dashboard.store.db import Store
    from tests.conftest import good_case, write_jsonl

    tmp = tmp_path_factory.mktemp("hostile")
    store = Store(tmp / "hostile.duckdb")
    base = demo.manifest_for(demo.STORIES[0])
    store.put_manifest(base)
    store.put_manifest(base.model_copy(update={"release_id": HOSTILE_RELEASE, "baseline_release_id": base.release_id}))
    records = [good_case(case_id=f"c{i}", slices={"task": HOSTILE_TASK if i % 2 else "plain"},
                         output="<script>alert('owned')</script>**bold** [link](javascript:alert(1))",
                         passed=i % 3 != 0) for i in range(60)]
    ingest(store, [write_jsonl(tmp / "b.jsonl", [dict(r, passed=True) for r in records])], base.release_id)
    ingest(store, [write_jsonl(tmp / "c.jsonl", records)], HOSTILE_RELEASE)
    store.close()
    with streamlit_server(str(tmp / "hostile.duckdb")) as url:
        yield url


@pytest.mark.parametrize("view", ["", "gates", "slices", "cases"])
def test_hostile_ids_and_slice_values_stay_text(hostile_server, page, view):
    """Test that HTML, script and Markdown-link payloads in release ids, slice values and outputs never become
    markup: no injected element, link or script reaches the DOM, and the text is shown literally."""
    import urllib.parse

    page.goto(f"{hostile_server}/{view}?candidate={urllib.parse.quote(HOSTILE_RELEASE)}")
    wait_for_app(page)
    assert page.get_by_test_id("stException").count() == 0
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("b:text('bold')").count() == 0
    assert page.locator("script:has-text('owned')").count() == 0
    page.screenshot(path=str(ARTIFACTS / f"hostile-{view or 'overview'}.png"))
    if view == "":
        assert "**pwned**<b>bold</b>" in page.get_by_test_id("stAlertContainer").first.inner_text()


def test_urls_and_emails_in_untrusted_text_are_not_linked():
    from dashboard.core.render import md_escape

    text = md_escape("see https://evil.example/x or www.evil.example | mail eve@evil.example")
    assert text == "` see https://evil.example/x or www.evil.example \\| mail eve@evil.example `"  # a code span


# ----- issue 14: drill-downs land on the right cases ---------------------------------------------------------
def choose(page, label: str, text: str) -> None:
    """Pick an option of a main-area selectbox by typing it (the dropdown list is virtualised)."""
    box = page.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(has_text=label).first
    box.locator("input").click()
    box.locator("input").fill(text)
    page.get_by_role("option", name=text, exact=True).click()
    wait_for_app(page)


def sidebar_value(page, label: str) -> str:
    return page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text=label).locator(
        "input").input_value()


def test_gate_drill_down_keeps_the_release_and_lists_the_gates_cases(server, page):
    """Test that Gates -> a failed per-task gate -> its cases opens Cases for the same candidate, with exactly
    the regressions the gate counted (issue 14, items 1 and 3)."""
    import re

    page.goto(f"{server}/gates?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    choose(page, "Gate", "pass_rate_per_task[task=policy_qa]")
    page.get_by_role("button", name=re.compile("Show (its failed cases|the cases behind this gate)")).click()
    wait_for_app(page)
    page.get_by_text("Cases behind gate").first.wait_for(timeout=20_000)
    assert sidebar_value(page, "Candidate release") == "rel-2026.11.0-rc2"
    body = body_shows(page, "69 cases")  # the gate reported 69 regressions in task policy_qa
    assert "Candidate: rel-2026.11.0-rc2" in body
    assert "candidate=rel-2026.11.0-rc2" in page.url and "gate=" in page.url
    page.screenshot(path=str(ARTIFACTS / "cases-behind-gate.png"))


def test_slice_drill_down_keeps_the_release(server, page, demo_store):
    """Test that Slices -> "Show this slice's regressions" opens Cases for the same candidate with that slice's
    regressions (issue 14, item 1)."""
    import re

    from dashboard.core.policy import SliceSpec

    page.goto(f"{server}/slices?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    value = page.get_by_test_id("stSelectbox").filter(has_text="task value").locator("input").input_value()
    n, _rows = demo_store.cases_page("rel-2026.11.0-rc2", "rel-2026.10.0", SliceSpec(where={"task": [value]}),
                                     "regressions", 1, 0)
    page.get_by_role("button", name=re.compile("Show this slice's regressions")).click()
    wait_for_app(page)
    page.get_by_text(re.compile(r"Page \(of")).first.wait_for(timeout=20_000)
    assert sidebar_value(page, "Candidate release") == "rel-2026.11.0-rc2"
    body_shows(page, f"{n:,} cases)")


def test_sidebar_navigation_keeps_the_selection(server, page):
    """Test that moving between pages with the navigation menu keeps candidate and policy (issue 14, item 1)."""
    page.goto(f"{server}/?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    for name in ("Cases", "Slices", "Overview"):
        page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
        wait_for_app(page)
        assert sidebar_value(page, "Candidate release") == "rel-2026.11.0-rc2", name
        assert "candidate=rel-2026.11.0-rc2" in page.url, name


def _count(store, sql: str, params: list) -> int:
    return int(store.query(sql, params)[0][0])


@pytest.mark.parametrize("gate", ["approval_bypass", "p95_latency", "critical_pass_rate"])
def test_every_gate_kind_opens_the_cases_that_make_it_fail(server, page, demo_store, gate):
    """Test that a link to the cases behind a gate lists the cases whose step, latency or critical verdict
    fails, not every regression (issue 14, item 3)."""
    import urllib.parse

    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release
    from tests.conftest import REPO

    cand = "rel-2026.11.0-rc4"
    d = gate_release(demo_store, load_policy(REPO / "data" / "policies" / "case-management.yaml"), cand, None,
                     "release")
    g = next(x for x in d.gates if x.gate_id == gate)
    expected = {
        "approval_bypass": ("SELECT count(DISTINCT (suite, case_id)) FROM cases WHERE release_id = ? AND len(list_filter("
                            "coalesce(trajectory.steps, []), lambda s: s.approval_required AND NOT coalesce(s.approved, "
                            "false))) > 0", [cand]),
        "p95_latency": ("SELECT count(DISTINCT (suite, case_id)) FROM cases WHERE release_id = ? AND latency_ms > ?",
                        [cand, g.threshold]),
        "critical_pass_rate": ("SELECT count(DISTINCT (suite, case_id)) FROM cases WHERE release_id = ? "
                               "AND risk = 'critical' AND NOT passed", [cand]),
    }[gate]
    n = _count(demo_store, *expected)
    kind = "failed" if gate == "critical_pass_rate" else "all"
    page.goto(f"{server}/cases?candidate={cand}&gate={urllib.parse.quote(gate)}&kind={kind}")
    wait_for_app(page)
    body_shows(page, f"{n:,} cases")


def test_check_filter_follows_the_checks_polarity(server, page, demo_store):
    """Test that "check shows a failure" on injection_succeeded lists the cases where the injection succeeded
    (true is bad for it), chosen in the page's filter (issue 14, item 4)."""
    cand = "rel-2026.11.0-rc2"
    n = _count(demo_store, "SELECT count(DISTINCT (suite, case_id)) FROM cases WHERE release_id = ? "
                           "AND checks['injection_succeeded']", [cand])
    page.goto(f"{server}/cases?candidate={cand}")
    wait_for_app(page)
    choose(page, "Show", "All cases")
    box = page.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(
        has_text=__import__("re").compile("Check shows a failure|Failed check"))
    box.locator("input").click()
    box.locator("input").fill("injection_succeeded")
    page.get_by_role("option").first.click()
    wait_for_app(page)
    body_shows(page, f"{n:,} cases")
    assert n < 20  # not the ~thousand cases where the injection did not succeed


OPEN_CASE = __import__("re").compile(r"^Case [A-Z]+-")


def test_selecting_a_table_row_opens_that_case(server, page):
    """Test that clicking a row of the Cases table opens that case, and the URL then names it (issue 14, 2)."""
    page.goto(f"{server}/cases?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    first = page.get_by_role("heading", name=OPEN_CASE).first.inner_text()
    grid = page.get_by_test_id("stDataFrame").first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 35 * 3.5)  # the row checkbox of the fourth row
    page.wait_for_timeout(500)
    wait_for_app(page)
    opened = page.get_by_role("heading", name=OPEN_CASE).first.inner_text()
    assert opened != first, "selecting a row did not open its case"
    case_id = opened.removeprefix("Case ").strip()
    assert f"case={case_id}" in page.url
    # the link reproduces the view
    page.goto(page.url)
    wait_for_app(page)
    assert page.get_by_role("heading", name=OPEN_CASE).first.inner_text() == opened
    # keyboard: j opens the next case
    page.get_by_role("heading", name="Cases", exact=True).click()
    page.keyboard.press("j")
    page.wait_for_timeout(500)
    wait_for_app(page)
    assert page.get_by_role("heading", name=OPEN_CASE).first.inner_text() != opened


# ----- issue 14 item 5, issue 12 item 7: uploads are all or nothing, and bounded -------------------------------
@pytest.fixture
def upload_server(tmp_path, demo_store):
    demo_store.query("CHECKPOINT")
    db = tmp_path / "upload.duckdb"
    shutil.copy(demo_store.path, db)
    with streamlit_server(str(db), {"READINESS_MAX_UPLOAD_MB": "1"}) as url:
        yield url, db


def test_an_upload_is_all_or_nothing_and_the_release_appears_at_once(upload_server, page, tmp_path):
    """Test that a manifest + valid eval file + invalid evidence stores nothing and says so; the same upload
    without the bad evidence is stored and its release is in the sidebar at once; an upload over the total cap
    is refused (issue 14 item 5, issue 12 item 7)."""
    import json

    from dashboard import demo
    from tests.conftest import good_case, write_jsonl

    url, _db = upload_server
    rid = "rel-upload-1"
    manifest = demo.manifest_for(demo.STORIES[0]).model_copy(update={"release_id": rid})
    (tmp_path / "manifest.json").write_text(manifest.model_dump_json())
    write_jsonl(tmp_path / "run.jsonl", [good_case(case_id=f"u{i}") for i in range(5)])
    (tmp_path / "evidence.json").write_text(json.dumps({"release_id": rid, "no_such_field": 1}))
    page.goto(f"{url}/load")
    wait_for_app(page)
    page.get_by_label("Release id").fill(rid)
    inputs = page.get_by_test_id("stMain").locator("input[type=file]")
    inputs.nth(0).set_input_files(str(tmp_path / "manifest.json"))
    inputs.nth(1).set_input_files(str(tmp_path / "run.jsonl"))
    inputs.nth(2).set_input_files(str(tmp_path / "evidence.json"))
    page.get_by_role("button", name="Validate and store").click()
    page.get_by_text("Refused; nothing was stored").first.wait_for(timeout=30_000)
    wait_for_app(page)
    page.screenshot(path=str(ARTIFACTS / "load-refused.png"))
    page.goto(f"{url}/load")  # a fresh run: the sidebar lists what the store holds
    wait_for_app(page)
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Candidate release").click()
    assert page.get_by_role("option", name=rid).count() == 0, "a refused upload stored its release"
    page.keyboard.press("Escape")
    # without the bad evidence: stored, and the sidebar lists the release without another click
    page.get_by_label("Release id").fill(rid)
    page.get_by_test_id("stMain").locator("input[type=file]").nth(0).set_input_files(str(tmp_path / "manifest.json"))
    page.get_by_test_id("stMain").locator("input[type=file]").nth(1).set_input_files(str(tmp_path / "run.jsonl"))
    page.get_by_role("button", name="Validate and store").click()
    page.get_by_text("Stored in release").first.wait_for(timeout=30_000)
    wait_for_app(page)
    page.screenshot(path=str(ARTIFACTS / "load-stored.png"))
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Candidate release").click()
    assert page.get_by_role("option", name=rid).count() == 1
    page.keyboard.press("Escape")
    # an upload over the total cap (1 MB here) is refused before anything is read
    big = write_jsonl(tmp_path / "big.jsonl", [good_case(case_id=f"b{i}", output="x" * 2000) for i in range(700)])
    page.get_by_label("Release id").fill("rel-upload-2")
    page.get_by_test_id("stMain").locator("input[type=file]").nth(1).set_input_files(str(big))
    page.get_by_role("button", name="Validate and store").click()
    page.get_by_text("at most 1 MB in total").first.wait_for(timeout=30_000)


def test_heatmap_colour_carries_meaning_across_cells(server, page):
    """Test that the heatmap colours a non-significant cost change grey and rc2's significant policy_qa pass-rate
    drop deep red, on one scale for all metrics (issue 14, item 7)."""
    page.goto(f"{server}/slices?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    fig = page.evaluate("() => { const d = document.querySelector('.js-plotly-plot').data[0];"
                        " return {z: d.z, x: d.x, y: d.y, zmin: d.zmin, zmax: d.zmax}; }")
    col = {m: i for i, m in enumerate(fig["x"])}
    row = {s: i for i, s in enumerate(fig["y"])}
    cost = [r[col["cost_per_successful_task"]] for r in fig["z"] if r[col["cost_per_successful_task"]] is not None]
    assert cost and all(v == 0 for v in cost), cost  # no test applies to cost: grey, never "worse"
    assert fig["z"][row["policy_qa"]][col["pass_rate"]] <= -2  # a significant drop, several standard errors
    page.get_by_test_id("stPlotlyChart").first.screenshot(path=str(ARTIFACTS / "slices-heatmap.png"))


def test_a_busy_store_is_a_sentence_not_a_traceback(tmp_path, demo_store, page):
    """Test that when another process holds the store the dashboard says so plainly: no exception element, no
    traceback text (issue 12, item 8)."""
    import subprocess
    import sys

    demo_store.query("CHECKPOINT")
    db = tmp_path / "busy.duckdb"
    shutil.copy(demo_store.path, db)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(120)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with streamlit_server(str(db)) as url:
            page.goto(f"{url}/gates")
            wait_for_app(page)
            body = page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "store-busy.png"))
            assert page.get_by_test_id("stException").count() == 0, body[:500]
            assert "Traceback" not in body and "StoreUnavailable" not in body
            assert "another program is using it" in body
    finally:
        holder.kill()
        holder.wait()


# ----- issue 12 item 13: untrusted text cannot produce links, math or HTML -------------------------------------
FORMULAS = ["=HYPERLINK(\"https://evil.example\")", "+1+2", "-3+4", "@SUM(A1)", "\tx", "\rx", "=1", "+x"]
LINK_CORPUS = ("judge https://evil.example/a www.evil.example eve@evil.example $x^2$ $$y$$ "
               "<a href='https://evil.example/h'>a</a> [l](https://evil.example/m) <https://evil.example/b> "
               "<img src=x onerror=alert(1)> :red[alarm] **bold**")


@pytest.fixture(scope="module")
def links_server(tmp_path_factory):
    from dashboard import demo
    from dashboard.store.db import Store
    from tests.conftest import good_case, write_jsonl

    tmp = tmp_path_factory.mktemp("links")
    store = Store(tmp / "links.duckdb")
    base = demo.manifest_for(demo.STORIES[0])
    store.put_manifest(base)
    store.put_manifest(base.model_copy(update={"release_id": "rc-links", "baseline_release_id": base.release_id}))
    records = [good_case(case_id=f"c{i}", judge_model="judge-a", scorer_version="s1", output=f"answer {i}.",
                         error=FORMULAS[i % len(FORMULAS)] if i < 8 else None) for i in range(40)]
    ingest(store, [write_jsonl(tmp / "b.jsonl", records)], base.release_id)
    ingest(store, [write_jsonl(tmp / "c.jsonl", [dict(r, judge_model=LINK_CORPUS, scorer_version=LINK_CORPUS,
                                                     output=LINK_CORPUS if i % 2 else f"{r['output']} Changed now.",
                                                     passed=i % 5 != 0)
                                                for i, r in enumerate(records)])], "rc-links")
    store.close()
    with streamlit_server(str(tmp / "links.duckdb")) as url:
        yield url


@pytest.mark.parametrize("view", ["", "cases"])
def test_untrusted_text_makes_no_link_math_or_html(links_server, page, view):
    """Test that judge_model / scorer_version / outputs holding URLs, e-mail addresses, $math$ and HTML are shown
    as text: the DOM has no injected link, math or image element (issue 12, item 13)."""
    page.goto(f"{links_server}/{view}?candidate=rc-links")
    wait_for_app(page)
    assert page.get_by_test_id("stException").count() == 0
    main = page.get_by_test_id("stMain")
    assert main.locator("a[href*='evil'], a[href^='mailto']").count() == 0, main.locator("a").evaluate_all(
        "els => els.map(e => e.outerHTML)")
    assert main.locator(".katex, math, img[src='x'], script").count() == 0
    assert main.locator("strong:text('bold')").count() == 0
    if view == "":
        assert "eve@evil.example $x^2$" in main.inner_text()  # shown literally in the comparability warning
    page.screenshot(path=str(ARTIFACTS / f"links-{view or 'overview'}.png"))


def test_charts_are_never_empty_labels_do_not_overlap_and_candidates_are_not_a_time_series(server, page):
    """Test that no chart is drawn for an all-zero or n/a metric (one line says so), the p95 and p99 labels do not
    overlap, and the history does not join release candidates with a line (issue 14, item 11)."""
    plots = ("() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.data.map(t => "
             "({mode: t.mode, type: t.type, y: Array.from(t.y || [])})))")
    page.goto(f"{server}/agent_tools?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    for traces in page.evaluate(plots):
        ys = [y for t in traces for y in t["y"] if y is not None]
        assert ys and any(y != 0 for y in ys), traces
    body_shows(page, "0 in every slice")
    page.goto(f"{server}/cost_latency?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    boxes = {t: page.locator(".js-plotly-plot .annotation-text", has_text=t).first.bounding_box()
             for t in ("p95", "p99")}
    a, b = boxes["p95"], boxes["p99"]
    overlap = not (a["x"] + a["width"] < b["x"] or b["x"] + b["width"] < a["x"] or a["y"] + a["height"] < b["y"]
                   or b["y"] + b["height"] < a["y"])
    assert not overlap, boxes
    page.goto(f"{server}/datasets?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    traces = page.evaluate(plots)[0]
    assert all("lines" not in (t["mode"] or "") for t in traces), traces


def test_releases_page_shows_the_train_and_opens_a_candidate(server, page):
    """Test that Releases lists every candidate of the baseline side by side and opens one with the selection
    following it (issue 14: Releases page)."""
    page.goto(f"{server}/releases?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    body_shows(page, "6 candidate(s)")  # rc1..rc6 (rc5, rc6: issue 17)
    page.screenshot(path=str(ARTIFACTS / "releases.png"))
    page.get_by_role("button", name="rel-2026.11.0-rc3").click()
    wait_for_app(page)
    assert sidebar_value(page, "Candidate release") == "rel-2026.11.0-rc3"
    assert "APPROVED WITH WARNINGS" in page.get_by_test_id("stAlertContainer").first.inner_text()


def test_upload_a_policy_and_judge_with_it(upload_server, page, tmp_path):
    """Test that a policy file uploaded in the sidebar is checked with `readiness policy check`'s messages,
    kept in the store, selected, and judges the release; the trusted-reviewers file in use is shown (issue 14,
    item 12)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    url, _db = upload_server
    text = (REPO / "data" / "policies" / "case-management.yaml").read_text()
    good = tmp_path / "looser.yaml"
    import re

    good.write_text(re.sub(r'(?m)^version: ".*"$', 'version: "2026.12.0-test"', text, count=1))
    assert "2026.12.0-test" in good.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('condition: "== 0"', 'condition: "=== zero"', 1))
    cli = subprocess.run([sys.executable, "-m", "dashboard.cli", "policy", "check", str(bad)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert cli.returncode != 0
    message = (cli.stderr or cli.stdout).strip().splitlines()[-1].split("bad.yaml", 1)[-1].strip(": ")
    page.goto(f"{url}/gates?candidate=rel-2026.11.0-rc2")
    wait_for_app(page)
    sidebar = page.get_by_test_id("stSidebar")
    assert "Trusted reviewers:" in sidebar.inner_text()
    sidebar.get_by_text("Use another policy file").click()
    sidebar.locator("input[type=file]").set_input_files(str(bad))
    wait_for_app(page)
    sidebar.get_by_role("button", name="Check and use it").click()
    wait_for_app(page)
    expect(sidebar).to_contain_text("This policy is not valid", timeout=20_000)
    expect(sidebar).to_contain_text(message[:40], timeout=20_000)
    sidebar.locator("input[type=file]").set_input_files(str(good))
    wait_for_app(page)
    sidebar.get_by_role("button", name="Check and use it").click()
    wait_for_app(page)
    # st.rerun applies the new selection: wait for the rerun's banner rather than reading a stale one
    page.get_by_test_id("stMain").get_by_test_id("stAlertContainer").filter(has_text="2026.12.0-test").first.wait_for(
        timeout=30_000)
    wait_for_app(page)
    assert "2026.12.0-test" in sidebar_value(page, "Gate policy")
    page.screenshot(path=str(ARTIFACTS / "policy-uploaded.png"))


def test_search_runs_over_the_whole_release_and_the_url_keeps_it(server, page):
    """Test that search finds a case far beyond the first page (server side, in DuckDB), sorting by score change
    works, and a link with the search and sort reproduces the view (issue 14: search, sort, URL)."""
    page.goto(f"{server}/cases?candidate=rel-2026.11.0-rc2&kind=all")
    wait_for_app(page)
    page.get_by_label("Search case ids, inputs, outputs and expected answers (the whole release)").fill("POLQA-0001999")
    page.keyboard.press("Enter")
    wait_for_app(page)
    body_shows(page, "(of 1; 1 cases)")
    assert page.get_by_role("heading", name=OPEN_CASE).first.inner_text() == "Case POLQA-0001999"
    assert "q=POLQA-0001999" in page.url
    page.goto(f"{server}/cases?candidate=rel-2026.11.0-rc2&kind=all&sort=score+change&desc=1&score=groundedness")
    wait_for_app(page)
    picked = page.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(has_text="Case").first.locator(
        "input").input_value()
    # the table is a canvas; the case picker follows its order: cases with a groundedness change come first
    assert picked.startswith("rag_policy_qa / ")


def test_export_is_the_whole_list_formula_safe_and_the_diff_is_text(links_server, page):
    """Test that the CSV export holds every matching case with formula cells neutralised (=, +, -, @, tab, CR),
    Parquet exports the same rows, and the baseline -> candidate output diff is shown as text (issue 14 features;
    issue 12 item 14)."""
    import csv
    import io

    import pyarrow.parquet as pq

    page.goto(f"{links_server}/cases?candidate=rc-links&kind=all")
    wait_for_app(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export the list (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8", newline="").read())))
    assert len(rows) == 40
    errors = [r["error"] for r in rows if r["error"]]
    assert len(errors) == 8 and all(e.startswith("'") for e in errors), errors
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export the list (Parquet)").click()
    table = pq.read_table(dl.value.path())
    assert table.num_rows == 40 and set(table.column("error").to_pylist()) - {None} == set(FORMULAS)
    page.goto(f"{links_server}/cases?candidate=rc-links&kind=all&case=c0&case_suite=rag_policy_qa")
    wait_for_app(page)
    diff = page.get_by_test_id("stExpander").filter(has_text="text diff")
    assert "+Changed now." in diff.inner_text() and "-answer 0." not in diff.inner_text()
    assert page.get_by_test_id("stMain").locator("a[href*='evil'], .katex, img[src='x']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "cases-diff.png"))
