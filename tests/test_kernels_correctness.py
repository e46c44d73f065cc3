"""Every kernel of the suite computes what its dense twin computes (CPU here; Triton ones marked gpu)."""

import os
import subprocess
import sys

import pytest
import torch

from sparsebench.kernels.attention_cases import block_mask_from_table, block_table
from sparsebench.kernels.cases import Case, Env, keep_fraction, mask_2_4, mask_blocks
from sparsebench.kernels.linear_cases import build_act_sparse_gather, build_bsr, build_csr
from sparsebench.kernels.timing import copies_for, time_pair
from sparsebench.kernels.triton_gemv import pack_2_4, unpack_2_4


def _env(rotate_mb=1.0):
    return Env("cpu", torch.float32, rotate_mb, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("build,case", [
    (build_csr, Case("csr", "m", "l", 96, 64, 3, 0.3)),
    (build_csr, Case("csr", "m", "l", 96, 64, 1, 0.05)),
    (build_bsr, Case("bsr", "m", "l", 96, 64, 4, 0.5, block=16)),
    (build_act_sparse_gather, Case("act_sparse_gather", "m", "l", 96, 64, 1, 0.4)),
])
def test_cpu_sparse_kernel_matches_dense_reference_on_every_copy(build, case):
    bench = build(case, _env())
    assert bench.rel_error < 1e-5
    for i in range(bench.copies):  # the rotated copies are all real, distinct inputs
        dense, sparse = bench.dense(i), bench.sparse(i)
        sparse = sparse.reshape(dense.shape) if sparse.shape == dense.shape else sparse.t().reshape(dense.shape)
        assert torch.allclose(sparse, dense, rtol=1e-4, atol=1e-5)
    assert not torch.equal(bench.dense(0), bench.dense(1))


def test_masks_keep_exactly_the_requested_share():
    env = _env()
    assert int(keep_fraction((40, 50), 0.3, env).sum()) == 600
    m = mask_2_4(8, 32, env).reshape(8, 8, 4)
    assert (m.sum(-1) == 2).all()
    b = mask_blocks(64, 64, 16, 0.25, env)
    tiles = b.reshape(4, 16, 4, 16).permute(0, 2, 1, 3).reshape(16, 256)
    assert int(tiles.all(1).sum()) == 4 and bool((tiles.all(1) | ~tiles.any(1)).all())


def test_pack_2_4_round_trips_and_uses_one_byte_per_group_of_four():
    env = _env()
    w = torch.randn(16, 64) * mask_2_4(16, 64, env)
    w[0, :4] = 0  # a group with fewer than two non-zeros still packs
    values, meta = pack_2_4(w)
    assert values.shape == (16, 32) and meta.shape == (16, 16) and meta.dtype == torch.uint8
    assert torch.equal(unpack_2_4(values, meta), w)


def test_pack_2_4_rejects_a_weight_that_is_not_2_4():
    with pytest.raises(ValueError, match="not 2:4"):
        pack_2_4(torch.ones(4, 8))


def test_block_table_keeps_the_diagonal_and_the_requested_density():
    keep = block_table(20, 0.3, torch.Generator().manual_seed(0))
    assert keep.diagonal().all()
    assert (keep.sum(1) == 6).all()


def test_block_mask_is_built_from_the_block_table_itself():
    keep = block_table(8, 0.25, torch.Generator().manual_seed(1))
    mask = block_mask_from_table(keep, 8 * 128, "cpu")
    assert torch.equal(mask.to_dense()[0, 0].bool(), keep)


def test_copies_span_the_rotation_budget():
    assert copies_for(2**20, 64) == 65
    assert copies_for(2**30, 64) == 2
    assert copies_for(1, 64) == 512


def test_cpu_timing_interleaves_and_reports_medians():
    calls = []
    t = time_pair(lambda i: calls.append(("d", i)), lambda i: calls.append(("s", i)), copies=3, device="cpu",
                  warmup=2, repeats=5)
    assert t.repeats == 5 and t.method == "perf_counter" and t.dense_ms >= 0 and t.sparse_ms >= 0
    timed = calls[4:]
    assert [c[0] for c in timed] == ["d", "s"] * 5
    assert {c[1] for c in timed} == {0, 1, 2}


TRITON_CHECK = """
import torch
from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv, to_panels
from sparsebench.kernels.triton_gemv import gemv_2_4, pack_2_4
from sparsebench.kernels.cases import Env, mask_2_4
g = torch.Generator().manual_seed(0)
w = torch.randn(96, 128, generator=g)
x = torch.randn(128, generator=g); x[torch.rand(128, generator=g) < 0.5] = 0
ref = w @ x
w24 = w * mask_2_4(96, 128, Env("cpu", torch.float32, 1, g))
y = gemv_2_4(x, *pack_2_4(w24), 16, 8, 4, 1)
ref24 = w24 @ x
assert ((y - ref24).norm() / ref24.norm()) < 1e-5, "2:4 GEMV"
# every engine x reduction, twice each: the "last" reduction must leave its counters at zero
for cfg in [("fma", 32, 64, 4, 1, 1, "atomic"), ("fma", 16, 32, 1, 2, 1, "last"), ("fma", 16, 64, 2, 100, 1, "atomic"),
            ("mma", 16, 32, 4, 2, 3, "atomic"), ("mma", 16, 32, 1, 1, 2, "last"), ("mma", 32, 64, 4, 100, 2, "last"),
            ("gather", 16, 32, 1, 4, 1, "last"), ("gather", 8, 64, 2, 2, 1, "atomic"), ("gather", 16, 32, 1, 100, 1, "last"),
            ("scratch", 16, 32, 1, 4, 2, "last"), ("scratch", 16, 64, 4, 100, 3, "atomic"),
            ("scratch_fma", 8, 64, 1, 8, 1, "atomic"), ("scratch_fma", 16, 32, 2, 100, 1, "last")]:
    for _ in range(2):
        y = activation_sparse_gemv(x, w.t().contiguous(), *cfg)
        assert ((y - ref).norm() / ref.norm()) < 1e-5, ("activation-sparse GEMV", cfg)
# the weight in panels of block_n columns (each program's weights contiguous)
for cfg in [("fma", 16, 32, 1, 2, 1, "last"), ("mma", 16, 32, 4, 100, 2, "last")]:
    y = activation_sparse_gemv(x, to_panels(w.t().contiguous(), 32), *cfg)
    assert ((y - ref).norm() / ref.norm()) < 1e-5, ("activation-sparse GEMV on panels", cfg)
print("ok")
"""


@pytest.mark.slow
def test_triton_gemvs_match_dense_in_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", TRITON_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


ROW_GEMV_CHECK = """
import torch
from sparsebench.kernels.cases import Env, mask_2_4
from sparsebench.kernels.row_gemv import (dense_gemv, gemv_2_4_nibble, gemv_2_4_streamed, pack_meta_nibbles,
                                         run_gemv_2_4)
from sparsebench.kernels.triton_gemv import pack_2_4
g = torch.Generator().manual_seed(0)
w = torch.randn(40, 200, generator=g)  # ragged: neither dimension a multiple of a tile
x = torch.randn(200, generator=g)
ref = w @ x
# split-K by every reduction, twice each (the "last" reduction must leave its counters at zero), one split
for cfg in [(16, 32, 4, 2, "last"), (8, 64, 4, 1, "atomic"), (16, 32, 4, 100, "store"), (4, 128, 4, 1, "last")]:
    for _ in range(2):
        y = dense_gemv(x, w, *cfg)
        assert ((y - ref).norm() / ref.norm()) < 1e-5, ("dense", cfg)
w24 = w * mask_2_4(40, 200, Env("cpu", torch.float32, 1, g))
ref = w24 @ x
v, m = pack_2_4(w24)
for cfg in [(16, 8, 4, 2, "last"), (8, 16, 4, 1, "atomic"), (16, 8, 4, 100, "store"), (4, 32, 4, 1, "last")]:
    for _ in range(2):
        y = gemv_2_4_streamed(x, v, m, *cfg)
        assert ((y - ref).norm() / ref.norm()) < 1e-5, ("2:4 streamed", cfg)
y = run_gemv_2_4(x, v, m, ("simple", 16, 8, 4, 1))
assert ((y - ref).norm() / ref.norm()) < 1e-5, "2:4 simple"
# positions half a byte per group (spans of 64 groups: in_features a multiple of 256)
w = torch.randn(40, 512, generator=g) * mask_2_4(40, 512, Env("cpu", torch.float32, 1, g))
x = torch.randn(512, generator=g)
ref = w @ x
v, m = pack_2_4(w)
m4 = pack_meta_nibbles(m)
assert m4.shape == (40, 64)
for cfg in [(16, 4, 1, "last"), (8, 4, 1, "atomic"), (32, 4, 100, "store")]:
    for _ in range(2):
        y = gemv_2_4_nibble(x, v, m4, *cfg)
        assert ((y - ref).norm() / ref.norm()) < 1e-5, ("2:4 nibbles", cfg)
y = run_gemv_2_4(x, v, m4, ("nibble", 16, 4, 1, "last"))
assert ((y - ref).norm() / ref.norm()) < 1e-5, "2:4 nibbles by config"
print("ok")
"""


@pytest.mark.slow
def test_row_gemvs_dense_and_2_4_match_the_reference_in_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", ROW_GEMV_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.gpu
@pytest.mark.parametrize("out_f,in_f", [(576, 1536), (11008, 4096), (4096, 11008)])
def test_every_row_gemv_candidate_matches_dense_on_cuda(out_f, in_f):
    from sparsebench.kernels.row_gemv import TUNE_2_4, TUNE_DENSE, dense_gemv, packed_for, run_gemv_2_4
    from sparsebench.kernels.triton_gemv import pack_2_4

    env = Env("cuda", torch.float16, 1, torch.Generator().manual_seed(0))
    w = (torch.randn(out_f, in_f, device="cuda") * 0.02).half()
    x = torch.randn(in_f, device="cuda").half()
    ref = w.float() @ x.float()
    for cfg in TUNE_DENSE:
        for _ in range(2):
            assert float((dense_gemv(x, w, *cfg).float() - ref).norm() / ref.norm()) < 1e-2, cfg
    w24 = w * mask_2_4(out_f, in_f, env)
    ref = w24.float() @ x.float()
    packed = pack_2_4(w24)
    for cfg in TUNE_2_4:
        for _ in range(2):
            y = run_gemv_2_4(x, *packed_for(cfg, *packed), cfg)
            assert float((y.float() - ref).norm() / ref.norm()) < 1e-2, cfg


@pytest.mark.gpu
@pytest.mark.parametrize("out_f,in_f,density", [(576, 1536, 0.5), (11008, 4096, 0.5), (4096, 11008, 0.2)])
def test_triton_gemvs_match_dense_on_cuda(out_f, in_f, density):
    from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv
    from sparsebench.kernels.linear_cases import TUNE_ACT
    from sparsebench.kernels.triton_gemv import gemv_2_4

    env = Env("cuda", torch.float16, 1, torch.Generator().manual_seed(0))
    w = (torch.randn(out_f, in_f, device="cuda") * 0.02).half()
    x = torch.randn(in_f, device="cuda").half() * keep_fraction((in_f,), density, env)
    ref = w.float() @ x.float()
    for cfg in TUNE_ACT:
        for _ in range(2):  # the second call finds the "last" reduction's counters reset
            y = activation_sparse_gemv(x, w.t().contiguous(), *cfg)
            assert float((y.float() - ref).norm() / ref.norm()) < 1e-2, cfg
    w24 = w * mask_2_4(out_f, in_f, env)
    ref = w24.float() @ x.float()
    y = gemv_2_4(x, *pack_2_4(w24))
    assert float((y.float() - ref).norm() / ref.norm()) < 1e-2


def test_cusparselt_candidates_are_every_view_algorithm_and_the_copys_stock_and_searched_picks():
    from sparsebench.kernels.linear_cases import cusparselt_candidates, dense_b

    stock = [(0, "view", 1, -1), (0, "contiguous", 1, -1)]
    assert cusparselt_candidates() == stock  # to_sparse_semi_structured's choice (alg 0 on the view) is first
    # the search reports 3 algorithms on the view (picking alg 2 with split-K 4, one kernel) and picks alg 38
    # with no split-K (-1) on the copy
    got = cusparselt_candidates({"view": (2, 4, 1, 2), "contiguous": (38, -1, 2, 47)})
    assert got == [(0, "view", 1, -1), (1, "view", 1, -1), (2, "view", 1, -1), (0, "contiguous", 1, -1),
                   (38, "contiguous", 1, -1), (2, "view", 4, 1)]
    assert cusparselt_candidates({"view": (0, 1, -1, 0), "contiguous": None}) == stock  # no new pick
    assert len(cusparselt_candidates({"view": (0, 1, -1, 40)}, max_algs=32)) == 33  # capped
    x = torch.arange(6.0).reshape(2, 3)
    assert dense_b(x, "view").is_contiguous() is False and dense_b(x, "contiguous").is_contiguous()
    assert torch.equal(dense_b(x, "view"), dense_b(x, "contiguous"))
    with pytest.raises(ValueError, match="layout='rows'; allowed: view, contiguous"):
        dense_b(x, "rows")


@pytest.mark.gpu
def test_every_cusparselt_candidate_computes_the_dense_product_on_cuda():
    from sparsebench.kernels.linear_cases import (build_semi_structured_tuned, cslt_mm, cusparselt_candidates,
                                                  cusparselt_search, dense_b)

    env = Env("cuda", torch.float16, 1, torch.Generator().manual_seed(0))
    w = (torch.randn(1024, 512, device="cuda") * mask_2_4(1024, 512, env)).half()
    x = torch.randn(256, 512, device="cuda", dtype=torch.float16)
    packed, ref = torch._cslt_compress(w), (x.float() @ w.float().t())
    searched = {layout: cusparselt_search(packed, dense_b(x, layout)) for layout in ("view", "contiguous")}
    candidates = cusparselt_candidates(searched)
    assert len(candidates) >= 2
    ran = []
    for alg, layout, split_k, mode in candidates:
        try:
            y = cslt_mm(packed, dense_b(x, layout), alg, split_k, mode).t()
        except RuntimeError as e:  # an algorithm id this shape does not offer is refused up front (the tuner drops it)
            assert "CUSPARSELT_MATMUL_ALG_CONFIG_ID" in str(e) and alg > 0, (alg, layout, e)
            continue
        assert float((y.float() - ref).norm() / ref.norm()) < 1e-2, (alg, layout, split_k, mode)
        ran.append((alg, layout))
    assert (0, "view") in ran and (0, "contiguous") in ran
    bench = build_semi_structured_tuned(Case("semi_structured_tuned", "m", "l", 1024, 512, 256, 0.5), env)
    assert bench.rel_error < 1e-2 and bench.info["candidates"] >= 2
    torch.testing.assert_close(bench.sparse(1).float(), bench.dense(1).float(), rtol=2e-2, atol=2e-2)
