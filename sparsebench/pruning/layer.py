"""What a pruning method sees of one linear layer (shared by the contract and the engine)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerToPrune:
    """One linear layer as a method sees it.

    ``weight`` is the layer's live weight tensor (out x in); a method that
    updates weights (SparseGPT) writes into it. ``inputs`` holds calibration
    statistics of the layer's inputs when the method asks for them.
    """

    name: str
    weight: torch.Tensor
    generator: torch.Generator
    inputs: object | None = None
