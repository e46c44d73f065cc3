"""The gather engine of the activation-sparse GEMV (live inputs compacted per program, then whole tiles of live
weight rows) computes W x over exactly the inputs above the threshold, in the Triton interpreter."""

import os
import subprocess
import sys

import pytest

CHECK = """
import torch
from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv, to_panels
g = torch.Generator().manual_seed(0)
for k, n in [(200, 40), (512, 96)]:  # ragged; several chunks
    x = torch.randn(k, generator=g)
    x[torch.rand(k, generator=g) < 0.5] = 0
    wt = torch.randn(k, n, generator=g)
    for cfg, th in [(("gather", 16, 32, 1, 4, 1, "last"), 0.5), (("gather", 8, 64, 1, 8, 1, "atomic"), 0.0),
                    (("gather", 16, 32, 1, 1 << 20, 1, "last"), 0.0), (("gather", 32, 32, 1, 2, 1, "last"), 0.0)]:
        for _ in range(2):  # "last" leaves its counters at zero for the next call
            y = activation_sparse_gemv(x, wt, *cfg, threshold=th)
            ref = (x * (x.abs() > th)) @ wt
            assert float((y - ref).norm() / ref.norm()) < 1e-5, (k, n, cfg, th)
x = torch.zeros(64)
assert activation_sparse_gemv(x, torch.randn(64, 32), "gather", 16, 32, 1, 2, 1, "last").abs().max() == 0
x = torch.randn(128, generator=g)
wt = torch.randn(128, 64, generator=g)
y = activation_sparse_gemv(x, to_panels(wt, 32), "gather", 16, 32, 1, 4, 1, "last")
assert float((y - x @ wt).norm() / (x @ wt).norm()) < 1e-5, "panels"
print("ok")
"""


def test_the_gather_engine_matches_the_thresholded_product_in_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_an_unknown_engine_is_refused_naming_the_allowed_ones():
    import torch

    from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv

    with pytest.raises(ValueError, match="engine='dot'; allowed: mma, fma, gather, scratch, scratch_fma"):
        activation_sparse_gemv(torch.randn(8), torch.randn(8, 8), "dot")
