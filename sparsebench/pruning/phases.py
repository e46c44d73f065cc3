"""Where a calibrated pruning job spends its time and its device memory, phase by phase.

The block-by-block pipeline (``sparsebench.pruning.pipeline``) runs each phase under :class:`Phases`:
its time goes to the job's timer (``calibration``, ``prune_layers``, ``offload``) and to a timer of its
own (``calibration_capture``, ``calibration_statistics``, ``calibration_rerun``), and on CUDA the rise of
the device's peak memory during the phase is summed per phase into ``extra.peak_gpu_mb_rise`` (its values
add up to the job's peak; the largest names the phase that sets it). On CUDA each phase ends with a
synchronisation, so its kernels count in its own time, not in the next phase that waits for them.
"""

from __future__ import annotations

import contextlib

import torch


class Phases:
    def __init__(self, ctx, device: torch.device):
        self.ctx, self.device = ctx, device
        self.cuda = device.type == "cuda"
        self.last = torch.cuda.max_memory_allocated(device) if self.cuda else 0
        self.rise = {"before": self.last} if self.cuda else {}

    @contextlib.contextmanager
    def __call__(self, timer: str, phase: str | None = None):
        with contextlib.ExitStack() as timers:
            timers.enter_context(self.ctx.timer(timer))
            if phase:
                timers.enter_context(self.ctx.timer(f"{timer}_{phase}"))
            yield
            if self.cuda:
                torch.cuda.synchronize(self.device)
                peak = torch.cuda.max_memory_allocated(self.device)
                key = phase or timer
                self.rise[key] = self.rise.get(key, 0) + peak - self.last
                self.last = peak

    def record(self) -> None:
        if self.cuda:
            self.ctx.extra["peak_gpu_mb_rise"] = {k: round(v / 2**20, 1) for k, v in self.rise.items()}
