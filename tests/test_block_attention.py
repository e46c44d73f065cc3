"""Our Triton block-sparse attention computes masked softmax attention over exactly the listed key blocks."""

import os
import subprocess
import sys

import pytest
import torch

from sparsebench.kernels.block_attention import kv_lists, reference


def test_kv_lists_put_kept_key_blocks_first_in_ascending_order():
    keep = torch.tensor([[True, False, True], [False, False, False], [False, True, True]])
    counts, idx = kv_lists(keep)
    assert counts.tolist() == [2, 0, 2]
    assert idx[0, :2].tolist() == [0, 2] and idx[2, :2].tolist() == [1, 2]
    counts, idx = kv_lists(keep, sub=2)  # key tiles half a block wide
    assert counts.tolist() == [4, 0, 4] and idx[0, :4].tolist() == [0, 1, 4, 5]


def test_kv_lists_reject_a_table_that_is_not_bool():
    with pytest.raises(ValueError, match="bool block table"):
        kv_lists(torch.ones(2, 2))


def test_reference_equals_sdpa_with_the_block_table_as_token_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 64, 8, generator=g) for _ in range(3))
    keep = torch.rand(4, 4, generator=g) < 0.5
    keep.fill_diagonal_(True)
    mask = keep.repeat_interleave(16, 0).repeat_interleave(16, 1)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got, tok = reference(q, k, v, keep, 16, torch.tensor([1, 3]))
    assert torch.allclose(got, want[:, :, tok], atol=1e-5)


KERNEL_CHECK = """
import torch
from sparsebench.kernels.block_attention import block_sparse_attention, reference
g = torch.Generator().manual_seed(0)
cases = [  # heads, kv heads, seq, block, (BLOCK_M, BLOCK_N, warps, stages), density; per-head table
    (2, 1, 256, 64, (64, 32, 4, 1), 0.5, False),   # grouped-query, key tiles half a block
    (2, 2, 200, 64, (32, 32, 4, 1), 0.3, True),    # seq not a multiple of the block; one table per head
    (1, 1, 130, 64, (64, 64, 4, 1), 1.0, False),   # full density: plain attention
    (2, 1, 256, 64, (64, 32, 4, 1, True), 0.5, False),  # K / V through tensor descriptors (TMA)
    (2, 2, 256, 64, (32, 32, 4, 1, True), 0.3, True),
    (2, 2, 200, 64, (32, 32, 4, 1, True), 0.3, False),  # ragged: TMA asked for, pointer loads used
]
for h, kvh, s, block, cfg, density, per_head in cases:
    q = torch.randn(1, h, s, 16, generator=g)
    k, v = (torch.randn(1, kvh, s, 16, generator=g) for _ in range(2))
    n = -(-s // block)
    keep = torch.rand(*((h,) if per_head else ()), n, n, generator=g) < density
    if density < 1:
        keep[..., 0, :] = False  # a query block that attends to nothing gets zeros
    else:
        keep[:] = True
    out = block_sparse_attention(q, k, v, keep, block, cfg)
    ref, tok = reference(q, k, v, keep, block)
    err = float((out[:, :, tok] - ref).norm() / ref.norm())
    assert err < 1e-5, (h, kvh, s, cfg, err)
    if density < 1:
        assert out[:, :, :block].abs().max() == 0
    if density == 1:
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        assert torch.allclose(out, sdpa, atol=1e-5)
# causal: a lower-triangular table with the diagonal, and the causal rule inside the diagonal blocks
q = torch.randn(1, 2, 192, 16, generator=g)
k, v = (torch.randn(1, 1, 192, 16, generator=g) for _ in range(2))
keep = torch.tril(torch.rand(3, 3, generator=g) < 0.5) | torch.eye(3, dtype=torch.bool)
out = block_sparse_attention(q, k, v, keep, 64, (32, 32, 4, 1), causal=True)
ref, tok = reference(q, k, v, keep, 64, causal=True)
assert float((out - ref).norm() / ref.norm()) < 1e-5, "causal"
full = block_sparse_attention(q, k, v, torch.tril(torch.ones(3, 3, dtype=torch.bool)), 64, (64, 32, 4, 1), causal=True)
sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
assert torch.allclose(full, sdpa, atol=1e-5), "causal full"
# tensor descriptors over a batch of 2 (rows of every (batch, kv head) one after another), causal and not
q = torch.randn(2, 2, 192, 16, generator=g)
k, v = (torch.randn(2, 1, 192, 16, generator=g) for _ in range(2))
keep = torch.tril(torch.rand(3, 3, generator=g) < 0.5) | torch.eye(3, dtype=torch.bool)
for causal in (False, True):
    out = block_sparse_attention(q, k, v, keep, 64, (64, 32, 4, 1, True), causal=causal)
    ref, tok = reference(q, k, v, keep, 64, causal=causal)
    assert float((out - ref).norm() / ref.norm()) < 1e-5, ("tma batch", causal)
# a chunk of 64 queries (positions 128..191) after a 128-key prefix; query blocks of 32, key blocks of 64
q = torch.randn(1, 2, 64, 16, generator=g)
k, v = (torch.randn(1, 1, 192, 16, generator=g) for _ in range(2))
keep = torch.rand(2, 3, generator=g) < 0.6
keep[:, 2] = True
out = block_sparse_attention(q, k, v, keep, 64, (32, 32, 4, 1), causal=True, q_block=32)
pos = torch.arange(128, 192)[:, None]
mask = keep.repeat_interleave(32, 0).repeat_interleave(64, 1) & (torch.arange(192)[None, :] <= pos)
want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
assert float((out - want).norm() / want.norm()) < 1e-5, "chunk after a prefix"
print("ok")
"""


DECODE_CHECK = """
import torch
from sparsebench.kernels.block_attention import block_decode_attention, decode_reference
g = torch.Generator().manual_seed(0)
# 4 query heads on 2 kv heads, a cache of 300 filled of 320, blocks of 64 (the last one ragged); per-head
# lists of different lengths in no particular order, one head with none
q = torch.randn(2, 4, 16, generator=g)
k, v = (torch.randn(2, 2, 320, 16, generator=g) for _ in range(2))
idx = torch.stack([torch.randperm(5, generator=g)[:4] for _ in range(8)]).reshape(2, 4, 4).to(torch.int32)
counts = torch.tensor([[4, 1, 3, 0], [2, 4, 4, 1]], dtype=torch.int32)
ref = decode_reference(q, k, v, idx, counts, 64, seq=300)
for splits, block_n in ((1, 64), (3, 32), (0, 16)):
    out = block_decode_attention(q, k, v, idx, counts, 64, seq=300, splits=splits, block_n=block_n)
    assert float((out - ref).norm() / ref.norm()) < 1e-5, (splits, block_n)
    assert out[0, 3].abs().max() == 0  # an empty list: zeros
# every block listed = dense attention of the token over the cache
idx = torch.arange(5, dtype=torch.int32).expand(2, 4, 5).contiguous()
out = block_decode_attention(q, k, v, idx, torch.full((2, 4), 5, dtype=torch.int32), 64, seq=300, splits=2)
sdpa = torch.nn.functional.scaled_dot_product_attention(q[:, :, None], k[:, :, :300], v[:, :, :300],
                                                        enable_gqa=True)[:, :, 0]
assert torch.allclose(out, sdpa, atol=1e-5), "all blocks"
# several rows (the last 5 of 300 keys), each with its own list and the causal rule: row r sees keys <= 295 + r;
# the last block (256..319) holds keys after some rows
q = torch.randn(2, 4, 5, 16, generator=g)
idx = torch.stack([torch.randperm(5, generator=g)[:4] for _ in range(40)]).reshape(2, 4, 5, 4).to(torch.int32)
idx[..., 0] = 4
counts = torch.randint(0, 5, (2, 4, 5), generator=g, dtype=torch.int32)
counts[0, 0, 0] = 0
ref = decode_reference(q, k, v, idx, counts, 64, seq=300)
for splits, block_n in ((1, 64), (2, 16)):
    out = block_decode_attention(q, k, v, idx, counts, 64, seq=300, splits=splits, block_n=block_n)
    assert float((out - ref).norm() / ref.norm()) < 1e-5, ("rows", splits, block_n)
    assert out[0, 0, 0].abs().max() == 0
# every block listed, several rows = causal attention of the last rows
idx = torch.arange(5, dtype=torch.int32).expand(2, 4, 5, 5).contiguous()
out = block_decode_attention(q, k, v, idx, torch.full((2, 4, 5), 5, dtype=torch.int32), 64, seq=300)
mask = torch.arange(300)[None, :] <= torch.arange(295, 300)[:, None]
sdpa = torch.nn.functional.scaled_dot_product_attention(q, k[:, :, :300], v[:, :, :300], attn_mask=mask,
                                                        enable_gqa=True)
assert torch.allclose(out, sdpa, atol=1e-5), "all blocks, causal rows"
print("ok")
"""


def test_block_decode_attention_matches_dense_attention_on_its_blocks_in_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", DECODE_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_block_sparse_attention_matches_the_reference_in_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", KERNEL_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.gpu
@pytest.mark.parametrize("heads,kv_heads,seq,density", [(32, 32, 4096, 0.15), (9, 3, 2048, 0.5), (32, 8, 4096, 1.0)])
def test_block_sparse_attention_matches_the_reference_on_cuda(heads, kv_heads, seq, density):
    from sparsebench.kernels.block_attention import CONFIGS, block_sparse_attention

    g = torch.Generator().manual_seed(0)
    d = 64 if heads == 9 else 128
    q = torch.randn(1, heads, seq, d, generator=g).half().cuda()
    k, v = (torch.randn(1, kv_heads, seq, d, generator=g).half().cuda() for _ in range(2))
    keep = (torch.rand(seq // 128, seq // 128, generator=g) < density).cuda()
    keep.fill_diagonal_(True)
    rows = torch.tensor([0, seq // 128 - 1])
    ref, tok = reference(q, k, v, keep, 128, rows)
    for cfg in CONFIGS:
        out = block_sparse_attention(q, k, v, keep, 128, cfg)
        assert float((out[:, :, tok].float() - ref).norm() / ref.norm()) < 1e-2, cfg


CASE_CHECK = """
import torch
from sparsebench.kernels.attention_cases import build_block_attention
from sparsebench.kernels.cases import Case, Env
env = Env("cpu", torch.float32, 1, torch.Generator().manual_seed(0))
bench = build_block_attention(Case("block_attention", "smollm2-135m", "attention", 0, 0, 256, 0.5), env)
assert bench.copies >= 2 and bench.rel_error < 1e-4, (bench.copies, bench.rel_error)
bench.sparse(bench.copies - 1)
print("ok")
"""


def test_block_attention_case_builds_and_checks_itself_in_the_triton_interpreter(root):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", CASE_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
