"""vision-digits: scikit-learn's 1,797 real 8x8 handwritten digits, a narrow timm ResNet trained from scratch.

Offline and small enough for the default matrix: one training run takes seconds
on one CPU core. The split (70 % train, 10 % validation, 20 % test, stratified)
is fixed by ``split_seed`` and does not depend on the job's seed. The model is
timm's ResNet with BasicBlocks, one block per stage, widths ``channels``, and a
stride-1 stem (see ``sparsebench.vision.models``); about 0.3 M weights in conv
and linear layers with the default widths, so that 95-98 % sparsity leaves only
a few thousand and the methods separate.
"""

from dataclasses import dataclass, field

from sparsebench.vision.data import digits_splits, random_shift
from sparsebench.vision.models import small_resnet
from sparsebench.vision.task import VisionTask, check_positive


class VisionDigits(VisionTask):
    name = "vision-digits"
    description = "sklearn digits (8x8, 10 classes), narrow timm ResNet from scratch, top-1 accuracy"

    @dataclass
    class Params:
        channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])  # widths of the 4 stages
        layers: list[int] = field(default_factory=lambda: [1, 1, 1, 1])  # BasicBlocks per stage
        epochs: int = 15
        batch_size: int = 64
        lr: float = 0.1
        momentum: float = 0.9
        weight_decay: float = 5e-4
        warmup_epochs: float = 1.0
        label_smoothing: float = 0.0
        val_fraction: float = 0.1
        test_fraction: float = 0.2
        split_seed: int = 0
        augment: bool = True  # random translations by up to one pixel
        threads: int = 1  # intra-op threads; one per job is fastest for this small model (jobs run in parallel)

        def check(self):
            check_positive(self, ("epochs", "batch_size", "lr", "threads"))
            if len(self.channels) != 4 or len(self.layers) != 4 or min(self.channels + self.layers) < 1:
                raise ValueError(f"channels={self.channels} and layers={self.layers} need 4 positive entries each")
            if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
                raise ValueError(f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}: "
                                 "both in (0, 1) and summing to less than 1")

    def load_splits(self):
        p = self.params
        return digits_splits(p.val_fraction, p.test_fraction, p.split_seed)

    def augment(self):
        return random_shift if self.params.augment else None

    def build_model(self, num_classes, in_chans):
        return small_resnet(num_classes, in_chans, self.params.channels, self.params.layers)
