"""Sparse training: methods that choose masks at initialisation or change them while training.

A method subclasses :class:`SparseTrainingMethod` and fills in some of its hooks;
the core (``sparsebench.training``) owns the training loop, enforces every mask
after every optimizer step through the shared mechanism in ``sparsebench.masks``,
checks the budget at every evaluation point and counts training FLOPs relative
to dense training. Hooks, in the order the core calls them:

- ``initial_masks(trainer)``: masks before the first step (``None``: dense);
  saliency methods score the freshly initialised dense model here;
- ``schedule(trainer, step)``: the :class:`StepPlan` of a step (global sparsity
  after it, whether masks change after it, whether it needs dense gradients);
- ``after_backward(trainer, plan)``: gradients are in ``weight(name).grad``;
  with ``plan.dense_grad`` also ``trainer.dense_grads[name]`` = dL/d(W*M);
- ``after_step(trainer, plan)``: masks may change through ``trainer.set_masks``;
- ``train(trainer)``: the whole procedure; the default trains once, IMP
  overrides it to train, prune and rewind several times.
"""

from __future__ import annotations

import time
from typing import ClassVar

import torch

from sparsebench.masks import sparsity_record
from sparsebench.method import Method
from sparsebench.training.distribution import layer_budget, stem_layers
from sparsebench.training.flops import FlopCounter, layer_forward_flops
from sparsebench.training.loop import Trainer, autocast
from sparsebench.training.schedule import StepPlan

FAMILY = "sparse_training"
# Which way is better for the metrics this family adds (the report's tables read these): FLOPs are a cost.
METRIC_DIRECTIONS = {"train_flops": "lower", "train_flops_rel_dense": "lower", "inference_flops_rel_dense": "lower"}


class SparseTrainingMethod(Method):
    family: ClassVar[str] = FAMILY
    patterns: ClassVar[tuple[str, ...]] = ("unstructured",)
    # After every optimizer step the core zeroes the underlying weight and its
    # momentum where the mask is 0. SR-STE keeps training the dense weights.
    zero_masked_weights: ClassVar[bool] = True
    # False: the method needs float32 forward passes; the core then trains without autocast on any profile.
    mixed_precision: ClassVar[bool] = True

    def initial_masks(self, trainer: Trainer) -> dict[str, torch.Tensor] | None:
        return None

    def schedule(self, trainer: Trainer, step: int) -> StepPlan:
        return StepPlan(sparsity=trainer.target.sparsity)

    def after_backward(self, trainer: Trainer, plan: StepPlan) -> None:
        pass

    def after_step(self, trainer: Trainer, plan: StepPlan) -> None:
        pass

    def train(self, trainer: Trainer) -> None:
        masks = self.initial_masks(trainer)
        if masks:
            trainer.set_masks(masks)
        trainer.check_budget(self.schedule(trainer, 0).sparsity)
        trainer.fit()

    # -- helpers shared by methods ----------------------------------------------
    @staticmethod
    def shapes(trainer: Trainer) -> dict[str, tuple[int, ...]]:
        return {k: tuple(m.weight.shape) for k, m in trainer.layers.items()}

    @classmethod
    def budget(cls, trainer: Trainer, sparsity: float, distribution: str) -> dict[str, int]:
        """Kept weights per layer for ``distribution`` ('erk' or 'uniform') at global ``sparsity``.

        Uniform keeps the model's whole input stem dense (:func:`stem_layers`), as the reference code
        keeps its one stem convolution dense.
        """
        return layer_budget(cls.shapes(trainer), sparsity, distribution,
                            dense=stem_layers(trainer.model, trainer.layers))


BASE = SparseTrainingMethod


def mixed_precision(dtype: torch.dtype, device: torch.device, method) -> torch.dtype | None:
    """The autocast dtype of training on this profile: None (float32) for a float32 profile or a method
    that opts out (``mixed_precision = False``). A float16 profile trains in bfloat16: the same
    tensor-core rate on the GPUs the profiles describe, and no loss scaling, which would hand methods
    that read gradients (RigL's growth, SR-STE's decay term) scaled values."""
    if dtype == torch.float32 or not getattr(method, "mixed_precision", True):
        return None
    return torch.bfloat16


def run(ctx) -> dict:
    task, method = ctx.task, ctx.method
    data = ctx.timed("data", task.train_data)
    model = ctx.timed("load", task.load_model)
    layers = task.prunable_layers(model)
    flops = FlopCounter(layer_forward_flops(model, layers, data.train_x))
    amp = mixed_precision(ctx.placement.dtype, ctx.device, method)
    ctx.place(model, cast=False, autocast=amp)  # float32 master weights; the forward autocasts to ``amp``
    trainer = Trainer(model, layers, data, task.recipe(), ctx.target, ctx.seed, method, flops, ctx.log, amp=amp)
    t0 = time.perf_counter()
    with ctx.timer("train"):
        method.train(trainer)
    ctx.log(f"trained {trainer.samples_seen} samples in {time.perf_counter() - t0:.1f} s")
    trainer.check_budget(ctx.target.sparsity)
    with autocast(ctx.device, amp):
        metrics, samples = ctx.timed("eval", task.evaluate_with_samples, model)
    dense_one_run = flops.dense_training(len(data.train_y) * task.recipe().epochs)
    metrics["train_flops"] = flops.total
    metrics["train_flops_rel_dense"] = flops.total / dense_one_run
    metrics["inference_flops_rel_dense"] = flops.sparse_forward(trainer.densities()) / flops.dense_forward
    ctx.extra["curve"] = trainer.curve
    ctx.extra["threads"] = torch.get_num_threads()
    return {
        "metrics": metrics,
        **({"samples": samples} if samples else {}),
        "sparsity": sparsity_record(layers, ctx.target),
    }
