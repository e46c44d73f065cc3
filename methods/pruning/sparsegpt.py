"""SparseGPT: row-wise Optimal Brain Surgeon pruning with the inverse Hessian of the layer inputs.

Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot" (arXiv:2301.00774). Algorithm 1: with H = X X^T + lambda I
(lambda = percdamp * mean diag), take the upper Cholesky factor of H^-1; walk the
columns in blocks of B_s, choose the mask of each block adaptively by the OBS
saliency w^2 / [H^-1]_jj^2, and after zeroing a column compensate the error on
the not yet processed columns of the block (w <- w - (w_j - q_j)/[H^-1]_jj *
H^-1_{j,:}), applying the block's accumulated error to the later columns in one
lazy batch update. N:M: the mask is chosen inside each group of M columns when
the walk reaches the group's first column.

Masks and updated weights: the weight tensor handed in is rewritten in place
(pruned entries become exactly 0); the returned keep-mask marks the survivors.
Unstructured masks prune exactly round(s * rows * cols) weights per layer: each
block of columns gets its share of that count (the reference code thresholds
with ``<=`` and may prune a few more on ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.method import Paper
from sparsebench.targets import Target


def sparsegpt_prune_(W: torch.Tensor, Hinv: torch.Tensor, dead: torch.Tensor, target: Target,
                     blocksize: int = 128) -> torch.Tensor:
    """Prune ``W`` (out x in, float32) in place by SparseGPT, given the upper Cholesky factor ``Hinv``
    of the damped inverse Hessian; returns the *pruned* (True = zero) mask."""
    rows, cols = W.shape
    W[:, dead] = 0
    pruned = torch.zeros_like(W, dtype=torch.bool)
    nm = target.pattern.kind == "n:m"
    if nm:
        n_keep, m = target.pattern.n, target.pattern.m
        if cols % m:
            raise ValueError(f"N:M pattern {target.pattern} needs the input dimension ({cols}) divisible by {m}")
        n_prune = m - n_keep
    total_prune = round(target.sparsity * rows * cols)

    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d = torch.diag(Hinv1)
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        if not nm:
            # adaptive mask selection: the block's share of prunes goes to the lowest OBS saliency
            k = round(total_prune * i2 / cols) - round(total_prune * i1 / cols)
            if k > 0:
                saliency = (W1**2 / d.reshape(1, -1) ** 2).flatten()
                order = torch.sort(saliency, stable=True).indices
                mask1.view(-1)[order[:k]] = True
        for i in range(i2 - i1):
            if nm and i % m == 0:
                saliency = W1[:, i : i + m] ** 2 / d[i : i + m].reshape(1, -1) ** 2
                smallest = torch.sort(saliency, dim=1, stable=True).indices[:, :n_prune]
                mask1.scatter_(1, i + smallest, True)
            w = W1[:, i]
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]  # lazy batch update of the columns after the block
    return pruned


class SparseGPT(PruningMethod):
    name = "sparsegpt"
    display_name = "SparseGPT"
    paper = Paper(
        "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
        "Frantar, Alistarh",
        2023,
        arxiv="2301.00774",
    )
    patterns = ("unstructured", "n:m")
    needs_calibration = True
    needs_gram = True
    updates_weights = True
    authors_placement = "offload"  # llama.py: the model on the host, each decoder layer moved to the GPU in turn

    @dataclass
    class Params:
        percdamp: float = 0.01  # dampening lambda as a fraction of the mean Hessian diagonal
        blocksize: int = 128  # B_s: columns per lazy-update block (and per adaptive mask choice)

        def check(self):
            if not 0 <= self.percdamp < 1:
                raise ValueError(f"percdamp={self.percdamp} is outside [0, 1)")
            if self.blocksize < 1:
                raise ValueError(f"blocksize={self.blocksize} must be >= 1")

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        if layer.inputs is None or layer.inputs.gram is None:
            raise ValueError(f"{layer.name}: SparseGPT needs calibration inputs with a Gram matrix")
        W = layer.weight.float().clone()
        Hinv, dead = layer.inputs.inverse_hessian_cholesky(self.params.percdamp)
        pruned = sparsegpt_prune_(W, Hinv, dead, target, self.params.blocksize)
        layer.weight.copy_(W.to(layer.weight.dtype))
        return ~pruned
