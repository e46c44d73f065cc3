"""Sparse linear layers against the dense ``torch.nn.functional.linear`` (cuBLAS / MKL / oneDNN)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from sparsebench.kernels.cases import (Bench, Case, Env, Op, keep_fraction, mask_2_4, mask_blocks, nbytes,
                                       random_normal, rel_error)
from sparsebench.kernels.timing import copies_for


def _weights(case: Case, env: Env, mask_fn) -> tuple[list, list, int]:
    """Rotated copies of a masked weight (out, in) and of the input x (tokens, in)."""
    per_copy = case.out_features * case.in_features * torch.tensor([], dtype=env.dtype).element_size()
    copies = copies_for(per_copy, env.rotate_mb)
    mask = mask_fn()
    ws = [random_normal((case.out_features, case.in_features), env, 0.02) * mask for _ in range(copies)]
    xs = [random_normal((case.tokens, case.in_features), env) for _ in range(copies)]
    return ws, xs, copies


def _linear_work(case: Case, density: float, elt: int) -> tuple[float, float]:
    flops = 2.0 * case.tokens * case.out_features * case.in_features * density
    act_bytes = (case.in_features + case.out_features) * case.tokens * elt
    return flops, act_bytes


def _finish(case, env, ws, xs, copies, dense, sparse, sparse_bytes, ideal, out0, **kw) -> Bench:
    elt = ws[0].element_size()
    f_dense, act = _linear_work(case, 1.0, elt)
    f_sparse, _ = _linear_work(case, case.density, elt)
    ref = F.linear(xs[0].float(), ws[0].float())
    return Bench(dense, sparse, copies, f_dense, f_sparse, nbytes(ws[0]) + act, sparse_bytes + act, ideal,
                 rel_error(out0.reshape(ref.shape), ref), **kw)


def build_csr(case: Case, env: Env) -> Bench:
    ws, xs, copies = _weights(case, env, lambda: keep_fraction((case.out_features, case.in_features), case.density, env))
    with warnings.catch_warnings():
        # torch warns once per process that its sparse CSR layout is "in beta"; timing that layout is the point here
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        sp = [w.to_sparse_csr() for w in ws]
    xts = [x.t().contiguous() for x in xs]  # y^T = W_csr @ x^T, the layout sparse x dense wants
    out0 = (sp[0] @ xts[0]).t()
    return _finish(case, env, ws, xs, copies, lambda i: F.linear(xs[i], ws[i]), lambda i: sp[i] @ xts[i],
                   nbytes(sp[0].values(), sp[0].crow_indices(), sp[0].col_indices()), 1.0 / case.density, out0)


def build_bsr(case: Case, env: Env) -> Bench:
    b = case.block
    ws, xs, copies = _weights(case, env, lambda: mask_blocks(case.out_features, case.in_features, b, case.density, env))
    sp = [w.to_sparse_bsr((b, b)) for w in ws]
    xts = [x.t().contiguous() for x in xs]
    out0 = (sp[0] @ xts[0]).t()
    return _finish(case, env, ws, xs, copies, lambda i: F.linear(xs[i], ws[i]), lambda i: sp[i] @ xts[i],
                   nbytes(sp[0].values(), sp[0].crow_indices(), sp[0].col_indices()), 1.0 / case.density, out0)


def build_semi_structured(case: Case, env: Env) -> Bench:
    from torch.sparse import to_sparse_semi_structured

    ws, xs, copies = _weights(case, env, lambda: mask_2_4(case.out_features, case.in_features, env))
    sp = [to_sparse_semi_structured(w) for w in ws]
    out0 = F.linear(xs[0], sp[0])
    stored = nbytes(getattr(sp[0], "packed", None), getattr(sp[0], "meta", None))
    return _finish(case, env, ws, xs, copies, lambda i: F.linear(xs[i], ws[i]), lambda i: F.linear(xs[i], sp[i]),
                   stored, 2.0, out0, info={"backend": type(sp[0]).__name__})


def cusparselt_search(packed: torch.Tensor, dense_b: torch.Tensor) -> tuple | None:
    """cuSPARSELt's own search for this product (``cusparseLtMatmulSearch``: it times its algorithms and
    split-K settings on these very operands, result untransposed): ``(alg_id, split_k, split_k_mode,
    max_alg_id)``, or None where this torch does not expose it (``torch._C._cusparselt.mm_search``). Never
    with ``transpose_result=True``: on the H200 with cuSPARSELt 0.8 that search fails inside the library and
    leaves the CUDA context unusable (illegal instruction)."""
    search = getattr(getattr(torch._C, "_cusparselt", None), "mm_search", None)
    if search is None:
        return None
    return tuple(int(v) for v in search(packed, dense_b, None, None, None, False))


MAX_ALG_IDS = 32  # cuSPARSELt algorithms screened on the view layout (0.8 on the H200 offers 27 there)


def cusparselt_candidates(searched: dict | None = None, max_algs: int = MAX_ALG_IDS) -> list[tuple]:
    """``(alg_id, dense_b, split_k, split_k_mode)`` to time, for ``y^T = W x^T`` with the 2:4 weight ``W`` as
    cuSPARSELt's sparse operand. ``dense_b``: ``"view"`` passes ``x^T`` as a transposed view of the
    activations (no copy; what ``to_sparse_semi_structured`` does), ``"contiguous"`` copies it row-major first
    (the copy is inside the timed call); cuSPARSELt offers different algorithms for the two (0.8 on the H200:
    27 and 47). The view: every algorithm up to the maximum its search reports (``searched``: layout ->
    :func:`cusparselt_search`'s tuple; at most ``max_algs``; algorithm 0 alone without a search). The copy:
    algorithm 0 and cuSPARSELt's own pick. Split-K where the search chose one. The result is always written
    untransposed: ``transpose_result=True`` re-plans for ~250 ms per eager call there (measured)."""
    searched = {k: v for k, v in (searched or {}).items() if v is not None}
    top = searched["view"][3] if "view" in searched else 0
    out = [(alg, "view", 1, -1) for alg in range(min(top + 1, max_algs))] + [(0, "contiguous", 1, -1)]
    for layout, (alg, split_k, mode, _) in sorted(searched.items()):
        pick = (alg, layout, 1, -1) if split_k <= 1 else (alg, layout, split_k, mode)
        if pick not in out:
            out.append(pick)
    return out


_SPLIT_MODE_KW: list = []  # the keyword this torch names split-K's mode by (resolved on the first split call)


def cslt_mm(packed: torch.Tensor, dense_b: torch.Tensor, alg: int, split_k: int = 1,
            split_k_mode: int = -1) -> torch.Tensor:
    """``torch._cslt_sparse_mm`` (untransposed result) with split-K passed the way this torch names it:
    ``split_k_mode`` (an int, cuSPARSELt's enum: 1 one kernel, 2 two kernels) in recent releases,
    ``split_k_one_kernel`` (a bool) before."""
    kw = {"alg_id": alg}
    if split_k > 1:
        kw["split_k"] = split_k
        if not _SPLIT_MODE_KW:
            try:
                y = torch._cslt_sparse_mm(packed, dense_b, **kw, split_k_mode=split_k_mode)
                _SPLIT_MODE_KW.append("split_k_mode")
                return y
            except TypeError:
                _SPLIT_MODE_KW.append("split_k_one_kernel")
        kw.update({"split_k_mode": split_k_mode} if _SPLIT_MODE_KW[0] == "split_k_mode"
                  else {"split_k_one_kernel": split_k_mode == 1})
    return torch._cslt_sparse_mm(packed, dense_b, **kw)


def dense_b(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x^T`` (in, tokens) for cuSPARSELt: a view, or a row-major copy."""
    if layout not in ("view", "contiguous"):
        raise ValueError(f"dense_b layout={layout!r}; allowed: view, contiguous")
    return x.t() if layout == "view" else x.t().contiguous()


def build_semi_structured_tuned(case: Case, env: Env) -> Bench:
    """2:4 through cuSPARSELt directly (``torch._cslt_compress`` / ``torch._cslt_sparse_mm``), with the
    algorithm, split-K and activation layout picked per shape by measurement among
    :func:`cusparselt_candidates` (cuSPARSELt's own search's picks among them; a candidate that raises or
    differs is dropped)."""
    ws, xs, copies = _weights(case, env, lambda: mask_2_4(case.out_features, case.in_features, env))
    packed = [torch._cslt_compress(w) for w in ws]

    def run(cfg, i):
        alg, layout, split_k, mode = cfg
        return cslt_mm(packed[i], dense_b(xs[i], layout), alg, split_k, mode).t()

    searched = {}
    if env.device == "cuda":
        for layout in ("view", "contiguous"):
            try:
                searched[layout] = cusparselt_search(packed[0], dense_b(xs[0], layout))
            except RuntimeError:  # a search cuSPARSELt refuses leaves the stock candidates
                searched[layout] = None
    candidates = cusparselt_candidates(searched)
    config = _tune(run, candidates, env, copies)
    out0 = run(config, 0)
    return _finish(case, env, ws, xs, copies, lambda i: F.linear(xs[i], ws[i]), lambda i: run(config, i),
                   nbytes(packed[0]), 2.0, out0,
                   info={"alg_id": config[0], "dense_b": config[1], "split_k": config[2], "split_k_mode": config[3],
                         "candidates": len(candidates), "cusparselt_search": {k: v and list(v) for k, v in searched.items()}})


_DENSE_TUNED: dict = {}


def _dense_triton(ws: list, xv: list, env: Env):
    """Our Triton dense GEMV on the (unmasked-layout) weights, tuned for this shape: the second dense
    reference of every GEMV row (None on the CPU, where there is no Triton GEMV to time)."""
    if env.device != "cuda":
        return None, None
    from sparsebench.kernels.row_gemv import TUNE_DENSE, dense_gemv

    key = tuple(ws[0].shape)  # tuned once per shape: the act-sparse densities share their dense reference
    if key not in _DENSE_TUNED:
        _DENSE_TUNED[key] = _tune(lambda c, i: dense_gemv(xv[i], ws[i], *c), TUNE_DENSE, env, len(ws))
    cfg = _DENSE_TUNED[key]
    ref = F.linear(xv[0].float(), ws[0].float())
    err = rel_error(dense_gemv(xv[0], ws[0], *cfg), ref)
    if not err < 1e-2:
        raise RuntimeError(f"Triton dense GEMV {cfg} differs from the float32 reference by {err:.3g}")
    return (lambda i: dense_gemv(xv[i], ws[i], *cfg)), cfg


def build_gemv_2_4(case: Case, env: Env) -> Bench:
    from sparsebench.kernels.row_gemv import TUNE_2_4, packed_for, run_gemv_2_4
    from sparsebench.kernels.triton_gemv import pack_2_4

    ws, xs, copies = _weights(case, env, lambda: mask_2_4(case.out_features, case.in_features, env))
    base = [pack_2_4(w) for w in ws]
    stores: dict = {}  # kernel kind -> the copies in the storage that kernel reads (made once, not timed)

    def store(cfg):
        if cfg[0] not in stores:
            stores[cfg[0]] = [packed_for(cfg, *b) for b in base]
        return stores[cfg[0]]

    xv = [x.reshape(-1) for x in xs]  # one token
    config = _tune(lambda cfg, i: run_gemv_2_4(xv[i], *store(cfg)[i], cfg), TUNE_2_4, env, copies)
    packed = store(config)
    out0 = run_gemv_2_4(xv[0], *packed[0], config)
    dense_triton, dense_cfg = _dense_triton(ws, xv, env)
    bench = _finish(case, env, ws, xs, copies, lambda i: F.linear(xv[i], ws[i]),
                    lambda i: run_gemv_2_4(xv[i], *packed[i], config), nbytes(*packed[0]), 2.0, out0,
                    info={"config": list(config), "dense_triton_config": dense_cfg and list(dense_cfg)})
    bench.dense_triton = dense_triton
    return bench


def _sparse_inputs(case: Case, env: Env, xs: list) -> list:
    """Zero a random (1 - density) share of every input copy (the activation sparsity)."""
    return [x.reshape(-1) * keep_fraction((case.in_features,), case.density, env) for x in xs]


def build_act_sparse_gemv(case: Case, env: Env) -> Bench:
    from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv

    ws, xs, copies = _weights(case, env, lambda: torch.ones((), dtype=torch.bool, device=env.device))
    xv = _sparse_inputs(case, env, xs)
    # W^T: the layout whose rows the kernel skips, made once offline (as TEAL stores its weights); the
    # dense twin keeps cuBLAS's own layout of the same fp16 weights
    wts = [w.t().contiguous() for w in ws]
    config = _tune(lambda cfg, i: activation_sparse_gemv(xv[i], wts[i], *cfg), TUNE_ACT, env, copies)
    out0 = activation_sparse_gemv(xv[0], wts[0], *config)
    f_dense, act = _linear_work(case, 1.0, ws[0].element_size())
    ref = F.linear(xv[0].float(), ws[0].float())
    dense_triton, dense_cfg = _dense_triton(ws, xv, env)
    return Bench(lambda i: F.linear(xv[i], ws[i]), lambda i: activation_sparse_gemv(xv[i], wts[i], *config),
                 copies, f_dense, f_dense * case.density, nbytes(ws[0]) + act, nbytes(ws[0]) * case.density + act,
                 1.0 / case.density, rel_error(out0, ref),
                 info={"config": dict(zip(("engine", "block_k", "block_n", "num_warps", "tiles", "stages", "reduce"),
                                          config)), "dense_triton_config": dense_cfg and list(dense_cfg)},
                 dense_triton=dense_triton)


def build_act_sparse_gemv_compact(case: Case, env: Env) -> Bench:
    from sparsebench.kernels.triton_gemv import activation_sparse_gemv_compact

    ws, xs, copies = _weights(case, env, lambda: torch.ones((), dtype=torch.bool, device=env.device))
    xv = _sparse_inputs(case, env, xs)
    wts = [w.t().contiguous() for w in ws]
    config = _tune(lambda cfg, i: activation_sparse_gemv_compact(xv[i], wts[i], *cfg), TUNE_COMPACT, env, copies)
    out0 = activation_sparse_gemv_compact(xv[0], wts[0], *config)
    f_dense, act = _linear_work(case, 1.0, ws[0].element_size())
    ref = F.linear(xv[0].float(), ws[0].float())
    return Bench(lambda i: F.linear(xv[i], ws[i]), lambda i: activation_sparse_gemv_compact(xv[i], wts[i], *config),
                 copies, f_dense, f_dense * case.density, nbytes(ws[0]) + act, nbytes(ws[0]) * case.density + act,
                 1.0 / case.density, rel_error(out0, ref),
                 info={"config": dict(zip(("block_k", "block_n", "num_warps", "fp32_out"), config))})


def build_act_sparse_gather(case: Case, env: Env) -> Bench:
    """Stock PyTorch: gather the weight rows of the non-zero inputs, then a dense GEMV on them."""
    ws, xs, copies = _weights(case, env, lambda: torch.ones((), dtype=torch.bool, device=env.device))
    xv = _sparse_inputs(case, env, xs)
    wts = [w.t().contiguous() for w in ws]

    def sparse(i):
        nz = xv[i].nonzero().squeeze(1)
        return wts[i].index_select(0, nz).t() @ xv[i].index_select(0, nz)

    f_dense, act = _linear_work(case, 1.0, ws[0].element_size())
    ref = F.linear(xv[0].float(), ws[0].float())
    return Bench(lambda i: F.linear(xv[i], ws[i]), sparse, copies, f_dense, f_dense * case.density,
                 nbytes(ws[0]) + act, nbytes(ws[0]) * case.density + act, 1.0 / case.density,
                 rel_error(sparse(0), ref), graph=False)


# The 2:4 and dense Triton GEMVs' candidates: sparsebench/kernels/row_gemv.py (TUNE_2_4, TUNE_DENSE).
# (engine, block_k, block_n, num_warps, k tiles per program, pipeline stages (mma), split-K reduction);
# the candidates that won on some LLaMA/SmolLM2 shape in a sweep on an H100 (docs/kernels.md), the first
# the best on most. fma with 1 tile per program is TEAL's kernel.
TUNE_ACT = [("fma", 16, 64, 1, 4, 1, "atomic"), ("fma", 16, 64, 1, 1, 1, "atomic"), ("fma", 16, 64, 1, 2, 1, "atomic"),
            ("fma", 16, 64, 1, 8, 1, "atomic"), ("fma", 8, 64, 1, 8, 1, "atomic"), ("fma", 32, 128, 2, 8, 1, "atomic"),
            ("fma", 16, 64, 1, 4, 1, "last"), ("fma", 16, 64, 1, 8, 1, "last"), ("fma", 8, 64, 1, 8, 1, "last"),
            ("mma", 128, 64, 4, 8, 3, "last"), ("mma", 128, 128, 4, 8, 3, "last"), ("mma", 64, 64, 2, 16, 3, "last"),
            ("mma", 128, 64, 4, 16, 3, "last"), ("mma", 32, 128, 4, 16, 4, "last"),
            ("mma", 32, 256, 4, 16, 4, "atomic"),
            ("mma", 128, 128, 4, 16, 3, "last"),  # chosen for LLaMA-7B's fused gate/up (22016x4096) by bench decode
            # the scratch engine (FMA): each program ranks its chunk's live inputs (a prefix sum) into a scratch row,
            # then loads whole tiles of live weight rows only (act_sparse_gemv.py); it won LLaMA-7B down and
            # LLaMA-3-8B up/down at 50 % on the H200 (sparsebench.kernels.gemv_ceiling); its tensor-core variant
            # ("scratch", 7 candidates of 32-128 x 64-256 tiles, 3-4 stages) won none there
            ("scratch_fma", 16, 64, 1, 16, 1, "last"), ("scratch_fma", 32, 64, 2, 16, 1, "last"),
            ("scratch_fma", 16, 128, 2, 32, 1, "last"), ("scratch_fma", 8, 64, 1, 32, 1, "atomic"),
            ("scratch_fma", 8, 64, 1, 64, 1, "atomic"), ("scratch_fma", 8, 128, 1, 32, 1, "atomic"),
            ("scratch_fma", 16, 64, 1, 32, 1, "last")]
# (The gather engine -- each program compacts its chunk of inputs first -- won no shape: 7-17 % slower than the
# best of this list at 50 % on the LLaMA shapes in bench/sweep_gather.py on the H200, the sort costing more than
# the masked rows it saves; six of its candidates were in this list when the H200 rows of 9b2153f were tuned.)
# (Five more candidates with more bytes in flight per program -- fma 16x64 x16 tiles, 16x128 and 32x64 x8;
# mma 64x128 and 128x64 with 4 stages -- won no shape on the H200 at 50 %: not kept.)
# (block_k, block_n, num_warps, float32 output)
TUNE_COMPACT = [(64, 128, 2, False), (32, 128, 2, False), (64, 64, 2, False), (128, 128, 4, False),
                (32, 256, 4, False), (16, 256, 2, False), (128, 64, 4, False), (64, 256, 4, False),
                (64, 128, 2, True), (32, 128, 2, True)]


def _tune(run, configs, env: Env, copies: int):
    """The fastest config of ``run(cfg, i)`` by measurement (:func:`sparsebench.kernels.tuning.tune`)."""
    from sparsebench.kernels.tuning import tune

    return tune(run, configs, env.device, copies)


OPS = {
    "csr": Op(build_csr, False, "CSR weight x dense activations (torch.sparse: cuSPARSE / MKL)", "csr"),
    "bsr": Op(build_bsr, False, "BSR (b x b blocks) weight x dense activations (torch.sparse)", "bsr"),
    "semi_structured": Op(build_semi_structured, True, "2:4 weight via to_sparse_semi_structured (cuSPARSELt)",
                          "semi_structured_cusparselt"),
    "semi_structured_tuned": Op(build_semi_structured_tuned, True,
                                "2:4 weight, cuSPARSELt called directly, algorithm and output layout searched per shape",
                                "semi_structured_cusparselt"),
    "gemv_2_4": Op(build_gemv_2_4, True, "2:4 weight, one token: our Triton GEMV on packed values + 2-bit indices",
                   "triton_2_4_gemv"),
    "act_sparse_gemv": Op(build_act_sparse_gemv, True,
                          "zero input activations skipped: our Triton GEMV (TEAL, several tiles in flight)",
                          "triton_activation_sparse_gemv"),
    "act_sparse_gemv_compact": Op(build_act_sparse_gemv_compact, True,
                                  "zero input activations skipped: our Triton GEMV over packed non-zeros",
                                  "triton_activation_sparse_gemv_compact"),
    "act_sparse_gather": Op(build_act_sparse_gather, False, "zero inputs skipped by index_select + dense GEMV (stock)",
                            "activation_sparse_gather"),
}
