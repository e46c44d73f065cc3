"""TEAL: magnitude thresholds on the hidden states entering every weight matrix.

Liu, Ponnusamy, Cai, Guo, Kim, Athiwaratkun 2024. "Training-Free Activation
Sparsity in Large Language Models" (arXiv:2408.14690, ICLR 2025).

Algorithm (Sec. 4.1): for every weight matrix W, zero the entries of its input x
whose magnitude is at most a threshold t, ``s_t(x) = x * 1[|x| > t]``, where t is
the p-quantile of |x| over calibration data so that a fraction p of the entries
is zeroed. Thresholds are calibrated per layer and per tensor on the dense
model's hidden states; no training. How much of p each matrix gets is the
*allocation* (Sec. 4.2):

- ``uniform``: every matrix of every block at p (the authors' ``set_uniform_sparsity``);
- ``greedy``: the block-wise greedy search (Algorithm 1, ``teal/greedyopt.py``):
  per block, on the dense model's inputs, repeatedly raise the sparsity of
  whichever of q, k, v, o, gate, up, down adds the least error at the block
  output, by a step inversely proportional to the matrix's size; each block
  then runs at the recorded allocation whose size-weighted sparsity is closest
  to p (see ``sparsebench/activation/greedy.py``; the path is cached).

What follows the paper and its code (github.com/FasterDecoding/TEAL):
- every linear of every block is sparsified through its input: q/k/v read the
  attention input, o_proj the attention output, gate/up the MLP input, down_proj
  act(gate) * up (``teal/mlp.py``, ``teal/self_attn.py``); q, k and v have their
  own sparsity levels under ``greedy`` (readers of one tensor at one level share
  its threshold);
- thresholds from a histogram of the dense model's activations on calibration text.

What differs:
- the paper inverts a histogram of signed values at 0.5 + p/2 (assuming a
  zero-mean symmetric distribution); we take the p-quantile of |x| directly,
  which is what "a fraction p of entries zeroed" means and equals theirs for
  symmetric distributions;
- thresholds are calibrated once, on the dense model, as in TEAL (``refine: 0``;
  the family's recalibration rounds on the sparsified model are not TEAL's and
  run only under the separate name ``teal-recalibrated``);
- TEAL's perplexity runs leave the first half of each context dense (a dense
  prefill); here every evaluated token is sparsified, a stricter setting;
- the greedy search runs on ``greedy_windows`` x ``greedy_tokens`` calibration
  tokens (the authors: 10 x 2048 on a GPU) because each step costs seven block
  forwards: on 1 x 256 tokens the path to 40 % (86 steps in each of 30 blocks)
  took 23 min on two busy CPU cores, hence ``uniform`` stays the default of the
  config (docs/activation.md has the measured perplexities of both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.activation.greedy import READS, allocation, greedy_paths, threshold
from sparsebench.families.activation_sparsity import ActivationSparsityMethod
from sparsebench.method import Paper


class TEAL(ActivationSparsityMethod):
    name = "teal"
    display_name = "TEAL"
    paper = Paper("Training-Free Activation Sparsity in Large Language Models",
                  "Liu, Ponnusamy, Cai, Guo, Kim, Athiwaratkun", 2024, arxiv="2408.14690")

    @dataclass
    class Params(ActivationSparsityMethod.Params):
        refine: int = 0  # TEAL calibrates on the dense model only (teal-recalibrated: 1 round on the sparse model)
        allocation: Literal["uniform", "greedy"] = "uniform"  # how the level is split among a block's matrices
        greedy_step: float = 0.05  # the search's base step alpha (the authors' default)
        greedy_windows: int = 1  # calibration windows the greedy search runs on (the first ones)
        greedy_tokens: int = 256  # tokens of each such window (its first ones)

        def check(self):
            super().check()
            if not 0 < self.greedy_step <= 1:
                raise ValueError(f"greedy_step={self.greedy_step} must be in (0, 1]")
            if self.greedy_windows < 1 or self.greedy_tokens < 2:
                raise ValueError(f"greedy_windows={self.greedy_windows} must be >= 1 and "
                                 f"greedy_tokens={self.greedy_tokens} >= 2")

    def __init__(self, params=None):
        super().__init__(params)
        self.levels: dict[float, list[dict[str, float]]] = {}  # level -> per block, kind -> sparsity

    def sites(self, blocks):
        return [b[kind] for b in blocks for kind in READS]

    def allocate(self, blocks, calibration, p: float) -> list[dict[str, float]]:
        """Per block, the sparsity level of each of its seven matrices."""
        if self.params.allocation == "uniform":
            return [{kind: p for kind in READS} for _ in blocks]
        prm = self.params
        windows = calibration.windows[: prm.greedy_windows, : prm.greedy_tokens]
        modules = dict(calibration.model.named_modules())
        decoder = [modules[b["q"].rsplit(".self_attn.", 1)[0]] for b in blocks]
        paths = greedy_paths(calibration.model, decoder, blocks, windows, prm.greedy_step, p, calibration.source)
        return [allocation(path, p) for path in paths]

    def thresholds(self, blocks, calibration, target):
        p = target.sparsity
        if p not in self.levels:  # the refine rounds reuse the allocation
            self.levels[p] = self.allocate(blocks, calibration, p)
        # one histogram of |x| per distinct tensor: the input of q (shared by k, v), o, gate (shared by up), down
        taps = {(b[reads], "input"): torch.abs for b in blocks for reads in set(READS.values())}
        hists, _ = calibration.run(histograms=taps, key="teal |x| at the inputs of q, o, gate, down")
        t = {}
        for b, levels in zip(blocks, self.levels[p]):
            shared: dict[tuple[str, float], torch.Tensor] = {}  # one object per (tensor, level): counted once
            for kind, reads in READS.items():
                key = (reads, levels[kind])
                if key not in shared:
                    shared[key] = torch.tensor(threshold(hists[(b[reads], "input")], levels[kind]))
                t[b[kind]] = shared[key]
        return t

    def record(self) -> dict:
        """The allocation: per level, per matrix kind, its sparsity in every block."""
        return {"allocation": self.params.allocation,
                "levels": {f"{p:g}": {kind: [round(lv[kind], 6) for lv in levels] for kind in READS}
                           for p, levels in self.levels.items()}}
