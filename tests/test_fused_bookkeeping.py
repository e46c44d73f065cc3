"""The fused CUDA kernels beside a long prefill's attention equal the eager formulas the CPU keeps.

``sparsebench.attention.fused``: a block pattern's recall on its sampled rows, and Quest's page bound
maximised per row group. They run on CUDA only (the CPU's default jobs keep the eager floats, identical
to before); here they run under ``TRITON_INTERPRET=1`` on the CPU against the row-chunked recall of
:func:`mask_stats` and against ``group_max(page_upper_bound(...))`` with ``select_blocks`` on top. On a GPU
(``-m gpu``) a whole sparse call runs without a host synchronisation.
"""

import os
import subprocess
import sys

import pytest
import torch

INTERPRETED = """
import torch
from sparsebench import registry
from sparsebench.attention import Budget
from sparsebench.attention.executor import _recall_rows, mask_stats, recall_stride_for
from sparsebench.attention.fused import block_pattern_recall, page_bound_group_max
from sparsebench.attention.select import block_min_max, group_max, select_blocks
from sparsebench.registry import sibling_module
from tests.test_bookkeeping_long_context import random_block_pattern

quest = registry.method("quest-prefill").cls
page_upper_bound = sibling_module(sys.modules[quest.__module__].__file__, "quest").page_upper_bound


def fused_stats_recall(p, q, k, scaling):
    rows = p.budget.rows
    sample = _recall_rows(0, rows, rows, recall_stride_for(rows))
    r = block_pattern_recall(p, q[:, :, sample], k, sample, scaling)
    return float(r.double().sum()) / r.numel(), r.numel()


g = torch.Generator().manual_seed(0)
# random block patterns (blocks, local regions, sinks, odd block sizes, decode rows after a prefix)
cases = [("prefill", 0, 203, 16, 0, True), ("prefill", 0, 64, 10, 4, True), ("decode", 150, 37, 7, 23, True),
         ("prefill", 0, 203, 16, 500, False), ("decode", 0, 1, 16, 0, True), ("prefill", 0, 4200, 16, 0, True)]
for phase, q0, rows, block, sinks, with_blocks in cases:
    bh = (2, 3) if rows <= 4096 else (1, 1)  # past 4096 rows (a wider stride) one head keeps the test short
    p = random_block_pattern(1, phase, q0, rows, block, sinks, *bh, with_blocks=with_blocks)
    q, k = torch.randn(*bh, rows, 16, generator=g), torch.randn(*bh, q0 + rows, 16, generator=g)
    ref = mask_stats(q, k, p, 0.25, q0)  # the CPU's chunked eager recall
    got, n = fused_stats_recall(p, q, k, 0.25)
    assert n == ref.recall_rows, (n, ref.recall_rows)
    assert abs(got - ref.recall) <= 1e-6 * ref.recall, (phase, q0, rows, got, ref.recall)
# the keys split over several programs (merged after): a small chunk here, 4096 keys on the GPU
import sparsebench.attention.fused as fused
fused.KEY_CHUNK = 128
p = random_block_pattern(2, "prefill", 0, 400, 16, 3)
q, k = torch.randn(2, 3, 400, 16, generator=g), torch.randn(2, 3, 400, 16, generator=g)
ref = mask_stats(q, k, p, 0.25, 0)
assert abs(fused_stats_recall(p, q, k, 0.25)[0] - ref.recall) <= 1e-6 * ref.recall
fused.KEY_CHUNK = 4096
# Quest's own patterns: the page bound per group, then the same selection, then the same recall
for rows, q0, qb, page, density in [(300, 0, 32, 16, 0.25), (130, 0, 64, 16, 0.125), (70, 30, 16, 8, 0.3)]:
    q, k = torch.randn(1, 2, rows, 16, generator=g), torch.randn(1, 2, q0 + rows, 16, generator=g)
    budget = Budget(density, "prefill", q0, rows, query_block=qb)
    kmin, kmax = block_min_max(k, page)
    ref = group_max(page_upper_bound(q, kmin, kmax), qb)
    got = page_bound_group_max(q, kmin, kmax, qb, q0, page)
    last = torch.clamp(q0 + (torch.arange(ref.shape[2]) + 1) * qb, max=q0 + rows) - 1
    after = torch.arange(ref.shape[3])[None, :] * page > last[:, None]  # pages after the group's last row
    assert torch.allclose(got[..., ~after], ref[..., ~after], rtol=1e-6, atol=1e-6)
    assert torch.isinf(got[..., after]).all() and (got[..., after] < 0).all()
    a, b = select_blocks(ref, budget, page), select_blocks(got, budget, page)
    assert torch.equal(a.blocks, b.blocks) and torch.equal(a.local_start, b.local_start)
    ref_stats = mask_stats(q, k, a, 0.125, q0)
    assert abs(fused_stats_recall(b, q, k, 0.125)[0] - ref_stats.recall) <= 1e-6 * ref_stats.recall
print("ok")
"""


def test_fused_recall_and_page_bound_equal_the_eager_formulas_under_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", "import sys\n" + INTERPRETED], env=env, capture_output=True,
                         text=True, timeout=600, cwd=str(root))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_the_cpu_keeps_the_eager_recall_and_page_bound():
    from sparsebench.attention.executor import fused_recall
    from tests.test_bookkeeping_long_context import random_block_pattern

    from sparsebench import registry
    from sparsebench.attention import Budget
    from sparsebench.attention.select import block_min_max, group_max
    from sparsebench.registry import sibling_module

    p = random_block_pattern(0, "prefill", 0, 64, 16, 0)
    assert not fused_recall(torch.zeros(1, 3, 64, 16), p)
    quest = sibling_module(sys.modules[registry.method("quest-prefill").cls.__module__].__file__, "quest")
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 2, 200, 16, generator=g), torch.randn(1, 2, 200, 16, generator=g)
    kmin, kmax = block_min_max(k, 16)
    assert torch.equal(quest.page_scores(q, k, Budget(0.25, "prefill", 0, 200, query_block=32), 16),
                       group_max(quest.page_upper_bound(q, kmin, kmax), 32))


@pytest.mark.gpu
def test_a_quest_prefill_call_on_cuda_never_waits_for_the_device_and_matches_the_cpu():
    from sparsebench import registry
    from sparsebench.attention import Budget
    from sparsebench.attention.executor import mask_stats
    from sparsebench.attention.pattern import block_mask

    g = torch.Generator().manual_seed(0)
    rows = 2048
    q, k = torch.randn(1, 4, rows, 64, generator=g), torch.randn(1, 4, rows, 64, generator=g)
    method = registry.method("quest-prefill").cls()
    budget = Budget(0.125, "prefill", 0, rows, query_block=64)
    qc, kc = q.cuda().half(), k.cuda().half()
    warm = method.decide(qc, kc, budget, None)  # first calls (Triton's compile, cached plans) may synchronise
    block_mask(warm, device=qc.device)
    mask_stats(qc, kc, warm, 0.125, 0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        pattern = method.decide(qc, kc, budget, None)
        block_mask(pattern, device=qc.device)
        stats = mask_stats(qc, kc, pattern, 0.125, 0)
        stats.tiles_kept = pattern.tiles(pattern.tiling())[0].sum()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    ref = mask_stats(q, k, method.decide(q, k, budget, None), 0.125, 0)
    assert stats.recall == pytest.approx(ref.recall, rel=2e-3)
    assert abs(int(stats.kept_pairs) - ref.kept_pairs) <= 1e-3 * ref.kept_pairs
