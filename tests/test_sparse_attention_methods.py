"""Sparse-attention methods on synthetic q/k/v: exactness at density 1, budgets, and the masks' definitions."""

import pytest
import torch

from sparsebench import registry
from sparsebench.attention import Budget, dense_attention, masked_attention
from sparsebench.attention.executor import causal_keep

METHODS = sorted(n for n, e in registry.methods().items() if e.family == "sparse_attention")
DENSITIES = [1 / 4, 1 / 16]  # every job checks its own density too (sparsebench.families.sparse_attention)


def qkv(seq=2048, heads=4, kv_heads=2, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, heads, seq, dim, generator=g)
    k = torch.randn(1, kv_heads, seq, dim, generator=g).repeat_interleave(heads // kv_heads, dim=1)
    v = torch.randn(1, kv_heads, seq, dim, generator=g).repeat_interleave(heads // kv_heads, dim=1)
    return q, k, v


def run_method(name, q, k, v, density, phase, q0, kv_heads=2, query_block=64):
    method = registry.method(name).cls()
    budget = Budget(density, phase, q0, q.shape[2] - q0, query_block, kv_heads)
    kk, vv, kv = method.compress_kv(k, v, budget)
    keep = method.select(q[:, :, q0:], kk, budget, q[:, :, max(0, q0 - 64) : q0] if q0 else None)
    out, stats = masked_attention(q[:, :, q0:], kk, vv, keep, q.shape[-1] ** -0.5, q0)
    stats.kv_kept, stats.kv_total = kv
    return out, stats, keep


@pytest.mark.parametrize("phase,q0", [("prefill", 0), ("decode", 384)])
@pytest.mark.parametrize("name", METHODS)
def test_every_method_at_density_one_reproduces_dense_attention(name, phase, q0):
    q, k, v = qkv(seq=512)
    ref = dense_attention(q, k, v, q.shape[-1] ** -0.5, 0)[:, :, q0:]
    out, stats, _ = run_method(name, q, k, v, 1.0, phase, q0)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5
    assert stats.density == pytest.approx(1.0) and stats.recall == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("phase,q0", [("prefill", 0), ("decode", 1792)])
@pytest.mark.parametrize("name", [n for n in METHODS if n != "full-attention"])
def test_measured_density_matches_the_budget(name, phase, q0, density):
    q, k, v = qkv(heads=2, kv_heads=1, dim=16)  # 2048 keys: long enough for 1/16 with 64-token tiles
    _, stats, _ = run_method(name, q, k, v, density, phase, q0, kv_heads=1)
    cls = registry.method(name).cls
    if cls.may_overspend:  # its own rules decide what it keeps (tests/test_attention_faithful.py)
        pytest.skip(f"{name}'s density is an outcome of its rules, not the budget")
    if cls.may_underspend:  # a skipping stage may only spend less
        assert stats.density <= density + 0.01
    else:
        assert stats.density == pytest.approx(density, abs=0.01)


def test_sparse_attention_loses_attention_mass_and_recall_falls_with_density():
    q, k, v = qkv(seq=1024)
    recalls = [run_method("quest", q, k, v, d, "prefill", 0)[1].recall for d in (1.0, 0.5, 0.25, 0.125)]
    assert recalls[0] == pytest.approx(1.0, abs=1e-5)
    assert all(a > b for a, b in zip(recalls, recalls[1:]))


def small_budget(phase="prefill", q0=0, rows=10, density=0.5):
    return Budget(density, phase, q0, rows, query_block=4)


def test_sliding_window_mask_is_exactly_the_last_w_keys():
    method = registry.method("sliding-window").cls.build({"window": 3}, "t")
    q = torch.zeros(1, 1, 10, 4)
    keep = method.select(q, q, small_budget(), None)[0, 0]
    expected = torch.tensor([[i - 3 < j <= i for j in range(10)] for i in range(10)])
    assert torch.equal(keep, expected)


def test_streaming_llm_mask_is_sinks_plus_recent_window():
    method = registry.method("streaming-llm").cls.build({"sinks": 2, "window": 3}, "t")
    q = torch.zeros(1, 1, 4, 4)
    keep = method.select(q, torch.zeros(1, 1, 10, 4), small_budget("decode", q0=6, rows=4), None)[0, 0]
    expected = torch.tensor([[(j < 2 or i - 3 < j) and j <= i for j in range(10)] for i in range(6, 10)])
    assert torch.equal(keep & causal_keep(4, 10, 6), expected)


def test_sliding_window_width_meets_the_budget_exactly_when_it_can():
    method = registry.method("sliding-window").cls()
    budget = Budget(0.25, "prefill", 0, 1024)
    w = method.width(budget)
    kept = sum(min(w, i + 1) for i in range(1024))
    assert abs(kept - 0.25 * budget.causal_pairs()) <= 1024 / 2


def test_quest_bound_is_an_upper_bound_of_every_score_in_its_page():
    from sparsebench.attention.select import block_stats

    quest = registry.method("quest").cls
    module = __import__(quest.__module__, fromlist=["page_upper_bound"])
    q, k, _ = qkv(seq=256)
    kmin, kmax, _ = block_stats(k, 16)
    bound = module.page_upper_bound(q, kmin, kmax)
    scores = (q @ k.transpose(-1, -2)).reshape(1, 4, 256, 16, 16).amax(dim=-1)
    assert (bound >= scores - 1e-5).all()


def test_quest_keeps_the_pages_with_the_largest_bound():
    from sparsebench.attention.select import block_stats

    quest = registry.method("quest").cls()
    module = __import__(type(quest).__module__, fromlist=["page_upper_bound"])
    q, k, v = qkv(seq=512)
    q0 = 511  # one decode row: its current page is kept, the rest are ranked by the bound
    budget = Budget(0.25, "decode", q0, 1)
    keep = quest.select(q[:, :, q0:], k, budget, None)[0, :, 0]  # (H, keys)
    kmin, kmax, _ = block_stats(k, 16)
    bound = module.page_upper_bound(q[:, :, q0:], kmin, kmax)[0, :, 0, :31]  # pages before the current one
    kept_pages = keep[:, : 31 * 16].reshape(4, 31, 16).all(dim=-1)
    n = int(kept_pages[0].sum())
    assert 0 < n < 31 and (kept_pages.sum(dim=-1) == n).all()
    top = bound.topk(n, dim=-1).indices
    assert torch.equal(kept_pages, torch.zeros_like(kept_pages).scatter_(-1, top, True))
    assert keep[:, 31 * 16 :].all()  # the current page


def test_mustafar_keeps_the_largest_magnitudes_of_every_token():
    mustafar = registry.method("mustafar").cls.build({"window": 0}, "methods.mustafar")
    _, k, v = qkv(seq=64, dim=16)
    kk, vv, (kept, total) = mustafar.compress_kv(k, v, Budget(0.25, "decode", 63, 1))
    assert ((kk != 0).sum(dim=-1) == 4).all() and ((vv != 0).sum(dim=-1) == 4).all()
    assert kept / total == 0.25
    smallest_kept = kk.abs().masked_fill(kk == 0, float("inf")).amin(dim=-1)
    largest_dropped = k.abs().masked_fill(kk != 0, 0).amax(dim=-1)
    assert (smallest_kept >= largest_dropped).all()


def test_vertical_slash_counts_its_kept_pairs_without_a_mask_exactly():
    from sparsebench.attention.pattern import LinePattern
    from sparsebench import registry

    line_pairs = __import__(registry.method("vertical-slash").cls.__module__, fromlist=["line_pairs"]).line_pairs
    g = torch.Generator().manual_seed(11)
    for q0, rows in ((0, 200), (150, 50), (199, 1)):
        keys = q0 + rows
        budget = Budget(0.3, "prefill", q0, rows)
        v = torch.rand(2, 3, keys, generator=g) < 0.1
        s = torch.rand(2, 3, keys, generator=g) < 0.1
        s[..., 0] = True
        mask = LinePattern(budget, v, s).token_mask()
        cover = (q0 + rows - torch.clamp(torch.arange(keys), min=q0)).clamp(min=0).double()
        assert torch.equal(line_pairs(v, s, cover, q0, q0 + rows), mask.sum(dim=(-1, -2)).double())


@pytest.mark.parametrize("name", METHODS)
def test_every_method_decides_on_float16_queries_and_keys(name):
    """A GPU profile runs the model in float16: a method's scores must not overflow there (SpargeAttn's
    masked prediction filled with -1e9 failed on the H200's float16 RULER job)."""
    q, k, v = (x.half() for x in qkv(seq=512))
    method = registry.method(name).cls()
    for phase, q0 in (("prefill", 0), ("decode", 384)):
        budget = Budget(1 / 4, phase, q0, 512 - q0, 64, 2)
        kk, vv, _ = method.compress_kv(k, v, budget)
        keep = method.select(q[:, :, q0:], kk, budget, q[:, :, q0 - 64 : q0] if q0 else None)
        assert keep.shape[-1] == kk.shape[2] and keep.any()
