"""The end-to-end decode model: its step runs, and TEAL's thresholds zero the share they were calibrated for."""

import torch

from sparsebench.kernels.decode_bench import LINEARS, Model, ModelShape, calibrate_teal

TINY = ModelShape(hidden=64, intermediate=128, heads=4, head_dim=16, vocab=50)


def _model():
    return Model(TINY, layers=2, context=8, generator=torch.Generator().manual_seed(0))


def test_a_decode_step_gives_finite_logits_of_the_vocabulary():
    m = _model()
    logits = m.step(lambda i, n, a: torch.nn.functional.linear(a.float(), m.w[i][n].float()).half())
    assert logits.shape == (1, TINY.vocab) and logits.isfinite().all()


def test_teal_thresholds_zero_about_the_calibrated_share_of_every_linear_input():
    m = _model()
    th = calibrate_teal(m, 0.5, steps=4)
    assert set(th) == {(i, s) for i in range(2) for s in LINEARS.values()}
    zeros = []
    m.step(lambda i, n, a: torch.nn.functional.linear(a.float(), m.w[i][n].float()).half(),
           record=lambda i, s, a: zeros.append(float((a.abs() <= th[(i, s)]).float().mean())))
    assert 0.3 < sum(zeros) / len(zeros) < 0.7


DRY_RUN = """
from sparsebench.kernels.decode_bench import ModelShape, run_decode_bench
doc = run_decode_bench(layers=2, context=8, teal=(0.5,), repeats=1, shape=ModelShape(64, 128, 4, 16, 50),
                       device="cpu", log=lambda m: None, rounds=2)
rows = {r["variant"]: r for r in doc["rows"]}
assert set(rows) == {"dense", "2:4", "teal-0.5"}, rows
assert rows["2:4"]["rel_error"] < 2e-2 and rows["teal-0.5"]["rel_error"] < 2e-2, rows
assert 0.3 < rows["teal-0.5"]["zero_share"] < 0.7, rows
assert all(len(r["round_ms"]) == 2 and len(r["speedup_ci95"]) == 2 for r in rows.values()), rows
assert rows["teal-0.5"]["verdict"] in ("met", "missed", "inconclusive"), rows
import torch
from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv
x, wt = torch.randn(64), torch.randn(64, 32)
for cfg in [("fma", 16, 32, 1, 2, 1, "atomic"), ("mma", 16, 32, 1, 2, 2, "last")]:
    y = activation_sparse_gemv(x, wt, *cfg, threshold=0.5)
    ref = (x * (x.abs() > 0.5)) @ wt
    assert float((y - ref).norm() / ref.norm()) < 1e-5, cfg
print("ok")
"""


def test_every_variant_matches_its_f_linear_path_in_the_triton_interpreter(root):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", DRY_RUN], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_the_speed_up_interval_is_over_paired_rounds_and_its_verdict_is_honest():
    from sparsebench.kernels.decode_bench import ratio_interval, verdict

    mean, low, high = ratio_interval([5.8, 5.7, 5.9, 5.8], [4.4, 4.4, 4.5, 4.4])
    assert low < mean < high and abs(mean - 1.3104) < 1e-3
    assert ratio_interval([2.0, 2.0], [1.0, 1.0]) == (2.0, 2.0, 2.0)
    assert verdict(1.31, 1.35, 1.3) == "met" and verdict(1.2, 1.29, 1.3) == "missed"
    assert verdict(1.29, 1.32, 1.3) == "inconclusive"


def test_rounds_interleave_the_variants_in_a_rotating_order():
    from sparsebench.kernels import decode_bench

    order = []

    class G:
        def __init__(self, name):
            self.name = name

    real = decode_bench._median_replay_ms
    decode_bench._median_replay_ms = lambda g, repeats: order.append(g.name) or 1.0
    try:
        times = decode_bench.time_rounds({"dense": G("dense"), "teal": G("teal")}, rounds=2, repeats=3)
    finally:
        decode_bench._median_replay_ms = real
    assert order == ["dense", "teal", "teal", "dense"] and times == {"dense": [1.0, 1.0], "teal": [1.0, 1.0]}
