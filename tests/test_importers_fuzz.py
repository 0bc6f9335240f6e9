"""Fuzzing the new tool readers (issue 18) as tests/test_fuzz.py does the first four: any input is read or refused
clearly (InputRefused naming the file), never another exception."""

from __future__ import annotations

import csv
import io
import json
import shutil

from hypothesis import given
from hypothesis import strategies as st

from dashboard.importers.mlflow_runs import read_mlflow
from dashboard.importers.tools import READERS, ImportContext, detect_tool
from tests.test_fuzz import fuzz, json_values, mutated, only_success_or_refusal, scalars
from tests.test_importers_formats import PF_CSV, PF_JSONL, RAGAS_CSV, RAGAS_DATASET, RAGAS_JSONL, _mlflow_runs

CTX = ImportContext(dataset="case_policy_golden", dataset_version="v9")
PF_LINES = [json.loads(line) for line in PF_JSONL.read_text(encoding="utf-8").splitlines()[:2]]
RAGAS_LINES = [json.loads(line) for line in RAGAS_JSONL.read_text(encoding="utf-8").splitlines()[:3]]
CSV_ROWS = {"promptfoo": list(csv.reader(io.StringIO(PF_CSV.read_text(encoding="utf-8"))))[:3],
            "ragas": list(csv.reader(io.StringIO(RAGAS_CSV.read_text(encoding="utf-8"))))[:3]}
RUN = _mlflow_runs()["baseline"]
TABLE = json.loads((RUN / "artifacts" / "eval_results_table.json").read_text(encoding="utf-8"))


@fuzz(120)
@given(mutated(PF_LINES))
def test_promptfoo_jsonl_lines_with_any_node_replaced_are_read_or_refused(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("pf") / "results.jsonl"
    body = "\n".join(json.dumps(x) for x in lines) if isinstance(lines, list) else json.dumps(lines)
    path.write_text(body + "\n", encoding="utf-8")
    only_success_or_refusal(READERS["promptfoo"], path, CTX)


@fuzz(120)
@given(mutated(RAGAS_LINES), st.booleans())
def test_ragas_jsonl_with_any_node_replaced_is_read_or_refused(tmp_path_factory, lines, with_dataset):
    path = tmp_path_factory.mktemp("ragas") / "results.jsonl"
    body = "\n".join(json.dumps(x) for x in lines) if isinstance(lines, list) else json.dumps(lines)
    path.write_text(body + "\n", encoding="utf-8")
    ctx = ImportContext("d", "v", dataset_file=RAGAS_DATASET if with_dataset else None)
    only_success_or_refusal(READERS["ragas"], path, ctx)


@fuzz(150)
@given(st.sampled_from(sorted(CSV_ROWS)), st.data())
def test_tool_csv_files_with_any_cell_replaced_are_read_or_refused(tmp_path_factory, tool, data):
    rows = [list(r) for r in CSV_ROWS[tool]]
    i = data.draw(st.integers(0, len(rows) - 1))
    j = data.draw(st.integers(0, len(rows[i]) - 1))
    rows[i][j] = str(data.draw(scalars))
    if data.draw(st.booleans()):
        rows[i] = rows[i][: data.draw(st.integers(0, len(rows[i])))]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path = tmp_path_factory.mktemp("csv") / "results.csv"
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogatepass")
    detect_tool(path)
    only_success_or_refusal(READERS[tool], path, CTX)


@fuzz(120)
@given(st.data())
def test_mlflow_tables_and_run_files_with_anything_replaced_are_read_or_refused(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("mlflow") / "exp" / RUN.name
    shutil.copytree(RUN, run)
    target = data.draw(st.sampled_from(["table", "meta", "metric", "tag"]))
    if target == "table":
        (run / "artifacts" / "eval_results_table.json").write_text(json.dumps(data.draw(mutated(TABLE))))
    elif target == "meta":
        (run / "meta.yaml").write_text(data.draw(st.text(max_size=80)), encoding="utf-8", errors="surrogatepass")
    elif target == "metric":
        (run / "metrics" / "exact_match" / "mean").write_text(data.draw(st.text(max_size=40)), encoding="utf-8",
                                                              errors="surrogatepass")
    else:
        (run / "tags" / "role").write_text(json.dumps(data.draw(json_values)), encoding="utf-8")
    only_success_or_refusal(read_mlflow, run, CTX)
