"""The training loop every sparse-training method shares.

One optimizer step, in order (the hooks a method gets are in capitals):

1. ``SCHEDULE``: the method's :class:`~sparsebench.training.schedule.StepPlan`
   for this step (global sparsity, mask update or not, dense gradient or not);
2. forward and backward through the masked model (``W * M`` from the shared
   parametrization in ``sparsebench.masks``). When the plan asks for it, the
   forward runs under ``parametrize.cached()`` so that the effective weight
   ``W * M`` is one tensor per layer whose gradient is kept: that is the dense
   gradient dL/d(W*M) (RigL's grow criterion), available as ``dense_grads``;
3. ``AFTER_BACKWARD``: the method may read or rewrite gradients (SR-STE);
4. the optimizer step (unless the plan says ``skip_step``); then the core enforces the masks: the underlying weights
   and their momentum are zeroed where M = 0 (unless the method keeps dense
   weights, as SR-STE does), so a regrown weight starts at zero;
5. ``AFTER_STEP``: the method may change masks through :meth:`Trainer.set_masks`.

At every evaluation point (each epoch end) the core measures each masked
layer's kept count against the allocation the method declared and the global
count against the scheduled sparsity, and fails loudly on a miss.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from sparsebench.masks import SparsityMismatch, apply_mask, get_mask
from sparsebench.progress import progress
from sparsebench.targets import Target
from sparsebench.training.distribution import total_keep
from sparsebench.training.flops import FlopCounter
from sparsebench.training.masking import nm_kept_per_group
from sparsebench.training.schedule import StepPlan, warmup_cosine_lr


@dataclass(frozen=True)
class Recipe:
    """The task's training recipe (SGD with momentum, warm-up then cosine learning rate)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0


@dataclass
class TrainData:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500,
            amp: torch.dtype | None = None) -> torch.Tensor:
    """Per example: whether the model's top-1 class is the label (bool tensor on the host, in the order of
    ``x``); batches move to the model's device (run under autocast to ``amp`` when given)."""
    was = model.training
    model.eval()
    hits = []
    device = next(model.parameters()).device
    with torch.no_grad(), autocast(device, amp):
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
            hits.append((model(xb).argmax(1) == yb).cpu())
    model.train(was)
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500,
             amp: torch.dtype | None = None) -> float:
    return int(correct(model, x, y, batch, amp).sum()) / max(len(x), 1)


def autocast(device: torch.device, amp: torch.dtype | None):
    """Mixed precision: the forward in ``amp`` (float32 master weights); None: plain float32."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp)


def make_batch(data: TrainData, seed: int, steps_per_epoch: int, batch_size: int, step: int,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of ``step``: a function of (seed, step) only, so a rewound run or a loader worker replays it."""
    epoch, b = divmod(step, steps_per_epoch)
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    idx = order[b * batch_size:(b + 1) * batch_size]
    x, y = data.train_x[idx], data.train_y[idx]
    if augment and data.augment is not None:
        x = data.augment(x, torch.Generator().manual_seed(seed * 1_000_003 + 7919 * step + 1))
    return x, y


class StepBatches(torch.utils.data.Dataset):
    """Batches of steps ``first..last-1`` for a DataLoader whose workers assemble and augment them."""

    def __init__(self, data: TrainData, seed: int, steps_per_epoch: int, batch_size: int, first: int, last: int):
        self.args = (data, seed, steps_per_epoch, batch_size)
        self.first, self.last = first, last

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, i: int):
        return make_batch(*self.args, self.first + i)


class Trainer:
    # DataLoader workers on an accelerator (batches are built and augmented on the host while the GPU trains)
    loader_workers: int = 4

    def __init__(self, model: nn.Module, layers: dict[str, nn.Module], data: TrainData, recipe: Recipe,
                 target: Target, seed: int, method, flops: FlopCounter, log: Callable[[str], None] = print,
                 amp: torch.dtype | None = None):
        self.model, self.layers, self.data, self.recipe = model, layers, data, recipe
        self.device = next(model.parameters()).device
        self.amp = amp
        self.target, self.seed, self.method, self.flops, self.log = target, seed, method, flops, log
        self.generator = torch.Generator().manual_seed(seed)  # the method's own randomness
        self.steps_per_epoch = math.ceil(len(data.train_y) / recipe.batch_size)
        self.total_steps = recipe.epochs * self.steps_per_epoch
        self.numels = {k: m.weight.numel() for k, m in layers.items()}
        self.allocation: dict[str, int] = {}
        self.optimizer: torch.optim.Optimizer | None = None
        self.dense_grads: dict[str, torch.Tensor] = {}
        self.step = 0
        self.samples_seen = 0
        self.curve: list[dict] = []

    # -- weights and masks -----------------------------------------------------
    def weight(self, name: str) -> torch.Tensor:
        """The trainable (underlying, dense) weight of a layer; the forward uses it times the mask."""
        module = self.layers[name]
        if parametrize.is_parametrized(module, "weight"):
            return module.parametrizations.weight.original
        return module.weight

    def mask(self, name: str) -> torch.Tensor | None:
        return get_mask(self.layers[name])

    def masks(self) -> dict[str, torch.Tensor]:
        return {k: m for k in self.layers if (m := self.mask(k)) is not None}

    def momentum(self, name: str) -> torch.Tensor | None:
        if self.optimizer is None:
            return None
        return self.optimizer.state.get(self.weight(name), {}).get("momentum_buffer")

    def set_masks(self, masks: dict[str, torch.Tensor], keep_counts: bool = False) -> None:
        """Install new masks (through ``sparsebench.masks.apply_mask``, in place when one exists).

        ``keep_counts``: each layer must keep exactly as many weights as before
        (prune-and-regrow updates such as SET and RigL). Where the method zeroes
        masked weights, pruned and newly grown positions get weight 0 and momentum 0.
        """
        for name, new in masks.items():
            new = new.to(device=self.weight(name).device, dtype=torch.bool)  # masks drawn on the host
            old = self.mask(name)
            if keep_counts and old is not None and int(new.sum()) != int(old.sum()):
                raise SparsityMismatch(f"{name}: a prune-and-regrow update changed the kept count "
                                       f"from {int(old.sum())} to {int(new.sum())}")
            apply_mask(self.layers[name], new)
            self.allocation[name] = int(new.sum())
            if self.method.zero_masked_weights:
                reset = ~new if old is None else (~new | (new & ~old))
                with torch.no_grad():
                    self.weight(name).masked_fill_(reset, 0.0)
                    buf = self.momentum(name)
                    if buf is not None:
                        buf.masked_fill_(reset, 0.0)

    def enforce_masks(self) -> None:
        with torch.no_grad():
            for name, mask in self.masks().items():
                self.weight(name).masked_fill_(~mask, 0.0)
                buf = self.momentum(name)
                if buf is not None:
                    buf.masked_fill_(~mask, 0.0)

    def densities(self) -> dict[str, float]:
        return {k: self.allocation.get(k, self.numels[k]) / self.numels[k] for k in self.layers}

    def check_budget(self, sparsity: float) -> None:
        """Every masked layer keeps its allocation and the whole model meets ``sparsity`` exactly."""
        problems = []
        for name, mask in self.masks().items():
            kept = int(mask.sum())
            if kept != self.allocation.get(name):
                problems.append(f"{name}: keeps {kept}, allocation {self.allocation.get(name)}")
            if self.target.pattern.kind == "n:m":
                n, m = self.target.pattern.n, self.target.pattern.m
                groups = nm_kept_per_group(mask, m)
                if bool((groups != n).any()):
                    problems.append(f"{name}: {int((groups != n).sum())} groups do not keep {n} of {m}")
        if self.target.pattern.kind != "n:m":
            kept = sum(self.allocation.get(k, n) for k, n in self.numels.items())
            want = total_keep(self.numels, sparsity)
            if kept != want:
                problems.append(f"model keeps {kept} weights, sparsity {sparsity:.6g} needs {want}")
        if problems:
            raise SparsityMismatch(f"step {self.step}: " + "; ".join(problems[:5]))

    # -- data ------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The sample order of an epoch: a function of (seed, epoch) only, so a rewound run replays it."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.data.train_y), generator=g)

    def batch(self, step: int, augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``step`` on the model's device."""
        x, y = make_batch(self.data, self.seed, self.steps_per_epoch, self.recipe.batch_size, step, augment)
        return x.to(self.device), y.to(self.device)

    def batches(self, start_step: int):
        """Batches of steps ``start_step`` onwards: on an accelerator from DataLoader workers (pinned memory,
        copied while the previous step runs); on the CPU built in-process, as the default run always has."""
        if self.device.type == "cpu":
            yield from (self.batch(s) for s in range(start_step, self.total_steps))
            return
        data = StepBatches(self.data, self.seed, self.steps_per_epoch, self.recipe.batch_size, start_step,
                           self.total_steps)
        workers = min(self.loader_workers, len(os.sched_getaffinity(0)) - 1) if hasattr(os, "sched_getaffinity") else 0
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=max(workers, 0),
                                             pin_memory=True, prefetch_factor=4 if workers > 0 else None,
                                             persistent_workers=False)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def scoring_batches(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` training batches (without augmentation) for saliency at initialisation."""
        return [self.batch(i, augment=False) for i in range(n)]

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.recipe.label_smoothing)

    # -- the loop --------------------------------------------------------------
    def make_optimizer(self) -> torch.optim.Optimizer:
        r = self.recipe
        return torch.optim.SGD(self.model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                               weight_decay=r.weight_decay)

    def fit(self, start_step: int = 0, on_step: Callable[["Trainer"], None] | None = None) -> None:
        """Train from ``start_step`` to the end of the recipe with a fresh optimizer."""
        method, r = self.method, self.recipe
        self.optimizer = self.make_optimizer()
        warmup = round(r.warmup_epochs * self.steps_per_epoch)
        self.model.train()
        batches = self.batches(start_step)
        bar = progress(total=self.total_steps, desc=f"{method.name} training", unit="step")
        bar.update(start_step)
        for step in range(start_step, self.total_steps):
            self.step = step
            plan: StepPlan = method.schedule(self, step)
            for group in self.optimizer.param_groups:
                group["lr"] = warmup_cosine_lr(step, self.total_steps, r.lr, warmup)
            x, y = next(batches)
            with parametrize.cached() if plan.dense_grad else contextlib.nullcontext():
                effective = {}
                if plan.dense_grad:
                    for name, module in self.layers.items():
                        w = module.weight  # under cached(): the one W * M tensor this forward uses
                        if not w.is_leaf:
                            w.retain_grad()
                        effective[name] = w
                with autocast(self.device, self.amp):
                    loss = self.loss(self.model(x), y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            self.dense_grads = {k: w.grad for k, w in effective.items()}
            method.after_backward(self, plan)
            if not plan.skip_step:
                self.optimizer.step()
            if method.zero_masked_weights:
                self.enforce_masks()
            method.after_step(self, plan)
            self.dense_grads = {}
            self.flops.train_step(len(y), self.densities(), plan.dense_grad)
            self.samples_seen += len(y)
            if on_step is not None:
                on_step(self)
            if (step + 1) % self.steps_per_epoch == 0 or step + 1 == self.total_steps:
                self.evaluation_point(plan, loss.item())
                bar.set_postfix(epoch=f"{(step + 1) / self.steps_per_epoch:.0f}", val_top1=f"{self.curve[-1]['val_top1']:.1f}")
            bar.update(1)
        bar.close()
        self.optimizer = None

    def evaluation_point(self, plan: StepPlan, train_loss: float) -> None:
        self.check_budget(plan.sparsity)
        val = accuracy(self.model, self.data.val_x, self.data.val_y, amp=self.amp)
        kept = sum(self.allocation.get(k, n) for k, n in self.numels.items())
        self.curve.append({"step": self.step + 1, "epoch": (self.step + 1) / self.steps_per_epoch,
                           "train_loss": train_loss, "val_top1": val,
                           "sparsity": 1.0 - kept / sum(self.numels.values())})

    # -- rewinding (IMP) -------------------------------------------------------
    def snapshot(self) -> dict[str, torch.Tensor]:
        """Weights and buffers (not masks) as they are now."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()
                if not (".parametrizations." in k and k.endswith(".mask"))}

    def restore(self, snap: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(snap, strict=False)
        if unexpected or any(not k.endswith(".mask") for k in missing):
            raise RuntimeError(f"snapshot does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
