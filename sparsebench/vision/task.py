"""The shared base of vision tasks: a timm model trained from scratch, top-1 accuracy on a held-out test set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from sparsebench.task import Metric, Task
from sparsebench.training.loop import Recipe, TrainData, accuracy, correct
from sparsebench.vision.data import ImageSplits
from sparsebench.vision.models import conv_and_linear_layers


class VisionTask(Task):
    families: ClassVar[tuple[str, ...]] = ("sparse_training",)
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("top1", higher_is_better=True, description="top-1 accuracy (%) on the held-out test split"),
        Metric("val_top1", higher_is_better=True, description="top-1 accuracy (%) on the validation split"),
    )

    @dataclass
    class Params:
        """The training recipe every vision task shares; a task adds its data and model fields."""

        epochs: int = 20
        batch_size: int = 64
        lr: float = 0.1
        momentum: float = 0.9
        weight_decay: float = 5e-4
        warmup_epochs: float = 1.0
        label_smoothing: float = 0.0
        split_seed: int = 0
        threads: int = 0  # 0: the hardware profile's threads

    # -- what a concrete task provides ----------------------------------------
    def load_splits(self) -> ImageSplits:
        raise NotImplementedError

    def build_model(self, num_classes: int, in_chans: int) -> nn.Module:
        raise NotImplementedError

    def augment(self):
        """A callable (images, generator) -> images applied to training batches, or None."""
        return None

    # -- shared machinery ------------------------------------------------------
    def __init__(self, params=None):
        super().__init__(params)
        self._splits: ImageSplits | None = None

    def splits(self) -> ImageSplits:
        if self._splits is None:
            self._splits = self.load_splits()
        return self._splits

    def prepare(self) -> dict:
        return self.splits().info()

    def recipe(self) -> Recipe:
        p = self.params
        return Recipe(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, momentum=p.momentum,
                      nesterov=True, weight_decay=p.weight_decay, warmup_epochs=p.warmup_epochs,
                      label_smoothing=p.label_smoothing)

    def train_data(self) -> TrainData:
        s = self.splits()
        return TrainData(s.train_x, s.train_y, s.val_x, s.val_y, self.augment())

    def load_model(self) -> nn.Module:
        """A freshly initialised model (from the global torch RNG, which the runner seeds per job)."""
        s = self.splits()
        return self.build_model(s.num_classes, s.train_x.shape[1])

    def prunable_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        return conv_and_linear_layers(model)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.evaluate_with_samples(model)[0]

    def evaluate_with_samples(self, model: nn.Module) -> tuple[dict[str, float], dict]:
        """Top-1 (%) on the test and validation splits; each test image's 0/100 correctness is a sample."""
        from sparsebench.stats import samples_entry

        s = self.splits()
        hits = correct(model, s.test_x, s.test_y)
        metrics = {"top1": 100.0 * float(hits.double().mean()) if len(hits) else 0.0,
                   "val_top1": 100.0 * accuracy(model, s.val_x, s.val_y)}
        return metrics, {"top1": samples_entry(100.0 * hits.double(), "item", "mean")}

    def data_info(self) -> dict:
        return self.splits().info()


def check_positive(params, keys) -> None:
    for key in keys:
        if getattr(params, key) <= 0:
            raise ValueError(f"{key}={getattr(params, key)} must be > 0")

