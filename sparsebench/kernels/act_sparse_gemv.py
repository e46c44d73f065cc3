"""Our Triton activation-sparse decode GEMV: ``y = W x`` for one token, zero inputs skipped.

TEAL (Liu et al., "Training-Free Activation Sparsity in Large Language Models",
arXiv:2408.14690): when most input activations are zero, a GEMV only needs the
weight columns of the non-zero inputs. The weight is stored transposed,
``Wt = W^T`` of shape (in, out) -- a one-time, offline layout choice, as in
TEAL's kernel -- so the weights of one input channel are one contiguous row, and
a program loads the rows of its block of input channels only where ``x != 0``:
a masked-off row issues no memory traffic, so bytes read fall with the density.

Beyond TEAL's kernel (one ``BLOCK_K x BLOCK_N`` tile per program, partial sums
meeting by atomic add in a zeroed ``y``), ours keeps several tiles in flight per
program, which is what a bandwidth-bound kernel needs when each tile's loads wait
for its ``x`` first:

* ``fma``: each program walks ``tiles`` tiles, software-pipelined by hand (x two
  tiles ahead, the weights one tile ahead), fp32 FMAs on the CUDA cores, rows
  reduced once after the loop. ``tiles=1`` is TEAL's kernel.
* ``mma``: the same walk as a ``(16 x BLOCK_K) @ (BLOCK_K x BLOCK_N)`` tensor-core
  product with ``x`` in every row (free at this arithmetic intensity), because a
  dot is what Triton's software pipeliner streams through shared memory with
  ``cp.async`` (a masked row is zero-filled, not read): ``stages`` tiles in flight.
* ``gather``: each program first compacts its chunk of ``tiles x block_k`` inputs in registers (a sort puts
  the live inputs' offsets first), then walks only ``ceil(live / block_k)`` tiles, each of live weight rows
  (the last one partly), the next tile's loads issued before the current one is multiplied: no tile waits
  for its x and no register slot holds a masked row. (A compaction over all of x first, one launch of its
  own, is ``triton_gemv.activation_sparse_gemv_compact``: the extra launch costs more than it saves.)

* ``scratch_fma`` / ``scratch``: each program ranks its chunk's live inputs by a prefix sum (``tl.cumsum``) and
  stores their offsets at those ranks in a scratch row of its own (global memory, read back after a barrier),
  so a tile of live rows is one plain load of offsets: no sort and no per-tile search (what made ``gather``
  slow), every weight row loaded is live but the last tile's tail. FMAs with the offsets two tiles ahead
  (``scratch_fma``), or tensor-core tiles pipelined by Triton (``scratch``).

Split-K partial sums (``tiles`` smaller than K) meet by ``reduce``: ``"atomic"``
adds into a zeroed ``y`` (a zeroing launch first, as TEAL), ``"last"`` stores
float32 partials and the program of each output block that arrives last sums
them (no zeroing launch; its counters are reset by the kernel itself). Programs accumulate in
float32; the atomic reduction adds their partial sums in y's dtype (as TEAL), ``"last"`` in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

REDUCE = {"store": 0, "atomic": 1, "last": 2}


@triton.jit
def _finish(y_ptr, part_ptr, count_ptr, part, offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE: tl.constexpr):
    if REDUCE == 0:  # one split: this program owns its outputs
        tl.store(y_ptr + offs_n, part.to(y_ptr.dtype.element_ty), mask=n_ok)
    elif REDUCE == 1:  # into a zeroed y; relaxed: only the sum matters and the kernel's end orders it
        tl.atomic_add(y_ptr + offs_n, part.to(y_ptr.dtype.element_ty), mask=n_ok, sem="relaxed")
    else:
        # float32 partials [SPLITS, N]; the barrier orders every thread's store before the (release)
        # count, the last program's acquire makes all partials visible to it; it sums them from L2
        # (.cg: never a stale L1 line) and resets its counter for the next call.
        tl.store(part_ptr + pid_k * N + offs_n, part, mask=n_ok)
        tl.debug_barrier()
        seen = tl.atomic_add(count_ptr + pid_n, 1, sem="acq_rel")
        if seen == SPLITS - 1:
            # 8 splits' partials per load, all in flight at once (one at a time would pay the L2
            # latency SPLITS times)
            total = tl.zeros_like(part)
            for s0 in range(0, SPLITS, 8):
                s = s0 + tl.arange(0, 8)
                chunk = tl.load(part_ptr + s[:, None] * N + offs_n[None, :], mask=(s < SPLITS)[:, None] & n_ok[None, :],
                                other=0.0, cache_modifier=".cg")
                total += tl.sum(chunk, axis=0)
            tl.store(y_ptr + offs_n, total.to(y_ptr.dtype.element_ty), mask=n_ok)
            tl.store(count_ptr + pid_n, 0)  # nobody else touches it before the kernel ends


@triton.jit
def _program_tile(K, N, K_PER_PROG, BLOCK_N: tl.constexpr):
    """This program's block of outputs (axis 0) and its split of the inputs (axis 1)."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_lo = pid_k * K_PER_PROG
    return pid_n, pid_k, offs_n, offs_n < N, k_lo, tl.minimum(k_lo + K_PER_PROG, K)


@triton.jit
def _live_chunk(x_ptr, k_lo, k_hi, thresh, CHUNK: tl.constexpr):
    """The program's CHUNK inputs (offsets from k_lo) and which of them are live (non-zero, above thresh)."""
    local = tl.arange(0, CHUNK)
    x = tl.load(x_ptr + k_lo + local, mask=k_lo + local < k_hi, other=0.0)
    return local, (tl.abs(x) > thresh) & (x != 0)


@triton.jit
def _act_sparse_mma(x_ptr, wt_ptr, y_ptr, part_ptr, count_ptr, K, N, stride_wp, stride_wk, K_PER_PROG, SPLITS,
                    thresh,
                    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, STAGES: tl.constexpr, REDUCE: tl.constexpr):
    pid_n, pid_k, offs_n, n_ok, k_lo, k_hi = _program_tile(K, N, K_PER_PROG, BLOCK_N)
    w_base = wt_ptr + pid_n * stride_wp + tl.arange(0, BLOCK_N)[None, :]  # this program's output columns
    acc = tl.zeros((16, BLOCK_N), dtype=tl.float32)
    for k in tl.range(k_lo, k_hi, BLOCK_K, num_stages=STAGES):
        offs_k = k + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + offs_k, mask=offs_k < k_hi, other=0.0)
        x = tl.where(tl.abs(x) > thresh, x, tl.zeros_like(x))
        w = tl.load(w_base + offs_k[:, None] * stride_wk,
                    mask=(x != 0)[:, None] & n_ok[None, :], other=0.0)  # zero x: no weight traffic
        acc = tl.dot(tl.broadcast_to(x[None, :], (16, BLOCK_K)), w, acc)
    part = tl.sum(tl.where(tl.arange(0, 16)[:, None] == 0, acc, 0.0), axis=0)  # the 16 rows are equal
    _finish(y_ptr, part_ptr, count_ptr, part, offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


@triton.jit
def _act_sparse_fma(x_ptr, wt_ptr, y_ptr, part_ptr, count_ptr, K, N, stride_wp, stride_wk, K_PER_PROG, SPLITS,
                    thresh,
                    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, STAGES: tl.constexpr, REDUCE: tl.constexpr):
    # Triton pipelines only loads that feed a dot, so this one pipelines by hand (STAGES unused): a tile's
    # weight loads can only be issued once its x has arrived, so x runs two tiles ahead and the weights
    # one; while a tile is multiplied, the next one's weights are in flight.
    pid_n, pid_k, offs_n, n_ok, k_lo, k_hi = _program_tile(K, N, K_PER_PROG, BLOCK_N)
    rows = tl.arange(0, BLOCK_K)
    w_base = wt_ptr + pid_n * stride_wp + tl.arange(0, BLOCK_N)[None, :]  # this program's output columns
    x_cur = tl.load(x_ptr + k_lo + rows, mask=k_lo + rows < k_hi, other=0.0, eviction_policy="evict_last")
    x_cur = tl.where(tl.abs(x_cur) > thresh, x_cur, tl.zeros_like(x_cur))
    w_cur = tl.load(w_base + (k_lo + rows)[:, None] * stride_wk,
                    mask=(x_cur != 0)[:, None] & n_ok[None, :], other=0.0, eviction_policy="evict_first")
    k_nxt = k_lo + BLOCK_K
    x_nxt = tl.load(x_ptr + k_nxt + rows, mask=k_nxt + rows < k_hi, other=0.0, eviction_policy="evict_last")
    x_nxt = tl.where(tl.abs(x_nxt) > thresh, x_nxt, tl.zeros_like(x_nxt))
    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)  # reduced over rows once, after the loop
    for k in range(k_nxt, k_hi, BLOCK_K):
        # zero x (also past k_hi, loaded as 0) = no load: the whole point
        w_nxt = tl.load(w_base + (k + rows)[:, None] * stride_wk,
                        mask=(x_nxt != 0)[:, None] & n_ok[None, :], other=0.0, eviction_policy="evict_first")
        x_after = tl.load(x_ptr + k + BLOCK_K + rows, mask=k + BLOCK_K + rows < k_hi, other=0.0,
                          eviction_policy="evict_last")
        x_after = tl.where(tl.abs(x_after) > thresh, x_after, tl.zeros_like(x_after))
        acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[:, None]
        x_cur = x_nxt
        w_cur = w_nxt
        x_nxt = x_after
    acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[:, None]
    _finish(y_ptr, part_ptr, count_ptr, tl.sum(acc, axis=0), offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


@triton.jit
def _act_sparse_gather(x_ptr, wt_ptr, y_ptr, part_ptr, count_ptr, K, N, stride_wp, stride_wk, K_PER_PROG, SPLITS,
                       thresh,
                       BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, STAGES: tl.constexpr, REDUCE: tl.constexpr,
                       CHUNK: tl.constexpr):
    # The program's CHUNK inputs are compacted first, in registers: a sort puts the live inputs' offsets
    # first, so every tile of BLOCK_K rows it then loads is a tile of live rows (the last one partly), no
    # tile waits for x, and the tiles' weight loads are issued one tile ahead of the FMAs.
    pid_n, pid_k, offs_n, n_ok, k_lo, k_hi = _program_tile(K, N, K_PER_PROG, BLOCK_N)
    local, live = _live_chunk(x_ptr, k_lo, k_hi, thresh, CHUNK)
    count = tl.sum(live.to(tl.int32), axis=0)
    order = tl.reshape(tl.sort(tl.where(live, local, CHUNK + local)), (CHUNK // BLOCK_K, BLOCK_K))
    tile_ids = tl.arange(0, CHUNK // BLOCK_K)[:, None]
    slots = tl.arange(0, BLOCK_K)
    w_base = wt_ptr + pid_n * stride_wp + tl.arange(0, BLOCK_N)[None, :]
    rows = k_lo + tl.sum(tl.where(tile_ids == 0, order, 0), axis=0)
    ok = slots < count
    w_cur = tl.load(w_base + rows[:, None] * stride_wk, mask=ok[:, None] & n_ok[None, :], other=0.0,
                    eviction_policy="evict_first")
    x_cur = tl.load(x_ptr + rows, mask=ok, other=0.0)
    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
    for t in range(1, tl.cdiv(count, BLOCK_K)):
        rows = k_lo + tl.sum(tl.where(tile_ids == t, order, 0), axis=0)
        ok = t * BLOCK_K + slots < count
        w_nxt = tl.load(w_base + rows[:, None] * stride_wk, mask=ok[:, None] & n_ok[None, :], other=0.0,
                        eviction_policy="evict_first")
        x_nxt = tl.load(x_ptr + rows, mask=ok, other=0.0)
        acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[:, None]
        w_cur = w_nxt
        x_cur = x_nxt
    acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[:, None]
    _finish(y_ptr, part_ptr, count_ptr, tl.sum(acc, axis=0), offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


@triton.jit
def _act_sparse_scratch(x_ptr, wt_ptr, y_ptr, part_ptr, count_ptr, K, N, stride_wp, stride_wk, K_PER_PROG, SPLITS,
                        thresh,
                        BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, STAGES: tl.constexpr, REDUCE: tl.constexpr,
                        CHUNK: tl.constexpr, idx_ptr, USE_DOT: tl.constexpr):
    # The program's CHUNK inputs are compacted first: each live input's offset is stored at its rank among the
    # live ones (a prefix sum) in this program's own scratch row, so a tile of live rows is then one plain load
    # of BLOCK_K offsets -- no sort, no per-tile search -- and every weight row loaded is a live one (the last
    # tile's tail aside). USE_DOT: the tile as a tensor-core product, pipelined by Triton over STAGES tiles;
    # else FMAs, with the offsets two tiles ahead and the weights one tile ahead, by hand.
    pid_n, pid_k, offs_n, n_ok, k_lo, k_hi = _program_tile(K, N, K_PER_PROG, BLOCK_N)
    local, live = _live_chunk(x_ptr, k_lo, k_hi, thresh, CHUNK)
    rank = tl.cumsum(live.to(tl.int32), axis=0) - 1
    count = tl.sum(live.to(tl.int32), axis=0)
    scratch = idx_ptr + (pid_k * tl.num_programs(0) + pid_n).to(tl.int64) * CHUNK
    tl.store(scratch + rank, k_lo + local, mask=live)
    tl.debug_barrier()  # the program's stores are visible to all its threads before they read them back
    slots = tl.arange(0, BLOCK_K)
    w_base = wt_ptr + pid_n * stride_wp + tl.arange(0, BLOCK_N)[None, :]
    if USE_DOT:
        acc = tl.zeros((16, BLOCK_N), dtype=tl.float32)
        for t in tl.range(0, count, BLOCK_K, num_stages=STAGES):
            ok = t + slots < count
            rows = tl.load(scratch + t + slots, mask=ok, other=0, cache_modifier=".cg")
            xv = tl.load(x_ptr + rows, mask=ok, other=0.0)
            w = tl.load(w_base + rows[:, None] * stride_wk, mask=ok[:, None] & n_ok[None, :], other=0.0)
            acc = tl.dot(tl.broadcast_to(xv[None, :], (16, BLOCK_K)), w, acc)
        part = tl.sum(tl.where(tl.arange(0, 16)[:, None] == 0, acc, 0.0), axis=0)  # the 16 rows are equal
    else:
        ok = slots < count
        rows = tl.load(scratch + slots, mask=ok, other=0, cache_modifier=".cg")
        x_cur = tl.load(x_ptr + rows, mask=ok, other=0.0)
        w_cur = tl.load(w_base + rows[:, None] * stride_wk, mask=ok[:, None] & n_ok[None, :], other=0.0,
                        eviction_policy="evict_first")
        ok_nxt = BLOCK_K + slots < count
        rows_nxt = tl.load(scratch + BLOCK_K + slots, mask=ok_nxt, other=0, cache_modifier=".cg")
        acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        for t in range(BLOCK_K, count, BLOCK_K):
            x_nxt = tl.load(x_ptr + rows_nxt, mask=ok_nxt, other=0.0)
            w_nxt = tl.load(w_base + rows_nxt[:, None] * stride_wk, mask=ok_nxt[:, None] & n_ok[None, :], other=0.0,
                            eviction_policy="evict_first")
            ok_after = t + BLOCK_K + slots < count
            rows_after = tl.load(scratch + t + BLOCK_K + slots, mask=ok_after, other=0, cache_modifier=".cg")
            acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[:, None]
            x_cur = x_nxt
            w_cur = w_nxt
            rows_nxt = rows_after
            ok_nxt = ok_after
        acc += w_cur.to(tl.float32) * x_cur.to(tl.float32)[:, None]
        part = tl.sum(acc, axis=0)
    _finish(y_ptr, part_ptr, count_ptr, part, offs_n, n_ok, pid_n, pid_k, N, SPLITS, REDUCE)


KERNELS = {"mma": _act_sparse_mma, "fma": _act_sparse_fma, "gather": _act_sparse_gather,
           "scratch": _act_sparse_scratch, "scratch_fma": _act_sparse_scratch}
_WORKSPACES: dict = {}


def _cached(key: tuple, make):
    """A workspace made once per key (eagerly, on the first call: never inside a CUDA-graph capture)."""
    if key not in _WORKSPACES:
        _WORKSPACES[key] = make()
    return _WORKSPACES[key]


def _workspace(splits: int, n_dim: int, n_blocks: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Partials (splits, N) float32 and one int32 counter per output block (zeroed once; every call
    leaves its counters at zero). Shared by calls on one stream."""
    return _cached((str(device), splits, n_dim, n_blocks),
                   lambda: (torch.empty(splits, n_dim, dtype=torch.float32, device=device),
                            torch.zeros(n_blocks, dtype=torch.int32, device=device)))


def _scratch(numel: int, device) -> torch.Tensor:
    """The scratch engines' per-program rows of live offsets (int32); every call overwrites what it reads."""
    return _cached((str(device), "scratch", numel), lambda: torch.empty(numel, dtype=torch.int32, device=device))


def activation_sparse_gemv(x: torch.Tensor, wt: torch.Tensor, engine: str = "fma", block_k: int = 16,
                           block_n: int = 64, num_warps: int = 1, tiles: int = 4, stages: int = 1,
                           reduce: str = "atomic", threshold: float = 0.0) -> torch.Tensor:
    """``W x`` for one token ``x`` (in,) given ``wt = W^T`` (in, out) contiguous; skips zero inputs.

    ``threshold``: inputs with ``|x| <= threshold`` count as zero (TEAL's sparsification fused into the
    load of x; the default 0 skips exactly the zeros).

    Each program walks ``tiles`` tiles of ``block_k`` input channels x ``block_n`` outputs on ``engine``
    (``"fma"`` or ``"mma"``, the latter with ``stages`` tiles in flight); ``tiles`` covering all of K =
    one split, plain stores; else split-K partial sums meet by ``reduce`` (``"atomic"`` or ``"last"``).

    ``wt`` may also be in panels (:func:`to_panels`, (out / block_n, in, block_n)): each program's weights then
    lie in one contiguous stretch, its kept rows ``block_n`` values apart."""
    if wt.dim() == 3:
        if wt.shape[2] != block_n or wt.stride(2) != 1:
            raise ValueError(f"weight panels {tuple(wt.shape)} need panels of block_n={block_n} contiguous columns")
        k_dim, n_dim, stride_wp, stride_wk = wt.shape[1], wt.shape[0] * wt.shape[2], wt.stride(0), wt.stride(1)
    else:
        (k_dim, n_dim), stride_wp, stride_wk = wt.shape, block_n, wt.stride(0)
    k_per_prog = min(tiles, triton.cdiv(k_dim, block_k)) * block_k
    splits = triton.cdiv(k_dim, k_per_prog)
    n_blocks = triton.cdiv(n_dim, block_n)
    mode = "store" if splits == 1 else reduce
    y = (torch.zeros if mode == "atomic" else torch.empty)(n_dim, dtype=x.dtype, device=x.device)
    part, count = _workspace(splits, n_dim, n_blocks, x.device) if mode == "last" else (y, y)
    if engine not in KERNELS:
        raise ValueError(f"engine={engine!r}; allowed: {', '.join(KERNELS)}")
    extra = {"CHUNK": triton.next_power_of_2(k_per_prog)} if engine in ("gather", "scratch", "scratch_fma") else {}
    if engine.startswith("scratch"):
        extra.update(idx_ptr=_scratch(splits * n_blocks * extra["CHUNK"], x.device), USE_DOT=engine == "scratch")
    KERNELS[engine][(n_blocks, splits)](x, wt, y, part, count, k_dim, n_dim, stride_wp, stride_wk, k_per_prog,
                                        splits, float(threshold), BLOCK_K=block_k, BLOCK_N=block_n, STAGES=stages,
                                        REDUCE=REDUCE[mode], num_warps=num_warps, **extra)
    return y


def to_panels(wt: torch.Tensor, block_n: int) -> torch.Tensor:
    """``W^T`` (in, out) as panels (out / block_n, in, block_n): a program's block of outputs contiguous over
    all inputs (a one-time layout choice like the transpose itself)."""
    k_dim, n_dim = wt.shape
    if n_dim % block_n:
        raise ValueError(f"panels of {block_n} columns need out_features ({n_dim}) divisible by {block_n}")
    return wt.reshape(k_dim, n_dim // block_n, block_n).permute(1, 0, 2).contiguous()
