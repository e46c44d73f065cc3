"""Two fused Triton kernels for the per-layer work beside a long prefill's attention (CUDA only).

At 32k tokens the benchmark's own work per layer was larger than the attention it measures, because each
step wrote and re-read tensors of (rows x keys) or (rows x pages) entries:

- :func:`block_pattern_recall`: the recall of a :class:`~sparsebench.attention.pattern.BlockPattern` on its
  sampled rows, i.e. the share of each row's dense causal softmax mass that falls on its kept keys. One pass
  over each chunk of KEY_CHUNK keys per tile of 16 sampled rows, with a running maximum and two running sums
  (all causal keys, the kept ones), merged over the chunks by a second small kernel; the kept rule (selected blocks, local region, sinks, the row itself) evaluated from the
  block table in registers: no score matrix (9 heads x 512 rows x 32k keys a layer at 32k, 300 MB in
  float16, read five times by two logsumexps) and no token mask of the sampled rows (150 M entries).
- :func:`page_bound_group_max`: Quest's page upper bound ``sum_d max(q_d * kmax_d, q_d * kmin_d)`` maximised
  over each group of rows (a query block), computed tile by tile in registers: the (rows x pages) bound
  (1.2 GB a layer at 32k in float16) is never written. Pages wholly after a group's last row cannot be
  selected by it (a group only chooses among blocks before its local region) and get -inf without being
  computed, which halves the work of a causal prefill.

Both accumulate in float32 (the float16 reference rounds the bound once, the recall's scores once per key):
they agree with the eager formulas to float tolerance, not bit for bit, so the CPU (every default job) keeps
the eager formulas. The tests run the kernels under ``TRITON_INTERPRET=1`` against them.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _recall_kernel(Q, K, Pos, Start, Grp, Blocks, Part, sqb, sqh, sqr, skb, skh, sks, sbb, sbh, sbg,
                   H: tl.constexpr, R, SINKS, BLOCK, scale_log2, CHUNK, SPLITS, HAS_BLOCKS: tl.constexpr,
                   PREC: tl.constexpr, D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr):
    """One tile of BLOCK_R sampled rows of one (batch, head), over one CHUNK of the keys: per row the running
    maximum (log2 units) and the causal and kept sums below it, merged over the chunks by _recall_merge
    (the last tile of a 32k call would otherwise walk all 32k keys alone)."""
    tile = tl.program_id(0)
    bh = tl.program_id(1)
    sp = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_r = tile * BLOCK_R + tl.arange(0, BLOCK_R)
    live = offs_r < R
    pos = tl.load(Pos + offs_r, mask=live, other=0)  # absolute position of each sampled row
    start = tl.load(Start + offs_r, mask=live, other=0)  # its local region's first key
    grp = tl.load(Grp + offs_r, mask=live, other=0)  # its row group (the block table's row)
    offs_d = tl.arange(0, D)
    q = tl.load(Q + b * sqb + h * sqh + offs_r[:, None] * sqr + offs_d[None, :], mask=live[:, None], other=0.0)
    k_base = K + b * skb + h * skh
    m_i = tl.full([BLOCK_R], -1.0e30, tl.float32)
    l_all = tl.zeros([BLOCK_R], tl.float32)
    l_kept = tl.zeros([BLOCK_R], tl.float32)
    hi = tl.minimum(tl.max(tl.where(live, pos, 0), 0) + 1, (sp + 1) * CHUNK)  # keys any row of the tile may see
    for n0 in range(sp * CHUNK, hi, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        k = tl.load(k_base + cols[None, :] * sks + offs_d[:, None], mask=cols[None, :] < hi, other=0.0)
        s = tl.dot(q, k, input_precision=PREC) * scale_log2
        causal = (cols[None, :] <= pos[:, None]) & live[:, None]
        s = tl.where(causal, s, float("-inf"))
        kept = (cols[None, :] >= start[:, None]) | (cols[None, :] < SINKS)
        if HAS_BLOCKS:
            sel = tl.load(Blocks + b * sbb + h * sbh + grp[:, None] * sbg + cols[None, :] // BLOCK, mask=causal,
                          other=0)
            kept = kept | (sel != 0)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(s - m_new[:, None])
        l_all = l_all * alpha + tl.sum(p, 1)
        l_kept = l_kept * alpha + tl.sum(tl.where(kept, p, 0.0), 1)
        m_i = m_new
    part = Part + ((bh * 3) * SPLITS + sp) * R + offs_r  # Part: (B * H, 3, SPLITS, R)
    tl.store(part, m_i, mask=live)
    tl.store(part + SPLITS * R, l_all, mask=live)
    tl.store(part + 2 * SPLITS * R, l_kept, mask=live)


@triton.jit
def _recall_merge(Part, Out, R, SPLITS, S_P2: tl.constexpr, BLOCK: tl.constexpr):
    """Kept mass / causal mass per row, from its chunks' (max, causal sum, kept sum)."""
    bh = tl.program_id(0)
    offs_r = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    offs_s = tl.arange(0, S_P2)
    ok = (offs_s[:, None] < SPLITS) & (offs_r[None, :] < R)
    at = Part + (bh * 3 * SPLITS + offs_s[:, None]) * R + offs_r[None, :]
    m = tl.load(at, mask=ok, other=-1.0e30)
    l_all = tl.load(at + SPLITS * R, mask=ok, other=0.0)
    l_kept = tl.load(at + 2 * SPLITS * R, mask=ok, other=0.0)
    top = tl.max(m, 0)
    w = tl.math.exp2(m - top[None, :])
    total = tl.sum(l_all * w, 0)
    tl.store(Out + bh * R + offs_r, tl.sum(l_kept * w, 0) / tl.where(total > 0, total, 1.0), mask=offs_r < R)


KEY_CHUNK = 4096  # keys per recall program: a 32k call's sampled rows split 8 ways (balanced over the GPU)


def _pow2(d: int) -> bool:
    return d >= 16 and d & (d - 1) == 0


def fits(q) -> bool:
    """Whether the kernels take these queries: a head size that is a power of two of at least 16."""
    return _pow2(q.shape[-1])


def block_pattern_recall(pattern, q_rows, k, rows: torch.Tensor, scaling: float) -> torch.Tensor:
    """(B, H, len(rows)) float32: the recall of the sampled ``rows`` (indices into the pattern's rows) whose
    queries are ``q_rows`` (B, H, len(rows), D), over keys ``k`` (B, H, keys, D) (heads expanded)."""
    b, h, n, d = q_rows.shape
    budget = pattern.budget
    dev = q_rows.device
    rows = rows.to(dev)
    pos = (budget.q0 + rows).to(torch.int32).contiguous()
    start = pattern.local_start.to(dev)[rows].to(torch.int32).contiguous()
    grp = (rows // pattern.group).to(torch.int32).contiguous()
    out = torch.empty(b, h, n, device=dev, dtype=torch.float32)
    blocks = pattern.blocks
    has = blocks is not None
    if has:
        blocks = blocks.to(dev)
        blocks = blocks.view(torch.uint8) if blocks.dtype == torch.bool else blocks.to(torch.uint8)
        sb = blocks.stride()[:3]
    else:
        blocks, sb = pos, (0, 0, 0)  # never read
    q_rows = q_rows if q_rows.stride(-1) == 1 else q_rows.contiguous()
    k = k if k.stride(-1) == 1 else k.contiguous()
    block_r, block_n = 16, 128
    splits = triton.cdiv(budget.keys, KEY_CHUNK)  # KEY_CHUNK: a multiple of block_n
    part = torch.empty(b * h, 3, splits, n, device=dev, dtype=torch.float32)
    grid = (triton.cdiv(n, block_r), b * h, splits)
    _recall_kernel[grid](q_rows, k, pos, start, grp, blocks, part, *q_rows.stride()[:3], *k.stride()[:3], *sb,
                         H=h, R=n, SINKS=pattern.sinks, BLOCK=pattern.block, scale_log2=scaling * math.log2(math.e),
                         CHUNK=KEY_CHUNK, SPLITS=splits, HAS_BLOCKS=has,
                         PREC="ieee" if q_rows.dtype == torch.float32 else "tf32", D=d, BLOCK_R=block_r,
                         BLOCK_N=block_n)
    _recall_merge[(b * h, triton.cdiv(n, 64))](part, out, n, splits, S_P2=max(2, triton.next_power_of_2(splits)), BLOCK=64)
    return out


@triton.jit
def _page_bound_kernel(Q, KMAX, KMIN, Out, sqb, sqh, sqr, skb, skh, skp, sob, soh, sog,
                       H: tl.constexpr, ROWS, PAGES, G, Q0, PAGE, PREC: tl.constexpr, D: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_P: tl.constexpr):
    """One row group x BLOCK_P pages of one (batch, head): the page bound's maximum over the group's rows."""
    grp = tl.program_id(0)
    pt = tl.program_id(1)
    bh = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_p = pt * BLOCK_P + tl.arange(0, BLOCK_P)
    r_first = grp * G
    r_end = tl.minimum(r_first + G, ROWS)
    out_ptr = Out + b * sob + h * soh + grp * sog + offs_p
    best = tl.full([BLOCK_P], float("-inf"), tl.float32)
    if pt * BLOCK_P * PAGE <= Q0 + r_end - 1:  # else every page of the tile lies after the group's last row
        offs_d = tl.arange(0, D)
        pmask = offs_p < PAGES
        k_off = b * skb + h * skh + offs_p[None, :] * skp + offs_d[:, None]
        kmax = tl.load(KMAX + k_off, mask=pmask[None, :], other=0.0)
        kmin = tl.load(KMIN + k_off, mask=pmask[None, :], other=0.0)
        for r0 in range(r_first, r_end, BLOCK_M):
            offs_r = r0 + tl.arange(0, BLOCK_M)
            live = offs_r < r_end
            q = tl.load(Q + b * sqb + h * sqh + offs_r[:, None] * sqr + offs_d[None, :], mask=live[:, None],
                        other=0.0)
            zero = tl.zeros_like(q)
            acc = tl.dot(tl.maximum(q, zero), kmax, input_precision=PREC)
            acc = tl.dot(tl.minimum(q, zero), kmin, acc, input_precision=PREC)
            best = tl.maximum(best, tl.max(tl.where(live[:, None], acc, float("-inf")), 0))
    best = tl.where(offs_p * PAGE <= Q0 + r_end - 1, best, float("-inf"))  # pages after the group: -inf
    tl.store(out_ptr, best.to(Out.dtype.element_ty), mask=offs_p < PAGES)


def page_bound_group_max(q, kmin, kmax, group: int, q0: int, page: int) -> torch.Tensor:
    """(B, H, groups, pages) in q's dtype: max over each group of ``group`` rows of Quest's page bound
    (``quest.page_upper_bound`` then ``select.group_max``); pages whose first key lies after the group's last
    row (q0 + its last row) are -inf (never a candidate of that group)."""
    b, h, rows, d = q.shape
    pages = kmin.shape[2]
    groups = -(-rows // group)
    out = torch.empty(b, h, groups, pages, device=q.device, dtype=q.dtype)
    q = q if q.stride(-1) == 1 else q.contiguous()
    kmin, kmax = kmin.contiguous(), kmax.contiguous()  # one set of strides for both (aminmax's are already)
    block_m = min(64, max(16, triton.next_power_of_2(group)))
    block_p = 64
    grid = (groups, triton.cdiv(pages, block_p), b * h)
    _page_bound_kernel[grid](q, kmax, kmin, out, *q.stride()[:3], *kmax.stride()[:3], *out.stride()[:3], H=h,
                             ROWS=rows, PAGES=pages, G=group, Q0=q0, PAGE=page,
                             PREC="ieee" if q.dtype == torch.float32 else "tf32", D=d, BLOCK_M=block_m,
                             BLOCK_P=block_p)
    return out
