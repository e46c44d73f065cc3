"""The shared shape of SET and RigL: a fixed per-layer budget, periodic prune-and-regrow.

Subclasses say how inactive positions are scored for growth (:meth:`grow_score`)
and whether that needs the dense gradient (:attr:`needs_dense_grad`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.training.dst import prune_and_regrow
from sparsebench.training.masking import random_mask
from sparsebench.training.schedule import DSTSchedule, StepPlan


class PruneAndRegrow(SparseTrainingMethod):
    needs_dense_grad: ClassVar[bool] = False

    @dataclass
    class Params:
        distribution: Literal["erk", "uniform"] = "erk"
        delta_t: int = 10  # optimizer steps between mask updates
        alpha: float = 0.3  # initial fraction of active weights replaced, cosine-decayed
        end_fraction: float = 0.75  # no updates after this fraction of training (T_end)

        def check(self):
            if self.delta_t < 1 or not 0 < self.alpha < 1 or not 0 < self.end_fraction <= 1:
                raise ValueError(f"delta_t={self.delta_t} >= 1, alpha={self.alpha} in (0, 1), "
                                 f"end_fraction={self.end_fraction} in (0, 1] are required")

    def dst_schedule(self, trainer) -> DSTSchedule:
        p = self.params
        return DSTSchedule(p.delta_t, round(p.end_fraction * trainer.total_steps), p.alpha)

    def initial_masks(self, trainer):
        keep = self.budget(trainer, trainer.target.sparsity, self.params.distribution)
        return {k: random_mask(trainer.layers[k].weight.shape, keep[k], trainer.generator) for k in keep}

    def schedule(self, trainer, step):
        update = self.dst_schedule(trainer).is_update(step)
        return StepPlan(trainer.target.sparsity, update=update, dense_grad=update and self.needs_dense_grad)

    def grow_score(self, trainer, name: str) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, trainer, plan):
        if not plan.update:
            return
        fraction = self.dst_schedule(trainer).drop_fraction(trainer.step)
        new = {}
        for name, mask in trainer.masks().items():
            k = round(fraction * int(mask.sum()))
            new[name] = prune_and_regrow(trainer.weight(name), mask, self.grow_score(trainer, name), k)
        trainer.set_masks(new, keep_counts=True)
