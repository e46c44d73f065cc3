"""Block-sparse attention: FlexAttention with a block mask built at block granularity, against SDPA.

The block mask is made directly from a (query block x key block) boolean table
(``BlockMask.from_kv_blocks``; kept blocks are passed as *full* blocks, so no
per-token mask function runs), never by evaluating a dense token mask. Every
query block keeps its diagonal block plus random others until ``density`` of
all blocks are kept. The dense twin is full (non-causal) SDPA, whose flash
kernel does all the blocks: the ideal speed-up is 1 / density.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from sparsebench.kernels.cases import Bench, Case, Env, Op, nbytes, random_normal, rel_error
from sparsebench.kernels.shapes import ATTENTION
from sparsebench.kernels.timing import copies_for

BLOCK = 128


def block_table(n_blocks: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """(n_blocks, n_blocks) bool: per query block the diagonal plus random key blocks, ``density`` overall."""
    per_row = max(1, min(n_blocks, round(density * n_blocks)))
    scores = torch.rand(n_blocks, n_blocks, generator=generator)
    scores.fill_diagonal_(2.0)  # the diagonal block always stays
    keep = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
    keep.scatter_(1, scores.topk(per_row, dim=1).indices, True)
    return keep


def block_mask_from_table(keep: torch.Tensor, seq_len: int, device: str):
    from torch.nn.attention.flex_attention import BlockMask

    n = keep.shape[0]
    counts = keep.sum(1).to(torch.int32)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True).to(torch.int32)  # kept blocks first
    empty = torch.zeros_like(counts)
    to4 = lambda t: t[None, None].to(device)  # noqa: E731 - (batch 1, heads 1): broadcast over both
    return BlockMask.from_kv_blocks(to4(empty), to4(torch.zeros_like(order)), to4(counts), to4(order),
                                    BLOCK_SIZE=BLOCK, seq_lengths=(seq_len, seq_len))


@functools.lru_cache(maxsize=None)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def build_flex_attention(case: Case, env: Env) -> Bench:
    shape = ATTENTION[case.model]
    h, kvh, d, s = shape.heads, shape.kv_heads, shape.head_dim, case.tokens
    per_copy = (2 * h + 2 * kvh) * s * d * torch.tensor([], dtype=env.dtype).element_size()
    copies = copies_for(per_copy, env.rotate_mb, cap=8)
    qs = [random_normal((1, h, s, d), env) for _ in range(copies)]
    ks = [random_normal((1, kvh, s, d), env) for _ in range(copies)]
    vs = [random_normal((1, kvh, s, d), env) for _ in range(copies)]
    keep = block_table(s // BLOCK, case.density, env.generator)
    mask = block_mask_from_table(keep, s, env.device)
    density = float(keep.float().mean())  # exact kept share (rounding per row)
    gqa = h != kvh
    flex = _compiled_flex()

    def dense(i):
        return F.scaled_dot_product_attention(qs[i], ks[i], vs[i], enable_gqa=gqa)

    def sparse(i):
        return flex(qs[i], ks[i], vs[i], block_mask=mask, enable_gqa=gqa)

    token_mask = keep.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1).to(env.device)
    ref = F.scaled_dot_product_attention(qs[0].float(), ks[0].float(), vs[0].float(), attn_mask=token_mask,
                                         enable_gqa=gqa)
    err = rel_error(sparse(0), ref)
    del token_mask, ref
    flops = 4.0 * h * s * s * d
    io = nbytes(qs[0], ks[0], vs[0]) + nbytes(qs[0])
    return Bench(dense, sparse, copies, flops, flops * density, io, io, 1.0 / density, err, graph=False,
                 info={"block": BLOCK, "block_density": density, "heads": h, "kv_heads": kvh, "head_dim": d})


OPS = {
    "flex_attention": Op(build_flex_attention, True,
                         "block-sparse FlexAttention (BlockMask from a block table) vs full SDPA", "flex_attention",
                         dense_backend="sdpa"),
}
