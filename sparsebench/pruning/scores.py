"""Importance scores that several pruning methods share (one definition, imported by the method files).

- :func:`wanda_scores`: Wanda's |W_ij| * ||X_j||_2 (Sun et al. 2023, arXiv:2306.11695), also the
  starting mask of DSnoT and the outlier statistic of OWL.
"""

from __future__ import annotations

import torch


def wanda_scores(weight: torch.Tensor, norm_sq: torch.Tensor) -> torch.Tensor:
    """S = |W| * ||X_j||_2, broadcast over the output rows (``norm_sq`` is ||X_j||_2^2 per input)."""
    return weight.abs().float() * norm_sq.float().sqrt().reshape(1, -1)
