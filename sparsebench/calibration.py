"""Sequential layer-by-layer calibration for one-shot LLM pruning.

This is the pipeline of the reference implementations (SparseGPT, Wanda,
DSnoT): the calibration windows are embedded once, then the decoder blocks are
processed in order. For block ``i``:

1. run the block on its calibration inputs with a hook on every ``nn.Linear``
   that accumulates the layer's input statistics (:class:`LayerInputs`) -- one
   forward of the block, shared by all its linears;
2. ask the method for a keep-mask per linear (SparseGPT also rewrites the
   weight in place) and apply the masks;
3. run the *pruned* block again on the same inputs; its outputs are the inputs
   of block ``i + 1``.

So block ``i`` is calibrated on what the already pruned blocks ``< i`` produce,
and the calibration activations are computed once per job, not once per layer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from sparsebench.lm.task import tokens_sha256
from sparsebench.masks import apply_mask, check_plan, get_mask
from sparsebench.placement import module_device, streamed
from sparsebench.progress import progress
from sparsebench.pruning.layer import LayerToPrune


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
        x = x.detach().float()
        if x.dim() == 2:
            x = x.unsqueeze(0)
        flat = x.reshape(-1, x.shape[-1])
        self.windows += x.shape[0]
        self.tokens += flat.shape[0]
        # float32 squares summed per batch (<= a few thousand terms), accumulated across batches in float64
        self.sq_sum += flat.square().sum(0, dtype=torch.float64)
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


class _StopForward(Exception):
    """Raised by the capture hook on block 0: nothing after it needs to run."""


def capture_block_inputs(model: nn.Module, block: nn.Module, ids: torch.Tensor, batch_size: int,
                         keep_on: torch.device | None = None):
    """Hidden states entering ``block`` for each batch of ``ids`` (kept on ``keep_on``, default where the
    model computes them), and the keyword arguments (attention mask, position ids, rotary (cos, sin), ...)
    the model passes it."""
    inputs: list[torch.Tensor] = []
    kwargs: list[dict] = []

    def hook(_module, args, kw):
        hidden = args[0] if args else kw.pop("hidden_states")
        inputs.append(hidden.detach() if keep_on is None else hidden.detach().to(keep_on))
        kwargs.append({k: v for k, v in kw.items() if k not in ("past_key_values", "past_key_value", "use_cache")})
        raise _StopForward

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    device = module_device(model)
    try:
        for start in range(0, ids.shape[0], batch_size):
            try:
                model(ids[start : start + batch_size].to(device), use_cache=False)
            except _StopForward:
                pass
    finally:
        handle.remove()
    return inputs, kwargs


class _KwargsRecorder(nn.Module):
    """Stands in for a decoder block while the model's loop hands it its keyword arguments; passes the
    hidden states through untouched (nothing is computed) and stops the forward after the last block."""

    def __init__(self, block: nn.Module, record: list, last: bool):
        super().__init__()
        self.record, self.last = record, last
        if hasattr(block, "attention_type"):  # some loops read the block's own kind
            self.attention_type = block.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        self.record.append({k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value",
                                                                            "use_cache", "cache")})
        if self.last:
            raise _StopForward
        return hidden_states


def block_kwargs(model: nn.Module, blocks: nn.ModuleList, ids: torch.Tensor, batch_size: int, shared: list):
    """Each block's keyword arguments per batch: ``shared`` (block 0's) for every block, unless the model
    mixes layer kinds (``config.layer_types``: Gemma 3's sliding-window and global layers get different
    masks and rotary tables), where each block's own are recorded by a forward through stand-ins."""
    types = getattr(getattr(model, "config", None), "layer_types", None)
    if not types or len(set(types)) < 2:
        return [shared] * len(blocks)
    records = [[] for _ in blocks]
    originals = list(blocks)
    device = module_device(model)
    try:
        for i, block in enumerate(originals):
            blocks[i] = _KwargsRecorder(block, records[i], i == len(originals) - 1)
        for start in range(0, ids.shape[0], batch_size):
            try:
                model(ids[start : start + batch_size].to(device), use_cache=False)
            except _StopForward:
                pass
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
    return records


def run_block(block: nn.Module, inputs: list[torch.Tensor], kwargs: list[dict],
              device: torch.device | None = None) -> list[torch.Tensor]:
    """The block's outputs for each batch; with ``device``, inputs held elsewhere (offloaded to the host)
    are computed there one batch at a time and the outputs go back where the inputs were."""
    outs = []
    for hidden, kw in zip(inputs, kwargs):
        out = block(_on(hidden, device), **kw)
        out = out[0] if isinstance(out, tuple) else out
        outs.append(out.to(hidden.device) if out.device != hidden.device else out)
    return outs


def _on(x: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return x if device is None or x.device == device else x.to(device, non_blocking=True)


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
            block(_on(hidden, device), **kw)
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


@contextlib.contextmanager
def one_thread(device: torch.device = torch.device("cpu")):
    """Per-layer pruning is a long series of small tensor ops (SparseGPT's column walk, DSnoT's swaps):
    on CPU, thread synchronisation costs more than it saves (10x slower with 2 threads on a busy host)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
                       device: torch.device | None = None, on: torch.device | None = None) -> dict[str, LayerInputs]:
    """``||X_j||^2`` (and the mean and variance ``with_moments``) of every linear's input with the model
    still dense: each block runs on the dense outputs of the block before it (the statistics a per-layer
    plan such as OWL's, or a structured plan such as FLAP's, reads). ``kwargs_of[i]``: block i's keyword
    arguments per batch (:func:`block_kwargs`)."""
    stats: dict[str, LayerInputs] = {}
    for block, kwargs in zip(blocks, kwargs_of):
        if offload:
            block.to(device)
        stats.update(collect_layer_inputs(block, linears_of(block), inputs, kwargs, with_gram=False,
                                          with_moments=with_moments, device=on))
        inputs = run_block(block, inputs, kwargs, on)
        if offload:
            block.to(torch.device("cpu"))
    return stats


@dataclass
class _Calibration:
    """The calibration windows captured at block 0, where they live, and each block's linears."""

    blocks: nn.ModuleList
    linears_of: object
    inputs: list
    kwargs: list  # per block, its keyword arguments per batch (block_kwargs)
    device: torch.device
    on: torch.device | None  # where to compute when the activations live elsewhere (offloaded to the host)


def _calibration_inputs(ctx, model: nn.Module, layers: dict[str, nn.Module], offload: bool) -> _Calibration:
    blocks = ctx.task.decoder_blocks(model)
    module_names = {mod: name for name, mod in model.named_modules()}
    device = module_device(model)
    with ctx.timer("calibration"):
        ids = ctx.task.calibration_windows(ctx.seed)
        ctx.extra["calibration"] = calibration_record(ids, ctx.seed)
        home = activations_home(model, ids, device)
        ctx.extra["calibration"]["activations_on"] = str(home)
        ctx.log(f"calibration: {ids.shape[0]} x {ids.shape[1]} tokens, seed {ctx.seed}, activations on {home}")
        with streamed(model, blocks, device, with_blocks=False) if offload else contextlib.nullcontext():
            batch_size = getattr(ctx.task.params, "batch_size", 4)
            inputs, kwargs = capture_block_inputs(model, blocks[0], ids, batch_size, keep_on=home)
            kwargs = block_kwargs(model, blocks, ids, batch_size, kwargs)

    def linears_of(block):
        prefix = module_names[block]
        return {n: m for n, m in layers.items() if n.startswith(prefix + ".")}

    return _Calibration(blocks, linears_of, inputs, kwargs, device, device if home != device else None)


@torch.no_grad()
def dense_statistics(ctx, model: nn.Module, layers: dict[str, nn.Module], with_moments: bool = True,
                     offload: bool = False):
    """``([linears of each block], {layer: LayerInputs})`` on the dense model (structured methods)."""
    cal = _calibration_inputs(ctx, model, layers, offload)
    with ctx.timer("calibration"):
        stats = dense_layer_inputs(cal.blocks, cal.linears_of, cal.inputs, cal.kwargs, with_moments, offload,
                                   cal.device, cal.on)
    return [cal.linears_of(b) for b in cal.blocks], stats


@torch.no_grad()
def prune_sequentially(ctx, model: nn.Module, layers: dict[str, nn.Module], offload: bool = False):
    """Prune ``layers`` block by block on calibration data.

    Returns ``({layer_name: keep_mask}, layer_targets)``: ``layer_targets`` is
    ``{layer_name: Target}`` when the method planned a target per layer, else None.

    ``offload``: the decoder blocks live on the host and each one moves to the device where the rest of
    the model is (``sparsebench.placement``) for its calibration and pruning, then back. Masks and pruned
    weights are the same as with the whole model in memory.
    """
    method, target = ctx.method, ctx.target
    with_gram = getattr(method, "needs_gram", True)
    with_moments = getattr(method, "needs_input_moments", False)
    host = torch.device("cpu")
    cal = _calibration_inputs(ctx, model, layers, offload)
    blocks, linears_of, inputs, kwargs, device, on = cal.blocks, cal.linears_of, cal.inputs, cal.kwargs, cal.device, cal.on

    layer_targets = None
    if getattr(method, "plans_layer_targets", False):
        with ctx.timer("calibration"):
            dense = dense_layer_inputs(blocks, linears_of, inputs, kwargs, False, offload, device, on)
        layer_targets = method.plan_layer_targets([linears_of(b) for b in blocks], dense, target)
        missing = sorted(set(layers) - set(layer_targets))
        if missing:
            raise ValueError(f"{method.name}: plan_layer_targets gave no target for {missing[:3]}")
        check_plan(layers, layer_targets, target)
        del dense

    masks: dict[str, torch.Tensor] = {}
    for i, block in enumerate(progress(blocks, desc=f"{method.name} pruning", unit="block")):
        linears = linears_of(block)
        if offload:
            block.to(device)
        with ctx.timer("calibration"):
            stats = collect_layer_inputs(block, linears, inputs, kwargs[i], with_gram, with_moments, on)
        with ctx.timer("prune_layers"), one_thread(device):
            for name, mod in linears.items():
                layer = LayerToPrune(name, mod.weight.data, ctx.generator, stats[name])
                masks[name] = method.prune_layer(layer, layer_targets[name] if layer_targets else target)
                apply_mask(mod, masks[name])
        del stats
        with ctx.timer("calibration"):
            inputs = run_block(block, inputs, kwargs[i], on)
        if offload:
            block.to(host)
            masks.update({n: get_mask(m) for n, m in linears.items()})  # the host copies, not device ones
        kept = sum(int(masks[n].sum()) for n in linears)
        total = sum(masks[n].numel() for n in linears)
        ctx.log(f"block {i + 1}/{len(blocks)} pruned: {len(linears)} linears, sparsity {1 - kept / max(total, 1):.4f}")
    return masks, layer_targets
