"""flap-aligned: FLAP with each block's kept MLP width rounded to a multiple of ``align`` (our variant).

FLAP (An et al. 2024, arXiv:2312.11983; see ``flap``) keeps whatever number of MLP
channels its global threshold selects in each block, e.g. 8803 of LLaMA-7B's 11008.
A float16 GEMM whose inner or outer width is not a multiple of 8 (better 64 or 128)
leaves the GPU's fast tensor-core kernels, and FLAP's smaller model ran slower than
the dense one on an H200 (docs/pruning.md). This variant rounds every block's kept
MLP width to a multiple of ``align`` (default 128):

- the global threshold is FLAP's; each block's count k_i is rounded down to a multiple
  of ``align`` (at least ``align``, at most the full width), then the blocks with the
  largest remainders are rounded up instead, as many as bring the total kept channels
  closest to FLAP's total (largest-remainder rounding: the parameter target is missed
  by at most about half an ``align`` of channels, recorded in the granularity the core
  checks against);
- within a block the highest-scoring channels are kept (the same standardised
  fluctuation scores), so a block's aligned set contains or is contained in FLAP's;
- bias compensation and attention groups are FLAP's (a group's widths are multiples of
  the head dimension already).

Deviation from the paper: the per-block MLP widths (not the paper's, which are exactly
where the threshold falls); everything else is ``flap``.
"""

from dataclasses import dataclass

import torch

from sparsebench.registry import sibling_module

FLAP = sibling_module(__file__, "flap").FLAP


def aligned_counts(counts: list[int], width: int, align: int) -> list[int]:
    """Each count rounded to a multiple of ``align`` in [align, width] (``width`` itself also allowed), the
    rounding directions chosen so the total is closest to ``sum(counts)`` (largest remainders round up)."""
    down = [min(width, max(align, (k // align) * align)) for k in counts]
    up = [min(width, d + align) for d in down]
    want, have = sum(counts), sum(down)
    order = sorted(range(len(counts)), key=lambda i: (-(counts[i] - down[i]), i))
    out = list(down)
    for i in order:
        gain = up[i] - out[i]
        if gain > 0 and abs(want - (have + gain)) < abs(want - have):
            out[i], have = up[i], have + gain
    return out


class FLAPAligned(FLAP):
    name = "flap-aligned"
    display_name = "FLAP (MLP widths aligned)"

    @dataclass
    class Params(FLAP.Params):
        align: int = 128  # every block's kept MLP width is a multiple of this (or the full width)

        def check(self):
            if not isinstance(self.align, int) or self.align < 1:
                raise ValueError(f"align={self.align!r} must be an integer >= 1 (channels)")

    def __init__(self, params=None):
        super().__init__(params)
        self._unaligned: list[int] = []

    def round_mlp_widths(self, keep_mlp: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, int]:
        width, align = keep_mlp.shape[1], self.params.align
        if align > width:
            raise ValueError(f"align={align}: larger than the model's MLP width {width}; allowed: 1 to {width}")
        counts = [int(c) for c in keep_mlp.sum(1)]
        widths = aligned_counts(counts, width, align)
        out = torch.zeros_like(keep_mlp)
        for i, w in enumerate(widths):
            top = torch.sort(scores[i], descending=True, stable=True).indices[:w]
            out[i, top] = True
        self._unaligned = counts
        return out, abs(sum(counts) - sum(widths))

    def record(self) -> dict:
        return {**super().record(), "align": self.params.align, "kept_mlp_channels_unaligned": self._unaligned}
