"""Calibration statistics of a linear layer's inputs, gathered with one forward of its block.

:class:`LayerInputs` holds what the pruning methods read (Wanda's ``||X_j||^2``,
SparseGPT's Gram matrix, DSnoT's moments); :func:`collect_layer_inputs` fills it
for every linear of a block; :func:`dense_layer_inputs` does so for the whole
dense model (the statistics OWL's and FLAP's plans read).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sparsebench.lm.blocks import on_device, run_block
from sparsebench.lm.task import tokens_sha256


@dataclass
class LayerInputs:
    """Statistics of one linear layer's inputs ``x`` (rows of X) over the calibration tokens.

    ``sq_sum`` is ``sum x_j^2`` (Wanda's ``||X_j||_2^2``), always collected;
    ``gram`` is ``sum x x^T`` (SparseGPT's Hessian up to a factor 2/N), only
    ``with_gram``; ``sum`` (``sum x_j``) and ``within_window_var_sum`` (over
    windows, the variance of ``x_j`` inside each window: DSnoT's running
    variance averages per-sample variances) only ``with_moments``. Collecting
    only what the method reads keeps calibration cheap: these reductions over
    16 k tokens cost as much as the block's forward.
    """

    columns: int
    tokens: int = 0
    windows: int = 0
    sum: torch.Tensor | None = None
    sq_sum: torch.Tensor | None = None
    within_window_var_sum: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    with_gram: bool = True
    with_moments: bool = True
    device: torch.device | str = "cpu"

    def __post_init__(self):
        z = torch.zeros(self.columns, dtype=torch.float64, device=self.device)
        self.sq_sum = z.clone()
        if self.with_moments:
            self.sum, self.within_window_var_sum = z.clone(), z.clone()
        if self.with_gram:
            self.gram = torch.zeros(self.columns, self.columns, dtype=torch.float32, device=self.device)

    def add(self, x: torch.Tensor) -> None:
        """Add a batch ``x`` of shape (windows, tokens, columns)."""
        x = x.detach()
        if x.dim() == 2:
            x = x.unsqueeze(0)
        self.windows += x.shape[0]
        self.tokens += x.shape[0] * x.shape[1]
        self.sq_sum += column_sq_sum(x.reshape(-1, x.shape[-1]))
        if not (self.with_moments or self.with_gram):
            return  # Wanda's statistics: no float32 copy of the batch at all
        x = x.float()
        flat = x.reshape(-1, x.shape[-1])
        if self.with_moments:
            self.sum += flat.sum(0, dtype=torch.float64)
            self.within_window_var_sum += x.var(dim=1, unbiased=False).double().sum(0)
        if self.with_gram:
            self.gram.addmm_(flat.T, flat)

    def _moments(self, what: str) -> None:
        if not self.with_moments:
            raise ValueError(f"{what} was not collected (the method set needs_input_moments = False)")

    @property
    def mean(self) -> torch.Tensor:
        self._moments("the mean")
        return (self.sum / max(self.tokens, 1)).float()

    @property
    def norm_sq(self) -> torch.Tensor:
        """``||X_j||_2^2`` per input feature (Wanda's activation norm squared)."""
        return self.sq_sum.float()

    @property
    def window_sum_mean(self) -> torch.Tensor:
        """Sum of ``x_j`` over a window's tokens, averaged over windows (DSnoT's ``sum_metric_row``)."""
        self._moments("the window sum")
        return (self.sum / max(self.windows, 1)).float()

    @property
    def variance(self) -> torch.Tensor:
        """Variance of ``x_j`` inside a window, averaged over windows (DSnoT's ``var``)."""
        self._moments("the variance")
        return (self.within_window_var_sum / max(self.windows, 1)).float()

    def inverse_hessian_cholesky(self, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Upper Cholesky factor U of (H + lambda I)^-1 with H = X X^T, lambda = percdamp * mean diag(H)
        (as SparseGPT), and the mask of dead inputs (never non-zero: zero diagonal, set to 1 here)."""
        if self.gram is None:
            raise ValueError("the Gram matrix X X^T was not collected (the method set needs_gram = False)")
        # float64 throughout; each intermediate is freed as soon as the next exists, so at most two
        # float64 copies of a (columns x columns) matrix are alive (the device peak of a 7B down_proj)
        H = self.gram.double()
        dead = torch.diag(H) == 0
        H[dead, dead] = 1.0
        H.diagonal().add_(percdamp * torch.mean(torch.diag(H)))
        L = torch.linalg.cholesky(H)
        del H
        Hinv = torch.cholesky_inverse(L)
        del L
        U = torch.linalg.cholesky(Hinv, upper=True)
        del Hinv
        return U.float(), dead


def column_sq_sum(flat: torch.Tensor) -> torch.Tensor:
    """``sum_rows x_j^2`` per column of one batch (tokens x columns), float64.

    On CUDA a float16/bfloat16 batch reduces into float32 without a float32 (or float64) copy of it: the
    column norms ``||X_j||_2`` in float32 as the authors' Wanda computes them (``torch.norm`` of the input
    cast to float32), squared. That copy was 1 GiB at a 7B down_proj's 4 x 2048 x 11008 batch and the
    statistics pass's main cost. Elsewhere (CPU): float32 squares summed in float64, as every CPU result so
    far was computed."""
    if flat.is_cuda and flat.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.vector_norm(flat, 2, dim=0, dtype=torch.float32).square().double()
    return flat.float().square().sum(0, dtype=torch.float64)


def collect_layer_inputs(block: nn.Module, linears: dict[str, nn.Module], inputs, kwargs,
                         with_gram: bool, with_moments: bool = True,
                         device: torch.device | None = None) -> dict[str, LayerInputs]:
    """One forward of ``block``; hooks record the statistics of every linear's input.

    Linears fed by the same tensor (q/k/v, gate/up) share one :class:`LayerInputs`
    (the same object in the returned dict): their inputs are identical, so are
    the statistics, and they are computed once.
    """
    shared_with: dict[str, str] = {}  # linear -> the linear whose statistics it shares
    stats: dict[str, LayerInputs] = {}
    seen: dict[int, tuple[torch.Tensor, str]] = {}  # this batch's input tensors -> first linear fed by it

    def hook_for(name):
        def hook(_module, args, _out):
            x = args[0]
            hit = seen.get(id(x))
            if hit is not None and hit[0] is x:
                shared_with.setdefault(name, hit[1])
                return
            seen[id(x)] = (x, name)
            owner = shared_with.setdefault(name, name)
            if owner != name:
                return
            if name not in stats:
                stats[name] = LayerInputs(linears[name].in_features, with_gram=with_gram,
                                          with_moments=with_moments, device=linears[name].weight.device)
            stats[name].add(x)

        return hook

    handles = [mod.register_forward_hook(hook_for(name)) for name, mod in linears.items()]
    try:
        for hidden, kw in zip(inputs, kwargs):
            seen.clear()
            block(on_device(hidden, device), **kw)
    finally:
        for h in handles:
            h.remove()
        seen.clear()
    return {name: stats[shared_with[name]] for name in linears}


def calibration_record(ids: torch.Tensor, seed: int) -> dict:
    return {
        "windows": int(ids.shape[0]),
        "window": int(ids.shape[1]),
        "tokens": int(ids.numel()),
        "seed": int(seed),
        "tokens_sha256": tokens_sha256(ids),
    }


def activations_home(model: nn.Module, ids: torch.Tensor, device: torch.device) -> torch.device:
    """Where the calibration activations live: on the device when a block's inputs and outputs (two sets)
    fit in half its free memory, else on the host (moved over one batch at a time)."""
    if device.type != "cuda":
        return device
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    if hidden is None:
        return device
    dtype = module_device_dtype(model)
    need = 2 * ids.numel() * hidden * torch.finfo(dtype).bits // 8
    free, _ = torch.cuda.mem_get_info(device)
    return device if need < 0.5 * free else torch.device("cpu")


def module_device_dtype(model: nn.Module) -> torch.dtype:
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return (emb.weight if emb is not None else next(model.parameters())).dtype


@torch.no_grad()
def dense_layer_inputs(blocks, linears_of, inputs, kwargs_of, with_moments: bool = False, offload: bool = False,
                       device: torch.device | None = None, on: torch.device | None = None,
                       consume: bool = False) -> dict[str, LayerInputs]:
    """``||X_j||^2`` (and the mean and variance ``with_moments``) of every linear's input with the model
    still dense: each block runs on the dense outputs of the block before it (the statistics a per-layer
    plan such as OWL's, or a structured plan such as FLAP's, reads). ``kwargs_of[i]``: block i's keyword
    arguments per batch (:func:`sparsebench.lm.blocks.block_kwargs`). ``consume``: the caller needs
    ``inputs`` no more (each block's inputs are dropped as its outputs appear; the later blocks' always are)."""
    stats: dict[str, LayerInputs] = {}
    for i, (block, kwargs) in enumerate(zip(blocks, kwargs_of)):
        if offload:
            block.to(device)
        stats.update(collect_layer_inputs(block, linears_of(block), inputs, kwargs, with_gram=False,
                                          with_moments=with_moments, device=on))
        inputs = run_block(block, inputs, kwargs, on, consume=consume or i > 0)
        if offload:
            block.to(torch.device("cpu"))
    return stats
