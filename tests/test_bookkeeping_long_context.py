"""Long-context bookkeeping: kept pairs counted from a pattern's blocks or lines, recall on sampled rows.

A 32k-token call must not build its 32k x 32k token mask just to count it:
``pattern.kept_pairs()`` counts from the block table (or the lines) and
``pattern.row_mask`` builds only the recall rows. Both must give exactly what
the token mask gives; recall keeps its every-8th-row sample up to 4096 rows
(every default CPU job: the very same numbers) and at most ~512 rows a call
beyond, within a stated tolerance of the exact all-rows recall.
"""

import pytest
import torch

from sparsebench import registry
from sparsebench.attention import Budget
from sparsebench.attention import executor
from sparsebench.attention.executor import mask_stats, recall_stride_for
from sparsebench.attention.pattern import BlockPattern, LinePattern


def token_mask_pairs(pattern) -> int:
    """Kept pairs counted the old way: the whole causal token mask, each row keeping itself."""
    b = pattern.budget
    keep = pattern.token_mask()
    i = torch.arange(b.q0, b.keys)[:, None]
    j = torch.arange(b.keys)[None, :]
    return int(((keep | (i == j)) & (j <= i)).sum())


def random_block_pattern(seed, phase, q0, rows, block, sinks, batch=2, heads=3, with_blocks=True):
    g = torch.Generator().manual_seed(seed)
    budget = Budget(0.3, phase, q0, rows, query_block=16)
    pos = torch.arange(q0, q0 + rows)
    start = (pos - torch.randint(0, 3 * block, (rows,), generator=g)).clamp(min=0)
    groups = -(-rows // budget.row_block)
    blocks = torch.rand(batch, heads, groups, -(-(q0 + rows) // block), generator=g) < 0.4 if with_blocks else None
    return BlockPattern(budget, block, batch, heads, blocks=blocks, local_start=start, sinks=sinks)


@pytest.mark.parametrize("phase,q0,rows", [("prefill", 0, 203), ("prefill", 0, 64), ("decode", 150, 37),
                                           ("decode", 0, 1)])
@pytest.mark.parametrize("block,sinks", [(16, 0), (10, 4), (7, 23), (16, 500)])
@pytest.mark.parametrize("with_blocks", [True, False])
def test_block_pattern_kept_pairs_equal_the_token_mask_count(phase, q0, rows, block, sinks, with_blocks):
    for seed in range(3):
        p = random_block_pattern(seed, phase, q0, rows, block, sinks, with_blocks=with_blocks)
        got = p.kept_pairs()
        assert got.dtype == torch.int64 and got.dim() == 0
        assert int(got) == token_mask_pairs(p)


@pytest.mark.parametrize("q0,rows", [(0, 190), (120, 33), (0, 1), (57, 1)])
def test_line_pattern_kept_pairs_equal_the_token_mask_count(q0, rows):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        keys = q0 + rows
        p = LinePattern(Budget(0.3, "prefill", q0, rows), torch.rand(2, 3, keys, generator=g) < 0.1,
                        torch.rand(2, 3, keys, generator=g) < 0.2)
        assert int(p.kept_pairs()) == token_mask_pairs(p)


@pytest.mark.parametrize("method", ["quest-prefill", "quest", "vertical-slash", "streaming-llm", "nsa-selection",
                                    "sparge", "sliding-window", "full-attention"])
@pytest.mark.parametrize("phase,q0,rows", [("prefill", 0, 300), ("decode", 250, 50), ("decode", 0, 1)])
def test_row_masks_are_the_token_mask_rows(method, phase, q0, rows):
    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(1, 4, rows, 16, generator=g), torch.randn(1, 4, q0 + rows, 16, generator=g)
    p = registry.method(method).cls().decide(q, k, Budget(0.25, phase, q0, rows, query_block=32), None)
    rows_idx = torch.tensor(sorted({0, rows // 3, rows // 2, rows - 1}))
    full = p.token_mask()
    assert torch.equal(p.row_mask(rows_idx, q0 + rows), full[:, :, rows_idx])
    assert torch.equal(p.row_mask(rows_idx[:1], q0 + 1), full[:, :, rows_idx[:1], : q0 + 1])


def test_the_recall_sample_is_every_8th_row_up_to_4096_rows_and_about_512_rows_beyond():
    assert [recall_stride_for(r) for r in (1, 256, 2048, 3584, 4096)] == [8] * 5
    assert recall_stride_for(4097) == 9 and recall_stride_for(32768) == 64
    for rows in (4097, 6144, 32768, 32768 - 256):
        assert -(-rows // recall_stride_for(rows)) <= 512


def structured_qk(rows, heads=3, dim=32, seed=0):
    """Queries and keys whose attention is far from uniform: a few heavy keys, per-row temperature."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(1, heads, rows, dim, generator=g)
    k[:, :, torch.randint(0, rows, (rows // 50,), generator=g)] *= 4
    q = torch.randn(1, heads, rows, dim, generator=g) * torch.rand(1, heads, rows, 1, generator=g) * 2
    return q, k


@pytest.mark.parametrize("method", ["quest-prefill", "vertical-slash"])
def test_sampled_recall_of_a_6k_call_is_within_0_005_of_the_exact_recall(method, monkeypatch):
    rows = 6144  # past 4096 rows: stride 12, 512 + 1 rows of 6144 sampled
    q, k = structured_qk(rows)
    pattern = registry.method(method).cls().decide(q, k, Budget(0.125, "prefill", 0, rows), None)
    sampled = mask_stats(q, k, pattern, 0.2, 0)
    assert sampled.recall_rows == 3 * 513 and sampled.rows_total == 3 * rows
    monkeypatch.setattr(executor, "MAX_RECALL_ROWS", rows)
    exact = mask_stats(q, k, pattern, 0.2, 0, recall_stride=1)
    assert exact.recall_rows == 3 * rows
    assert int(sampled.kept_pairs) == int(exact.kept_pairs)
    assert abs(sampled.recall - exact.recall) < 0.005, (sampled.recall, exact.recall)


def test_a_result_records_how_many_rows_its_recall_used():
    q = torch.randn(1, 2, 300, 8)
    pattern = registry.method("quest-prefill").cls().decide(q, q, Budget(0.25, "prefill", 0, 300, 32), None)
    d = mask_stats(q, q, pattern, 0.3, 0).to_dict()
    assert d["recall_rows"] == 2 * 39 and d["recall_rows_total"] == 2 * 300  # rows 0, 8, .., 296 and 299


@pytest.mark.parametrize("method", ["quest-prefill", "vertical-slash", "streaming-llm", "sparge"])
def test_the_block_mask_lists_kept_blocks_first_in_key_order_as_a_stable_sort_did(method):
    from sparsebench.attention.pattern import block_mask

    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(2, 3, 200, 16, generator=g), torch.randn(2, 3, 200, 16, generator=g)
    pattern = registry.method(method).cls().decide(q, k, Budget(0.3, "prefill", 0, 200, 32), None)
    any_, full = pattern.tiles(pattern.tiling())
    mask = block_mask(pattern)
    for table, num, idx in ((any_ & ~full, mask.kv_num_blocks, mask.kv_indices),
                            (full, mask.full_kv_num_blocks, mask.full_kv_indices)):
        assert torch.equal(num, table.sum(dim=-1).to(torch.int32))
        assert torch.equal(idx, torch.argsort((~table).to(torch.int8), dim=-1, stable=True).to(torch.int32))
    assert pattern.tiles(pattern.tiling()) is pattern.tiles(pattern.tiling())  # computed once per pattern


def test_tiles_a_torch_before_2_12_refuses_are_pinned_without_a_failing_compile_first():
    from sparsebench.attention.flex import refuses_default_tiles

    assert refuses_default_tiles(64, 16, "2.11.0+cu130")  # Quest's pages: the default kernel is refused
    assert refuses_default_tiles(64, 16, "2.10.1")
    assert not refuses_default_tiles(64, 64, "2.11.0+cu130")  # the default may fit: tried first, as before
    assert not refuses_default_tiles(64, 16, "2.12.0+cu130") and not refuses_default_tiles(64, 16, "2.14.1")


def test_under_no_grad_the_block_mask_skips_the_query_side_lists_and_flex_gives_the_same_output():
    from sparsebench.attention.flex import flex_call
    from sparsebench.attention.pattern import _takes_compute_q_blocks, block_mask

    g = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(1, 3, 160, 16, generator=g) for _ in range(3))
    pattern = registry.method("quest-prefill").cls().decide(q, k, Budget(0.3, "prefill", 0, 160, 32), None)
    with_q = block_mask(pattern)
    with torch.no_grad():
        without_q = block_mask(pattern)
        out = flex_call(q, k, v, without_q, 0.25)
    assert with_q.q_indices is not None
    if _takes_compute_q_blocks():
        assert without_q.q_indices is None
    assert torch.equal(without_q.kv_indices, with_q.kv_indices)
    assert torch.allclose(out, flex_call(q, k, v, with_q, 0.25).detach(), atol=1e-6)
