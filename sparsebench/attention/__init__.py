"""Sparse attention: budgets, the reference executor, and the hook into transformers' attention registry."""

from sparsebench.attention.budget import Budget, check_density, density_of
from sparsebench.attention.executor import MaskStats, causal_keep, dense_attention, masked_attention
from sparsebench.attention.interface import SparseAttention, attention_forward, register

__all__ = ["Budget", "MaskStats", "SparseAttention", "attention_forward", "causal_keep", "check_density",
           "dense_attention", "density_of", "masked_attention", "register"]
