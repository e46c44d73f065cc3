"""vision-digits: scikit-learn's 1,797 real 8x8 handwritten digits, a narrow timm ResNet trained from scratch.

Offline and small enough for the default matrix: one training run takes seconds
on one CPU core. The split (70 % train, 10 % validation, 20 % test, stratified)
is fixed by ``split_seed`` and does not depend on the job's seed. The model is
timm's ResNet with BasicBlocks, one block per stage, widths ``channels``, and a
stride-1 stem (see ``sparsebench.vision.models``): 78 k weights in conv and
linear layers with the default widths (8, 16, 32, 64), so that 95 % sparsity
leaves about 3.9 k and 98 % about 1.6 k, and the methods separate. Dense test
accuracy is about 98 % after 20 epochs (SGD, warm-up then cosine learning rate).
"""

from dataclasses import dataclass, field

from sparsebench.vision.data import digits_splits, random_shift
from sparsebench.vision.models import small_resnet
from sparsebench.vision.task import VisionTask, check_positive


class VisionDigits(VisionTask):
    name = "vision-digits"
    description = "sklearn digits (8x8, 10 classes), narrow timm ResNet from scratch, top-1 accuracy"

    @dataclass
    class Params(VisionTask.Params):
        channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64])  # widths of the 4 stages
        layers: list[int] = field(default_factory=lambda: [1, 1, 1, 1])  # BasicBlocks per stage
        val_fraction: float = 0.1
        test_fraction: float = 0.2
        augment: bool = False  # random translations by up to one pixel (off: 20 epochs underfit with it)
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
