"""DSnoT: training-free prune-and-grow on top of an initial mask (Wanda or SparseGPT's saliency).

Zhang, Zhao, Lin, Sun, Yao, Han, Tanner, Liu, Ji 2023, "Dynamic Sparse No
Training: Training-Free Fine-tuning for Sparse LLMs" (arXiv:2310.08915).
Per output row i, the expected reconstruction error of the initial mask is
e_i = sum over pruned j of W_ij * E[x_j]; while |e_i| exceeds a threshold (and
for at most T cycles), grow back the pruned weight whose removal contributes
most to e_i (largest sign(e_i) * W_ij E[x_j] / Var(x_j)) and prune in its place
the kept weight of smallest Wanda score among those whose removal pushes e_i
towards zero; the number of weights per row (per group of M for N:M) is kept.

Details follow the authors' code (zyxxmu/DSnoT, ``prune_DSnoT``) at its README
settings: T = 50 cycles, threshold 0.1, variance power 1, layers under ``mlp``
keep their initial mask (``--skip_layer mlp``), no sign check in unstructured
mode (``--without_same_sign`` defaults to True), sign check always for N:M where
the pruned weight is the lowest-initial-score survivor of the grown weight's
group. E[x_j] is, as in that code, the per-window sum of x_j averaged over
windows, and Var(x_j) the within-window variance averaged over windows. The
``sparsegpt`` initial mask is the OBS saliency W^2 / [U]_jj^2 of SparseGPT
(U: Cholesky factor of the damped inverse Hessian) chosen per row, without the
weight reconstruction, as in that code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.masks import mask_from_scores
from sparsebench.method import Paper
from sparsebench.pruning.scores import wanda_scores
from sparsebench.targets import Target


def negatives_then_positives_reversed(values: torch.Tensor) -> torch.Tensor:
    """Per row, an order of positions: negative entries in their order, then positive ones reversed.

    Walking it from the front yields negative contributions first; from the back,
    positive ones; each in the order of the candidates (lowest Wanda score first).
    """
    cols = values.shape[1]
    pos = torch.arange(cols, dtype=torch.float64, device=values.device).expand_as(values)
    key = torch.where(values < 0, pos, torch.where(values > 0, 2.0 * cols - pos, torch.full_like(pos, cols)))
    return torch.sort(key, dim=1, stable=True).indices


def _pointers(rows: int, length: int, dev) -> torch.Tensor:
    """Per row, a cursor at the front and one at the back of a candidate list of ``length``."""
    return torch.stack([torch.zeros(rows, dtype=torch.long, device=dev),
                        torch.full((rows,), length - 1, dtype=torch.long, device=dev)], 1)


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return t.gather(1, idx.reshape(-1, 1)).reshape(-1)


def dsnot_unstructured(pruned: torch.Tensor, dsnot: torch.Tensor, grow_metric_scale: torch.Tensor,
                       wanda: torch.Tensor, max_cycles: int, threshold: float, same_sign: bool) -> torch.Tensor:
    """Swap pruned/kept weights row by row; ``pruned`` (True = zero) is updated and returned."""
    rows = pruned.shape[0]
    dev = pruned.device
    r = torch.arange(rows, device=dev)
    err = (dsnot * pruned).sum(1)
    sign0 = torch.sign(err)
    # grow candidates: pruned weights ordered by W x̄ / Var (ascending: most negative first)
    grow_key = torch.where(pruned, dsnot / grow_metric_scale, torch.zeros_like(dsnot))
    n_pruned = int(pruned[0].sum())
    grow_order = torch.sort(torch.where(pruned, grow_key, torch.full_like(grow_key, float("inf"))), dim=1,
                            stable=True).indices[:, :n_pruned]
    # prune candidates: kept weights by ascending Wanda score, negatives first, positives reversed at the end
    n_kept = pruned.shape[1] - n_pruned
    kept_by_wanda = torch.sort(torch.where(pruned, torch.full_like(wanda, float("inf")), wanda), dim=1,
                               stable=True).indices[:, :n_kept]
    prune_order = kept_by_wanda.gather(1, negatives_then_positives_reversed(dsnot.gather(1, kept_by_wanda)))
    if n_pruned == 0 or n_kept == 0:
        return pruned
    grow_ptr = _pointers(rows, n_pruned, dev)
    prune_ptr = _pointers(rows, n_kept, dev)
    step = torch.tensor([1, -1], device=dev)
    active = torch.ones(rows, dtype=torch.bool, device=dev)
    for _ in range(max_cycles):
        if not active.any():
            break
        g_side = (err > 0).long()  # e > 0: grow the largest positive contribution (from the end)
        g_at = grow_ptr[r, g_side]
        p_side = (err < 0).long()  # e < 0: prune a positive contribution (from the end)
        p_at = prune_ptr[r, p_side]
        # a row whose candidates of the needed sign are used up stops (its two pointers met)
        active &= (grow_ptr[:, 0] <= grow_ptr[:, 1]) & (prune_ptr[:, 0] <= prune_ptr[:, 1])
        g_idx = _take(grow_order, g_at.clamp(0, n_pruned - 1))
        p_idx = _take(prune_order, p_at.clamp(0, n_kept - 1))
        grow_c, prune_c = _take(dsnot, g_idx), _take(dsnot, p_idx)
        grow_ptr[r, g_side] += step[g_side]
        prune_ptr[r, p_side] += step[p_side]
        active &= err.abs() > threshold
        if same_sign:
            active &= torch.sign(err + prune_c - grow_c) == sign0
        rows_on = r[active]
        pruned[rows_on, p_idx[active]] = True
        pruned[rows_on, g_idx[active]] = False
        err = torch.where(active, err + prune_c - grow_c, err)
    return pruned


def dsnot_nm(pruned: torch.Tensor, dsnot: torch.Tensor, grow_metric_scale: torch.Tensor, initial: torch.Tensor,
             m: int, max_cycles: int, threshold: float) -> torch.Tensor:
    """N:M variant: each grown weight is paid for by pruning the lowest-initial-score survivor of its group."""
    rows, cols = pruned.shape
    dev = pruned.device
    r = torch.arange(rows, device=dev)
    err = (dsnot * pruned).sum(1)
    sign0 = torch.sign(err)
    n_pruned = int(pruned[0].sum())
    grow_key = torch.where(pruned, dsnot / grow_metric_scale, torch.full_like(dsnot, float("inf")))
    grow_order = torch.sort(grow_key, dim=1, stable=True).indices[:, :n_pruned]
    score = torch.where(pruned, torch.full_like(initial, float("inf")), initial.clone())
    grow_ptr = _pointers(rows, n_pruned, dev)
    step = torch.tensor([1, -1], device=dev)
    active = torch.ones(rows, dtype=torch.bool, device=dev)
    offsets = torch.arange(m, device=dev)
    for _ in range(max_cycles):
        if not active.any():
            break
        side = (err > 0).long()
        at = grow_ptr[r, side]
        active &= grow_ptr[:, 0] <= grow_ptr[:, 1]
        g_idx = _take(grow_order, at.clamp(0, n_pruned - 1))
        group = (g_idx - g_idx % m).reshape(-1, 1) + offsets
        best, where_in = score.gather(1, group).min(1)
        active &= torch.isfinite(best)
        p_idx = _take(group, where_in)
        grow_c, prune_c = _take(dsnot, g_idx), _take(dsnot, p_idx)
        active &= (torch.sign(err + prune_c - grow_c) == sign0) & (err.abs() > threshold)
        rows_on = r[active]
        score[rows_on, p_idx[active]] = float("inf")
        pruned[rows_on, p_idx[active]] = True
        pruned[rows_on, g_idx[active]] = False
        err = torch.where(active, err + prune_c - grow_c, err)
        grow_ptr[r, side] += step[side]
    return pruned


class DSnoT(PruningMethod):
    name = "dsnot"
    display_name = "DSnoT"
    paper = Paper(
        "Dynamic Sparse No Training: Training-Free Fine-tuning for Sparse LLMs",
        "Zhang, Zhao, Lin, Sun, Yao, Han, Tanner, Liu, Ji",
        2023,
        arxiv="2310.08915",
    )
    patterns = ("unstructured", "n:m")
    needs_calibration = True
    needs_input_moments = True  # E[x_j] and Var(x_j) drive the prune-and-grow criterion

    @dataclass
    class Params:
        initial: Literal["wanda", "sparsegpt"] = "wanda"  # the initial mask
        max_cycles: int = 50  # T: prune-and-grow swaps per row at most
        update_threshold: float = 0.1  # stop a row once |e_i| is below this
        pow_of_var: float = 1.0  # grow criterion divides W x̄ by Var(x)^pow
        skip: Literal["mlp", "self_attn", "none"] = "mlp"  # layers that keep their initial mask
        same_sign: bool = False  # unstructured: also require e_i not to change sign (code default: off)
        percdamp: float = 0.01  # for the sparsegpt initial mask

        def check(self):
            if self.max_cycles < 0:
                raise ValueError(f"max_cycles={self.max_cycles} must be >= 0")
            if self.update_threshold < 0:
                raise ValueError(f"update_threshold={self.update_threshold} must be >= 0")

    @property
    def needs_gram(self) -> bool:
        return self.params.initial == "sparsegpt"

    def initial_scores(self, layer: LayerToPrune) -> torch.Tensor:
        W = layer.weight.float()
        if self.params.initial == "wanda":
            return wanda_scores(W, layer.inputs.norm_sq)
        U, _ = layer.inputs.inverse_hessian_cholesky(self.params.percdamp)
        return W**2 / torch.diag(U).reshape(1, -1) ** 2

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        if layer.inputs is None:
            raise ValueError(f"{layer.name}: DSnoT needs calibration inputs")
        p = self.params
        initial = self.initial_scores(layer)
        pruned = ~mask_from_scores(initial, target, per="row")
        if p.skip != "none" and f".{p.skip}." in f".{layer.name}.":
            return ~pruned
        W = layer.weight.float()
        stats = layer.inputs
        dsnot = W * stats.window_sum_mean.reshape(1, -1)  # W_ij * E[x_j]: a pruned weight's share of e_i
        scale = stats.variance.reshape(1, -1).clamp_min(1e-12) ** p.pow_of_var
        if target.pattern.kind == "n:m":
            pruned = dsnot_nm(pruned, dsnot, scale, initial, target.pattern.m, p.max_cycles, p.update_threshold)
        else:
            wanda = wanda_scores(W, stats.norm_sq)
            pruned = dsnot_unstructured(pruned, dsnot, scale, wanda, p.max_cycles, p.update_threshold, p.same_sign)
        return ~pruned
