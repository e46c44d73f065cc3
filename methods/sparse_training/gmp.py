"""gmp: gradual magnitude pruning during training on Zhu & Gupta's cubic sparsity schedule.

"To prune, or not to prune: exploring the efficacy of pruning for model
compression" (Zhu & Gupta 2017, arXiv:1710.01878): starting from the dense
model, every Delta_t steps from t0 to t0 + n Delta_t raise the sparsity to
s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n Delta_t))^3 by masking the smallest-
magnitude weights of each layer; masked weights stay pruned and the remaining
training recovers accuracy while the learning rate decays. Layer ratios are
uniform (the input stem dense, as the RigL paper's GMP baseline keeps its
first layer unpruned; timm's deep stem has three convolutions) or ERK.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.masking import layer_topk
from sparsebench.training.schedule import StepPlan, cubic_sparsity


class GMP(SparseTrainingMethod):
    name = "gmp"
    display_name = "GMP"
    paper = Paper("To prune, or not to prune: exploring the efficacy of pruning for model compression",
                  "Zhu, Gupta", 2017, arxiv="1710.01878")

    @dataclass
    class Params:
        distribution: Literal["uniform", "erk"] = "uniform"
        begin_fraction: float = 0.1  # t0 as a fraction of training
        end_fraction: float = 0.6  # t0 + n Delta_t as a fraction of training
        delta_t: int = 10  # steps between pruning steps
        initial_sparsity: float = 0.0  # s_i

        def check(self):
            if not 0 <= self.begin_fraction < self.end_fraction <= 1 or self.delta_t < 1:
                raise ValueError(f"need 0 <= begin_fraction={self.begin_fraction} < end_fraction="
                                 f"{self.end_fraction} <= 1 and delta_t={self.delta_t} >= 1")
            if not 0 <= self.initial_sparsity < 1:
                raise ValueError(f"initial_sparsity={self.initial_sparsity} must be in [0, 1)")

    def _times(self, trainer) -> tuple[int, int]:
        p = self.params
        t0 = round(p.begin_fraction * trainer.total_steps)
        n = max(1, (round(p.end_fraction * trainer.total_steps) - t0) // p.delta_t)
        return t0, n

    def sparsity_at(self, trainer, step: int) -> float:
        t0, n = self._times(trainer)
        return cubic_sparsity(step, self.params.initial_sparsity, trainer.target.sparsity, t0, n, self.params.delta_t)

    def initial_masks(self, trainer):
        s = self.sparsity_at(trainer, -1)  # s_i before t0
        keep = self.budget(trainer, s, self.params.distribution)
        return layer_topk({k: m.weight.detach().abs() for k, m in trainer.layers.items()}, keep)

    def schedule(self, trainer, step):
        t0, n = self._times(trainer)
        d = self.params.delta_t
        update = step >= t0 and (step - t0) % d == 0 and step <= t0 + n * d
        return StepPlan(self.sparsity_at(trainer, step), update=update)

    def after_step(self, trainer, plan):
        if not plan.update:
            return
        keep = self.budget(trainer, plan.sparsity, self.params.distribution)
        # Only active weights compete, so a pruned weight never comes back.
        scores = {k: torch.where(trainer.mask(k), trainer.weight(k).detach().abs(), torch.tensor(-math.inf))
                  for k in trainer.layers}
        trainer.set_masks(layer_topk(scores, keep))
