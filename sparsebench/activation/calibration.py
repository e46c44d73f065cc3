"""Activation statistics on calibration text: streaming magnitude histograms and channel means.

Methods calibrate thresholds from the *dense* model's hidden states (TEAL collects
its histograms with sparsity off; CHESS likewise computes its statistics on the
unmodified model). One :func:`calibration_pass` runs the calibration windows
through the model once with hooks at the requested taps; a tap is
``(module name, "input" | "output")``.

Quantiles come from a histogram on log-spaced bins (0.0025 decades wide, i.e.
0.6 % relative resolution), so no tap ever has to keep all its values: TEAL's
own code also inverts a histogram (``Distribution.icdf``) rather than sorting.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

Tap = tuple[str, str]  # (module name, "input" | "output")
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


class MagnitudeHistogram:
    """Histogram of non-negative scores; ``quantile(q)`` is the score t with P(score <= t) ~= q."""

    LOG_LO, LOG_HI, BINS = -10.0, 5.0, 6000

    def __init__(self):
        self.counts = torch.zeros(self.BINS, dtype=torch.float64)
        self.small = 0.0  # scores <= 10**LOG_LO (exact zeros included)
        self.total = 0.0

    def add(self, scores: torch.Tensor) -> None:
        s = scores.detach().reshape(-1).float()
        tiny = int((s <= 10.0**self.LOG_LO).sum())
        self.small += tiny
        self.total += s.numel()
        # tiny scores land in bin 0 here; they are taken out again below (they are in ``small``)
        logs = torch.log10(s.clamp(min=10.0**self.LOG_LO, max=10.0 ** (self.LOG_HI - 1e-6)))
        counts = torch.histc(logs, bins=self.BINS, min=self.LOG_LO, max=self.LOG_HI).double()
        counts[0] -= tiny
        self.counts += counts

    def quantile(self, q: float) -> float:
        if self.total == 0:
            raise ValueError("quantile of an empty histogram (the calibration pass saw no values)")
        want = q * self.total
        if want <= self.small:
            return 0.0
        cum = torch.cumsum(self.counts, 0) + self.small
        j = int(torch.searchsorted(cum, torch.tensor(want, dtype=torch.float64)).clamp(max=self.BINS - 1))
        before = float(cum[j - 1]) if j > 0 else self.small
        frac = (want - before) / max(float(self.counts[j]), 1e-12)
        width = (self.LOG_HI - self.LOG_LO) / self.BINS
        return float(10.0 ** (self.LOG_LO + (j + min(max(frac, 0.0), 1.0)) * width))


class ChannelMean:
    """Running mean of a score per channel (last dimension), over all tokens."""

    def __init__(self):
        self.sum: torch.Tensor | None = None
        self.count = 0

    def add(self, scores: torch.Tensor) -> None:
        flat = scores.detach().reshape(-1, scores.shape[-1]).double()
        self.sum = flat.sum(0) if self.sum is None else self.sum + flat.sum(0)
        self.count += flat.shape[0]

    def value(self) -> torch.Tensor:
        return (self.sum / self.count).float()


def _install(model: nn.Module, taps: dict[Tap, list[Callable[[torch.Tensor], None]]]) -> list:
    modules = dict(model.named_modules())
    handles = []
    for (name, side), sinks in taps.items():
        if name not in modules:
            raise KeyError(f"calibration tap {name!r}: no such module")
        if side == "input":
            def pre(mod, args, sinks=sinks):
                for sink in sinks:
                    sink(args[0])
            handles.append(modules[name].register_forward_pre_hook(pre))
        elif side == "output":
            def post(mod, args, out, sinks=sinks):
                for sink in sinks:
                    sink(out)
            handles.append(modules[name].register_forward_hook(post))
        else:
            raise ValueError(f"calibration tap {name!r}: side {side!r} is not 'input' or 'output'")
    return handles


@torch.no_grad()
def calibration_pass(
    model: nn.Module,
    windows: torch.Tensor,
    batch_size: int,
    histograms: dict[Tap, ScoreFn] | None = None,
    channel_means: dict[Tap, ScoreFn] | None = None,
    sparsifier=None,
) -> tuple[dict[Tap, MagnitudeHistogram], dict[Tap, torch.Tensor]]:
    """Run ``windows`` (n x T token ids) through ``model`` once, collecting a histogram of
    ``score(x)`` for every tap in ``histograms`` and a per-channel mean of ``score(x)`` for
    every tap in ``channel_means``.

    With ``sparsifier`` (an :class:`~sparsebench.activation.ActivationSparsifier`) the pass runs
    on the sparsified model; each tap still sees its tensor *before* its own threshold (taps
    are installed first and hooks run in order), but after every threshold upstream of it."""
    histograms, channel_means = histograms or {}, channel_means or {}
    hists = {tap: MagnitudeHistogram() for tap in histograms}
    means = {tap: ChannelMean() for tap in channel_means}
    taps: dict[Tap, list] = {}
    for tap, fn in histograms.items():
        taps.setdefault(tap, []).append(lambda x, h=hists[tap], fn=fn: h.add(fn(x)))
    for tap, fn in channel_means.items():
        taps.setdefault(tap, []).append(lambda x, m=means[tap], fn=fn: m.add(fn(x)))
    handles = _install(model, taps)
    try:
        device = next(model.parameters()).device
        with sparsifier if sparsifier is not None else contextlib.nullcontext():
            for start in range(0, windows.shape[0], batch_size):
                model(windows[start : start + batch_size].to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return hists, {tap: m.value() for tap, m in means.items()}


CACHE_VERSION = 1  # bump when what a pass stores changes: older entries are then not reused
CACHE_DIR = None  # a directory to use instead of <sparsebench cache>/activation (tests point it elsewhere)


def _pass_key(key: str, source: dict, windows: torch.Tensor, batch_size: int) -> dict:
    from sparsebench.lm.task import tokens_sha256

    return {"version": CACHE_VERSION, "key": key, "model": source, "windows": tokens_sha256(windows.cpu()),
            "shape": list(windows.shape), "batch_size": batch_size, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def cached_dense_pass(key: str, source: dict, model: nn.Module, windows: torch.Tensor, batch_size: int,
                      histograms=None, channel_means=None) -> tuple[dict, dict, str]:
    """:func:`calibration_pass` on the *dense* model, computed once per machine and reused.

    Every level of a method calibrates first on the dense model with the same taps, so that pass is
    the same for all of them. ``key`` names the statistics (the method, which pass, what each tap
    scores): two passes with one key must compute the same thing. The entry is also keyed by the
    model description ``source``, the token ids, batch size, intra-op threads and torch version, and
    written under a file lock then renamed into place (``sparsebench.cache.build_once``). Returns
    (histograms, channel means, "hit" | "stored").
    """
    from sparsebench.cache import build_keyed, cache_dir

    def build(tmp):
        hists, means = calibration_pass(model, windows, batch_size, histograms, channel_means)
        torch.save({"histograms": [(list(tap), h.counts, h.small, h.total) for tap, h in hists.items()],
                    "means": [(list(tap), m) for tap, m in means.items()]}, tmp / "pass.pt")

    parts = _pass_key(key, source, windows, batch_size)
    param = next(model.parameters())
    if param.dtype != torch.float32 or param.device.type != "cpu":  # float32 CPU keys stay as they were
        parts["placement"] = [str(param.dtype), param.device.type]
    entry, origin = build_keyed(CACHE_DIR or cache_dir() / "activation", "dense-pass", parts, build)
    data = torch.load(entry / "pass.pt", weights_only=True)
    hists = {}
    for tap, counts, small, total in data["histograms"]:
        h = MagnitudeHistogram()
        h.counts, h.small, h.total = counts, small, total
        hists[tuple(tap)] = h
    means = {tuple(tap): m for tap, m in data["means"]}
    if set(hists) != set(histograms or {}) or set(means) != set(channel_means or {}):
        raise RuntimeError(f"cached calibration pass {entry} holds other taps than asked for under key {key!r}")
    return hists, means, origin
