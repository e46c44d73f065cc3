"""Attention budgets: how a target maps to a density, and how a density becomes keys per query.

A sparse-attention target is a *density*: the fraction of the causal
query-key pairs a method may keep. In the config it is written as a
``Target`` whose sparsity is ``1 - density`` (density 1/4 is
``{sparsity: 0.75}``). The pattern says the granularity: ``unstructured``
(each method's own granularity) or ``block:B`` (key blocks of B tokens for the
block methods).

Every method gets the same per-row allowance: row ``i`` (a query at absolute
position ``i``, which sees ``i + 1`` causal keys) may keep ``density * (i + 1)``
pairs. Allowances are rounded *cumulatively* over the rows, so the total is the
exact target up to one pair (one block, for block methods) whatever the
sequence length; methods that keep fixed shapes (a sliding window) instead
solve for the shape that meets the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.errors import ConfigError
from sparsebench.targets import Target

PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class Budget:
    """What a method may keep for one call of the attention function.

    ``q0``: absolute position of the first sparse query row; rows run
    ``q0 .. q0 + rows - 1`` and see keys ``0 .. q0 + rows - 1``.
    ``phase``: "prefill" (query blocks of ``query_block`` rows share their keys,
    as in block-sparse prefill kernels) or "decode" (every row picks its own).
    """

    density: float
    phase: str
    q0: int
    rows: int
    query_block: int = 64
    kv_heads: int = 0  # key/value heads before GQA expansion (0: as many as query heads)

    def __post_init__(self):
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density={self.density} is outside (0, 1]")
        if self.phase not in PHASES:
            raise ValueError(f"phase={self.phase!r}; allowed: {PHASES}")

    @property
    def keys(self) -> int:
        return self.q0 + self.rows

    @property
    def row_block(self) -> int:
        """Rows that share one key selection: a query block in prefill, one row in decode."""
        return self.query_block if self.phase == "prefill" else 1

    def causal_per_row(self) -> torch.Tensor:
        return torch.arange(self.q0 + 1, self.q0 + self.rows + 1, dtype=torch.float64)

    def causal_pairs(self) -> int:
        return int(self.causal_per_row().sum().item())

    def pairs_per_row(self) -> torch.Tensor:
        """Integer allowance per row (>= 1: a query always sees itself), summing to density x causal pairs."""
        cum = torch.floor(self.density * torch.cumsum(self.causal_per_row(), 0) + 0.5)
        per = torch.diff(cum, prepend=torch.zeros(1, dtype=torch.float64))
        return per.clamp(min=1).to(torch.long)


def density_of(target: Target, where: str = "target") -> float:
    """The density a target asks for; block patterns must have a positive block size."""
    if target.pattern.kind not in ("unstructured", "block"):
        raise ConfigError(
            f"{where}.pattern={str(target.pattern)!r}: sparse attention takes 'unstructured' or 'block:B' "
            "(sparsity = 1 - density of the causal query-key pairs)"
        )
    return 1.0 - target.sparsity


def units_per_row(pairs: torch.Tensor, first: torch.Tensor, unit, available: torch.Tensor) -> torch.Tensor:
    """How many selection units (key blocks) each row group keeps so kept pairs track ``pairs`` cumulatively.

    ``pairs[r]``: allowance of row group r; ``first[r]``: pairs of the region it
    always keeps (its diagonal tile, its window); every further unit costs
    ``unit[r]`` pairs; ``available[r]``: units it can choose from. Returns the
    number of units besides the region. What a group cannot spend (too few
    earlier blocks) or overspends (its region alone exceeds its allowance) is
    carried to the next groups, so the total stays on target.
    """
    unit = torch.as_tensor(unit, dtype=torch.float64).expand(pairs.shape).tolist()
    out, carry = [], 0.0
    for p, f, u, a in zip(pairs.double().tolist(), first.double().tolist(), unit, available.tolist()):
        want = p - f + carry
        n = int(min(max(round(want / u), 0), a))
        carry = want - n * u
        out.append(n)
    return torch.tensor(out, dtype=torch.long)


def check_density(measured: float, target: float, tolerance: float, where: str) -> None:
    """Fail loudly when a method's measured density misses its budget by more than its rounding."""
    if abs(measured - target) > tolerance:
        raise RuntimeError(
            f"{where}: measured attention density {measured:.4f} misses the target {target:.4f} "
            f"by more than {tolerance:.4f}"
        )
