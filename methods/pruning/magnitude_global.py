"""magnitude-global: zero the weights of smallest |W| across all prunable layers together.

Global magnitude pruning as in Han et al. 2015, "Learning both Weights and
Connections for Efficient Neural Networks" (arXiv:1506.02626) and the global
baselines of Blalock et al. 2020 ("What is the State of Neural Network
Pruning?", arXiv:2003.03033): one threshold on |W| over every layer, so layers
end up with different sparsities while the total meets the target exactly.
Only unstructured targets (an N:M target is per group, hence the same as the
layer-wise ``magnitude`` method).
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebench.families.pruning import PruningMethod
from sparsebench.method import Paper
from sparsebench.targets import Target


class GlobalMagnitude(PruningMethod):
    name = "magnitude-global"
    display_name = "magnitude (global)"
    paper = Paper(
        "Learning both Weights and Connections for Efficient Neural Networks",
        "Han, Pool, Tran, Dally",
        2015,
        arxiv="1506.02626",
    )
    patterns = ("unstructured",)
    # Layer sparsities differ by design: the core must check the overall sparsity only.
    uniform_layer_sparsity = False

    def prune(self, layers: dict[str, nn.Module], target: Target, generator: torch.Generator):
        if target.pattern.kind != "unstructured":
            raise ValueError(f"magnitude-global supports unstructured targets only, got {target.pattern}")
        names = list(layers)
        scores = torch.cat([layers[n].weight.detach().abs().float().flatten() for n in names])
        n_prune = round(target.sparsity * scores.numel())
        keep = torch.ones_like(scores, dtype=torch.bool)
        if n_prune > 0:
            # stable sort: ties broken by position, so the mask is the same on every run
            keep[torch.sort(scores, stable=True).indices[:n_prune]] = False
        masks, start = {}, 0
        for n in names:
            w = layers[n].weight
            masks[n] = keep[start : start + w.numel()].reshape(w.shape)
            start += w.numel()
        return masks
