"""TEAL's block-wise greedy sparsity allocation (Liu et al. 2024, arXiv:2408.14690, Sec. 4.2, Algorithm 1).

Per decoder block, on the *dense* model's inputs to that block: start with every
projection dense; at each step try raising the sparsity of each of the seven
projections (q, k, v, o, gate, up, down) by one step, run the block, and keep the
increment that adds the least error at the block output; record the allocation
after every step. The step of projection k is ``alpha / w_k`` with ``w_k`` its
parameter count relative to q_proj, so every step raises the block's effective
sparsity ``sum_k w_k s_k / sum_k w_k`` by the same ``alpha / sum_k w_k``. One run
gives the allocation of every level up to the last one reached; a model-wide
level p takes, in every block, the recorded row whose effective sparsity is
closest to p (all blocks at the same level, as the authors' ``load_greedy_sparsities``).

Following the authors' code (github.com/FasterDecoding/TEAL, ``teal/greedyopt.py``,
``utils/utils.py``): base step alpha = 0.05 (the default, and the step of the
lookup tables they ship); q, k and v are separate projections with their own
sparsity although they read one tensor; a sparsity level becomes a threshold
through the dense histogram of that tensor in that block; the error is
``||B(X) - B_s(X)||_2`` over token positions, averaged over windows and channels
(their ``torch.norm(..., dim=1).mean()``). Differences: the error counts every
token of the windows, not the last 25 % only (their prefill leaves the first
half of each sequence dense; here every token is sparsified, so every token
carries error); a projection's sparsity stops at 1 instead of overshooting it;
the seven candidates of a step run as one batched forward of the block.

The search is deterministic and costly (steps x 7 block forwards), so its path is
cached in the sparsebench cache, keyed by everything that determines it, and
extended in place when a higher level is asked for (resuming from the last row
gives the same rows as a fresh run).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

import torch
from torch import nn

from sparsebench.activation.calibration import MagnitudeHistogram
from sparsebench.activation.hooks import ActivationSparsifier
from sparsebench.activation.sites import KINDS, Block
from sparsebench.cache import cache_dir, file_lock, key_digest
from sparsebench.lm.blocks import block_kwargs, capture_block_inputs
from sparsebench.lm.task import tokens_sha256
from sparsebench.placement import one_thread

# which hidden state each projection reads (q/k/v the attention input, gate/up the MLP input)
READS = {"q": "q", "k": "q", "v": "q", "o": "o", "gate": "gate", "up": "gate", "down": "down"}
VERSION = 1  # bump when the search changes: cached paths of older versions are not reused
CACHE_DIR = None  # a directory to use instead of <sparsebench cache>/activation (tests point it elsewhere)


@dataclass
class Step:
    effective: float  # sum_k w_k s_k / sum_k w_k after this step
    error: float  # block-output error of this allocation on the search windows
    sparsity: dict  # kind -> sparsity


def relative_sizes(model: nn.Module, block: Block) -> dict[str, float]:
    """w_k: parameter count of each projection relative to q_proj (TEAL's ``weight_dict``)."""
    modules = dict(model.named_modules())
    q = modules[block["q"]].weight.numel()
    return {kind: modules[block[kind]].weight.numel() / q for kind in KINDS}


def effective(sparsity: dict, weights: dict) -> float:
    return sum(weights[k] * sparsity[k] for k in KINDS) / sum(weights.values())


def threshold(hist: MagnitudeHistogram, s: float) -> float:
    """The magnitude that zeroes a fraction ``s`` of the tensor (0: exact zeros only; 1: everything)."""
    if s <= 0.0:
        return 0.0
    if s >= 1.0:
        return float("inf")
    return hist.quantile(s)


def block_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per candidate: L2 norm over token positions, mean over windows and channels.
    ``out`` is (candidates, windows, tokens, channels), ``target`` (windows, tokens, channels)."""
    return torch.linalg.vector_norm(out - target.unsqueeze(0), dim=2).mean(dim=(1, 2))


class BlockSearch:
    """The greedy search on one block: its dense inputs, its dense output and its tensors' histograms."""

    def __init__(self, model: nn.Module, module: nn.Module, block: Block, inputs: torch.Tensor, kwargs: dict):
        self.model, self.module, self.block, self.inputs, self.kwargs = model, module, block, inputs, kwargs
        self.weights = relative_sizes(model, block)
        modules = dict(model.named_modules())
        self.hists = {reads: MagnitudeHistogram() for reads in set(READS.values())}
        handles = [modules[block[reads]].register_forward_pre_hook(lambda m, a, h=h: h.add(a[0].abs()))
                   for reads, h in self.hists.items()]
        try:
            self.target = self._forward(inputs)
        finally:
            for h in handles:
                h.remove()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x, **self.kwargs)
        return out[0] if isinstance(out, tuple) else out

    def errors(self, candidates: list[dict]) -> torch.Tensor:
        """Block-output error of each allocation, all candidates in one batched forward."""
        n = self.inputs.shape[0]
        thresholds = {}
        for kind in KINDS:
            t = [threshold(self.hists[READS[kind]], c[kind]) for c in candidates]
            thresholds[self.block[kind]] = torch.tensor(t).repeat_interleave(n).view(-1, 1, 1)
        with ActivationSparsifier(self.model, [self.block], thresholds):
            out = self._forward(self.inputs.repeat(len(candidates), 1, 1))
        return block_error(out.view(len(candidates), *self.inputs.shape), self.target)

    def run(self, alpha: float, until: float, start: list[Step]) -> list[Step]:
        """Extend the path ``start`` (possibly empty) until the effective sparsity reaches ``until``."""
        path = list(start)
        s = dict(path[-1].sparsity) if path else {k: 0.0 for k in KINDS}
        step = {k: alpha / self.weights[k] for k in KINDS}
        while effective(s, self.weights) < until - 1e-9:
            trials = [(k, {**s, k: min(1.0, s[k] + step[k])}) for k in KINDS if s[k] < 1.0]
            errs = self.errors([t for _, t in trials])
            best = int(torch.argmin(errs))  # first of equal errors, in KINDS order, as the authors' strict <
            s = trials[best][1]
            path.append(Step(effective(s, self.weights), float(errs[best]), dict(s)))
        return path


def dense_block_inputs(model: nn.Module, modules: nn.ModuleList, windows: torch.Tensor):
    """Yield (index, dense inputs, kwargs) of every block, running the dense blocks in order."""
    inputs, kwargs = capture_block_inputs(model, modules[0], windows, windows.shape[0])
    kwargs_of = block_kwargs(model, modules, windows, windows.shape[0], kwargs)
    x = inputs[0]
    for i, module in enumerate(modules):
        kw = kwargs_of[i][0]
        yield i, x, kw
        out = module(x, **kw)
        x = out[0] if isinstance(out, tuple) else out


def allocation(path: list[Step], level: float) -> dict[str, float]:
    """The recorded allocation whose effective sparsity is closest to ``level`` (the authors' lookup)."""
    return min(path, key=lambda row: abs(row.effective - level)).sparsity


class GreedyCache:
    """The greedy path of every block, as one JSON file in the sparsebench cache, keyed by what determines it."""

    def __init__(self, key: dict):
        self.key = {**key, "version": VERSION}
        self.path = (CACHE_DIR or cache_dir() / "activation") / f"teal-greedy-{key_digest(self.key)}.json"

    def load(self) -> list[list[Step]] | None:
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text())
        return [[Step(**row) for row in rows] for rows in data["blocks"]]

    def store(self, paths: list[list[Step]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"key": self.key, "blocks": [[row.__dict__ for row in rows] for rows in paths]}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)


def weights_fingerprint(model: nn.Module, blocks: list[Block]) -> str:
    """A cheap identity of the weights: the bytes of the first block's q_proj and the last block's down_proj."""
    modules = dict(model.named_modules())
    h = hashlib.sha256()
    for name in (blocks[0]["q"], blocks[-1]["down"]):
        h.update(modules[name].weight.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def greedy_paths(model: nn.Module, modules: nn.ModuleList, blocks: list[Block], windows: torch.Tensor,
                 alpha: float, until: float, source: dict, log=print) -> list[list[Step]]:
    """Every block's greedy path up to effective sparsity ``until``, from the cache or computed (then cached)."""
    key = {"source": source, "model": type(model).__name__, "weights": weights_fingerprint(model, blocks),
           "tokens_sha256": tokens_sha256(windows), "windows": list(windows.shape), "alpha": alpha}
    cache = GreedyCache(key)
    with file_lock(cache.path.parent / f".{cache.path.name}.lock"):
        paths = cache.load()
        if paths is not None and all(p and p[-1].effective >= until - 1e-9 for p in paths):
            return paths
        start = paths or [[] for _ in blocks]
        log(f"TEAL greedy allocation: {len(blocks)} blocks, {windows.shape[0]} x {windows.shape[1]} tokens, "
            f"alpha {alpha}, up to {until:.2f} -> {cache.path}")
        out = []
        with one_thread():  # thousands of small block forwards: one thread is ~2-6x faster on a busy 2-core host
            for i, x, kw in dense_block_inputs(model, modules, windows):
                out.append(BlockSearch(model, modules[i], blocks[i], x, kw).run(alpha, until, start[i]))
                log(f"  block {i + 1}/{len(blocks)}: {len(out[-1])} steps, error {out[-1][-1].error:.4g}")
        cache.store(out)
        return out
