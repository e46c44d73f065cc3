"""OWL: outlier-weighted layerwise sparsity -- blocks with more activation outliers keep more weights.

Yin, Wu, Zhang, Hsieh, Wang, Jaiswal, Pechenizkiy, Liang, Mocanu, Wang, Liu 2024,
"Outlier Weighed Layerwise Sparsity (OWL): A Missing Secret Sauce for Pruning
LLMs to High Sparsity" (ICML 2024, arXiv:2310.05175). On the dense model, the
layerwise outlier distribution D_l of block l is the share of Wanda scores
|W_ij| * ||X_j||_2 (all linears of the block pooled) above M times their mean.
The block sparsities are

    S_l = S + mean(r) - r_l,   r_l = lambda' * (D_l - min D) / (max D - min D),  lambda' = 2 * lambda

so they average to the target S and span at most 2*lambda (the authors' code:
``(D - min) / (max - min) * Lamda * 2``, then minus the mean plus 1 - S as the
density). Each block is then pruned by the base method (Wanda or SparseGPT) at
its own sparsity, sequentially as the base method does. Defaults M = 5,
lambda = 0.08 are the authors' LLaMA-7B settings at 70 %. Unstructured only
(the authors' N:M variant shifts N per block instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench import registry
from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.method import Paper
from sparsebench.pruning.scores import wanda_scores
from sparsebench.targets import Target


def outlier_ratio(scores: list[torch.Tensor], m: float) -> float:
    """Share (in %) of the pooled ``scores`` above ``m`` times their mean (the authors' ``check_outlier_mean``)."""
    flat = torch.cat([s.flatten() for s in scores])
    return float((flat > flat.mean() * m).sum()) / flat.numel() * 100.0


def owl_sparsities(ratios: list[float], sparsity: float, lam: float) -> list[float]:
    """Per-block sparsities from the outlier ratios: mean ``sparsity``, spread ``2 * lam``, more outliers -> sparser less."""
    d = torch.tensor(ratios, dtype=torch.float64)
    spread = d.max() - d.min()
    r = torch.zeros_like(d) if spread == 0 else (d - d.min()) / spread * (2 * lam)
    return (sparsity + r.mean() - r).tolist()


class OWL(PruningMethod):
    name = "owl"
    display_name = "OWL"
    paper = Paper(
        "Outlier Weighed Layerwise Sparsity (OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity",
        "Yin, Wu, Zhang, Hsieh, Wang, Jaiswal, Pechenizkiy, Liang, Mocanu, Wang, Liu",
        2024,
        arxiv="2310.05175",
    )
    patterns = ("unstructured",)
    needs_calibration = True
    plans_layer_targets = True
    uniform_layer_sparsity = False

    @dataclass
    class Params:
        base: Literal["wanda", "sparsegpt"] = "wanda"  # the pruner applied at each block's sparsity
        m: float = 5.0  # outlier threshold: scores above M x mean (the authors' Hyper_m)
        lam: float = 0.08  # half the spread of block sparsities (the authors' Lamda)

        def check(self):
            if self.base not in ("wanda", "sparsegpt"):
                raise ValueError(f"base={self.base!r}; allowed: 'wanda', 'sparsegpt'")
            if self.m <= 0:
                raise ValueError(f"m={self.m} must be > 0")
            if not 0 <= self.lam < 0.5:
                raise ValueError(f"lam={self.lam} is outside [0, 0.5)")

    def __init__(self, params=None):
        super().__init__(params)
        self._base = registry.method(self.params.base, "owl.base").cls.build({}, "owl.base")
        self._record: dict = {}

    @property
    def needs_gram(self) -> bool:
        return self._base.needs_gram

    @property
    def updates_weights(self) -> bool:
        return self._base.updates_weights

    def plan_layer_targets(self, blocks, dense_inputs, target: Target) -> dict[str, Target]:
        ratios = [outlier_ratio([wanda_scores(mod.weight.data, dense_inputs[name].norm_sq)
                                 for name, mod in block.items()], self.params.m) for block in blocks]
        sparsities = owl_sparsities(ratios, target.sparsity, self.params.lam)
        if min(sparsities) < 0 or max(sparsities) >= 1:
            raise ValueError(f"owl: block sparsities {min(sparsities):.3f}..{max(sparsities):.3f} leave [0, 1) "
                             f"at target {target.sparsity:g} with lam={self.params.lam}; lower lam")
        self._record = {"outlier_ratio_pct": ratios, "block_sparsity": sparsities}
        return {name: Target(s) for block, s in zip(blocks, sparsities) for name in block}

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        return self._base.prune_layer(layer, target)

    def record(self) -> dict:
        return self._record
