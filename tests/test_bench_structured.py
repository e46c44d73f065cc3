"""`sparsebench bench structured` on a tiny local llama: every variant is measured, FLAP's model is smaller."""

import json
import subprocess
import sys
from pathlib import Path

from local_lm_fixture import local_task_params, write_checkpoint, write_text

ROOT = Path(__file__).resolve().parents[1]


def test_bench_structured_measures_dense_flap_masked_and_eora_variants(tmp_path):
    text = write_text(tmp_path / "text")
    ckpt = write_checkpoint(tmp_path / "ckpt", text)
    params = {**local_task_params(ckpt, text), "window": 32, "eval_windows": 2, "calibration_window": 32}
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", "sparsebench", "bench", "structured", "--task", "lm-local",
                           "--task-params", json.dumps(params), "--sparsities", "0.5", "--eora-ranks", "4", "--align", "16",
                           "--calibration-windows", "2", "--tokens", "16", "--repeats", "2", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    dense = rows["dense"]
    flap = rows["FLAP 50% (smaller dense model)"]
    unstructured = rows["unstructured 50% (magnitude, zeros in dense weights)"]
    eora = rows["2:4 + EoRA rank 4 (Wanda)"]
    assert flap["parameters"] < dense["parameters"]
    assert unstructured["parameters"] == dense["parameters"]  # zeros stay stored: no smaller model
    assert abs(unstructured["prunable_nonzero"] / dense["prunable_nonzero"] - 0.5) < 0.01
    assert eora["parameters"] > dense["parameters"]
    assert all(r["prefill_ms"] > 0 and r["token_ms"] > 0 for r in rows.values())
    assert "x dense" in proc.stdout


def run_bench(tmp_path, *argv):
    text = write_text(tmp_path / "text")
    ckpt = write_checkpoint(tmp_path / "ckpt", text)
    params = {**local_task_params(ckpt, text), "window": 32, "eval_windows": 2, "calibration_window": 32}
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", "sparsebench", "bench", *argv, "--task", "lm-local",
                           "--task-params", json.dumps(params), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


def test_bench_structured_adds_flap_aligned_rows_whose_mlp_widths_are_multiples_of_align(tmp_path):
    doc, _ = run_bench(tmp_path, "structured", "--sparsities", "0.4", "--eora-ranks", "", "--align", "16",
                       "--calibration-windows", "2", "--tokens", "16", "--repeats", "1")
    rows = {r["method"]: r for r in doc["rows"] if r["method"].startswith("flap")}
    assert all(w % 16 == 0 for w in rows["flap-aligned"]["mlp_widths"])
    assert rows["flap-aligned"]["parameters"] < doc["rows"][0]["parameters"]


def test_bench_parity_reports_ours_over_orderings_and_threads_with_the_spread(tmp_path):
    doc, out = run_bench(tmp_path, "parity", "--method", "wanda", "--targets", "50%", "--orderings", "2",
                         "--threads", "1,2", "--hardware", "cpu")
    row = doc["rows"][0]
    assert [(r["ordering"], r["threads"]) for r in row["runs"]] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert len(row["ours"]) == 4 and row["ours_spread"]["min"] <= row["ours_spread"]["mean"] <= row["ours_spread"]["max"]
    assert "ours min-max" in out


def test_bench_eora_budget_compares_eora_with_pruning_less_at_equal_stored_parameters(tmp_path):
    doc, out = run_bench(tmp_path, "eora-budget", "--ranks", "2", "--calibration-windows", "2", "--eval-windows", "2")
    r = doc["rows"][0]
    e, l = r["eora"], r["prune_less"]
    assert e["added"] > 0 and l["sparsity"] < 0.5
    # per-row pruning rounds each row's count: equal within one weight per row of every layer
    assert abs(e["stored"] - l["stored"]) <= e["rows"]
    assert r["ratio_interval"][0] <= r["ratio"] <= r["ratio_interval"][1]


def test_a_permuted_ordering_holds_the_same_calibration_windows_in_another_order():
    import torch

    from sparsebench.pruning.bench_parity import PermutedCalibration

    class Task:
        def calibration_windows(self, seed):
            return torch.arange(40).reshape(8, 5) + seed

    base = Task().calibration_windows(0)
    assert torch.equal(PermutedCalibration(Task(), 0).calibration_windows(0), base)
    other = PermutedCalibration(Task(), 1).calibration_windows(0)
    assert not torch.equal(other, base)
    assert sorted(map(tuple, other.tolist())) == sorted(map(tuple, base.tolist()))
