"""The layer shapes the kernel suite times: the task model's (SmolLM2-135M) and LLaMA-sized ones.

A linear layer is ``y = x W^T`` with ``W`` of shape (out_features, in_features);
``tokens`` rows of ``x`` at a time: 1-16 for decode, hundreds to thousands for prefill.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearShape:
    model: str
    layer: str
    out_features: int
    in_features: int


@dataclass(frozen=True)
class AttentionShape:
    model: str
    heads: int
    kv_heads: int
    head_dim: int


def _linears(model: str, hidden: int, intermediate: int, kv_dim: int) -> dict[str, LinearShape]:
    """The distinct shapes of a llama block (q and o share one; gate and up share one)."""
    return {
        "q_proj": LinearShape(model, "q_proj", hidden, hidden),
        "k_proj": LinearShape(model, "k_proj", kv_dim, hidden),
        "up_proj": LinearShape(model, "up_proj", intermediate, hidden),
        "down_proj": LinearShape(model, "down_proj", hidden, intermediate),
    }


# SmolLM2-135M: hidden 576, intermediate 1536, 9 heads / 3 kv heads of 64.
SMOLLM2 = _linears("smollm2-135m", 576, 1536, 192)
# LLaMA-2-7B: hidden 4096, intermediate 11008, 32 heads of 128 (no GQA).
LLAMA7B = _linears("llama-7b", 4096, 11008, 4096)
# LLaMA-3-8B: hidden 4096, intermediate 14336, 32 heads / 8 kv heads of 128.
LLAMA8B = _linears("llama3-8b", 4096, 14336, 1024)

ATTENTION = {
    "smollm2-135m": AttentionShape("smollm2-135m", 9, 3, 64),
    "llama-7b": AttentionShape("llama-7b", 32, 32, 128),
}

PREFILL_TOKENS = {"smollm2-135m": 512, "llama-7b": 2048, "llama3-8b": 2048}
