"""How much a one-token GEMV that reads only part of a weight can gain on this GPU, beside what ours gain.

    python -m sparsebench.kernels.gemv_ceiling --out ceiling.json [--rounds 30]     # CUDA; ~3 min on an H200

A sparse GEMV at batch one is bound by the bytes it moves, plus costs that do not shrink with them (the launch
inside a graph, the ramp to full bandwidth, the tail of the last wave, the split-K reduction). The best it can
do is what the best *dense* GEMV does on a weight of the same number of bytes. So for each LLaMA shape of the
kernel suite, one token, float16, this times in the same interleaved rounds:

- the dense twins: cuBLAS (``F.linear``) and our Triton dense GEMV (tuned from ``TUNE_DENSE``), full weight;
- the suite's sparse kernels at 50 %, built as the suite builds them: the activation-sparse GEMV (half the
  inputs zero: half the weight rows read) and the 2:4 GEMV (values plus half a byte of positions per group of
  four: 9/16 of the dense bytes with the nibble layout);
- the *ceilings*: the same two dense GEMVs on a dense (out, in / 2) and (out, 9 in / 16) weight, the bytes each
  sparse kernel must read at the least.

Each round replays one CUDA-graph pass of every kernel (cycling over copies spanning the profile's
``rotate_mb``, as the suite does), in an order rotated per round; per-round ratios to the best dense GEMV of
that round give a mean and a 95 % t-interval over rounds. A target (issue 18: 1.6x for the activation-sparse
GEMV, 1.1x for 2:4) is ``out of reach`` on a shape where the ceiling's whole interval lies below it: no kernel
that reads those bytes at dense efficiency reaches it there.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F

from sparsebench.stats import t_interval

TARGETS = {"act_sparse_gemv": 1.6, "gemv_2_4": 1.1}
BYTES = {"act_sparse_gemv": (1, 2), "gemv_2_4": (9, 16)}  # fraction of the dense weight's bytes each reads


def verdict(interval, target: float) -> str:
    if interval.lo >= target:
        return "met"
    if interval.hi < target:
        return "missed"
    return "inconclusive"


def summarise(rounds: dict[str, list[float]]) -> dict:
    """``rounds``: kernel name -> ms per call, one value per round (the same rounds for every name).

    Names: ``cublas`` and ``triton`` (dense, full weight), an op of TARGETS (ours), ``cublas@<op>`` and
    ``triton@<op>`` (dense on that op's bytes). Returns per op: ours and the ceiling over the best dense GEMV
    of each round, as mean and t-interval, with verdicts against the op's target."""
    n = len(rounds["cublas"])
    best = [min(rounds["cublas"][r], rounds["triton"][r]) for r in range(n)]
    out = {"rounds": n, "dense_ms": {k: statistics.median(rounds[k]) for k in ("cublas", "triton")}}
    for op, target in TARGETS.items():
        if op not in rounds:
            continue
        ours = t_interval([best[r] / rounds[op][r] for r in range(n)])
        ceil = t_interval([best[r] / min(rounds[f"cublas@{op}"][r], rounds[f"triton@{op}"][r]) for r in range(n)])
        out[op] = {
            "target": target,
            "ours_ms": statistics.median(rounds[op]),
            "ceiling_ms": statistics.median(min(a, b) for a, b in zip(rounds[f"cublas@{op}"], rounds[f"triton@{op}"])),
            "speedup": [ours.estimate, ours.lo, ours.hi],
            "ceiling": [ceil.estimate, ceil.lo, ceil.hi],
            "of_ceiling": ours.estimate / ceil.estimate,
            "verdict": verdict(ours, target),
            "ceiling_verdict": "out of reach" if ceil.hi < target else verdict(ceil, target),
        }
    return out


def measure_shape(model: str, layer: str, out_f: int, in_f: int, env, rounds: int) -> dict:
    from sparsebench.kernels.cases import Case, random_normal
    from sparsebench.kernels.linear_cases import _tune, build_act_sparse_gemv, build_gemv_2_4
    from sparsebench.kernels.row_gemv import TUNE_DENSE, dense_gemv
    from sparsebench.kernels.tuning import interleaved_rounds

    fns, configs = {}, {}
    for op, build in (("act_sparse_gemv", build_act_sparse_gemv), ("gemv_2_4", build_gemv_2_4)):
        bench = build(Case(op, model, layer, out_f, in_f, 1, 0.5), env)
        copies = bench.copies
        if op == "act_sparse_gemv":  # the dense twins on the full weight: the suite's own
            fns["cublas"], fns["triton"] = bench.dense, bench.dense_triton
            configs["triton"] = bench.info["dense_triton_config"]
        fns[op], configs[op] = bench.sparse, bench.info["config"]
        num, den = BYTES[op]
        k = in_f * num // den
        ws = [random_normal((out_f, k), env, 0.02) for _ in range(copies)]
        xs = [random_normal((k,), env) for _ in range(copies)]
        cfg = _tune(lambda c, i, ws=ws, xs=xs: dense_gemv(xs[i], ws[i], *c), TUNE_DENSE, env, copies)
        fns[f"cublas@{op}"] = lambda i, ws=ws, xs=xs: F.linear(xs[i], ws[i])
        fns[f"triton@{op}"] = lambda i, ws=ws, xs=xs, cfg=cfg: dense_gemv(xs[i], ws[i], *cfg)
        configs[f"triton@{op}"] = list(cfg)
    names = list(fns)
    times = dict(zip(names, interleaved_rounds([fns[k] for k in names], copies, rounds, rotate=True)))
    return {"shape": f"{model}.{layer}", "out_features": out_f, "in_features": in_f, "copies": copies,
            "configs": configs, "round_ms": times, **summarise(times)}


def main(argv=None) -> int:
    from sparsebench.kernels.cases import Env
    from sparsebench.kernels.shapes import LLAMA7B, LLAMA8B

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--rotate-mb", type=float, default=256.0, help="the h200 profile's timing.rotate_mb")
    ap.add_argument("--only", default="", help="comma-separated substrings of model.layer")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gemv_ceiling times CUDA kernels; this machine has no CUDA device")
    env = Env("cuda", torch.float16, args.rotate_mb, torch.Generator().manual_seed(0),
              torch.Generator(device="cuda").manual_seed(0))
    shapes = [LLAMA7B["q_proj"], LLAMA7B["k_proj"], LLAMA7B["up_proj"], LLAMA7B["down_proj"],
              LLAMA8B["k_proj"], LLAMA8B["up_proj"], LLAMA8B["down_proj"]]
    if args.only:
        shapes = [s for s in shapes if any(p in f"{s.model}.{s.layer}" for p in args.only.split(","))]
    doc = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rounds": args.rounds, "shapes": []}
    for s in shapes:
        doc["shapes"].append(measure_shape(s.model, s.layer, s.out_features, s.in_features, env, args.rounds))
        with open(args.out, "w") as f:  # after every shape: a killed run keeps what it measured
            json.dump(doc, f, indent=1)
    print(f"{'shape':<20} {'op':<16} {'ours':>20} {'ceiling (dense, same bytes)':>28} {'target':>6}  verdict / ceiling")
    for row in doc["shapes"]:
        for op in TARGETS:
            r = row[op]
            fmt = "{:.3f}x [{:.3f}, {:.3f}]"
            print(f"{row['shape']:<20} {op:<16} {fmt.format(*r['speedup']):>20} {fmt.format(*r['ceiling']):>28} "
                  f"{r['target']:>6}  {r['verdict']} / {r['ceiling_verdict']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
