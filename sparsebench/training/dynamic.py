"""The shared shape of SET and RigL: a fixed per-layer budget, periodic prune-and-regrow.

Subclasses say how inactive positions are scored for growth (:meth:`grow_score`),
whether that needs the dense gradient (:attr:`needs_dense_grad`) and whether a
mask-update step replaces the optimizer step (:attr:`skip_step_on_update`: RigL's
code applies either the mask update or the gradient in a step, never both; SET's
base optimizer applies the gradient and then updates the mask).

The update interval: the RigL paper updates every Delta_T = 100 steps until
T_end = 75 % of training (ImageNet: 25k of 32k steps, about 250 updates; CIFAR
similar). A new connection starts at zero and has Delta_T steps to grow past the
weakest active weights before the next update judges it, so on a run of a few
hundred steps the paper's 100 would leave one or two updates, and a short
interval (10 steps on a 400-step run) drops most grown weights before they grew
(measured: 36 % survive to the next update at 10 steps, 61 % at 50). The
interval is therefore ``min(delta_t, T_end // min_intervals)``: the paper's 100
on runs long enough, else a fixed number of intervals before T_end (6 by
default, 50 steps on vision-digits' 400).
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
    skip_step_on_update: ClassVar[bool] = False

    @dataclass
    class Params:
        distribution: Literal["erk", "uniform"] = "erk"
        delta_t: int = 100  # steps between mask updates on long runs (the paper's Delta_T = 100)
        min_intervals: int = 6  # at least this many intervals before T_end: caps Delta_T on short runs
        alpha: float = 0.3  # initial fraction of active weights replaced, cosine-decayed
        end_fraction: float = 0.75  # no updates after this fraction of training (T_end)

        def check(self):
            if self.delta_t < 1 or self.min_intervals < 1:
                raise ValueError(f"delta_t={self.delta_t} and min_intervals={self.min_intervals} must be >= 1")
            if not 0 < self.alpha < 1 or not 0 < self.end_fraction <= 1:
                raise ValueError(f"alpha={self.alpha} in (0, 1) and end_fraction={self.end_fraction} in (0, 1] "
                                 "are required")

    def update_interval(self, trainer) -> int:
        """Delta_T in steps: the paper's ``delta_t``, shortened to T_end // ``min_intervals`` on short runs."""
        p = self.params
        t_end = round(p.end_fraction * trainer.total_steps)
        return max(1, min(p.delta_t, t_end // p.min_intervals))

    def dst_schedule(self, trainer) -> DSTSchedule:
        p = self.params
        return DSTSchedule(self.update_interval(trainer), round(p.end_fraction * trainer.total_steps), p.alpha)

    def initial_masks(self, trainer):
        keep = self.budget(trainer, trainer.target.sparsity, self.params.distribution)
        return {k: random_mask(trainer.layers[k].weight.shape, keep[k], trainer.generator) for k in keep}

    def schedule(self, trainer, step):
        update = self.dst_schedule(trainer).is_update(step)
        return StepPlan(trainer.target.sparsity, update=update, dense_grad=update and self.needs_dense_grad,
                        skip_step=update and self.skip_step_on_update)

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
