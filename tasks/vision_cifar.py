"""vision-cifar10 / vision-cifar100: CIFAR with a timm ResNet-18 or ViT-Tiny adapted to 32x32, from scratch.

For users with a network (or a local copy): the data are read from CIFAR's
on-disk python batches under ``root`` (``cifar-10-batches-py/`` or
``cifar-100-python/``, as torchvision stores them); ``download: true`` lets
torchvision fetch them first. Nothing is downloaded by default. Training uses
the standard augmentation (4-pixel pad and random crop, horizontal flip); the
validation split is a fixed stratified 5,000 images of the training set and
the test split is CIFAR's official test set.
"""

from dataclasses import dataclass
from typing import Literal

from sparsebench.vision.data import cifar_splits, random_crop_flip
from sparsebench.vision.models import cifar_resnet18, cifar_vit_tiny
from sparsebench.vision.task import VisionTask, check_positive


class _Cifar(VisionTask):
    which = "cifar10"

    @dataclass
    class Params(VisionTask.Params):
        root: str = "~/.cache/sparsebench/cifar"
        download: bool = False
        model: Literal["resnet18", "vit_tiny"] = "resnet18"
        epochs: int = 160
        batch_size: int = 128
        val_size: int = 5000
        limit: int = 0  # use only the first `limit` training and test images (0: all); for smoke tests

        def check(self):
            check_positive(self, ("epochs", "batch_size", "lr", "val_size"))
            if self.limit and self.limit <= self.val_size:
                raise ValueError(f"limit={self.limit} must exceed val_size={self.val_size}")

    def load_splits(self):
        from pathlib import Path

        p = self.params
        return cifar_splits(Path(p.root).expanduser(), self.which, p.val_size, p.split_seed, p.download,
                            p.limit or None)

    def build_model(self, num_classes, in_chans):
        if self.params.model == "vit_tiny":
            return cifar_vit_tiny(num_classes)
        return cifar_resnet18(num_classes)

    def augment(self):
        return random_crop_flip


class VisionCifar10(_Cifar):
    name = "vision-cifar10"
    which = "cifar10"
    description = "CIFAR-10 (torchvision on-disk format), timm ResNet-18 / ViT-Tiny at 32x32, top-1 accuracy"


class VisionCifar100(_Cifar):
    name = "vision-cifar100"
    which = "cifar100"
    description = "CIFAR-100 (torchvision on-disk format), timm ResNet-18 / ViT-Tiny at 32x32, top-1 accuracy"
