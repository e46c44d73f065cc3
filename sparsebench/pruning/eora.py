"""EoRA: a low-rank term that compensates a pruned layer, fitted in the eigenspace of its inputs.

Liu, Khadkevich, Fung, Sakr, Yang, Wang, Muralidharan, Yin, Cheng, Kautz, Wang,
Molchanov, Chen 2024, "EoRA: Training-free Compensation for Compressed LLM with
Eigenspace Low-Rank Approximation" (arXiv:2410.21271). For a layer with dense
weight W and compressed weight W_c, the error is dW = W - W_c. With the
calibration inputs' covariance X X^T = Q Lambda Q^T, the error is projected into
that eigenspace, dW' = dW Q Lambda^(1/2), truncated by SVD to rank r,
dW' ~ U_r S_r V_r^T, and mapped back:

    B = U_r S_r^(1/2)                                    (out x r)
    A = S_r^(1/2) V_r^T Lambda^(-1/2) Q^T                (r x in)

so the layer computes W_c x + B A x. Because ||(dW - B A) X||_F equals
||(dW - B A) Q Lambda^(1/2)||_F, the truncated SVD in the eigenspace is the best
rank-r fix in the activation-weighted norm (Eckart-Young), which a plain SVD of
dW (:func:`plain_svd_factors`, the paper's "SVD" baseline) is not.

As the authors' code: the covariance is taken in float64; eigenvalues below zero
(rounding) are raised to the smallest positive one. Ours also raises exact zeros
(inputs that never fire), whose inverse square root would be infinite; the
compensation then leaves those directions alone (their error weight is ~0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize


@dataclass
class LowRank:
    """``B A`` with B (out x rank) and A (rank x in), and the layer's activation-weighted squared error
    ``||dW X||_F^2`` before and ``||(dW - B A) X||_F^2`` after (over the calibration tokens)."""

    A: torch.Tensor
    B: torch.Tensor
    error_before: float
    error_after: float

    @property
    def parameters(self) -> int:
        return self.A.numel() + self.B.numel()

    def summary(self) -> dict:
        return {"rank": self.A.shape[0], "parameters": self.parameters,
                "error_before": self.error_before, "error_after": self.error_after}


def eigenspace(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, sqrt(Lambda)) of the input covariance, eigenvalues <= 0 raised to the smallest positive one."""
    L, Q = torch.linalg.eigh(gram.double())
    positive = L[L > 0]
    if positive.numel() == 0:
        raise ValueError("EoRA: the calibration inputs of this layer are all zero (no eigenspace to fit in)")
    L = torch.where(L > 0, L, positive.min())
    return Q, L.sqrt()


def eora_factors(delta: torch.Tensor, gram: torch.Tensor, rank: int,
                 space: tuple[torch.Tensor, torch.Tensor] | None = None) -> LowRank:
    """EoRA's rank-``rank`` compensation of the error ``delta`` = W - W_c, for inputs with Gram matrix
    ``gram`` = sum over tokens of x x^T (any positive scale: it cancels); ``space``: its
    :func:`eigenspace`, when already computed for another layer fed by the same inputs."""
    if rank < 0:
        raise ValueError(f"eora_rank={rank} must be >= 0")
    Q, sqrt_l = space if space is not None else eigenspace(gram)
    projected = delta.double() @ (Q * sqrt_l)  # dW Q Lambda^(1/2)
    U, S, Vh = torch.linalg.svd(projected, full_matrices=False)
    r = min(rank, S.numel())
    root = S[:r].sqrt()
    B = U[:, :r] * root
    A = (root.unsqueeze(1) * Vh[:r]) / sqrt_l @ Q.T  # S^(1/2) V^T Lambda^(-1/2) Q^T
    total = float(S.square().sum())
    return LowRank(A.float(), B.float(), total, float(S[r:].square().sum()))


def plain_svd_factors(delta: torch.Tensor, gram: torch.Tensor, rank: int) -> LowRank:
    """The baseline EoRA compares against: truncated SVD of ``delta`` itself, blind to the inputs (the errors
    are still measured in the activation-weighted norm, on ``gram``)."""
    U, S, Vh = torch.linalg.svd(delta.double(), full_matrices=False)
    r = min(rank, S.numel())
    B, A = U[:, :r] * S[:r].sqrt(), S[:r].sqrt().unsqueeze(1) * Vh[:r]
    return LowRank(A.float(), B.float(), weighted_error(delta, gram), weighted_error(delta - B @ A, gram))


def weighted_error(delta: torch.Tensor, gram: torch.Tensor) -> float:
    """``||delta X||_F^2`` = trace(delta (X X^T) delta^T)."""
    d = delta.double()
    return float(((d @ gram.double()) * d).sum())


def _add_low_rank(module: nn.Module, args, out):
    x = args[0]
    return out + nn.functional.linear(nn.functional.linear(x, module.eora_A), module.eora_B)


def attach(module: nn.Linear, low_rank: LowRank) -> None:
    """Add ``B A x`` to the layer's output (buffers ``eora_A``/``eora_B`` in the weight's dtype, so they move
    with the layer; the pruned weight and its mask stay as they are)."""
    if hasattr(module, "eora_A"):
        raise ValueError(f"{module}: already has an EoRA compensation")
    w = module.weight
    module.register_buffer("eora_A", low_rank.A.to(w.device, w.dtype))
    module.register_buffer("eora_B", low_rank.B.to(w.device, w.dtype))
    module.register_forward_hook(_add_low_rank)


def effective_weight(module: nn.Linear) -> torch.Tensor:
    """The weight the layer multiplies by (masked, if a mask parametrization is on it)."""
    return module.weight if parametrize.is_parametrized(module, "weight") else module.weight.data
