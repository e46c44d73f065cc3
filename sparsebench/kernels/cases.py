"""One kernel case = a sparse kernel and its dense twin on one shape at one density.

A builder turns a :class:`Case` into a :class:`Bench`: the two callables (each
takes the index of the input copy to use), how many copies rotate, the work
each does (FLOPs counting only non-zero products for the sparse one; bytes of
the stored formats), the ideal speed-up for the density, and the sparse
kernel's error against a float32 dense reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from sparsebench.kernels.timing import Kernel


@dataclass(frozen=True)
class Case:
    op: str  # a key of OPS
    model: str
    layer: str
    out_features: int  # attention: heads * head_dim
    in_features: int
    tokens: int  # attention: sequence length
    density: float  # fraction of weights (activations, attention blocks) kept
    block: int = 0

    @property
    def id(self) -> str:
        blk = f"/b{self.block}" if self.block else ""
        return f"{self.op}/{self.model}.{self.layer}/t{self.tokens}/d{self.density:g}{blk}"

    @property
    def phase(self) -> str:
        return "decode" if self.tokens <= 16 else "prefill"


@dataclass
class Bench:
    dense: Kernel
    sparse: Kernel
    copies: int
    flops_dense: float
    flops_sparse: float
    bytes_dense: float
    bytes_sparse: float
    ideal_speedup: float
    rel_error: float
    graph: bool = True  # False: the sparse kernel syncs the host (cannot be captured)
    min_calls: int = 0  # calls per timed pass (0: timing.CALLS_PER_PASS); kernels of milliseconds need few
    info: dict = field(default_factory=dict)
    dense_triton: Kernel | None = None  # GEMVs: our Triton dense GEMV, a second dense reference beside cuBLAS


@dataclass(frozen=True)
class Op:
    build: Callable  # (case, env) -> Bench
    needs_cuda: bool
    description: str
    backend: str  # what the sparse kernel runs on; a profile runs the op only if it lists this backend
    dense_backend: str = "dense"  # ... and its dense twin's (``F.linear``: cuBLAS / MKL / oneDNN)


@dataclass
class Env:
    device: str
    dtype: torch.dtype
    rotate_mb: float
    generator: torch.Generator  # on the CPU: masks and choices
    device_generator: torch.Generator | None = None  # on the device: the (many, large) random tensors


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    err = float((out - ref).norm() / ref.norm().clamp_min(1e-30))
    return err if out.isfinite().all() else float("nan")


def random_normal(shape, env: Env, scale: float = 1.0) -> torch.Tensor:
    gen = env.device_generator or env.generator
    t = torch.randn(*shape, generator=gen, device=gen.device, dtype=torch.float32) * scale
    return t.to(env.device, env.dtype)


def keep_fraction(shape, density: float, env: Env) -> torch.Tensor:
    """A boolean mask keeping exactly round(density * numel) random entries."""
    numel = int(torch.Size(shape).numel())
    k = max(1, round(density * numel))
    scores = torch.rand(numel, generator=env.generator)
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[scores.topk(k).indices] = True
    return mask.reshape(shape).to(env.device)


def mask_2_4(out_f: int, in_f: int, env: Env) -> torch.Tensor:
    """Keep 2 random positions of every group of 4 along the input dimension."""
    scores = torch.rand(out_f, in_f // 4, 4, generator=env.generator)
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep.scatter_(-1, scores.topk(2, dim=-1).indices, True)
    return keep.reshape(out_f, in_f).to(env.device)


def mask_blocks(out_f: int, in_f: int, block: int, density: float, env: Env) -> torch.Tensor:
    tiles = keep_fraction((out_f // block, in_f // block), density, env)
    return tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)


def ops() -> dict[str, Op]:
    from sparsebench.kernels import attention_cases, linear_cases

    return {**linear_cases.OPS, **attention_cases.OPS}
