"""TEAL: magnitude thresholds on the hidden states entering every weight matrix.

Liu, Ponnusamy, Cai, Guo, Kim, Athiwaratkun 2024. "Training-Free Activation
Sparsity in Large Language Models" (arXiv:2408.14690, ICLR 2025).

Algorithm (Sec. 4.1): for every weight matrix W, zero the entries of its input x
whose magnitude is at most a threshold t, ``s_t(x) = x * 1[|x| > t]``, where t is
the p-quantile of |x| over calibration data so that a fraction p of the entries
is zeroed. Thresholds are calibrated per layer and per tensor on the dense
model's hidden states; no training.

What follows the paper and its code (github.com/FasterDecoding/TEAL):
- every linear of every block is sparsified through its input: q/k/v share the
  attention input (one distribution), o_proj reads the attention output,
  gate/up share the MLP input, down_proj reads act(gate) * up (``teal/mlp.py``,
  ``teal/self_attn.py``);
- *uniform* allocation: the same sparsity p for all of them (``set_uniform_sparsity``);
- thresholds from a histogram of the dense model's activations on calibration text.

What differs or is left out:
- the block-wise *greedy* allocation (Sec. 4.2, ``greedyopt.py``: per block, raise
  the sparsity of whichever projection adds the least output error) is not
  implemented; ``allocation`` accepts "uniform" only;
- the paper inverts a histogram of signed values at 0.5 + p/2 (assuming a
  zero-mean symmetric distribution); we take the p-quantile of |x| directly,
  which is what "a fraction p of entries zeroed" means and equals theirs for
  symmetric distributions;
- TEAL's perplexity runs leave the first half of each context dense (a dense
  prefill); here every evaluated token is sparsified, a stricter setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.families.activation_sparsity import ActivationSparsityMethod
from sparsebench.method import Paper

# which linear reads which hidden state: q/k/v and gate/up each share one tensor (and so one threshold)
SHARED_INPUT = {"q": "q", "k": "q", "v": "q", "o": "o", "gate": "gate", "up": "gate", "down": "down"}


class TEAL(ActivationSparsityMethod):
    name = "teal"
    paper = Paper("Training-Free Activation Sparsity in Large Language Models",
                  "Liu, Ponnusamy, Cai, Guo, Kim, Athiwaratkun", 2024, arxiv="2408.14690")

    @dataclass
    class Params(ActivationSparsityMethod.Params):
        allocation: Literal["uniform"] = "uniform"  # the paper's greedy block-wise allocation is not implemented

    def sites(self, blocks):
        return [b[kind] for b in blocks for kind in SHARED_INPUT]

    def thresholds(self, blocks, calibration, target):
        p = target.sparsity
        # one histogram of |x| per distinct tensor: the input of q (shared by k, v), o, gate (shared by up), down
        taps = {(b[kind], "input"): torch.abs for b in blocks for kind in set(SHARED_INPUT.values())}
        hists, _ = calibration.run(histograms=taps)
        t = {}
        for b in blocks:
            per_tensor = {reads: torch.tensor(hists[(b[reads], "input")].quantile(p)) for reads in set(SHARED_INPUT.values())}
            for kind, reads in SHARED_INPUT.items():
                t[b[kind]] = per_tensor[reads]  # one object: readers of one tensor share its threshold
        return t
