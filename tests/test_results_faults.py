"""Damaged and invalid results: readers name the file and go on; non-finite metrics mark a result invalid."""

import json
import math

import pandas as pd
import pytest

from fake_results import sparsebench, write_fake


@pytest.fixture
def damaged(tmp_path):
    d = tmp_path / "results"
    write_fake(d, "dense", 0.0, 20.0)
    write_fake(d, "magnitude", 0.5, 30.0)
    bad = write_fake(d, "random", 0.5, 900.0)
    bad.write_text(bad.read_text()[:200])  # a truncated file (disk full, a copy cut short)
    return d, bad


def test_aggregate_names_a_truncated_result_and_summarises_the_rest(damaged):
    d, bad = damaged
    proc = sparsebench("aggregate", "--results", d)
    assert proc.returncode == 0, proc.stderr
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
    df = pd.read_csv(d / "summary.csv")
    assert sorted(df["method"]) == ["dense", "magnitude"]


@pytest.mark.parametrize("command", [["report", "--out", "{tmp}/reports"], ["claims"],
                                     ["track", "--tracking-uri", "sqlite:///{tmp}/mlflow.db"]])
def test_report_claims_and_track_name_a_truncated_result_and_go_on(damaged, tmp_path, command):
    d, bad = damaged
    assert sparsebench("aggregate", "--results", d).returncode == 0
    proc = sparsebench(*[c.format(tmp=tmp_path) for c in command], "--results", d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_aggregate_rule_keeps_the_last_good_summary_if_it_fails(root):
    # Snakemake deletes a rule's outputs before it runs; `update()` keeps them and restores them on failure.
    text = (root / "workflow" / "rules" / "aggregate.smk").read_text()
    assert 'csv=update(f"{RESULTS}/summary.csv")' in text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_metric_marks_the_result_invalid_at_the_job(tmp_path, monkeypatch, value):
    from conftest import make_job
    from sparsebench import registry
    from sparsebench.runner import run_job

    job = make_job("dense", {"sparsity": 0.0, "pattern": "unstructured"})
    module = registry.families()[job.family].module
    monkeypatch.setattr(module, "run", lambda ctx: {"metrics": {"perplexity": value}, "sparsity": {"measured": 0.0}})
    out = job.result_path(tmp_path)
    result = run_job(job, out)
    assert result["status"] == "invalid"
    assert result["invalid_reason"].startswith(f"perplexity={value}")
    stored = json.loads(out.read_text())  # strict JSON: no NaN/Infinity tokens
    assert stored["status"] == "invalid" and stored["metrics"]["perplexity"] is None


@pytest.fixture
def with_invalid(tmp_path):
    d = tmp_path / "results"
    write_fake(d, "dense", 0.0, 20.0)
    write_fake(d, "magnitude", 0.5, 30.0)
    write_fake(d, "random", 0.5, None, status="invalid", invalid_reason="perplexity=inf: non-finite metric")
    assert sparsebench("aggregate", "--results", d).returncode == 0
    return d


def test_summary_carries_status_and_reason_of_an_invalid_result(with_invalid):
    df = pd.read_csv(with_invalid / "summary.csv")
    row = df[df.method == "random"].iloc[0]
    assert row["status"] == "invalid" and row["invalid_reason"].startswith("perplexity=inf")
    assert set(df[df.method != "random"]["status"]) == {"ok"}


def test_report_lists_an_invalid_result_and_never_plots_it(with_invalid, tmp_path):
    from sparsebench.report.summary import load_summary

    df = load_summary(with_invalid)
    assert "random" not in set(df["method"])  # figures, tables and claims read only valid rows
    assert [r["method"] for r in df.attrs["invalid"]] == ["random"]
    proc = sparsebench("report", "--results", with_invalid, "--out", tmp_path / "reports")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "reports" / "index.html").read_text()
    assert "Invalid results" in html and "perplexity=inf: non-finite metric" in html


def test_mlflow_shows_an_invalid_result_as_failed_without_its_numbers(with_invalid, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = sparsebench("track", "--results", with_invalid, "--tracking-uri", uri)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lm-smollm2")
    runs = client.search_runs([exp.experiment_id])
    bad = [r for r in runs if r.data.params.get("method") == "random"]
    assert len(bad) == 1 and bad[0].info.status == "FAILED"
    assert bad[0].data.tags["sparsebench.status"] == "invalid"
    assert "perplexity" not in bad[0].data.metrics
    assert all(math.isfinite(v) for r in runs for v in r.data.metrics.values())


def _result_runs(uri, task="lm-smollm2"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(task)
    runs = client.search_runs([exp.experiment_id])  # active runs: deleted ones are not listed
    return client, [r for r in runs if "sparsebench.run_id" in r.data.tags]


def test_two_tracks_at_once_leave_one_run_per_result(tmp_path):
    import subprocess
    import sys

    from fake_results import sparsebench  # noqa: F401 - same environment as the CLI helper
    d = tmp_path / "results"
    for i, m in enumerate(["magnitude", "random", "wanda"]):
        write_fake(d, m, 0.5, 30.0 + i)
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    import os
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root), SPARSEBENCH_ROOT=str(root))
    cmd = [sys.executable, "-m", "sparsebench", "track", "--results", str(d), "--tracking-uri", uri]
    procs = [subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    _, runs = _result_runs(uri)
    assert len(runs) == 3 and len({r.data.tags["sparsebench.run_id"] for r in runs}) == 3


def test_track_replaces_a_run_left_incomplete_by_a_kill(tmp_path):
    from mlflow.tracking import MlflowClient

    d = tmp_path / "results"
    path = write_fake(d, "magnitude", 0.5, 30.0)
    run_id = json.loads(path.read_text())["run_id"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert sparsebench("track", "--results", d, "--tracking-uri", uri).returncode == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lm-smollm2")
    # a later track killed between creating a run and logging it: a RUNNING run without params or artifact
    client.create_run(exp.experiment_id, tags={"sparsebench.run_id": run_id, "sparsebench.kind": "result"})
    proc = sparsebench("track", "--results", d, "--tracking-uri", uri)
    assert proc.returncode == 0, proc.stderr
    _, runs = _result_runs(uri)
    assert len(runs) == 1
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.params.get("method") == "magnitude"
    assert "result.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_track_completes_a_run_killed_before_its_artifact(tmp_path):
    from mlflow.tracking import MlflowClient

    d = tmp_path / "results"
    path = write_fake(d, "magnitude", 0.5, 30.0)
    run_id = json.loads(path.read_text())["run_id"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = client.create_experiment("lm-smollm2")
    client.create_run(exp_id, tags={"sparsebench.run_id": run_id})  # killed right after create_run
    proc = sparsebench("track", "--results", d, "--tracking-uri", uri)
    assert proc.returncode == 0, proc.stderr
    _, runs = _result_runs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.params
    assert "result.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}
