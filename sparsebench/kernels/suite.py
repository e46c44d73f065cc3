"""Kernel sets and the suite runner: cases -> timed rows -> one JSON document per profile."""

from __future__ import annotations

import datetime as dt
import sys
import traceback

import torch

from sparsebench.kernels.cases import Case, Env, ops
from sparsebench.kernels.shapes import LLAMA7B, LLAMA8B, PREFILL_TOKENS, SMOLLM2
from sparsebench.kernels.timing import time_pair

RESULT_SCHEMA = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def small_set() -> list[Case]:
    """CI on a CPU: a few decode-sized cases on SmolLM2's MLP shapes (seconds on two cores)."""
    up, down = SMOLLM2["up_proj"], SMOLLM2["down_proj"]
    cases = [Case("csr", s.model, s.layer, s.out_features, s.in_features, 1, d)
             for s in (up, down) for d in (0.1, 0.3, 0.5)]
    cases.append(Case("bsr", up.model, up.layer, up.out_features, up.in_features, 16, 0.25, block=32))
    cases += [Case("act_sparse_gather", down.model, down.layer, down.out_features, down.in_features, 1, d)
              for d in (0.3, 0.5)]
    return cases


def full_set() -> list[Case]:
    """The GPU suite: every op on SmolLM2 and LLaMA-7B/8B shapes, decode (1, 16 tokens) and prefill."""
    shapes = [*SMOLLM2.values(), *LLAMA7B.values(), LLAMA8B["k_proj"], LLAMA8B["up_proj"], LLAMA8B["down_proj"]]
    cases = []
    for s in shapes:
        lin = (s.model, s.layer, s.out_features, s.in_features)
        for t in (1, 16, PREFILL_TOKENS[s.model]):
            cases.append(Case("semi_structured", *lin, t, 0.5))
        cases.append(Case("gemv_2_4", *lin, 1, 0.5))
        cases += [Case("act_sparse_gemv", *lin, 1, d) for d in (0.2, 0.35, 0.5, 0.65, 0.8, 1.0)]
        cases += [Case("act_sparse_gemv_compact", *lin, 1, d) for d in (0.2, 0.5, 0.8)]
    up7 = LLAMA7B["up_proj"]
    cases.append(Case("semi_structured", up7.model, up7.layer, up7.out_features, up7.in_features, 16384, 0.5))
    for s in (SMOLLM2["up_proj"], SMOLLM2["down_proj"], up7):
        lin = (s.model, s.layer, s.out_features, s.in_features)
        cases += [Case("act_sparse_gather", *lin, 1, d) for d in (0.2, 0.5, 0.8)]
        for t in (1, 16, PREFILL_TOKENS[s.model]):
            cases += [Case("csr", *lin, t, d) for d in (0.01, 0.05, 0.1, 0.3, 0.5)]
            cases += [Case("bsr", *lin, t, d, block=32) for d in (0.05, 0.1, 0.3, 0.5)]
    for s in (LLAMA7B["up_proj"], LLAMA7B["down_proj"], LLAMA8B["up_proj"], LLAMA8B["down_proj"]):
        lin = (s.model, s.layer, s.out_features, s.in_features)
        cases += [Case("semi_structured", *lin, t, 0.5) for t in (4096, 8192)]
        cases += [Case("semi_structured_tuned", *lin, t, 0.5) for t in (2048, 4096, 8192)]
    for model in ("smollm2-135m", "llama-7b"):
        cases += [Case("flex_attention", model, "attention", 0, 0, 8192, d) for d in (0.05, 0.1, 0.15, 0.3, 0.5, 1.0)]
        cases += [Case("block_attention", model, "attention", 0, 0, 8192, d) for d in (0.05, 0.15, 0.5, 1.0)]
    cases += [Case(op, "llama-7b", "attention", 0, 0, 32768, d) for op in ("flex_attention", "block_attention")
              for d in (0.05, 0.15, 0.3, 0.5, 1.0)]
    return cases


KERNEL_SETS = {"small": small_set, "full": full_set}


def run_case(case: Case, profile, env: Env, peaks: dict) -> dict:
    op = ops()[case.op]
    row = {"id": case.id, "op": case.op, "model": case.model, "layer": case.layer, "out_features": case.out_features,
           "in_features": case.in_features, "tokens": case.tokens, "phase": case.phase, "density": case.density,
           "block": case.block, "backend": op.description,
           "backends": [op.backend, op.dense_backend]}
    missing = [b for b in (op.backend, op.dense_backend) if b not in profile.backends]
    if missing:  # the profile says this machine class does not have it: not run, never faked
        return row | {"status": "skipped", "reason": f"{case.op} needs backend(s) {', '.join(missing)}, which profile "
                      f"{profile.name!r} does not list (backends: {', '.join(profile.backends) or 'none'})"}
    if op.needs_cuda and env.device != "cuda":
        return row | {"status": "skipped", "reason": f"{case.op} needs CUDA; profile {profile.name!r} is {env.device}"}
    try:
        bench = op.build(case, env)
        tol = TOLERANCE[env.dtype]
        if not bench.rel_error <= tol:  # NaN fails too
            return row | {"status": "wrong", "rel_error": bench.rel_error,
                          "reason": f"sparse output differs from dense by {bench.rel_error:.3g} > {tol:g}"}
        timing = profile.timing
        t = time_pair(bench.dense, bench.sparse, bench.copies, env.device, int(timing.get("warmup", 3)),
                      int(timing.get("repeats", 20)), graph=bench.graph,
                      **({"min_calls": bench.min_calls} if bench.min_calls else {}), extra=bench.dense_triton)
    except Exception as exc:  # noqa: BLE001 - one unsupported kernel must not stop the suite; it is recorded
        traceback.print_exc(file=sys.stderr)
        return row | {"status": "error", "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    finally:
        if env.device == "cuda":
            torch.cuda.empty_cache()
    frac = lambda work, ms, peak: work / (ms * 1e-3) / peak if peak and ms > 0 else None  # noqa: E731
    return row | {
        "status": "ok",
        "dense_ms": t.dense_ms,
        "sparse_ms": t.sparse_ms,
        "speedup": t.dense_ms / t.sparse_ms,
        "ideal_speedup": bench.ideal_speedup,
        "rel_error": bench.rel_error,
        "dense_frac_peak_flops": frac(bench.flops_dense, t.dense_ms, peaks["flops"]),
        "dense_frac_peak_bandwidth": frac(bench.bytes_dense, t.dense_ms, peaks["bandwidth"]),
        "sparse_frac_peak_flops": frac(bench.flops_sparse, t.sparse_ms, peaks["flops"]),
        "sparse_frac_peak_bandwidth": frac(bench.bytes_sparse, t.sparse_ms, peaks["bandwidth"]),
        **(_best_dense(t) if t.extra_ms is not None else {}),
        "copies": bench.copies,
        "repeats": t.repeats,
        "timing": t.method,
        **({"info": bench.info} if bench.info else {}),
    }


def _best_dense(t) -> dict:
    """A GEMV's speed-up judged against the faster of cuBLAS and our Triton dense GEMV of the same design
    (``speedup`` stays the ratio over cuBLAS, which the gate compares)."""
    best = min(t.dense_ms, t.extra_ms)
    return {"dense_triton_ms": t.extra_ms, "best_dense": "cublas" if t.dense_ms <= t.extra_ms else "triton",
            "speedup_best_dense": best / t.sparse_ms}


def run_suite(profile, kernel_set: str | None = None, only=None, seed: int = 0, log=print, on_row=None) -> dict:
    """Run a kernel set on this machine under ``profile``; returns the JSON-ready document.

    ``only``: comma-separated substrings of case ids (any matches), or a collection of exact ids
    (the gate reruns a baseline's ids).
    """
    from sparsebench.environment import capture
    from sparsebench.registry import project_root

    ok, why = profile.available()
    if not ok:
        raise RuntimeError(why)
    name = kernel_set or profile.kernels
    if name not in KERNEL_SETS:
        from sparsebench.errors import ConfigError

        raise ConfigError(f"kernel set {name!r} is not known; allowed: {', '.join(KERNEL_SETS)}")
    cases = KERNEL_SETS[name]()
    if isinstance(only, str):
        cases = [c for c in cases if any(part in c.id for part in only.split(","))]
    elif only is not None:
        cases = [c for c in cases if c.id in set(only)]
    threads = profile.kernel_threads()
    torch.set_num_threads(threads)
    device = "cuda" if profile.device == "cuda" else "cpu"
    env = Env(device, DTYPES[profile.dtype], float(profile.timing.get("rotate_mb", 64)),
              torch.Generator().manual_seed(seed),
              torch.Generator(device=device).manual_seed(seed) if device == "cuda" else None)
    peaks = profile.peaks(threads)
    rows = []
    doc = {
        "schema": RESULT_SCHEMA,
        "profile": profile.name,
        "kernel_set": name,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "dtype": profile.dtype,
        "threads": threads,
        "peaks": peaks,
        "seed": seed,
        "timing": dict(profile.timing),
        "environment": capture(project_root()),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    }
    for n, case in enumerate(cases, 1):
        row = run_case(case, profile, env, peaks)
        rows.append(row)
        if on_row:
            on_row(doc)  # e.g. write the partial document, so a killed run keeps what it measured
        if row["status"] == "ok":
            log(f"[{n}/{len(cases)}] {case.id}: dense {row['dense_ms']:.4f} ms, sparse {row['sparse_ms']:.4f} ms, "
                f"{row['speedup']:.2f}x (ideal {row['ideal_speedup']:.2f}x)")
        else:
            log(f"[{n}/{len(cases)}] {case.id}: {row['status']}: {row.get('reason', '')}")
    return doc
