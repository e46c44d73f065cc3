"""Atomic result files, the summary table, and MLflow tracking that never duplicates a run."""

import json
import os

import pytest

from conftest import make_job
from sparsebench.results import find_results, read_result, summarize, write_atomic, write_result
from sparsebench.runner import run_job


def test_atomic_write_never_exposes_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "runs" / "x" / "result.json"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_result(target, {"schema": 1, "status": "ok"})
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temp file is cleaned up too


def test_incomplete_result_is_not_read(tmp_path):
    p = tmp_path / "result.json"
    write_atomic(p, json.dumps({"schema": 1, "status": "running"}))
    with pytest.raises(ValueError, match="not a complete"):
        read_result(p)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    for method, target in [("dense", {"sparsity": 0.0, "pattern": "unstructured"}),
                           ("magnitude", {"sparsity": 0.5, "pattern": "unstructured"}),
                           ("random", {"sparsity": 0.5, "pattern": "2:4"})]:
        job = make_job(method, target)
        run_job(job, job.result_path(d))
    return d


def test_summary_has_one_row_per_result(results_dir):
    df = summarize(find_results(results_dir))
    assert sorted(df["method"]) == ["dense", "magnitude", "random"]
    assert {"metric.perplexity", "measured_sparsity", "time.eval_s", "commit", "data_hash"} <= set(df.columns)
    assert df["data_hash"].nunique() == 1


def test_tracking_twice_leaves_one_run_per_result(results_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    from sparsebench.tracking import RUN_ID_TAG, track_results

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = track_results(results_dir, uri)
    second = track_results(results_dir, uri)
    assert first["created"].all() and not second["created"].any()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lm-smollm2")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3
    assert {r.data.tags[RUN_ID_TAG] for r in runs} == {read_result(p)["run_id"] for p in find_results(results_dir)}
    run = next(r for r in runs if r.data.params["method"] == "magnitude")
    assert run.data.metrics["perplexity"] > 1 and run.data.params["target"] == "50%"
    assert run.data.tags["family"] == "pruning"


def test_report_builds_from_stored_results(results_dir, tmp_path):
    from sparsebench.cli import main

    assert main(["aggregate", "--results", str(results_dir)]) == 0
    assert main(["report", "--results", str(results_dir), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "quality_vs_sparsity_lm-smollm2" in html and "data:image/png;base64" in html
    assert (tmp_path / "rep" / "figures" / "quality_vs_sparsity_lm-smollm2.pdf").exists()
