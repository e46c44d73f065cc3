"""Schedules of sparse training: the learning rate, the DST update cadence and GMP's cubic sparsity."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StepPlan:
    """What the method's schedule says about one optimizer step.

    ``sparsity``: the global sparsity the masks must have after this step;
    ``update``: whether the method changes its masks after this step;
    ``dense_grad``: whether the core must provide the dense gradient with
    respect to the effective weight ``W * M`` in this step (RigL, sparse
    momentum, SR-STE); it also changes the step's FLOP count;
    ``skip_step``: the optimizer does not step (RigL's mask-update steps: the
    gradient of that batch only chooses the connections to grow).
    """

    sparsity: float
    update: bool = False
    dense_grad: bool = False
    skip_step: bool = False


def warmup_cosine_lr(step: int, total: int, base_lr: float, warmup: int) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(t, 1.0)))


@dataclass(frozen=True)
class DSTSchedule:
    """RigL's update schedule (Evci et al. 2020, Eq. 1): update every ``delta_t`` steps until
    ``t_end``; the fraction of active weights replaced decays as alpha/2 (1 + cos(pi t / t_end))."""

    delta_t: int
    t_end: int
    alpha: float

    def is_update(self, step: int) -> bool:
        return step > 0 and step < self.t_end and step % self.delta_t == 0

    def drop_fraction(self, step: int) -> float:
        return self.alpha / 2.0 * (1.0 + math.cos(math.pi * step / self.t_end))


def cubic_sparsity(step: int, s_i: float, s_f: float, t0: int, n: int, delta_t: int) -> float:
    """Zhu & Gupta (arXiv:1710.01878, Eq. 1): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3,
    applied at t in {t0, t0 + dt, ..., t0 + n dt}; between pruning steps the sparsity holds."""
    if step < t0:
        return s_i
    k = min((step - t0) // delta_t, n)  # the last pruning step reached
    return s_f + (s_i - s_f) * (1.0 - k / n) ** 3
