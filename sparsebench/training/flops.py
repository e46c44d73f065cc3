"""Training FLOPs relative to dense, counted the way the RigL paper does (Appendix H).

Per sample, a layer l with dense forward cost F_l and density d_l costs d_l F_l
in the forward pass and 2 d_l F_l in the backward pass (gradients with respect
to its input and its weights). A step that needs the dense gradient with
respect to the weights (RigL's update steps, sparse momentum, SR-STE) costs
d_l F_l (input gradient) + F_l (dense weight gradient) in the backward pass.
Only conv and linear layers are counted (normalisation, activations and
pooling are a few percent of a ResNet and identical across methods).
"""

from __future__ import annotations

import torch
from torch import nn


def layer_forward_flops(model: nn.Module, layers: dict[str, nn.Module], example: torch.Tensor) -> dict[str, int]:
    """Dense forward FLOPs per sample (2 x multiply-accumulates) of each conv/linear layer."""
    out: dict[str, int] = {}
    hooks = []

    def hook_for(name):
        def hook(module, inputs, output):
            per_sample = output.numel() // output.shape[0]
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                macs = per_sample * (module.in_channels // module.groups) * kh * kw
            elif isinstance(module, nn.Linear):
                macs = per_sample * module.in_features
            else:
                w = module.weight
                macs = per_sample * (w.numel() // w.shape[0])
            out[name] = out.get(name, 0) + 2 * macs
        return hook

    for name, module in layers.items():
        hooks.append(module.register_forward_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(example[:1])
    model.train(was_training)
    for h in hooks:
        h.remove()
    return out


class FlopCounter:
    def __init__(self, layer_flops: dict[str, int]):
        self.layer_flops = layer_flops
        self.dense_forward = sum(layer_flops.values())
        self.total = 0.0

    def sparse_forward(self, densities: dict[str, float]) -> float:
        return sum(f * densities.get(k, 1.0) for k, f in self.layer_flops.items())

    def train_step(self, batch: int, densities: dict[str, float], dense_grad: bool) -> None:
        fs = self.sparse_forward(densities)
        backward = fs + (self.dense_forward if dense_grad else fs)
        self.total += batch * (fs + backward)

    def add(self, flops: float) -> None:
        """Extra work a method does outside the loop (saliency passes, SynFlow iterations)."""
        self.total += flops

    def dense_training(self, samples: int) -> float:
        """FLOPs of training the dense model on ``samples`` samples (3 F_D per sample)."""
        return 3.0 * self.dense_forward * samples
