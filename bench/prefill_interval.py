"""2:4 at prefill with an interval: the suite's semi_structured_tuned rows re-timed over interleaved rounds.

    python3 bench/prefill_interval.py [--tokens 2048] [--rounds 20]     # CUDA; ~2 min on an H200

For each LLaMA MLP shape: the case is built (and its cuSPARSELt algorithm tuned) exactly as the suite builds it,
then dense (``F.linear``) and sparse are replayed in ``rounds`` interleaved rounds (graph passes over the suite's
rotated copies, order rotated per round); the per-round ratio gives a mean and a 95 % t-interval, judged against
issue 18's 1.3x.
"""

from __future__ import annotations

import argparse

import torch

from sparsebench.kernels.cases import Case, Env
from sparsebench.kernels.linear_cases import build_semi_structured_tuned
from sparsebench.kernels.shapes import LLAMA7B, LLAMA8B
from sparsebench.kernels.tuning import interleaved_rounds
from sparsebench.stats import t_interval

TARGET = 1.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    env = Env("cuda", torch.float16, 256.0, torch.Generator().manual_seed(0),
              torch.Generator(device="cuda").manual_seed(0))  # the h200 profile's rotate_mb, the suite's seed
    for s in (LLAMA7B["up_proj"], LLAMA7B["down_proj"], LLAMA8B["up_proj"], LLAMA8B["down_proj"]):
        bench = build_semi_structured_tuned(
            Case("semi_structured_tuned", s.model, s.layer, s.out_features, s.in_features, a.tokens, 0.5), env)
        dense, sparse = interleaved_rounds([bench.dense, bench.sparse], bench.copies, a.rounds, rotate=True)
        ci = t_interval([d / sp for d, sp in zip(dense, sparse)])
        verdict = "met" if ci.lo >= TARGET else "missed" if ci.hi < TARGET else "inconclusive"
        print(f"{s.model}.{s.layer} t{a.tokens}: alg {bench.info['alg_id']} ({bench.info['dense_b']}), "
              f"{ci.estimate:.3f}x [{ci.lo:.3f}, {ci.hi:.3f}] over {ci.n} rounds: {verdict}", flush=True)
        del bench
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
