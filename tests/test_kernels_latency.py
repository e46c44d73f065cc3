"""The latency model: kernel measurements -> an estimated latency per accuracy result and profile."""

import json

import pandas as pd
import pytest

from sparsebench.hardware import HardwareProfile, detect, measured_cpu_peaks, profile
from sparsebench.latency import KernelTable, add_latency_columns, estimate_ms
from sparsebench.targets import Pattern


def _row(op, out_f, in_f, density, dense_ms, speedup, tokens=1):
    return {"id": f"{op}/{out_f}x{in_f}/d{density}", "op": op, "status": "ok", "tokens": tokens, "out_features": out_f,
            "in_features": in_f, "density": density, "dense_ms": dense_ms, "sparse_ms": dense_ms / speedup,
            "speedup": speedup}


TABLE = {"profile": "toy", "rows": [
    _row("csr", 100, 100, 0.1, 1.0, 4.0), _row("csr", 100, 100, 0.5, 1.0, 0.5),
    _row("gemv_2_4", 100, 100, 0.5, 1.0, 1.25), _row("semi_structured", 100, 100, 0.5, 1.0, 0.8),
    _row("act_sparse_gemv", 100, 100, 0.5, 1.0, 1.6), _row("csr", 100, 100, 0.1, 9.0, 9.0, tokens=512),
]}
LAYERS = [(100, 100, True), (100, 100, True), (200, 100, False)]  # two prunable, one dense head twice as big


def test_dense_model_costs_the_sum_of_measured_dense_layer_times():
    t = KernelTable(TABLE)
    assert estimate_ms(t, LAYERS, "pruning", Pattern.parse("unstructured"), 0.0) == pytest.approx(1 + 1 + 2)


def test_sparse_layers_use_the_interpolated_speedup_and_never_lose_to_dense():
    t = KernelTable(TABLE)
    # density 0.1: csr 4x -> 0.25 ms per prunable layer; the head stays dense (2 ms, scaled by weight count)
    assert estimate_ms(t, LAYERS, "pruning", Pattern.parse("unstructured"), 0.9) == pytest.approx(0.25 * 2 + 2)
    # density 0.3: interpolated 2.25x
    assert estimate_ms(t, LAYERS, "pruning", Pattern.parse("unstructured"), 0.7) == pytest.approx(2 / 2.25 + 2)
    # density 0.5: csr is slower than dense (0.5x), so the layer runs dense
    assert estimate_ms(t, LAYERS, "pruning", Pattern.parse("unstructured"), 0.5) == pytest.approx(4)


def test_2_4_takes_the_faster_2_4_kernel_and_other_nm_patterns_run_dense():
    t = KernelTable(TABLE)
    assert estimate_ms(t, LAYERS, "pruning", Pattern.parse("2:4"), 0.5) == pytest.approx(2 / 1.25 + 2)
    assert estimate_ms(t, LAYERS, "pruning", Pattern.parse("4:8"), 0.5) == pytest.approx(4)


def test_activation_sparsity_uses_the_activation_sparse_gemv():
    t = KernelTable(TABLE)
    assert estimate_ms(t, LAYERS, "activation_sparsity", Pattern.parse("unstructured"), 0.5) == pytest.approx(2 / 1.6 + 2)


def test_aggregate_adds_one_latency_column_per_profile(tmp_path):
    (tmp_path / "toy.json").write_text(json.dumps(TABLE))
    df = pd.DataFrame([
        {"task": "t", "method": "dense", "family": "pruning", "pattern": "unstructured", "target_sparsity": 0.0,
         "measured_sparsity": 0.0},
        {"task": "t", "method": "magnitude", "family": "pruning", "pattern": "unstructured", "target_sparsity": 0.9,
         "measured_sparsity": 0.9},
    ])
    out = add_latency_columns(df, tmp_path, layers_of=lambda task: LAYERS)
    assert list(out["latency_ms.toy"]) == pytest.approx([4.0, 2.5])


def test_profiles_not_run_here_use_their_committed_measurements_and_say_so(tmp_path):
    run, committed = tmp_path / "kernels", tmp_path / "baselines"
    run.mkdir(), committed.mkdir()
    (run / "toy.json").write_text(json.dumps(TABLE))
    slower = {"profile": "toy", "rows": [dict(r, dense_ms=2 * r["dense_ms"]) for r in TABLE["rows"]]}
    (committed / "toy_measurements.json").write_text(json.dumps(slower))  # this run's toy.json wins
    (committed / "gpu_measurements.json").write_text(json.dumps(dict(TABLE, profile="gpu")))
    (committed / "gpu.json").write_text("{}")  # a gate baseline, not measurements: ignored
    df = pd.DataFrame([{"task": "t", "method": "dense", "family": "pruning", "pattern": "unstructured",
                        "target_sparsity": 0.0, "measured_sparsity": 0.0}])
    out = add_latency_columns(df, run, layers_of=lambda task: LAYERS, committed_dir=committed)
    assert list(out["latency_ms.toy"]) == pytest.approx([4.0])
    assert list(out["latency_ms.gpu"]) == pytest.approx([4.0])
    assert out["latency_from.toy"][0] == str(run / "toy.json")
    assert out["latency_from.gpu"][0] == str(committed / "gpu_measurements.json")


def test_measured_end_to_end_latency_replaces_the_estimate_where_that_model_and_variant_ran(tmp_path):
    from sparsebench.latency import llama_linear_layers

    committed = tmp_path / "baselines"
    committed.mkdir()
    shape = {"hidden": 32, "intermediate": 64, "heads": 2, "head_dim": 16, "vocab": 100}
    (committed / "toy_measurements.json").write_text(json.dumps(TABLE))
    (committed / "toy_decode.json").write_text(json.dumps({"shape": shape, "layers": 2, "rows": [
        {"variant": "dense", "step_ms": 5.0}, {"variant": "2:4", "step_ms": 4.5},
        {"variant": "teal-0.5", "step_ms": 4.0, "target_share": 0.5, "zero_share": 0.507}]}))
    llama = [(o, i, o != 100) for o, i in llama_linear_layers(shape, 2)]  # the decode measurement's model
    rows = [("llama", "pruning", "unstructured", 0.0), ("llama", "pruning", "2:4", 0.5),
            ("llama", "activation_sparsity", "unstructured", 0.5), ("llama", "activation_sparsity", "unstructured", 0.4),
            ("llama", "pruning", "unstructured", 0.5), ("other", "pruning", "2:4", 0.5),
            ("vision-digits", "pruning", "2:4", 0.5)]
    df = pd.DataFrame([{"task": t, "method": "m", "family": f, "pattern": p, "target_sparsity": s,
                        "measured_sparsity": s} for t, f, p, s in rows])
    out = add_latency_columns(df, tmp_path / "none", layers_of=lambda task: llama if task == "llama" else LAYERS,
                              committed_dir=committed)
    assert list(out["latency_ms.toy"][:3]) == [5.0, 4.5, 4.0]
    assert list(out["latency_kind.toy"][:6]) == ["measured"] * 3 + ["estimated"] * 3
    assert out["latency_ms.toy"][6] != out["latency_ms.toy"][6]  # vision: no latency (NaN), no kind
    assert not isinstance(out["latency_kind.toy"][6], str)


def test_cpu_profile_measures_its_peaks_once_and_caches_them(tmp_path, monkeypatch):
    import sparsebench.hardware as hw

    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(hw, "measure_cpu_peaks", lambda threads: calls.append(threads) or
                        {"flops": 1e9, "bandwidth": 1e9, "source": "test"})
    assert measured_cpu_peaks(1) == measured_cpu_peaks(1)
    assert calls == [1]
    assert list((tmp_path / "hardware").glob("cpu-peaks-*.json"))


def test_detect_falls_back_to_cpu_and_gpu_profiles_say_why_they_are_absent():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert detect().name == "cpu"
    ok, why = profile("h100").available()
    assert not ok and "CUDA" in why
    assert profile("h100").peaks()["bandwidth"] == 3350e9


def test_cli_collects_commands_without_importing_heavy_or_workflow_packages(root):
    import subprocess
    import sys

    code = ("import sys; from sparsebench.cli import build_parser; build_parser(); "
            "print([m for m in ('snakemake', 'mlflow', 'jsonschema', 'torch', 'triton') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stderr


def test_report_draws_one_latency_front_per_task_and_profile_and_legible_kernel_panels():
    import matplotlib.pyplot as plt

    from sparsebench.report.figures import catalog
    from sparsebench.report.figures.kernels import MAX_SERIES, kernel_speedup_vs_density

    figs = kernel_speedup_vs_density(pd.DataFrame({"result_path": []}))
    assert "kernel_speedup_vs_density_h100" in figs
    for fig in figs.values():  # at most MAX_SERIES shapes (+ the ideal line) in any panel's legend
        for ax in fig.axes:
            if ax.get_legend() is not None:
                assert len(ax.get_legend().get_texts()) <= MAX_SERIES + 1, ax.get_title()
    df = pd.DataFrame([
        {"task": "t", "family": "pruning", "method": m, "target_label": lab, "pattern": pat, "target_sparsity": sp,
         "measured_sparsity": sp, "seed": 0, "hardware": "cpu", "primary_metric": "perplexity",
         "metric.perplexity": p, "latency_ms.h100": lat}
        for m, lab, pat, sp, p, lat in [("dense", "0%", "unstructured", 0.0, 10.0, 2.0),
                                        ("wanda", "2:4", "2:4", 0.5, 12.0, 1.5),
                                        ("magnitude", "2:4", "2:4", 0.5, 30.0, 1.5)]
    ])
    drawn = [name for b in catalog().values() for name in b.build(df) if "latency" in name or "pareto" in name]
    assert drawn == ["pareto_t_h100"]  # one front, not two identical figures
    plt.close("all")
