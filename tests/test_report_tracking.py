"""MLflow as its users expect: one experiment per task, params as filterable strings, metrics as
numbers, tags for provenance, result.json and (on the summary run) the report as artifacts; tracking
twice never duplicates, and a rerun job updates its run in place."""

import json
import shutil

import pytest

from report_results import report_results
from sparsebench.cli import main
from sparsebench.results import find_results, read_result


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    src = report_results(tmp_path_factory)
    results = tmp_path_factory.mktemp("tracked") / "results"
    shutil.copytree(src, results)
    reports = results.parent / "reports"
    assert main(["report", "--results", str(results), "--out", str(reports)]) == 0
    uri = f"sqlite:///{results / 'mlflow.db'}"
    assert main(["track", "--results", str(results), "--reports", str(reports), "--tracking-uri", uri,
                 "--out", str(results / "mlflow_runs.csv")]) == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lm-smollm2")
    return results, reports, uri, client, exp


def _result_runs(client, exp, filter_string=""):
    f = "tags.`sparsebench.kind` = 'result'" + (f" and {filter_string}" if filter_string else "")
    return client.search_runs([exp.experiment_id], filter_string=f)


def test_one_experiment_per_task_with_one_run_per_result_and_one_summary_run(tracked):
    results, _, _, client, exp = tracked
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"  # the UI opens on the runs table
    runs = client.search_runs([exp.experiment_id])
    kinds = sorted(r.data.tags["sparsebench.kind"] for r in runs)
    assert kinds == ["result"] * len(find_results(results)) + ["summary"]
    assert {r.data.tags["sparsebench.run_id"] for r in runs if "sparsebench.run_id" in r.data.tags} == \
        {read_result(p)["run_id"] for p in find_results(results)}


def test_params_are_strings_users_can_filter_on_and_metrics_are_numbers(tracked):
    _, _, _, client, exp = tracked
    runs = _result_runs(client, exp, "params.method = 'magnitude' and params.target = '50%'")
    assert len(runs) == 1
    run = runs[0]
    assert all(isinstance(v, str) for v in run.data.params.values())
    assert {"task", "method", "family", "pattern", "target", "target_sparsity", "seed", "hardware",
            "task.window", "task.eval_windows"} <= set(run.data.params)
    assert run.data.params["seed"] == "0" and run.data.params["task.window"] == "128"
    m = run.data.metrics
    assert all(isinstance(v, float) for v in m.values())
    assert {"perplexity", "measured_sparsity", "time.total_s", "memory.peak_rss_mb"} <= set(m)
    assert m["measured_sparsity"] == pytest.approx(0.5, abs=1e-3)
    # a numeric comparison in a filter works only on numbers
    import pandas as pd

    df = pd.read_csv(tracked[0] / "summary.csv")
    expected = set(df[df["metric.perplexity"] > m["perplexity"]]["run_id"])
    worse = _result_runs(client, exp, f"metrics.perplexity > {m['perplexity']}")
    assert {r.data.tags["sparsebench.run_id"] for r in worse} == expected and expected


def test_tags_name_run_id_family_paper_commit_and_hardware(tracked):
    results, _, _, client, exp = tracked
    result = read_result(next(p for p in find_results(results) if "/magnitude/" in str(p)))
    run = _result_runs(client, exp, f"tags.`sparsebench.run_id` = '{result['run_id']}'")[0]
    t = run.data.tags
    assert t["family"] == "pruning" and t["hardware_profile"] == "cpu"
    assert t["commit"] == result["environment"]["commit"] == t["mlflow.source.git.commit"]
    assert t["paper"] == (result["paper"] or {}).get("title", "")
    assert t["data_hash"] == result["data"]["eval_tokens_sha256"]


def test_result_json_and_the_report_are_artifacts(tracked):
    _, _, _, client, exp = tracked
    run = _result_runs(client, exp)[0]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["result.json"]
    summary = client.search_runs([exp.experiment_id], "tags.`sparsebench.kind` = 'summary'")[0]
    top = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"report", "figures", "summary.csv"} <= top
    assert {a.path for a in client.list_artifacts(summary.info.run_id, "report")} >= {"report/index.html",
                                                                                      "report/claims.json"}
    figs = {a.path for a in client.list_artifacts(summary.info.run_id, "figures")}
    assert {"figures/quality_vs_sparsity_lm-smollm2.png", "figures/quality_vs_sparsity_lm-smollm2.pdf"} <= figs


def test_tracking_again_creates_nothing(tracked):
    results, reports, uri, client, exp = tracked
    before = {r.info.run_id for r in client.search_runs([exp.experiment_id])}
    assert main(["track", "--results", str(results), "--reports", str(reports), "--tracking-uri", uri]) == 0
    assert {r.info.run_id for r in client.search_runs([exp.experiment_id])} == before


def test_a_rerun_job_updates_its_run_in_place(tracked, tmp_path):
    from sparsebench.results import write_result
    from sparsebench.tracking import track_results

    results, reports, _, _, _ = tracked
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    first = track_results(copy, uri)
    path = next(p for p in find_results(copy) if "/magnitude/" in str(p))
    result = json.loads(path.read_text())
    result["metrics"]["perplexity"] = 12345.0  # as if the job was rerun after its method file changed
    write_result(path, result)
    second = track_results(copy, uri)
    assert len(second) == len(first) and not second["created"].any() and second["updated"].sum() == 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    row = second[second["updated"]].iloc[0]
    assert row["mlflow_run_id"] == first.set_index("run_id").loc[row["run_id"], "mlflow_run_id"]
    assert client.get_run(row["mlflow_run_id"]).data.metrics["perplexity"] == 12345.0
