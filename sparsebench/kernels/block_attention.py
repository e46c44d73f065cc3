"""Block-sparse attention of our own: a Triton FlashAttention-style forward over per-query-block key lists.

Layout: ``q`` (batch, heads, seq, head_dim), ``k``/``v`` (batch, kv_heads, seq, head_dim), heads a multiple
of kv_heads (grouped-query attention: query head ``h`` reads kv head ``h // (heads // kv_heads)``). The
sparsity is a boolean block table ``keep`` of shape (q_blocks, k_blocks) (or (heads, q_blocks, k_blocks)
for a pattern per head) at granularity ``block``: query block ``i`` attends to exactly the key blocks
``j`` with ``keep[i, j]``, no token mask inside a block (the same semantics as a FlexAttention BlockMask
whose kept blocks are all *full* blocks). It is compressed once into a list per query block
(:func:`kv_lists`: counts and the kept key-block indices, kept first), which the kernel walks.

The kernel (after Dao, "FlashAttention-2", arXiv:2307.08691: one program per query tile and head, the
tile's running max / sum / output kept in registers, softmax rescaled online in base 2) visits only the
listed key tiles, so its work scales with the kept share of blocks; the ideal speed-up over full
attention is 1 / density. A query block with no kept key block gets zeros.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


def kv_lists(keep: torch.Tensor, sub: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(counts, indices) of a (.., q_blocks, k_blocks) block table, kept key blocks first in ascending order
    (any leading dimensions: per head, per batch and head).

    ``sub``: split every key block into ``sub`` consecutive tiles (a kernel tile of ``block // sub`` keys).
    """
    if keep.dtype != torch.bool or keep.dim() < 2:
        raise ValueError(f"keep must be a bool block table of at least 2 dimensions, got {keep.dtype} of shape "
                         f"{tuple(keep.shape)}")
    if sub > 1:
        keep = keep.repeat_interleave(sub, dim=-1)
    counts = keep.sum(-1).to(torch.int32)
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    width = max(1, int(counts.max()))
    return counts.contiguous(), order[..., :width].contiguous()


@triton.jit
def _block_attn_fwd(Q, K, V, O, Counts, Idx, scale_log2,
                    sqb, sqh, sqs, skb, skh, sks, svb, svh, svs, sob, soh, sos,
                    s_ch, s_ih, s_iq, H: tl.constexpr, GROUP: tl.constexpr, SEQ_Q, SEQ_K, Q0,
                    D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, Q_PER_TABLE: tl.constexpr,
                    EVEN: tl.constexpr, CAUSAL: tl.constexpr, TMA: tl.constexpr):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    kvh = h // GROUP
    offs_m = qb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    if EVEN:  # both lengths multiples of the tiles: no bounds masks in the loop
        q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqs + offs_d[None, :])
    else:
        q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqs + offs_d[None, :], mask=offs_m[:, None] < SEQ_Q)
    tq = qb // Q_PER_TABLE  # the table's query block (it may be coarser than the kernel's query tile)
    count = tl.load(Counts + h * s_ch + tq)
    idx_row = Idx + h * s_ih + tq * s_iq
    if TMA:  # K and V are tensor descriptors over (batch * kv_heads * SEQ_K, D): this head's first row
        kv_row = (b * (H // GROUP) + kvh) * SEQ_K
    else:
        k_base = K + b * skb + kvh * skh
        v_base = V + b * svb + kvh * svh
    pos = offs_m + Q0  # absolute positions of the tile's queries (the last SEQ_Q of SEQ_K)
    first_pos = qb * BLOCK_M + Q0
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    for j in range(0, count):
        start = tl.load(idx_row + j) * BLOCK_N
        cols = start + offs_n
        # the running max m_i is kept in units of the raw scores times scale_log2; the scale is folded into
        # one multiply-add per score (s * scale - m)
        if TMA:  # the copy engine fetches the whole tile (no per-element addresses in registers)
            s = tl.dot(q, K.load([kv_row + start, 0]).T)
        elif EVEN:
            k = tl.load(k_base + cols[None, :] * sks + offs_d[:, None])
            s = tl.dot(q, k)
        else:
            k = tl.load(k_base + cols[None, :] * sks + offs_d[:, None], mask=cols[None, :] < SEQ_K, other=0.0)
            s = tl.where(cols[None, :] < SEQ_K, tl.dot(q, k), float("-inf"))
        if CAUSAL:
            # only a tile that reaches past its first query can hold a key after a query: the mask is paid
            # on the diagonal tiles alone
            if start + BLOCK_N - 1 > first_pos:
                s = tl.where(cols[None, :] <= pos[:, None], s, float("-inf"))
        # a row whose keys so far are all masked: keep exp2 away from (-inf) - (-inf)
        m_new = tl.maximum(tl.maximum(m_i, tl.max(s, 1) * scale_log2), -1e30)
        p = tl.math.exp2(s * scale_log2 - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        if TMA:
            v = V.load([kv_row + start, 0])
        elif EVEN:
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :])
        else:
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :], mask=cols[:, None] < SEQ_K, other=0.0)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    o_ptrs = O + b * sob + h * soh + offs_m[:, None] * sos + offs_d[None, :]
    if EVEN:
        tl.store(o_ptrs, out.to(O.dtype.element_ty))
    else:
        tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=offs_m[:, None] < SEQ_Q)


# (BLOCK_M, BLOCK_N, num_warps, num_stages[, tma]): candidates for Hopper at head_dim 64-128, the first the default.
# Swept on an H200 at 8k and 32k tokens, LLaMA-7B heads (32 x 128), densities 0.05 / 0.5 / 1: 128x64 with 4
# warps and 3 stages won everywhere (485-524 TFLOP/s), 128x128 with 8 warps next (429-458); the suite's
# per-case timing then picked 2 stages on most LLaMA-7B cases and 64x64 on SmolLM2's 64-wide heads.
# tma=True: K and V tiles through tensor descriptors (Hopper's TMA; pointer loads where the layout does not
# allow it: lengths not multiples of the tiles, or k / v not contiguous).
CONFIGS = [(128, 64, 4, 3), (128, 64, 4, 4), (128, 64, 4, 2), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 3),
           (128, 128, 8, 4), (128, 64, 8, 3),
           (128, 64, 4, 3, True), (128, 64, 4, 2, True), (128, 64, 4, 4, True), (128, 128, 8, 3, True),
           (128, 128, 8, 2, True), (64, 64, 4, 3, True), (128, 128, 4, 2, True)]


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor, block: int,
                           config=None, lists=None, scale: float | None = None, causal: bool = False,
                           q_block: int | None = None) -> torch.Tensor:
    """softmax(q k^T * scale) v over the key blocks that ``keep`` lists for each query block; ``causal``:
    also no key after its query (within the kept blocks; a causal table keeps no block above the diagonal).

    ``q`` may hold fewer rows than ``k`` (a chunk of queries continuing a prefix): they are the last
    ``q.shape[2]`` positions, and ``keep`` is (query blocks of ``q_block`` rows, key blocks of ``block`` keys),
    ``q_block`` defaulting to ``block``.

    ``lists``: (counts, indices) from :func:`kv_lists` at the kernel's key tile, to skip re-building them
    per call (build them once per pattern: ``prepare(keep, block, config)``).
    """
    bsz, heads, seq_q, dim = q.shape
    kvh, seq_k = k.shape[1], k.shape[2]
    q_block = q_block or block
    if k.shape != (bsz, kvh, seq_k, dim) or v.shape != k.shape or heads % kvh or seq_q > seq_k:
        raise ValueError(f"q {tuple(q.shape)} / k {tuple(k.shape)} / v {tuple(v.shape)}: need (b, h, s_q, d) and "
                         f"(b, kv_h, s_k, d) with h a multiple of kv_h and s_q <= s_k")
    if dim not in (16, 32, 64, 128, 256):
        raise ValueError(f"head_dim={dim}; allowed: 16, 32, 64, 128, 256")
    n_q, n_k = -(-seq_q // q_block), -(-seq_k // block)
    if keep.shape[-2:] != (n_q, n_k) or (keep.dim() == 3 and keep.shape[0] != heads):
        raise ValueError(f"keep has shape {tuple(keep.shape)}; need ({n_q}, {n_k}) or ({heads}, {n_q}, {n_k}) for "
                         f"{seq_q} queries in blocks of {q_block} and {seq_k} keys in blocks of {block}")
    bm, bn, warps, stages, *opt = config or CONFIGS[0]
    if q_block % bm or block % bn:
        raise ValueError(f"q_block={q_block} / block={block} must be multiples of the tile sizes BLOCK_M={bm} / "
                         f"BLOCK_N={bn}")
    counts, idx = lists if lists is not None else prepare(keep, block, (bm, bn, warps, stages))
    per_head = counts.dim() == 2
    s_ch = counts.stride(0) if per_head else 0
    s_ih, s_iq = (idx.stride(0), idx.stride(1)) if per_head else (0, idx.stride(0))
    o = torch.empty_like(q)
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    grid = (triton.cdiv(seq_q, bm), bsz * heads)
    even = seq_q % bm == 0 and seq_k % bn == 0
    tma = bool(opt and opt[0]) and even and k.is_contiguous() and v.is_contiguous()
    kv_strides = (*k.stride()[:3], *v.stride()[:3])
    if tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        k, v = (TensorDescriptor.from_tensor(t.reshape(-1, dim), [bn, dim]) for t in (k, v))
    _block_attn_fwd[grid](q, k, v, o, counts, idx, scale * 1.4426950408889634,
                          *q.stride()[:3], *kv_strides, *o.stride()[:3],
                          s_ch, s_ih, s_iq, H=heads, GROUP=heads // kvh, SEQ_Q=seq_q, SEQ_K=seq_k,
                          Q0=seq_k - seq_q, D=dim, BLOCK_M=bm, BLOCK_N=bn, Q_PER_TABLE=q_block // bm,
                          EVEN=even, CAUSAL=causal, TMA=tma, num_warps=warps, num_stages=stages)
    return o


def prepare(keep: torch.Tensor, block: int, config=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The key lists for ``config``'s key tile, on ``keep``'s device."""
    bn = (config or CONFIGS[0])[1]
    return kv_lists(keep, block // bn)


def reference(q, k, v, keep: torch.Tensor, block: int, rows: torch.Tensor | None = None,
              causal: bool = False) -> torch.Tensor:
    """float32 attention with the block table as a token mask, on query blocks ``rows`` (default: all)."""
    seq = q.shape[2]
    rows = torch.arange(keep.shape[-2], device=keep.device) if rows is None else rows.to(keep.device)
    group = q.shape[1] // k.shape[1]
    tok = (rows[:, None] * block + torch.arange(block, device=keep.device)).reshape(-1)
    tok = tok[tok < seq]
    sel = keep[..., rows, :].repeat_interleave(block, -2).repeat_interleave(block, -1)[..., : tok.numel(), :seq]
    qf = q[:, :, tok.to(q.device)].float()
    kf = k.float().repeat_interleave(group, 1)
    vf = v.float().repeat_interleave(group, 1)
    s = (qf @ kf.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        sel = sel & (torch.arange(seq, device=sel.device)[None, :] <= tok[:, None])
    s = s.masked_fill(~sel.to(q.device), float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)  # a fully masked row: zeros, as the kernel
    return p @ vf, tok


# the decode variant lives in its own module; kept importable from here
from sparsebench.kernels.block_decode import block_decode_attention, decode_reference  # noqa: E402,F401
