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


def rotated_qkv(case: Case, env: Env):
    """The case's head counts, head dim and length, and rotated copies of q, k, v (kept out of L2)."""
    shape = ATTENTION[case.model]
    h, kvh, d, s = shape.heads, shape.kv_heads, shape.head_dim, case.tokens
    per_copy = (2 * h + 2 * kvh) * s * d * torch.tensor([], dtype=env.dtype).element_size()
    copies = copies_for(per_copy, env.rotate_mb, cap=8)
    qs = [random_normal((1, h, s, d), env) for _ in range(copies)]
    ks = [random_normal((1, kvh, s, d), env) for _ in range(copies)]
    vs = [random_normal((1, kvh, s, d), env) for _ in range(copies)]
    return h, kvh, d, s, qs, ks, vs


def build_flex_attention(case: Case, env: Env) -> Bench:
    h, kvh, d, s, qs, ks, vs = rotated_qkv(case, env)
    keep = block_table(s // BLOCK, case.density, env.generator)
    mask = block_mask_from_table(keep, s, env.device)
    density = float(keep.float().mean())  # exact kept share (rounding per row)
    gqa = h != kvh
    flex = _compiled_flex()

    def dense(i):
        return F.scaled_dot_product_attention(qs[i], ks[i], vs[i], enable_gqa=gqa)

    def sparse(i):
        return flex(qs[i], ks[i], vs[i], block_mask=mask, enable_gqa=gqa)

    if s <= 8192:
        token_mask = keep.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1).to(env.device)
        ref = F.scaled_dot_product_attention(qs[0].float(), ks[0].float(), vs[0].float(), attn_mask=token_mask,
                                             enable_gqa=gqa)
        err = rel_error(sparse(0), ref)
        del token_mask, ref
    else:  # a token mask of s^2 and a float32 pass at 32k would take gigabytes: check sampled query blocks
        err = _sampled_error(sparse(0), qs[0], ks[0], vs[0], keep, env)
    flops = 4.0 * h * s * s * d
    io = nbytes(qs[0], ks[0], vs[0]) + nbytes(qs[0])
    return Bench(dense, sparse, len(qs), flops, flops * density, io, io, 1.0 / density, err, graph=False,
                 min_calls=_min_calls(flops),
                 info={"block": BLOCK, "block_density": density, "heads": h, "kv_heads": kvh, "head_dim": d})


def _min_calls(flops_dense: float) -> int:
    """Calls per timed pass: the default for sub-millisecond kernels, 2 once full attention takes milliseconds
    (a 32k LLaMA-7B layer is ~20 TFLOP, tens of ms: 64 calls a pass would take seconds per repetition)."""
    return 0 if flops_dense < 2e12 else 2


def _sampled_error(out: torch.Tensor, q, k, v, keep: torch.Tensor, env: Env, n_rows: int = 4) -> float:
    """Relative error against the float32 reference on the first, the last and random query blocks."""
    from sparsebench.kernels.block_attention import reference

    n = keep.shape[0]
    rows = torch.unique(torch.cat([torch.tensor([0, n - 1]), torch.randint(n, (max(0, n_rows - 2),),
                                                                           generator=env.generator)]))
    ref, tok = reference(q, k, v, keep.to(env.device), BLOCK, rows)
    return rel_error(out[:, :, tok], ref)


def build_block_attention(case: Case, env: Env) -> Bench:
    """Our Triton block-sparse attention (``block_attention.py``) on the same block tables as FlexAttention."""
    from sparsebench.kernels.block_attention import CONFIGS, block_sparse_attention, prepare

    h, kvh, d, s, qs, ks, vs = rotated_qkv(case, env)
    keep = block_table(s // BLOCK, case.density, env.generator).to(env.device)
    density = float(keep.float().mean())
    gqa = h != kvh
    config = _tune_attention(lambda cfg, lists: block_sparse_attention(qs[0], ks[0], vs[0], keep, BLOCK, cfg, lists),
                             keep, CONFIGS, env)
    lists = prepare(keep, BLOCK, config)

    def dense(i):
        return F.scaled_dot_product_attention(qs[i], ks[i], vs[i], enable_gqa=gqa)

    def sparse(i):
        return block_sparse_attention(qs[i], ks[i], vs[i], keep, BLOCK, config, lists)

    err = _sampled_error(sparse(0), qs[0], ks[0], vs[0], keep, env, n_rows=4 if s > 8192 else 8)
    flops = 4.0 * h * s * s * d
    io = nbytes(qs[0], ks[0], vs[0]) + nbytes(qs[0])
    return Bench(dense, sparse, len(qs), flops, flops * density, io, io, 1.0 / density, err,
                 min_calls=_min_calls(flops),
                 info={"block": BLOCK, "block_density": density, "heads": h, "kv_heads": kvh, "head_dim": d,
                       "config": dict(zip(("block_m", "block_n", "num_warps", "num_stages", "tma"), config))})


def _tune_attention(run, keep, configs, env: Env):
    """The fastest tile configuration on this case, by :func:`sparsebench.kernels.tuning.pick_fastest`: every
    candidate compiled, checked against the first one's output (a candidate that differs is dropped) and
    timed (median of 3 calls), then the close ones in 5 interleaved rounds."""
    import statistics

    from sparsebench.kernels.block_attention import prepare
    from sparsebench.kernels.timing import _event_ms
    from sparsebench.kernels.tuning import pick_fastest

    if env.device == "cpu":  # the Triton interpreter (tests): any config computes the same
        return configs[0]
    lists, first = {}, []

    def call(cfg):
        if cfg not in lists:
            lists[cfg] = prepare(keep, BLOCK, cfg)
        return run(cfg, lists[cfg])

    def screen(cfg):
        out = call(cfg)  # compiles
        if not first:
            first.append(out.clone())
        elif not rel_error(out, first[0]) < 1e-2:
            raise RuntimeError(f"config {cfg} differs from {configs[0]}")
        return statistics.median(_event_ms(lambda: call(cfg)) for _ in range(3))

    def final(cfgs):
        times = {c: [] for c in cfgs}
        for _ in range(5):
            for c in cfgs:
                times[c].append(_event_ms(lambda c=c: call(c)))
        return [statistics.median(times[c]) for c in cfgs]

    best = pick_fastest(configs, screen, final)
    del first
    return best


OPS = {
    "flex_attention": Op(build_flex_attention, True,
                         "block-sparse FlexAttention (BlockMask from a block table) vs full SDPA", "flex_attention",
                         dense_backend="sdpa"),
    "block_attention": Op(build_block_attention, True,
                          "block-sparse attention, our Triton kernel over per-query-block key lists, vs full SDPA",
                          "triton_block_attention", dense_backend="sdpa"),
}
