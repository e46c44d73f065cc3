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
