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
                           "--task-params", json.dumps(params), "--sparsities", "0.5", "--eora-ranks", "4",
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
