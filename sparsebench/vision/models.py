"""timm models adapted to small images, created through ``timm.create_model`` (no pretrained weights).

A ResNet built for 224x224 ImageNet images shrinks its input 4x in the stem (a
stride-2 convolution and a max-pool). On 8x8 digits or 32x32 CIFAR images that
throws most of the image away, so the stem keeps full resolution: its first
convolution gets stride 1 and the max-pool is removed (the usual CIFAR
adaptation of ResNets).

timm zero-initialises the last batch-norm scale of every residual block
(``zero_init_last``). Then every gradient inside a block is exactly zero at
initialisation, and saliency-at-initialisation methods (SNIP, GraSP, SynFlow)
see all-zero scores there; the papers used standard (Kaiming) initialisation,
so ``zero_init_last=False``.

timm is imported where a model is created, not at import time: every job
imports the task registry, and timm (with torchvision) costs an LLM job ~3 s.
"""

from __future__ import annotations

from torch import nn


def small_resnet(num_classes: int, in_chans: int, channels: tuple[int, ...], layers: tuple[int, ...]) -> nn.Module:
    """A narrow timm ResNet (BasicBlocks) with timm's 3-conv 'deep' stem at stride 1 and no max-pool."""
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans,
                              layers=tuple(layers), channels=tuple(channels), stem_type="deep",
                              stem_width=max(channels[0] // 2, 1), zero_init_last=False)
    model.conv1[0].stride = (1, 1)
    model.maxpool = nn.Identity()
    return model


def cifar_resnet18(num_classes: int) -> nn.Module:
    """timm ResNet-18 with a 3x3 stride-1 stem convolution and no max-pool (32x32 inputs)."""
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=num_classes, zero_init_last=False)
    model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def cifar_vit_tiny(num_classes: int) -> nn.Module:
    """timm ViT-Tiny (192 wide, 12 blocks, 3 heads) on 32x32 inputs with 4x4 patches (64 tokens)."""
    import timm

    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes,
                             img_size=32, patch_size=4)


def conv_and_linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every conv and linear layer, in definition order: the weights sparse training masks."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
