"""The core of activation sparsity: where it acts, how thresholds are calibrated, applied and measured."""

from sparsebench.activation.calibration import MagnitudeHistogram, calibration_pass
from sparsebench.activation.hooks import ActivationSparsifier, sparsify
from sparsebench.activation.sites import KINDS, Block, llama_blocks

__all__ = ["KINDS", "ActivationSparsifier", "Block", "MagnitudeHistogram", "calibration_pass", "llama_blocks",
           "sparsify"]
