"""The real DAG on the real model: snakemake on config/ci.yaml in a temporary directory."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")


def snakemake(root, workdir, *extra, check=True):
    cmd = [SNAKEMAKE, "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(root / "config" / "ci.yaml"), "--cores", "2", *extra]
    env = dict(os.environ, SPARSEBENCH_ROOT=str(root), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-4000:] + proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="module")
def workflow_run(root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    t0 = time.perf_counter()
    proc = snakemake(root, workdir)
    return workdir, proc, time.perf_counter() - t0


def test_workflow_produces_summary_mlflow_and_report(workflow_run):
    workdir, _, _ = workflow_run
    df = pd.read_csv(workdir / "results" / "summary.csv")
    assert (workdir / "results" / "summary.parquet").exists()
    n_results = len(df)
    # pruning: dense once, magnitude and random at 50 % and 2:4
    pruning = df[df.family == "pruning"]
    assert len(pruning) == 5
    assert set(pruning["method"]) == {"dense", "magnitude", "random"}
    assert pruning["metric.perplexity"].notna().all()
    dense = pruning[pruning.method == "dense"]["metric.perplexity"].iloc[0]
    assert (pruning[pruning.method != "dense"]["metric.perplexity"] > dense).all()
    # every other family in the CI matrix produced a row with its task's metric
    assert df.groupby("family").size().min() >= 1
    html = (workdir / "reports" / "index.html").read_text()
    assert "quality_vs_sparsity_lm-smollm2" in html
    runs = pd.read_csv(workdir / "results" / "mlflow_runs.csv")
    assert runs["mlflow_run_id"].nunique() >= n_results


def test_mlflow_store_has_one_run_per_result(workflow_run):
    from mlflow.tracking import MlflowClient

    workdir, _, _ = workflow_run
    client = MlflowClient(f"sqlite:///{workdir / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lm-smollm2")
    df = pd.read_csv(workdir / "results" / "summary.csv")
    n_lm = int((df.task == "lm-smollm2").sum())
    assert len(client.search_runs([exp.experiment_id], "tags.`sparsebench.kind` = 'result'")) == n_lm
    # plus one summary run carrying the report and figures
    (summary,) = client.search_runs([exp.experiment_id], "tags.`sparsebench.kind` = 'summary'")
    assert "report" in {a.path for a in client.list_artifacts(summary.info.run_id)}


def test_rerun_does_nothing(root, workflow_run):
    workdir, _, _ = workflow_run
    proc = snakemake(root, workdir)
    # (how long the no-op takes is a benchmark figure, not asserted here: it depends on the machine's load)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_changing_one_method_file_reruns_only_its_jobs(root, workflow_run):
    # Snakemake reruns a job when an input's content changed (a bare touch is not enough).
    workdir, _, _ = workflow_run
    method_file = root / "methods" / "pruning" / "random.py"
    original = method_file.read_text()
    stat = method_file.stat()
    try:
        method_file.write_text(original + "\n# edited by test_changing_one_method_file_reruns_only_its_jobs\n")
        proc = snakemake(root, workdir, "-n", "--quiet", "rules")
    finally:
        method_file.write_text(original)
        os.utime(method_file, (stat.st_atime, stat.st_mtime))
    out = proc.stdout + proc.stderr
    lines = [ln.split() for ln in out.splitlines() if ln.strip().startswith(("run_job", "aggregate", "prepare_task"))]
    counts = {ln[0]: int(ln[1]) for ln in lines if len(ln) > 1 and ln[1].isdigit()}
    assert counts.get("run_job") == 2, out  # random at 50 % and 2:4, nothing else
    assert "prepare_task" not in counts
