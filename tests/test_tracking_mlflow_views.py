"""What a user sees of one result in MLflow beyond its numbers: the workflow invocation that logged it (parent
run), the data it was computed on (datasets), a training run's learning curve (step metrics), the model's
estimated latency, and a UI address that opens on the runs (not MLflow 3's GenAI traces)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fake_results import write_fake

from sparsebench.results import write_atomic, write_result
from sparsebench.tracking import track_results, ui_url


def _client(results):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{results / 'mlflow.db'}"
    return uri, MlflowClient(uri)


def _runs(client, kind):
    from sparsebench.tracking import INVOCATIONS_EXPERIMENT

    exp = client.get_experiment_by_name(INVOCATIONS_EXPERIMENT if kind == "invocation" else "lm-smollm2")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`sparsebench.kind` = '{kind}'")


def test_each_track_that_logs_runs_makes_one_parent_and_the_job_runs_its_children(tmp_path):
    """The parent lives in an experiment of its own: the task's runs table lists the results, not one
    folded parent."""
    results = tmp_path / "results"
    write_fake(results, "magnitude", 0.5, 20.0)
    write_fake(results, "random", 0.5, 900.0)
    uri, client = _client(results)
    track_results(results, uri)
    (parent,) = _runs(client, "invocation")
    assert parent.info.status == "FINISHED" and not parent.data.metrics
    children = _runs(client, "result")
    assert len(children) == 2 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    track_results(results, uri)  # nothing new: no second parent
    assert len(_runs(client, "invocation")) == 1
    write_fake(results, "dense", 0.0, 15.0)
    track_results(results, uri)
    parents = _runs(client, "invocation")
    assert len(parents) == 2
    new = next(r for r in _runs(client, "result") if r.data.params["method"] == "dense")
    assert new.data.tags["mlflow.parentRunId"] != parent.info.run_id
    assert new.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents}


def test_result_data_are_logged_as_datasets_with_their_hash(tmp_path):
    results = tmp_path / "results"
    path = write_fake(results, "magnitude", 0.5, 20.0)
    uri, client = _client(results)
    track_results(results, uri)
    (run,) = _runs(client, "result")
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.name == "lm-smollm2/eval_tokens" and inp.dataset.digest == "0" * 32
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "evaluation"
    assert json.loads(inp.dataset.source)["tags"]["sha256"] == json.loads(path.read_text())["data"]["eval_tokens_sha256"]


def test_training_curve_is_logged_as_step_metrics(tmp_path):
    results = tmp_path / "results"
    path = write_fake(results, "magnitude", 0.5, 20.0)
    result = json.loads(path.read_text())
    result["extra"]["curve"] = [{"step": 10, "epoch": 1.0, "train_loss": 2.0, "val_top1": 40.0},
                                {"step": 20, "epoch": 2.0, "train_loss": 1.0, "val_top1": 70.0}]
    write_result(path, result)
    uri, client = _client(results)
    track_results(results, uri)
    (run,) = _runs(client, "result")
    history = client.get_metric_history(run.info.run_id, "curve.val_top1")
    assert sorted((m.step, m.value) for m in history) == [(10, 40.0), (20, 70.0)]


def test_estimated_latency_from_the_summary_is_a_metric_and_follows_new_kernel_numbers(tmp_path):
    results = tmp_path / "results"
    path = write_fake(results, "magnitude", 0.5, 20.0)
    run_id = json.loads(path.read_text())["run_id"]
    summary = results / "summary.csv"
    write_atomic(summary, pd.DataFrame([{"run_id": run_id, "task": "lm-smollm2", "latency_ms.cpu": 3.5}])
                 .to_csv(index=False))
    uri, client = _client(results)
    track_results(results, uri)
    (run,) = _runs(client, "result")
    assert run.data.metrics["estimated_latency_ms.cpu"] == pytest.approx(3.5)
    write_atomic(summary, pd.DataFrame([{"run_id": run_id, "task": "lm-smollm2", "latency_ms.cpu": 2.5}])
                 .to_csv(index=False))
    table = track_results(results, uri)
    assert bool(table["updated"].iloc[0])
    (run,) = _runs(client, "result")
    assert run.data.metrics["estimated_latency_ms.cpu"] == pytest.approx(2.5)


def test_ui_address_opens_the_first_experiment_in_the_machine_learning_view(tmp_path):
    results = tmp_path / "results"
    uri, client = _client(results)
    assert ui_url(uri).endswith("/#/experiments?workflowType=machine_learning")
    write_fake(results, "magnitude", 0.5, 20.0)
    track_results(results, uri)
    exp = client.get_experiment_by_name("lm-smollm2")
    assert ui_url(uri) == f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"
