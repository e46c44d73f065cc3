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

Uniform gives every layer the same sparsity except the input stem, which the
RigL paper keeps dense ("sparsifying this layer has a disproportional effect on
the performance and almost no effect on the total size"; its code leaves the
first layer unmasked, ``first_layer_sparsity=0``, and prunes the classifier at
the default sparsity). The reference networks have one stem convolution; timm's
"deep" ResNet stem replaces it with three, so the stem here is every layer of
the module timm names as the model's first convolution
(``pretrained_cfg["first_conv"]``; :func:`stem_layers`), all kept dense at every
budget. Here the other layers take up the stem's share so the global budget stays
exact (the reference code instead leaves the model slightly below the target).
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


def stem_layers(model, names) -> tuple[str, ...]:
    """The layers of the model's input stem: those in the module timm names ``first_conv``.

    Without that metadata (a model not built by timm), the first layer alone.
    """
    names = list(names)
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    stem = tuple(n for n in names if first and (n == first or n.startswith(first + ".")))
    return stem or tuple(names[:1])


def uniform_densities(shapes: dict[str, tuple[int, ...]], sparsity: float,
                      dense: tuple[str, ...] | None = None) -> dict[str, float]:
    """The same density in every layer except ``dense`` (default: the first layer), kept whole."""
    numels = {k: math.prod(s) for k, s in shapes.items()}
    names = list(shapes)
    budget = total_keep(numels, sparsity)
    dense = tuple(names[:1]) if dense is None else tuple(dense)
    unknown = [k for k in dense if k not in shapes]
    if unknown:
        raise ValueError(f"dense layers {unknown} are not among the layers {names}")
    if len(dense) == len(names):
        return {k: 1.0 - sparsity for k in names}
    fixed = sum(numels[k] for k in dense)
    if budget < fixed:
        raise ValueError(f"sparsity={sparsity}: a budget of {budget} weights cannot keep the stem layers "
                         f"{list(dense)} ({fixed} weights) dense; use a lower sparsity")
    d = (budget - fixed) / (sum(numels.values()) - fixed)
    return {k: (1.0 if k in dense else d) for k in names}


def layer_budget(shapes: dict[str, tuple[int, ...]], sparsity: float, kind: str = "erk",
                 dense: tuple[str, ...] | None = None, erk_power: float = 1.0) -> dict[str, int]:
    """Exact kept counts per layer for ``kind`` in {'erk', 'uniform'}, summing to the global budget.

    ``dense``: the layers uniform keeps whole (default: the first layer); ERK ignores it.
    """
    numels = {k: math.prod(s) for k, s in shapes.items()}
    if kind == "erk":
        dens = erk_densities(shapes, sparsity, erk_power)
    elif kind == "uniform":
        dens = uniform_densities(shapes, sparsity, dense)
    else:
        raise ValueError(f"distribution={kind!r}; allowed: 'erk', 'uniform'")
    return apportion(dens, numels, total_keep(numels, sparsity))
