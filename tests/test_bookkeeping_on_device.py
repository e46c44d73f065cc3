"""The per-layer bookkeeping of attention and activation jobs gives exactly what the row-by-row code gave.

Kept pairs, recall, the block selection and the activation counters now stay on
the device and run in as few tensor ops as memory allows; the slow references
below are the loops they replaced (128-row chunks, a host read per chunk and
per call, a boolean selection of the recall rows, the cumulative allowance
recomputed per layer). They live here, not in the package.
"""

import pytest
import torch

from sparsebench import registry
from sparsebench.activation.stats import OutputCounter
from sparsebench.attention import Budget, SparseAttention
from sparsebench.attention.budget import units_per_row
from sparsebench.attention.executor import MaskStats, _chunk_keep, _recall, _rows_of, mask_stats, masked_attention
from sparsebench.attention.pattern import BlockPattern
from sparsebench.attention.select import positions, select_blocks
from sparsebench.families.sparse_attention import forward_phase
from tests.test_sparse_attention_core import tiny_llama


def reference_mask_stats(q, k, keep, scaling, q0, recall_stride=8, chunk=128):
    """Kept pairs and recall, 128 rows at a time, each count read to the host as it is made."""
    b, h, rows, _ = q.shape
    stats = MaskStats(causal_pairs=(rows * q0 + rows * (rows + 1) // 2) * b * h)
    keep_rows, recall = _rows_of(keep), []
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        kept = _chunk_keep(keep_rows, r0, r1, q0, q.device)
        stats.kept_pairs += int(torch.count_nonzero(kept))
        i = torch.arange(r0, r1)
        sample = i[(i % recall_stride == 0) | (i == rows - 1)] - r0
        recall.append(_recall(q[:, :, r0:r1], k, kept, sample, scaling, q0 + r0))
    r = torch.cat(recall, dim=-1)
    stats.recall_sum, stats.recall_rows = float(r.double().sum().item()), r.numel()
    return stats


def reference_select_blocks(scores, budget, block, local=0):
    """select_blocks as it was: the whole plan recomputed on the host for every call."""
    b, h = scores.shape[:2]
    g = budget.row_block
    pos = positions(budget)
    idx = torch.arange(budget.rows) // g
    region_start = ((pos[::g] // block) * block)[idx]
    if local:
        region_start = torch.minimum(region_start, (pos - local + 1).clamp(min=0))
    groups = -(-budget.rows // g)
    allowance_g = torch.zeros(groups, dtype=torch.long).index_add_(0, idx, budget.pairs_per_row())
    first_g = torch.zeros(groups, dtype=torch.long).index_add_(0, idx, pos + 1 - region_start)
    rows_g = torch.bincount(idx, minlength=groups)
    available = region_start[::g] // block
    n = units_per_row(allowance_g, first_g, block * rows_g, available)
    nb = scores.shape[-1]
    candidate = torch.arange(nb)[None, :] < available[:, None]
    order = scores.masked_fill(~candidate, float("-inf")).argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(nb).expand_as(order))
    return BlockPattern(budget, block, b, h, blocks=(rank < n[:, None]) & candidate, local_start=region_start)


def qk(q0, rows, seed, heads=4, dim=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, heads, rows, dim, generator=g), torch.randn(1, heads, q0 + rows, dim, generator=g)


@pytest.mark.parametrize("method", ["quest-prefill", "vertical-slash", "streaming-llm", "nsa-selection", "sparge"])
@pytest.mark.parametrize("phase,q0,rows", [("prefill", 0, 300), ("decode", 250, 50), ("decode", 0, 1)])
@pytest.mark.parametrize("chunk", [None, 7, 10_000])
def test_kept_pairs_and_recall_equal_the_row_chunked_host_counts(method, phase, q0, rows, chunk):
    q, k = qk(q0, rows, 1)
    budget = Budget(0.25, phase, q0, rows, query_block=32)
    pattern = registry.method(method).cls().decide(q, k, budget, None)
    ref = reference_mask_stats(q, k, pattern.token_mask, 0.25, q0)
    got = mask_stats(q, k, pattern.token_mask, 0.25, q0, chunk=chunk)
    assert isinstance(got.kept_pairs, torch.Tensor)  # a device count, read once at the end
    assert got.kept_pairs == ref.kept_pairs and got.recall_rows == ref.recall_rows
    if chunk is None:  # the CPU's chunk is the old one: the very same float operations
        assert got.recall == ref.recall
    else:
        assert got.recall == pytest.approx(ref.recall, rel=1e-6)
    d = got.to_dict()
    assert type(d["kept_pairs"]) is int and type(d["recall"]) is float


def test_masked_attention_counts_on_the_device_and_reads_them_once():
    q, k = qk(40, 90, 2, heads=3, dim=8)
    v = torch.randn_like(k)
    keep = torch.rand(1, 3, 90, 130, generator=torch.Generator().manual_seed(3)) < 0.3
    _, stats = masked_attention(q, k, v, keep, 0.35, 40)
    ref = reference_mask_stats(q, k, keep, 0.35, 40)
    assert stats.kept_pairs.dtype == torch.int64 and stats.recall_sum.dtype == torch.float64
    assert stats.to_dict()["kept_pairs"] == ref.kept_pairs and stats.recall == ref.recall


@pytest.mark.parametrize("phase,q0,rows,local", [("prefill", 0, 300, 0), ("prefill", 0, 300, 40),
                                                  ("decode", 250, 50, 0), ("decode", 250, 50, 24)])
def test_block_selection_with_a_cached_plan_equals_the_per_call_plan(phase, q0, rows, local):
    budget = Budget(0.3, phase, q0, rows, query_block=32)
    groups = -(-rows // budget.row_block)
    for seed in (0, 1):  # the second call reuses the plan: the scores still decide
        scores = torch.randn(2, 3, groups, -(-(q0 + rows) // 16), generator=torch.Generator().manual_seed(seed))
        got, ref = select_blocks(scores, budget, 16, local), reference_select_blocks(scores, budget, 16, local)
        assert torch.equal(got.blocks, ref.blocks) and torch.equal(got.local_start, ref.local_start)


@pytest.mark.parametrize("method", ["quest-prefill", "quest", "vertical-slash"])
def test_a_session_summary_is_the_same_whatever_the_chunking(method, monkeypatch):
    from sparsebench.attention import executor

    model = tiny_llama()
    ids = torch.randint(0, 64, (1, 200), generator=torch.Generator().manual_seed(7))
    summaries = []
    for chunk in (128, 10_000):  # the CPU's chunk, and one chunk per call as on a GPU
        monkeypatch.setattr(executor, "ROW_CHUNK", chunk)
        session = SparseAttention(registry.method(method).cls(), 0.3, query_block=16).install(model)
        with torch.no_grad(), session.active():
            for phase in session.method.phases:
                forward_phase(model, session, ids, 150, phase)
        summaries.append({p: session.summary(p) for p in session.method.phases})
    for phase, s in summaries[0].items():
        t = summaries[1][phase]
        assert s["kept_pairs"] == t["kept_pairs"] and s["tile_density"] == t["tile_density"]
        assert s["recall"] == pytest.approx(t["recall"], rel=1e-6)
        assert all(type(s[key]) in (int, float) for key in ("kept_pairs", "recall", "tile_density", "density"))


def reference_counts(outputs, magnitudes):
    """OutputCounter's totals as they were counted: one host read per quantity and magnitude, per call."""
    total = nonzero = positive = 0
    above, rows = [0] * len(magnitudes), []
    for a in outputs:
        flat = a.reshape(a.shape[0], -1)
        rows.extend(zip([flat.shape[1]] * flat.shape[0], torch.count_nonzero(flat, dim=1).tolist(),
                        (flat > 0).sum(dim=1).tolist()))
        total += a.numel()
        nonzero += int(torch.count_nonzero(a))
        positive += int((a > 0).sum())
        for i, m in enumerate(sorted(magnitudes)):
            above[i] += int((a.abs() > m).sum())
    return total, nonzero, positive, above, rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_activation_counts_on_the_device_equal_the_per_call_host_counts(dtype):
    g = torch.Generator().manual_seed(8)
    outputs = [torch.relu(torch.randn(3, 5, 40, generator=g)).to(dtype) * s for s in (1.0, 0.1)]
    outputs.append(torch.full((2, 5, 40), 0.1, dtype=dtype))  # entries exactly at a magnitude: not above it
    magnitudes = [0.5, 0.01, 0.1, 0.3]
    model = torch.nn.Sequential(torch.nn.Identity())
    with torch.no_grad(), OutputCounter(model, ["0"], magnitudes) as counter:
        for a in outputs:
            model(a)
    total, nonzero, positive, above, rows = reference_counts(outputs, magnitudes)
    f = counter.fractions()["0"]
    assert f["entries"] == total and f["nonzero"] == nonzero / total and f["positive"] == positive / total
    assert f["above"] == {f"{m:g}": c / total for m, c in zip(sorted(magnitudes), above)}
    assert counter.row_fractions("positive") == [p / w for w, _, p in rows]
