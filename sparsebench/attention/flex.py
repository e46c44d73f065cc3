"""The FlexAttention executor: a method's decision run by a block-sparse kernel, and its prefill latency.

The BlockMask comes from the pattern's block-level decision
(:func:`sparsebench.attention.pattern.block_mask`): tiles the method keeps whole
are *full* blocks, tiles it keeps in part are *partial* blocks whose exact
per-token rule is the pattern's ``mask_mod``, every other tile is skipped by the
kernel. On CUDA the kernel is ``torch.compile(flex_attention)`` (Triton); on CPU
``flex_attention`` runs eagerly, an unfused reference that applies the
``mask_mod`` to every pair, which is how the tests compare it with the
reference executor.

Latency (CUDA only): each layer's prefill attention on the method's BlockMask,
timed against dense causal SDPA on the same q, k, v, with the kernel suite's
timing (``sparsebench.kernels.timing.time_pair``: warm-up, interleaved
repetitions, median), in the hardware profile's dtype. One repetition is the
replay of a CUDA graph of back-to-back calls: a 2k-token prefill attention of a
small model takes tens of microseconds, less than the Python side of an eager
compiled-flex call, so timing eager calls would time Python; a replay holds
enough calls to last ~8 ms (64 at 2k, ~10 at 32k). A job times a sample of layers
spread over the ones its method sparsifies (3 by default) and scales their mean.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sparsebench.attention.pattern import block_mask
from sparsebench.cache import persistent_compile_cache

EXECUTORS = ("auto", "reference", "flex")
BACKEND = "flex_attention"  # the hardware profile's backend name that enables the executor
# the block-sparse kernel the flex executor runs: FlexAttention, or our Triton kernel
# (sparsebench/kernels/block_attention.py), each enabled by its profile backend
KERNELS = {"flex": BACKEND, "triton": "triton_block_attention"}


def resolve_executor(executor: str, profile, where: str = "task.executor") -> str:
    """``reference`` or ``flex`` for this hardware: ``auto`` is flex where the profile lists flex_attention."""
    from sparsebench.errors import ConfigError

    if executor not in EXECUTORS:
        raise ConfigError(f"{where}={executor!r}; allowed: {', '.join(EXECUTORS)}")
    has_flex = BACKEND in profile.backends
    if executor == "auto":
        return "flex" if has_flex else "reference"
    if executor == "flex" and not has_flex:
        raise ConfigError(f"{where}='flex': hardware profile {profile.name!r} has no {BACKEND!r} backend "
                          f"(backends: {', '.join(profile.backends)}); allowed here: auto, reference")
    return executor


def resolve_kernel(kernel: str, profile, where: str = "task.attention_kernel") -> str:
    """``flex`` or ``triton``: the block-sparse kernel of the flex executor, if the profile lists its backend."""
    from sparsebench.errors import ConfigError

    if kernel not in KERNELS:
        raise ConfigError(f"{where}={kernel!r}; allowed: {', '.join(KERNELS)}")
    if KERNELS[kernel] not in profile.backends:
        raise ConfigError(f"{where}={kernel!r}: hardware profile {profile.name!r} has no {KERNELS[kernel]!r} backend "
                          f"(backends: {', '.join(profile.backends)})")
    return kernel


def whole_tile_table(pattern) -> tuple[torch.Tensor, "object"]:
    """(B, H, n_q, n_kv) table of the tiles our Triton kernel runs whole (with the causal rule inside), and the
    tiling; raises ValueError if that differs from the pattern's exact rule anywhere (a window, sinks or
    token-level lines cut tiles in part, which only FlexAttention's mask_mod evaluates)."""
    tiling = pattern.tiling()
    any_, _ = pattern.tiles(tiling)
    b = pattern.budget
    step = max(tiling.q_tile, 256 // tiling.q_tile * tiling.q_tile)
    for r0 in range(0, b.rows, step):  # chunks of rows: never the whole (rows x keys) mask at once
        r1 = min(b.rows, r0 + step)
        exact = pattern.token_mask(r0, r1)
        keys = exact.shape[-1]
        rows = torch.arange(r0, r1, device=any_.device)
        blocks = torch.arange(keys, device=any_.device) // tiling.kv_block
        run = any_[:, :, rows // tiling.q_tile][..., blocks]
        run = run & (torch.arange(keys, device=any_.device)[None, :] <= (rows + b.q0)[:, None])
        if not torch.equal(run.to(exact.device), exact):
            raise ValueError(f"{type(pattern).__name__}: the pattern keeps tiles of {tiling.q_tile} x "
                             f"{tiling.kv_block} in part (a window, sinks or token lines), which the Triton kernel "
                             f"cannot run exactly (it keeps whole tiles under the causal rule); allowed for this "
                             f"method: attention_kernel=flex")
    return any_, tiling


def triton_attention_forward(q, k, v, pattern, scaling: float):
    """The pattern run by our Triton block-sparse kernel (tile table checked exact by :func:`whole_tile_table`);
    returns (output (B, H, rows, D), a callable re-running it on (q, k, v) for the latency recorder)."""
    from sparsebench.kernels.block_attention import block_sparse_attention, prepare

    table, tiling = whole_tile_table(pattern)
    bm = min(64, tiling.q_tile)
    bn = min(64, tiling.kv_block)
    if tiling.q_tile % bm or tiling.kv_block % bn or bm < 16 or bn < 16:
        raise ValueError(f"tiles of {tiling.q_tile} x {tiling.kv_block}: the Triton kernel needs both multiples of 16")
    config = (bm, bn, 4, 2)
    keys = k.shape[2]
    if q.shape[2] != pattern.budget.rows or keys != pattern.budget.keys:
        raise ValueError(f"q {tuple(q.shape)} / k {tuple(k.shape)} do not match the pattern's {pattern.budget.rows} rows "
                         f"and {pattern.budget.keys} keys")
    lists = [prepare(table[i].contiguous(), tiling.kv_block, config) for i in range(q.shape[0])]

    def run(q, k, v):
        return torch.cat([block_sparse_attention(q[i : i + 1], k[i : i + 1], v[i : i + 1], table[i], tiling.kv_block,
                                                 config, lists[i], scale=scaling, causal=True,
                                                 q_block=tiling.q_tile) for i in range(q.shape[0])])
    return run(q, k, v), run


def decode_row_table(pattern) -> torch.Tensor:
    """(B, H, rows, key_blocks) bool: the whole key blocks each decode row reads (its selected blocks, its
    block-aligned local region, sink blocks; none past the row), checked chunk by chunk to equal the
    pattern's exact rule under causality; raises ValueError where it does not (a window or sinks that cut a
    block, token-level lines), naming attention_kernel=flex as the allowed value."""
    from sparsebench.attention.pattern import BlockPattern

    b = pattern.budget
    if not isinstance(pattern, BlockPattern) or pattern.group != 1:
        raise ValueError(f"{type(pattern).__name__}: the Triton decode kernel reads whole key blocks per decode row; "
                         f"this pattern is not one (token-level lines or shared row groups); allowed for this "
                         f"method: attention_kernel=flex")
    block = pattern.block
    table = pattern.block_table()  # (B, H, rows, key_blocks): selected blocks | the aligned local region
    dev = table.device
    first = torch.arange(table.shape[-1], device=dev) * block
    pos = torch.arange(b.q0, b.q0 + b.rows, device=dev)
    table = (table | (first + block <= pattern.sinks)[None, :]) & (first[None, :] <= pos[:, None])
    step = max(1, (1 << 24) // max(1, b.keys * pattern.batch * pattern.heads))  # rows per check: <= 16M pairs
    for r0 in range(0, b.rows, step):
        r1 = min(b.rows, r0 + step)
        exact = pattern.token_mask(r0, r1)
        keys = exact.shape[-1]
        j = torch.arange(keys, device=dev)
        run = table[:, :, r0:r1][..., j // block] & (j[None, :] <= pos[r0:r1, None])
        if not torch.equal(run.to(exact.device), exact):
            raise ValueError(f"{type(pattern).__name__}: the pattern keeps key blocks of {block} in part (a window or "
                             f"sinks that cut a block), which the Triton decode kernel cannot run exactly (it reads "
                             f"whole blocks under the causal rule); allowed for this method: attention_kernel=flex")
    return table


def triton_decode_forward(q, k, v, pattern, scaling: float) -> torch.Tensor:
    """The decode rows of a pattern run by our Triton block-sparse decode kernel
    (:func:`sparsebench.kernels.block_decode.block_decode_attention`) over per-row lists of whole key blocks
    (checked exact by :func:`decode_row_table`); q (B, H, rows, D) are the last rows of k / v's positions."""
    from sparsebench.kernels.block_attention import kv_lists
    from sparsebench.kernels.block_decode import block_decode_attention

    if q.shape[2] != pattern.budget.rows or k.shape[2] != pattern.budget.keys:
        raise ValueError(f"q {tuple(q.shape)} / k {tuple(k.shape)} do not match the pattern's {pattern.budget.rows} "
                         f"rows and {pattern.budget.keys} keys")
    counts, idx = kv_lists(decode_row_table(pattern).to(q.device))
    block = pattern.block
    block_n = min(64, block & -block)  # the largest power of two dividing the block, at most 64
    if block_n < 16:
        raise ValueError(f"key blocks of {block}: the Triton decode kernel needs a multiple of 16")
    k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (k, v))  # the kernel reads rows of unit stride
    return block_decode_attention(q, k, v, idx, counts, block, seq=k.shape[2], block_n=block_n, scale=scaling)


@functools.lru_cache(maxsize=None)
def compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    persistent_compile_cache()  # compiled kernels outlive the process: a later job reuses them
    # each layer brings a new mask_mod closure: allow the recompiles that may cost
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(flex_attention, dynamic=False)


_PINNED: dict = {}  # (q tile, key block) -> kernel tiles, where the default tiles did not divide the blocks


# wall seconds of the first compiled call of each shape (compile and autotune included; a job's cost
# that no later call pays): shape key -> s
FIRST_CALL_S: dict = {}


def compiled_call(q, k, v, mask, scaling: float) -> torch.Tensor:
    """Compiled flex_attention; tiles smaller than the kernel's defaults (Quest's 16-key pages) pin smaller
    kernel tiles (torch >= 2.12 shrinks them itself; older versions refuse the default). The first call of
    each shape is timed into FIRST_CALL_S (synchronised: it compiles, so the wait costs nothing)."""
    key = (tuple(q.shape), tuple(k.shape), q.dtype, tuple(mask.BLOCK_SIZE))
    if key in FIRST_CALL_S:
        return _compiled_call(q, k, v, mask, scaling)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = _compiled_call(q, k, v, mask, scaling)
    torch.cuda.synchronize()
    FIRST_CALL_S[key] = time.perf_counter() - t0
    return out


def refuses_default_tiles(q_tile: int, kv_block: int, version: str = torch.__version__) -> bool:
    """Whether compiled flex_attention is known to refuse its default kernel tiles for mask tiles this small:
    before torch 2.12 the mask's tiles must be multiples of the kernel's, whose defaults are never below 32,
    and the refusal comes only after a compile of seconds (Quest's 16-key pages). Such tiles are pinned at once."""
    major, minor = (int(x) for x in version.split("+")[0].split(".")[:2])
    return (major, minor) < (2, 12) and min(q_tile, kv_block) < 32


def _pinned_tiles(q_tile: int, kv_block: int) -> dict:
    return {"BLOCK_M": min(64, q_tile), "BLOCK_N": min(64, kv_block)}


def _compiled_call(q, k, v, mask, scaling: float) -> torch.Tensor:
    gqa = k.shape[1] != q.shape[1]
    q_tile, kv_block = mask.BLOCK_SIZE
    opts = _PINNED.get((q_tile, kv_block))
    if opts is None and refuses_default_tiles(q_tile, kv_block):
        opts = _PINNED[(q_tile, kv_block)] = _pinned_tiles(q_tile, kv_block)
    if opts is None:
        try:
            return compiled_flex()(q, k, v, block_mask=mask, scale=scaling, enable_gqa=gqa)
        except Exception as exc:  # noqa: BLE001 - inductor wraps the tile error in its own exception types
            if "divisible" not in str(exc) and "multiple" not in str(exc):
                raise
            opts = _PINNED[(q_tile, kv_block)] = _pinned_tiles(q_tile, kv_block)
    return compiled_flex()(q, k, v, block_mask=mask, scale=scaling, enable_gqa=gqa, kernel_options=opts)


def flex_call(q, k, v, mask, scaling: float) -> torch.Tensor:
    """flex_attention(q, k, v) on ``mask``; k, v may have fewer (grouped) heads than q."""
    from torch.nn.attention.flex_attention import flex_attention

    gqa = k.shape[1] != q.shape[1]
    if q.is_cuda:
        return compiled_call(q, k, v, mask, scaling)
    with warnings.catch_warnings():  # the eager path warns that it is unfused: on CPU that is the point
        warnings.simplefilter("ignore")
        return flex_attention(q, k, v, block_mask=mask, scale=scaling, enable_gqa=gqa)


def flex_attention_forward(q, k, v, pattern, scaling: float):
    """(output (B, H, rows, D), the BlockMask): the pattern run by FlexAttention."""
    mask = block_mask(pattern, device=q.device)
    return flex_call(q, k, v, mask, scaling), mask


def spread_layers(layers: list[int], count: int) -> tuple[int, ...]:
    """``count`` layers spread evenly over ``layers`` (first and last included); all of them if fewer."""
    layers = sorted(layers)
    if count <= 0 or count >= len(layers):
        return tuple(layers)
    if count == 1:
        return (layers[len(layers) // 2],)
    return tuple(sorted({layers[int(i * (len(layers) - 1) / (count - 1) + 0.5)] for i in range(count)}))


def calls_per_pass(call_ms: float, target_ms: float = 8.0, most: int = 64) -> int:
    """Kernel calls in one timed graph replay: enough that a replay lasts ``target_ms`` (a replay's launch,
    ~15 us, then weighs < 0.2 %), at most ``most`` (tens of microseconds at 2k tokens), a few for calls of
    milliseconds (32k tokens: ~10), where 64 calls a replay made each layer's timing last seconds."""
    return max(1, min(most, -(-int(target_ms * 1000) // max(1, int(call_ms * 1000)))))


@dataclass
class PrefillLatency:
    """Prefill attention time on the method's BlockMask vs dense causal SDPA (first sequence only).

    ``sample``: the layers to time (None: every layer). A job times a few layers spread over the ones the
    method sparsifies and scales their mean to all of them (``summary()["layers_sampled"]``): the kernel's
    time per layer depends on the layer's kept tiles, which a budget spreads evenly over the layers.
    """

    dtype: torch.dtype
    warmup: int = 10
    repeats: int = 50
    budget_s: float = 0.3  # per layer; the timing loop shortens its repetitions to fit
    calls: int = 64  # most kernel calls per timed graph replay (the time is per call); fewer for long calls
    sample: tuple[int, ...] | None = None  # layers to time; None: all
    scale_to: int | None = None  # how many layers the sampled mean stands for (None: the sampled ones only)
    layers: dict = field(default_factory=dict)  # layer -> {"flex_ms", "sdpa_ms", "timing", "calls"}
    spent_s: float = 0.0  # wall time the measurements took (warm-up and repetitions): part of a job's time

    def measure(self, layer: int, q, k, v, mask, scaling: float, run=None) -> None:
        """``run``: the block-sparse kernel as a callable of (q, k, v) (the Triton backend); else FlexAttention
        on ``mask``."""
        if layer in self.layers or not q.is_cuda or (self.sample is not None and layer not in self.sample):
            return
        t0 = time.perf_counter()
        self._measure(layer, q, k, v, mask, scaling, run)
        self.spent_s += time.perf_counter() - t0

    def _measure(self, layer: int, q, k, v, mask, scaling: float, run=None) -> None:
        from sparsebench.kernels.timing import _event_ms, time_pair

        q, k, v = (x.to(self.dtype) for x in (q, k, v))
        gqa = k.shape[1] != q.shape[1]

        def dense(i):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa)

        def sparse(i):
            return run(q, k, v) if run is not None else compiled_call(q, k, v, mask, scaling)

        sparse(0)  # compiled and autotuned before the probe below
        probe = min(_event_ms(lambda: dense(0)), _event_ms(lambda: sparse(0)))
        calls = calls_per_pass(probe, most=self.calls)
        # one copy of q, k, v, re-read by every call (as before: the layer's own inputs, not rotated copies)
        t = time_pair(dense, sparse, 1, "cuda", self.warmup, self.repeats, graph=True, budget_s=self.budget_s,
                      min_calls=calls)
        self.layers[layer] = {"flex_ms": t.sparse_ms, "sdpa_ms": t.dense_ms, "timing": t.method, "calls": calls}

    def summary(self) -> dict:
        """Totals over layers (one prefill of the first sequence; a sample's mean times the layers it stands
        for) and the speed-up of flex over SDPA."""
        if not self.layers:
            return {}
        scale = (self.scale_to or len(self.layers)) / len(self.layers)
        flex = sum(x["flex_ms"] for x in self.layers.values()) * scale
        sdpa = sum(x["sdpa_ms"] for x in self.layers.values()) * scale
        return {"flex_ms": flex, "sdpa_ms": sdpa, "speedup": sdpa / flex, "dtype": str(self.dtype).split(".")[-1],
                "measure_s": self.spent_s, "layers_sampled": sorted(self.layers),
                "layers_total": self.scale_to or len(self.layers),
                "timing": ",".join(sorted({x["timing"] for x in self.layers.values()})),
                "layers": {str(k): v for k, v in sorted(self.layers.items())}}
