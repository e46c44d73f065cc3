"""Our Triton decode kernels (one token, ``y = W x``), where the stock ones fall short.

``gemv_2_4`` -- a 2:4 semi-structured weight (in every group of 4 consecutive
inputs, 2 weights kept) stored as its kept values (out, in/2) plus one byte
per group holding the two kept positions (2 bits each): 1.25 bytes per input
column instead of 2, so a bandwidth-bound GEMV can beat the dense one, which
cuSPARSELt (built for matrix-matrix products) does not at one token.

``activation_sparse_gemv_compact`` -- an activation-sparse GEMV (see
:mod:`sparsebench.kernels.act_sparse_gemv` for the main one) that first packs the
non-zero inputs to the front, kept to show that the extra pass costs more than it saves.
"""

from __future__ import annotations

import functools

import torch


def pack_2_4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (out, in/2), meta (out, in/4) uint8) of a weight with at most 2 non-zeros per group of 4."""
    out_f, in_f = w.shape
    if in_f % 4:
        raise ValueError(f"2:4 packing needs in_features divisible by 4, got {in_f}")
    groups = w.reshape(out_f, in_f // 4, 4)
    nonzero = (groups != 0).to(torch.int32)
    if int(nonzero.sum(-1).max()) > 2:
        raise ValueError("weight is not 2:4 sparse: a group of 4 holds more than 2 non-zeros")
    # Kept positions: the non-zeros first, then (for groups with fewer than 2) the lowest zero positions.
    order = nonzero * 4 + (3 - torch.arange(4, device=w.device, dtype=torch.int32))
    idx = order.topk(2, dim=-1).indices.sort(dim=-1).values
    values = groups.gather(-1, idx).reshape(out_f, in_f // 2).contiguous()
    meta = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8).contiguous()
    return values, meta


def unpack_2_4(values: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    out_f, half = values.shape
    idx = torch.stack([meta & 3, (meta >> 2) & 3], dim=-1).long()
    dense = torch.zeros(out_f, half // 2, 4, dtype=values.dtype, device=values.device)
    dense.scatter_(-1, idx, values.reshape(out_f, half // 2, 2))
    return dense.reshape(out_f, half * 2)


@functools.lru_cache(maxsize=None)
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def gemv_2_4(x_ptr, v_ptr, m_ptr, y_ptr, N, G, stride_vn, stride_mn, G_PER_PROG,
                 BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr, ATOMIC: tl.constexpr):
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        n_ok = offs_n < N
        acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        g_start = pid_k * G_PER_PROG
        for g0 in range(g_start, g_start + G_PER_PROG, BLOCK_G):
            offs_g = g0 + tl.arange(0, BLOCK_G)
            g_ok = offs_g < G
            ok = n_ok[:, None] & g_ok[None, :]
            meta = tl.load(m_ptr + offs_n[:, None] * stride_mn + offs_g[None, :], mask=ok, other=0,
                           eviction_policy="evict_first").to(tl.int32)
            offs_v = 2 * g0 + tl.arange(0, 2 * BLOCK_G)
            v_ok = n_ok[:, None] & (offs_v < 2 * G)[None, :]
            v = tl.load(v_ptr + offs_n[:, None] * stride_vn + offs_v[None, :], mask=v_ok, other=0.0,
                        eviction_policy="evict_first")
            v0, v1 = tl.split(tl.reshape(v, (BLOCK_N, BLOCK_G, 2)))
            x0 = tl.load(x_ptr + 4 * offs_g + 0, mask=g_ok, other=0.0, eviction_policy="evict_last").to(tl.float32)[None, :]
            x1 = tl.load(x_ptr + 4 * offs_g + 1, mask=g_ok, other=0.0, eviction_policy="evict_last").to(tl.float32)[None, :]
            x2 = tl.load(x_ptr + 4 * offs_g + 2, mask=g_ok, other=0.0, eviction_policy="evict_last").to(tl.float32)[None, :]
            x3 = tl.load(x_ptr + 4 * offs_g + 3, mask=g_ok, other=0.0, eviction_policy="evict_last").to(tl.float32)[None, :]
            i0 = meta & 3
            i1 = (meta >> 2) & 3
            xa = tl.where(i0 == 0, x0, tl.where(i0 == 1, x1, tl.where(i0 == 2, x2, x3)))
            xb = tl.where(i1 == 0, x0, tl.where(i1 == 1, x1, tl.where(i1 == 2, x2, x3)))
            acc += tl.sum(v0.to(tl.float32) * xa + v1.to(tl.float32) * xb, axis=1)
        if ATOMIC:  # split-K: partial sums meet in the output
            tl.atomic_add(y_ptr + offs_n, acc.to(y_ptr.dtype.element_ty), mask=n_ok)
        else:  # one program owns its rows: a plain store, no zeroing launch
            tl.store(y_ptr + offs_n, acc.to(y_ptr.dtype.element_ty), mask=n_ok)

    @triton.jit
    def compact_nonzero(x_ptr, idx_ptr, xc_ptr, count_ptr, y_ptr, K, N, BLOCK: tl.constexpr,
                        ZERO_BLOCK: tl.constexpr):
        """One program: the positions and values of x's non-zeros, packed to the front; zeroes y."""
        offs = tl.arange(0, BLOCK)
        x = tl.load(x_ptr + offs, mask=offs < K, other=0.0)
        live = (x != 0).to(tl.int32)
        pos = tl.cumsum(live, axis=0) - 1
        tl.store(idx_ptr + pos, offs, mask=live == 1)
        tl.store(xc_ptr + pos, x, mask=live == 1)
        tl.store(count_ptr, tl.sum(live, axis=0))
        for n0 in range(0, N, ZERO_BLOCK):
            offs_n = n0 + tl.arange(0, ZERO_BLOCK)
            tl.store(y_ptr + offs_n, tl.zeros((ZERO_BLOCK,), dtype=y_ptr.dtype.element_ty), mask=offs_n < N)

    @triton.jit
    def compact_gemv(idx_ptr, xc_ptr, count_ptr, wt_ptr, y_ptr, N, stride_wk,
                     BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
        """Programs over the packed non-zeros: every weight row loaded is one that counts."""
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        count = tl.load(count_ptr)
        offs_c = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
        valid = offs_c < count  # programs past the count load nothing and add nothing
        rows = tl.load(idx_ptr + offs_c, mask=valid, other=0)
        x = tl.load(xc_ptr + offs_c, mask=valid, other=0.0)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        n_ok = offs_n < N
        w = tl.load(wt_ptr + rows[:, None] * stride_wk + offs_n[None, :], mask=valid[:, None] & n_ok[None, :],
                    other=0.0, eviction_policy="evict_first")
        acc = tl.sum(w.to(tl.float32) * x.to(tl.float32)[:, None], axis=0)
        tl.atomic_add(y_ptr + offs_n, acc.to(y_ptr.dtype.element_ty), mask=n_ok & (pid_k * BLOCK_K < count))

    return triton, gemv_2_4, compact_nonzero, compact_gemv


def _split(total: int, per_block: int, other_programs: int, tiles: int, target_programs: int = 528) -> int:
    """Units of the split axis per program: ``tiles`` blocks each, or with ``tiles=0`` as many as give
    the grid about ``target_programs`` programs. ``tiles=1`` is TEAL's one-tile-per-program grid."""
    blocks = -(-total // per_block)
    if tiles:
        return min(tiles, blocks) * per_block  # never past the end: the loop runs to start + this
    splits = max(1, min(blocks, target_programs // max(other_programs, 1)))
    return -(-blocks // splits) * per_block


def gemv_2_4(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, block_n: int = 16, block_g: int = 64,
             num_warps: int = 4, tiles: int = 0, fp32_out: bool = False) -> torch.Tensor:
    """``W x`` for one token ``x`` (in,) with ``W`` given packed by :func:`pack_2_4`."""
    triton, kernel, *_ = _kernels()
    n_dim, groups = meta.shape
    n_blocks = triton.cdiv(n_dim, block_n)
    g_per_prog = _split(groups, block_g, n_blocks, tiles)
    splits = triton.cdiv(groups, g_per_prog)
    make = torch.zeros if splits > 1 else torch.empty
    y = make(n_dim, dtype=torch.float32 if fp32_out else x.dtype, device=x.device)
    kernel[(n_blocks, splits)](x, values, meta, y, n_dim, groups, values.stride(0), meta.stride(0), g_per_prog,
                               BLOCK_N=block_n, BLOCK_G=block_g, ATOMIC=splits > 1, num_warps=num_warps)
    return y.to(x.dtype)


def activation_sparse_gemv_compact(x: torch.Tensor, wt: torch.Tensor, block_k: int = 64, block_n: int = 128,
                                   num_warps: int = 2, fp32_out: bool = False) -> torch.Tensor:
    """Like :func:`sparsebench.kernels.act_sparse_gemv.activation_sparse_gemv`, but the non-zero inputs are first packed to the front (one small
    program: a prefix sum over x), so the GEMV's programs load only live weight rows and the programs
    past the live count do nothing: time falls with density instead of leaving masked register slots."""
    triton, _, compact, gemv = _kernels()
    k_dim, n_dim = wt.shape
    idx = torch.empty(k_dim, dtype=torch.int32, device=x.device)
    xc = torch.empty_like(x)
    count = torch.empty(1, dtype=torch.int32, device=x.device)
    y = torch.empty(n_dim, dtype=torch.float32 if fp32_out else x.dtype, device=x.device)
    compact[(1,)](x, idx, xc, count, y, k_dim, n_dim, BLOCK=triton.next_power_of_2(k_dim), ZERO_BLOCK=1024,
                  num_warps=16)
    grid = (triton.cdiv(n_dim, block_n), triton.cdiv(k_dim, block_k))
    gemv[grid](idx, xc, count, wt, y, n_dim, wt.stride(0), BLOCK_K=block_k, BLOCK_N=block_n, num_warps=num_warps)
    return y.to(x.dtype)
