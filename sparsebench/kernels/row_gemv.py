"""Row-major decode GEMVs of one design, dense and 2:4: a Triton dense reference and a streamed 2:4 kernel.

Both compute ``y = W x`` for one token with ``W`` in ``nn.Linear``'s (out, in) layout, one program per
``BLOCK_N`` output rows x a run of ``tiles`` K tiles, the next tile's loads issued before the current
tile is multiplied (software pipelining by hand: Triton's pipeliner only streams loads that feed a dot),
fp32 products kept per (row, column) slot and reduced across the row once after the loop, and split-K
partial sums meeting as in :mod:`sparsebench.kernels.act_sparse_gemv` (``store`` / ``atomic`` / ``last``).

``dense_gemv`` exists so that a sparse GEMV's speed-up can be judged against the best dense GEMV, not only
against cuBLAS (whose GEMV is weak on some shapes): the same tiling, pipelining and reduction with every
weight loaded. ``gemv_2_4_streamed`` is the 2:4 twin (storage of :func:`sparsebench.kernels.triton_gemv.pack_2_4`:
kept values (out, in/2) fp16 + one byte of two 2-bit positions per group of 4 = 1.25 bytes per weight
column instead of 2, so 1.6x is the bandwidth ideal): x is loaded as one contiguous tile and split into
its four group lanes, and each kept value picks its x lane by its position (the first kept position of a
group is 0-2, the second 1-3: two selects each).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sparsebench.kernels.act_sparse_gemv import REDUCE, _finish, _workspace


@triton.jit
def _dense_row_gemv(x_ptr, w_ptr, y_ptr, part_ptr, count_ptr, K, N, stride_wn, K_PER_PROG, SPLITS,
                    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, REDUCE: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    cols = tl.arange(0, BLOCK_K)
    k_lo = pid_k * K_PER_PROG
    k_hi = tl.minimum(k_lo + K_PER_PROG, K)
    rows = w_ptr + offs_n[:, None] * stride_wn
    ok = k_lo + cols < k_hi
    w_cur = tl.load(rows + (k_lo + cols)[None, :], mask=n_ok[:, None] & ok[None, :], other=0.0,
                    eviction_policy="evict_first")
    x_cur = tl.load(x_ptr + k_lo + cols, mask=ok, other=0.0, eviction_policy="evict_last")
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k in range(k_lo + BLOCK_K, k_hi, BLOCK_K):
        ok = k + cols < k_hi
        w_nxt = tl.load(rows + (k + cols)[None, :], mask=n_ok[:, None] & ok[None, :], other=0.0,
                        eviction_policy="evict_first")
        x_nxt = tl.load(x_ptr + k + cols, mask=ok, other=0.0, eviction_policy="evict_last")
        acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[None, :]
        w_cur = w_nxt
        x_cur = x_nxt
    acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[None, :]
    _finish(y_ptr, part_ptr, count_ptr, tl.sum(acc, axis=1), offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


@triton.jit
def _gemv_2_4_streamed(x_ptr, v_ptr, m_ptr, y_ptr, part_ptr, count_ptr, G, N, stride_vn, stride_mn, G_PER_PROG,
                       SPLITS, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr, REDUCE: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    gs = tl.arange(0, BLOCK_G)
    vs = tl.arange(0, 2 * BLOCK_G)
    xs = tl.arange(0, 4 * BLOCK_G)
    g_lo = pid_k * G_PER_PROG
    g_hi = tl.minimum(g_lo + G_PER_PROG, G)
    v_rows = v_ptr + offs_n[:, None] * stride_vn
    m_rows = m_ptr + offs_n[:, None] * stride_mn
    v_cur = tl.load(v_rows + (2 * g_lo + vs)[None, :], mask=n_ok[:, None] & (2 * g_lo + vs < 2 * g_hi)[None, :],
                    other=0.0, eviction_policy="evict_first")
    m_cur = tl.load(m_rows + (g_lo + gs)[None, :], mask=n_ok[:, None] & (g_lo + gs < g_hi)[None, :], other=0,
                    eviction_policy="evict_first")
    x_cur = tl.load(x_ptr + 4 * g_lo + xs, mask=4 * g_lo + xs < 4 * g_hi, other=0.0, eviction_policy="evict_last")
    acc = tl.zeros((BLOCK_N, BLOCK_G), dtype=tl.float32)
    for g in range(g_lo + BLOCK_G, g_hi, BLOCK_G):
        v_nxt = tl.load(v_rows + (2 * g + vs)[None, :], mask=n_ok[:, None] & (2 * g + vs < 2 * g_hi)[None, :],
                        other=0.0, eviction_policy="evict_first")
        m_nxt = tl.load(m_rows + (g + gs)[None, :], mask=n_ok[:, None] & (g + gs < g_hi)[None, :], other=0,
                        eviction_policy="evict_first")
        x_nxt = tl.load(x_ptr + 4 * g + xs, mask=4 * g + xs < 4 * g_hi, other=0.0, eviction_policy="evict_last")
        acc += _dot_2_4(v_cur, m_cur, x_cur, BLOCK_N, BLOCK_G)
        v_cur = v_nxt
        m_cur = m_nxt
        x_cur = x_nxt
    acc += _dot_2_4(v_cur, m_cur, x_cur, BLOCK_N, BLOCK_G)
    _finish(y_ptr, part_ptr, count_ptr, tl.sum(acc, axis=1), offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


@triton.jit
def _gemv_2_4_nibble(x_ptr, v_ptr, m_ptr, y_ptr, part_ptr, count_ptr, G, N, stride_vn, stride_mn, G_PER_PROG,
                     SPLITS, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr, REDUCE: tl.constexpr):
    # As _gemv_2_4_streamed over spans of 64 groups whose positions come two groups a byte
    # (pack_meta_nibbles: group j of a span in the low nibble, group 32 + j in the high one), so the
    # metadata is half a byte per group; BLOCK_G (64) is fixed by that packing.
    HALF: tl.constexpr = BLOCK_G // 2
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    hs = tl.arange(0, HALF)
    vs = tl.arange(0, 2 * HALF)
    xs = tl.arange(0, 4 * HALF)
    g_lo = pid_k * G_PER_PROG
    g_hi = tl.minimum(g_lo + G_PER_PROG, G)
    v_rows = v_ptr + offs_n[:, None] * stride_vn
    m_rows = m_ptr + offs_n[:, None] * stride_mn
    acc = tl.zeros((BLOCK_N, HALF), dtype=tl.float32)
    ok = n_ok[:, None] & (g_lo < g_hi)
    m_cur = tl.load(m_rows + (g_lo // 2 + hs)[None, :], mask=ok, other=0, eviction_policy="evict_first")
    va = tl.load(v_rows + (2 * g_lo + vs)[None, :], mask=ok, other=0.0, eviction_policy="evict_first")
    vb = tl.load(v_rows + (2 * g_lo + 2 * HALF + vs)[None, :], mask=ok, other=0.0, eviction_policy="evict_first")
    xa = tl.load(x_ptr + 4 * g_lo + xs, eviction_policy="evict_last")
    xb = tl.load(x_ptr + 4 * g_lo + 4 * HALF + xs, eviction_policy="evict_last")
    for g in range(g_lo + BLOCK_G, g_hi, BLOCK_G):
        m_nxt = tl.load(m_rows + (g // 2 + hs)[None, :], mask=n_ok[:, None], other=0, eviction_policy="evict_first")
        va_n = tl.load(v_rows + (2 * g + vs)[None, :], mask=n_ok[:, None], other=0.0, eviction_policy="evict_first")
        vb_n = tl.load(v_rows + (2 * g + 2 * HALF + vs)[None, :], mask=n_ok[:, None], other=0.0,
                       eviction_policy="evict_first")
        xa_n = tl.load(x_ptr + 4 * g + xs, eviction_policy="evict_last")
        xb_n = tl.load(x_ptr + 4 * g + 4 * HALF + xs, eviction_policy="evict_last")
        m = m_cur.to(tl.int32)
        acc += _dot_2_4(va, m & 15, xa, BLOCK_N, HALF) + _dot_2_4(vb, m >> 4, xb, BLOCK_N, HALF)
        m_cur = m_nxt
        va = va_n
        vb = vb_n
        xa = xa_n
        xb = xb_n
    m = m_cur.to(tl.int32)
    acc += _dot_2_4(va, m & 15, xa, BLOCK_N, HALF) + _dot_2_4(vb, m >> 4, xb, BLOCK_N, HALF)
    _finish(y_ptr, part_ptr, count_ptr, tl.sum(acc, axis=1), offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


@triton.jit
def _dot_2_4(v, meta, x, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr):
    """Per (row, group): v0 * x[first kept] + v1 * x[second kept], in fp32."""
    # x[4g + 2i + j] as (g, i, j): split j, then i -> the four lanes of every group
    x_even, x_odd = tl.split(tl.reshape(x.to(tl.float32), (BLOCK_G, 2, 2)))
    x0, x2 = tl.split(x_even)
    x1, x3 = tl.split(x_odd)
    v0, v1 = tl.split(tl.reshape(v, (BLOCK_N, BLOCK_G, 2)))
    m = meta.to(tl.int32) & 15
    i0 = m & 3  # first kept position: 0, 1 or 2
    i1 = m >> 2  # second: 1, 2 or 3
    xa = tl.where(i0 == 0, x0[None, :], tl.where(i0 == 1, x1[None, :], x2[None, :]))
    xb = tl.where(i1 == 3, x3[None, :], tl.where(i1 == 2, x2[None, :], x1[None, :]))
    return v0.to(tl.float32) * xa + v1.to(tl.float32) * xb


def _launch(kernel, x, y_dtype, n_dim, k_units, block_n, block_k, tiles, reduce, weights, args, num_warps):
    k_per_prog = min(tiles, triton.cdiv(k_units, block_k)) * block_k
    splits = triton.cdiv(k_units, k_per_prog)
    n_blocks = triton.cdiv(n_dim, block_n)
    mode = "store" if splits == 1 else reduce
    if mode not in REDUCE:
        raise ValueError(f"reduce={reduce!r}; allowed: {', '.join(REDUCE)}")
    y = (torch.zeros if mode == "atomic" else torch.empty)(n_dim, dtype=y_dtype, device=x.device)
    part, count = _workspace(splits, n_dim, n_blocks, x.device) if mode == "last" else (y, y)
    kernel[(n_blocks, splits)](x, *weights, y, part, count, *args, k_per_prog, splits, block_n, block_k,
                               REDUCE[mode], num_warps=num_warps)
    return y


def dense_gemv(x: torch.Tensor, w: torch.Tensor, block_n: int = 16, block_k: int = 128, num_warps: int = 4,
               tiles: int = 8, reduce: str = "last") -> torch.Tensor:
    """``W x`` for one token ``x`` (in,) and ``w`` (out, in) with unit stride along ``in``."""
    n_dim, k_dim = w.shape
    if w.stride(1) != 1:
        raise ValueError(f"dense_gemv needs w with unit stride along in_features, got strides {w.stride()}")
    return _launch(_dense_row_gemv, x, x.dtype, n_dim, k_dim, block_n, block_k, tiles, reduce,
                   (w,), (k_dim, n_dim, w.stride(0)), num_warps)


def gemv_2_4_streamed(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, block_n: int = 16,
                      block_g: int = 64, num_warps: int = 4, tiles: int = 8, reduce: str = "last") -> torch.Tensor:
    """``W x`` for one token with ``W`` packed by :func:`sparsebench.kernels.triton_gemv.pack_2_4`."""
    n_dim, groups = meta.shape
    return _launch(_gemv_2_4_streamed, x, x.dtype, n_dim, groups, block_n, block_g, tiles, reduce,
                   (values, meta), (groups, n_dim, values.stride(0), meta.stride(0)), num_warps)


def pack_meta_nibbles(meta: torch.Tensor) -> torch.Tensor:
    """The one-byte-per-group positions of :func:`sparsebench.kernels.triton_gemv.pack_2_4` (out, G) as half a
    byte per group (out, G / 2): in every span of 64 groups, byte j holds group j (low nibble) and 32 + j."""
    n_dim, groups = meta.shape
    if groups % 64:
        raise ValueError(f"nibble-packed 2:4 positions need in_features divisible by 256, got {4 * groups}")
    spans = meta.reshape(n_dim, groups // 64, 2, 32)
    return (spans[:, :, 0] | (spans[:, :, 1] << 4)).reshape(n_dim, groups // 2).contiguous()


def gemv_2_4_nibble(x: torch.Tensor, values: torch.Tensor, meta4: torch.Tensor, block_n: int = 16,
                    num_warps: int = 4, tiles: int = 8, reduce: str = "last") -> torch.Tensor:
    """``W x`` for one token, W's positions packed by :func:`pack_meta_nibbles` (1.125 bytes per weight column)."""
    n_dim, half = meta4.shape
    return _launch(_gemv_2_4_nibble, x, x.dtype, n_dim, 2 * half, block_n, 64, tiles, reduce,
                   (values, meta4), (2 * half, n_dim, values.stride(0), meta4.stride(0)), num_warps)


def run_gemv_2_4(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, config: tuple) -> torch.Tensor:
    """One of our 2:4 GEMVs by a tuning config: ``("streamed", block_n, block_g, warps, tiles, reduce)``,
    ``("nibble", block_n, warps, tiles, reduce)`` (positions from :func:`packed_for`) or ``("simple", ...)``
    (:func:`sparsebench.kernels.triton_gemv.gemv_2_4`'s arguments)."""
    from sparsebench.kernels.triton_gemv import gemv_2_4

    kind, *args = config
    if kind == "streamed":
        return gemv_2_4_streamed(x, values, meta, *args)
    if kind == "simple":
        return gemv_2_4(x, values, meta, *args)
    if kind == "nibble":
        if meta.shape[1] * 4 != values.shape[1]:
            raise ValueError(f"2:4 GEMV config {config!r} takes positions packed by pack_meta_nibbles (see packed_for)")
        return gemv_2_4_nibble(x, values, meta, *args)
    raise ValueError(f"2:4 GEMV config {config!r}: kind must be 'streamed', 'simple' or 'nibble'")


def packed_for(config: tuple, values: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The storage ``config``'s kernel reads, from :func:`sparsebench.kernels.triton_gemv.pack_2_4`'s (made once,
    offline: the positions half a byte per group for "nibble")."""
    return (values, pack_meta_nibbles(meta)) if config[0] == "nibble" else (values, meta)


# (block_n, block_k, num_warps, k tiles per program, reduce) for dense_gemv; 1 << 20 tiles = one split.
# Kept from a sweep of 15 on the H200's LLaMA shapes (the first three won there), the rest for smaller shapes.
TUNE_DENSE = [(4, 512, 4, 1 << 20, "store"), (8, 256, 4, 4, "last"), (8, 256, 4, 1 << 20, "store"),
              (16, 128, 4, 8, "last"), (16, 128, 4, 4, "last"), (8, 256, 4, 8, "last"), (4, 512, 4, 4, "last"),
              (16, 128, 4, 1 << 20, "store")]
# ("streamed", block_n, block_g (groups of 4 = 4 * block_g inputs), num_warps, tiles, reduce), ("nibble",
# block_n, num_warps, tiles, reduce), then the simple kernel (triton_gemv.gemv_2_4). From a sweep of 19 streamed/simple
# ones on the H200's LLaMA shapes the first three won every one; the simple kernel's candidates stay for shapes
# where one split of few rows wins. The order does not matter: the tuner (tuning.py) has no favourite.
TUNE_2_4 = [("streamed", 16, 64, 4, 8, "last"),
            # positions half a byte per group: 1.17-1.30x over the best dense GEMV on the LLaMA shapes but
            # LLaMA-3-8B k (1024x4096) in a sweep on the H200 (bench/sweep_kernels3.py), where it ties it
            ("nibble", 16, 4, 8, "last"), ("nibble", 16, 4, 4, "last"), ("nibble", 16, 4, 16, "last"),
            ("nibble", 16, 4, 1 << 20, "store"), ("nibble", 16, 4, 8, "atomic"),
            # more programs or more bytes per program for the 4096-wide shapes (2048 programs at 2 tiles on
            # 4096x4096, a tile of 32 rows on 8 warps): more loads in flight on 132 SMs
            ("nibble", 16, 4, 2, "last"), ("nibble", 8, 4, 4, "last"), ("nibble", 8, 2, 4, "last"),
            ("nibble", 32, 8, 4, "last"), ("nibble", 32, 8, 2, "last"), ("nibble", 16, 8, 4, "last"),
            ("nibble", 32, 4, 4, "last"),
            ("streamed", 8, 128, 4, 8, "last"), ("streamed", 4, 256, 4, 4, "last"),
            ("streamed", 16, 64, 4, 4, "last"), ("streamed", 8, 128, 4, 4, "last"), ("streamed", 16, 64, 4, 16, "last"),
            ("streamed", 8, 128, 4, 1 << 20, "store"), ("streamed", 4, 256, 4, 1 << 20, "store"),
            ("simple", 16, 64, 4, 0, False), ("simple", 16, 64, 4, 1, False), ("simple", 2, 512, 4, 1 << 20, False),
            ("streamed", 8, 128, 4, 8, "atomic")]  # chosen for LLaMA-7B's fused qkv (12288x4096) by bench decode
