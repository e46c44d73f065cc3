"""Block-sparse decode attention of our own: query rows over a blocked KV cache, reading only listed key blocks.

Every query row (one per (batch, head) in plain decode, or several consecutive rows, each with its own list,
when a decode step scores a continuation) attends to the key blocks its list names (Quest / NSA-style
selection: any order, any length, empty = zeros), under the causal rule: the rows are the last positions of the
``seq`` filled keys, and row ``r`` of ``rows`` sees keys up to ``seq - rows + r``. Split-K over the list as in
flash-decoding (Dao et al., "Flash-Decoding for long-context inference", 2023): each program keeps a running max
/ sum / output over its share of the list, a second kernel merges the shares (rescaled by exp2 of their max).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _block_decode_split(Q, K, V, Idx, Counts, Part, scale_log2, sqb, sqh, sqr, skb, skh, sks, svb, svh, svs,
                        s_ib, s_ih, s_ir, s_cb, s_ch, s_cr, H: tl.constexpr, ROWS,
                        GROUP: tl.constexpr, SEQ, PER_SPLIT, SPLITS, D: tl.constexpr, BLOCK: tl.constexpr,
                        BLOCK_N: tl.constexpr):
    """One query row of one head, one share of its key-block list: (m, l, acc) of that share."""
    row = tl.program_id(0)  # ((b * H) + h) * ROWS + r
    sp = tl.program_id(1)
    r = row % ROWS
    bh = row // ROWS
    b = bh // H
    h = bh % H
    kvh = h // GROUP
    limit = SEQ - ROWS + r + 1  # keys this row may see (causal)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    q = tl.load(Q + b * sqb + h * sqh + r * sqr + offs_d).to(tl.float32)
    sub: tl.constexpr = BLOCK // BLOCK_N
    count = tl.load(Counts + b * s_cb + h * s_ch + r * s_cr) * sub  # kernel tiles in the list
    lo = sp * PER_SPLIT
    hi = tl.minimum(lo + PER_SPLIT, count)
    k_base = K + b * skb + kvh * skh
    v_base = V + b * svb + kvh * svh
    idx_row = Idx + b * s_ib + h * s_ih + r * s_ir
    m_i = tl.full([], float("-inf"), tl.float32)
    l_i = tl.full([], 0.0, tl.float32)
    acc = tl.zeros([D], tl.float32)
    for e in range(lo, hi):
        cols = tl.load(idx_row + e // sub) * BLOCK + (e % sub) * BLOCK_N + offs_n
        ok = cols < limit
        k = tl.load(k_base + cols[:, None] * sks + offs_d[None, :], mask=ok[:, None], other=0.0)
        s = tl.where(ok, tl.sum(k.to(tl.float32) * q[None, :], 1) * scale_log2, float("-inf"))
        m_new = tl.maximum(tl.maximum(m_i, tl.max(s, 0)), -1e30)
        p = tl.math.exp2(s - m_new)
        alpha = tl.math.exp2(m_i - m_new)
        v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :], mask=ok[:, None], other=0.0)
        acc = acc * alpha + tl.sum(p[:, None] * v.to(tl.float32), 0)
        l_i = l_i * alpha + tl.sum(p, 0)
        m_i = m_new
    base = Part + (row * SPLITS + sp) * (D + 2)
    tl.store(base + offs_d, acc)
    tl.store(base + D, m_i)
    tl.store(base + D + 1, l_i)


@triton.jit
def _block_decode_combine(Part, O, sob, soh, sor, H: tl.constexpr, ROWS, SPLITS, D: tl.constexpr,
                          SPLITS_P2: tl.constexpr):
    """Merge the shares of one row: rescale each by exp2(m_s - max m), sum, divide by the summed l."""
    row = tl.program_id(0)
    r = row % ROWS
    bh = row // ROWS
    b = bh // H
    h = bh % H
    s = tl.arange(0, SPLITS_P2)
    offs_d = tl.arange(0, D)
    ok = s < SPLITS
    base = Part + (row * SPLITS + s) * (D + 2)
    m = tl.load(base + D, mask=ok, other=float("-inf"))
    l = tl.load(base + D + 1, mask=ok, other=0.0)
    acc = tl.load(base[:, None] + offs_d[None, :], mask=ok[:, None], other=0.0)
    m_max = tl.maximum(tl.max(m, 0), -1e30)
    w = tl.where(ok, tl.math.exp2(m - m_max), 0.0)
    total = tl.sum(w * l, 0)
    out = tl.sum(w[:, None] * acc, 0) / tl.where(total > 0, total, 1.0)
    tl.store(O + b * sob + h * soh + r * sor + offs_d, out.to(O.dtype.element_ty))


def block_decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
                           counts: torch.Tensor, block: int, seq: int | None = None, splits: int = 0,
                           block_n: int = 64, num_warps: int = 4, scale: float | None = None) -> torch.Tensor:
    """Decode attention over a blocked KV cache, reading only the listed key blocks.

    ``q`` (b, h, d): one token per head; or (b, h, rows, d): the last ``rows`` positions, each with its own
    list (row ``r`` sees keys up to ``seq - rows + r``). ``k``/``v`` the cache (b, kv_h, capacity, d) in blocks
    of ``block`` tokens, the first ``seq`` (default: all) filled; ``indices`` (b, h[, rows], width) int32
    key-block numbers (the first ``counts[b, h[, r]]`` of a row are read, in any order). ``splits`` programs per
    row (0: enough to fill the GPU) each take a share of the list; a second kernel merges the shares. A row
    whose list is empty gets zeros. Returns q's shape."""
    one = q.dim() == 3
    if one:
        q, indices, counts = q[:, :, None], indices[:, :, None], counts[:, :, None]
    bsz, heads, rows, dim = q.shape
    kvh, cap = k.shape[1], k.shape[2]
    seq = cap if seq is None else seq
    if k.shape != (bsz, kvh, cap, dim) or v.shape != k.shape or heads % kvh or not rows <= seq <= cap:
        raise ValueError(f"q {tuple(q.shape)} / k {tuple(k.shape)} / v {tuple(v.shape)} / seq {seq}: need "
                         f"(b, h[, rows], d), (b, kv_h, capacity, d) with h a multiple of kv_h and "
                         f"rows <= seq <= capacity")
    if indices.shape[:3] != (bsz, heads, rows) or counts.shape != (bsz, heads, rows):
        raise ValueError(f"indices {tuple(indices.shape)} / counts {tuple(counts.shape)}: need ({bsz}, {heads}"
                         f"{'' if one else f', {rows}'}, width) and ({bsz}, {heads}{'' if one else f', {rows}'})")
    if block % block_n:
        raise ValueError(f"block={block} must be a multiple of block_n={block_n}")
    tiles = indices.shape[3] * (block // block_n)  # the longest list, in kernel tiles
    programs = bsz * heads * rows
    if splits <= 0:
        sms = torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else 4
        splits = max(1, min(tiles, -(-2 * sms // programs)))
    per_split = max(1, -(-tiles // splits))
    splits = max(1, -(-tiles // per_split))
    part = torch.empty(programs, splits, dim + 2, dtype=torch.float32, device=q.device)
    o = torch.empty_like(q)
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    _block_decode_split[(programs, splits)](
        q, k, v, indices, counts, part, scale * 1.4426950408889634, *q.stride()[:3], *k.stride()[:3],
        *v.stride()[:3], *indices.stride()[:3], *counts.stride(), H=heads, ROWS=rows, GROUP=heads // kvh,
        SEQ=seq, PER_SPLIT=per_split, SPLITS=splits, D=dim, BLOCK=block, BLOCK_N=block_n, num_warps=num_warps)
    _block_decode_combine[(programs,)](part, o, *o.stride()[:3], H=heads, ROWS=rows, SPLITS=splits, D=dim,
                                       SPLITS_P2=max(2, triton.next_power_of_2(splits)), num_warps=1)
    return o[:, :, 0] if one else o


def decode_reference(q, k, v, indices, counts, block: int, seq: int | None = None) -> torch.Tensor:
    """float32 attention of each query row over its listed key blocks (dense attention on them, causal for
    several rows: the last ``rows`` positions of ``seq``)."""
    one = q.dim() == 3
    if one:
        q, indices, counts = q[:, :, None], indices[:, :, None], counts[:, :, None]
    bsz, heads, rows, dim = q.shape
    seq = k.shape[2] if seq is None else seq
    group = heads // k.shape[1]
    out = torch.zeros(bsz, heads, rows, dim, dtype=torch.float32, device=q.device)
    for b in range(bsz):
        for h in range(heads):
            for r in range(rows):
                blocks = indices[b, h, r, : int(counts[b, h, r])].long()
                if blocks.numel() == 0:
                    continue
                tok = (blocks[:, None] * block + torch.arange(block, device=q.device)).reshape(-1)
                tok = tok[tok < seq - rows + r + 1]
                if tok.numel() == 0:
                    continue
                kk, vv = k[b, h // group, tok].float(), v[b, h // group, tok].float()
                p = torch.softmax(kk @ q[b, h, r].float() / math.sqrt(dim), 0)
                out[b, h, r] = p @ vv
    return out[:, :, 0] if one else out
