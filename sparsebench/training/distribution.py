"""How a global sparsity budget is split over layers: uniform or Erdos-Renyi-Kernel (ERK).

Both return exact kept counts per layer whose sum is the global budget
``N - round(S * N)`` (the same rounding as ``sparsebench.masks.mask_from_scores``),
so every method compared at sparsity S has exactly the same number of weights.

ERK follows "Rigging the Lottery: Making All Tickets Winners" (Evci et al. 2020,
arXiv:1911.11134, Sec. 3 and its public code ``sparse_utils.get_sparsities``):
the density of layer l is ``eps * (sum of its dims / product of its dims) ** power``
(for a conv: (n_in + n_out + w + h) / (n_in * n_out * w * h), for a linear layer the
Erdos-Renyi (n_in + n_out) / (n_in * n_out)), with ``eps`` chosen so the total
matches the budget. A layer whose density would exceed 1 is made dense and ``eps``
is solved again for the others (the layer with the largest raw density first,
as the paper's code does), so its budget is redistributed to the sparse layers.

Uniform gives every layer the same sparsity except the first layer, which the
RigL paper keeps dense ("sparsifying this layer has a disproportional effect on
the performance and almost no effect on the total size"); here the other layers
take up its share so the global budget stays exact.
"""

from __future__ import annotations

import math


def total_keep(numels: dict[str, int], sparsity: float) -> int:
    n = sum(numels.values())
    return n - round(sparsity * n)


def apportion(densities: dict[str, float], numels: dict[str, int], budget: int) -> dict[str, int]:
    """Integer kept counts close to ``density * numel`` summing exactly to ``budget``.

    Largest-remainder rounding, ties broken by layer order, each count in [0, numel].
    """
    names = list(numels)
    raw = {k: min(max(densities[k], 0.0), 1.0) * numels[k] for k in names}
    keep = {k: min(int(math.floor(v)), numels[k]) for k, v in raw.items()}
    # Largest remainders first; a full layer takes nothing more.
    order = sorted(names, key=lambda k: (-(raw[k] - keep[k]), names.index(k)))
    while sum(keep.values()) < budget:
        open_ = [k for k in order if keep[k] < numels[k]]
        if not open_:
            raise ValueError(f"cannot place {budget} weights in layers of sizes {numels}")
        for k in open_[: budget - sum(keep.values())]:
            keep[k] += 1
    while sum(keep.values()) > budget:  # only if densities overshoot the budget
        k = max((k for k in names if keep[k] > 0), key=lambda k: keep[k] - raw[k])
        keep[k] -= 1
    return keep


def erk_densities(shapes: dict[str, tuple[int, ...]], sparsity: float, power: float = 1.0) -> dict[str, float]:
    """Per-layer densities of the ERK distribution (RigL's formula, dense-ish layers made dense)."""
    numels = {k: math.prod(s) for k, s in shapes.items()}
    budget = total_keep(numels, sparsity)
    raw = {k: (sum(s) / math.prod(s)) ** power for k, s in shapes.items()}
    dense: set[str] = set()
    while True:
        sparse = [k for k in shapes if k not in dense]
        if not sparse:
            return {k: 1.0 for k in shapes}
        rhs = budget - sum(numels[k] for k in dense)
        eps = rhs / sum(raw[k] * numels[k] for k in sparse)
        top = max(raw[k] for k in sparse)
        if eps * top <= 1.0:
            return {k: (1.0 if k in dense else eps * raw[k]) for k in shapes}
        dense.update(k for k in sparse if raw[k] == top)


def uniform_densities(shapes: dict[str, tuple[int, ...]], sparsity: float, dense_first: bool = True) -> dict[str, float]:
    numels = {k: math.prod(s) for k, s in shapes.items()}
    names = list(shapes)
    budget = total_keep(numels, sparsity)
    if not dense_first or len(names) == 1:
        return {k: 1.0 - sparsity for k in names}
    first = names[0]
    rest = sum(numels.values()) - numels[first]
    if budget < numels[first]:
        raise ValueError(f"budget of {budget} weights cannot keep the first layer ({numels[first]}) dense")
    d = (budget - numels[first]) / rest
    return {k: (1.0 if k == first else d) for k in names}


def layer_budget(shapes: dict[str, tuple[int, ...]], sparsity: float, kind: str = "erk",
                 dense_first: bool = True, erk_power: float = 1.0) -> dict[str, int]:
    """Exact kept counts per layer for ``kind`` in {'erk', 'uniform'}, summing to the global budget."""
    numels = {k: math.prod(s) for k, s in shapes.items()}
    if kind == "erk":
        dens = erk_densities(shapes, sparsity, erk_power)
    elif kind == "uniform":
        dens = uniform_densities(shapes, sparsity, dense_first)
    else:
        raise ValueError(f"distribution={kind!r}; allowed: 'erk', 'uniform'")
    return apportion(dens, numels, total_keep(numels, sparsity))
