"""Running one job: build its task and method, hand them to the family, write result.json.

The result is written atomically at the very end, so a job killed at any point
leaves no ``result.json`` behind and rerunning it starts clean.
"""

from __future__ import annotations

import contextlib
import inspect
import datetime as dt
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sparsebench import registry
from sparsebench.environment import capture
from sparsebench.errors import ConfigError
from sparsebench.hardware import HardwareProfile, profile
from sparsebench.laps import Laps
from sparsebench.placement import Placement, place as place_model, record as placement_record
from sparsebench.plan import Job
from sparsebench.results import SCHEMA_VERSION, mark_validity, write_result
from sparsebench.targets import Target


@dataclass
class JobContext:
    """Everything a family's ``run`` needs for one job."""

    job: Job
    task: object
    method: object
    target: Target
    profile: HardwareProfile
    generator: torch.Generator
    timings: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.job.seed

    placed: dict | None = None  # what ran: set by :meth:`place`, written to result.json

    @property
    def device(self) -> torch.device:
        return torch.device(self.profile.device)

    @property
    def placement(self) -> Placement:
        return Placement.of(self.profile)

    @property
    def dtype(self) -> torch.dtype:
        return self.placement.dtype

    def load_model(self, offload: bool | Callable[[nn.Module], bool] = False, cast: bool = True):
        """The task's model, loaded in the profile's dtype where the task can (never a float32 copy first)
        and placed on the profile's device; ``offload``: decoder blocks stay on the host
        (:mod:`sparsebench.placement`), or a function of the loaded (host) model that decides it.
        ``cast=False`` keeps float32 parameters (mixed-precision training autocasts to the profile's dtype
        instead)."""
        load = self.task.load_model
        kwargs = {"dtype": self.dtype} if cast and "dtype" in inspect.signature(load).parameters else {}
        model = self.timed("load", load, **kwargs)
        t0 = time.perf_counter()
        if callable(offload):
            offload = bool(offload(model))
        model = self.place(model, offload=offload, cast=cast)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        # where a load's time went (s): the task's parts (LM tasks: import, source, from_pretrained) and
        # the placement on the device (the first CUDA call initialises the context), outside timings.load_s
        self.extra["load_parts_s"] = {**(getattr(self.task, "load_parts", None) or {}),
                                      "place": time.perf_counter() - t0}
        return model

    def place(self, model, offload: bool = False, cast: bool = True, autocast: torch.dtype | None = None):
        blocks = self.task.decoder_blocks(model) if offload else None
        place_model(model, self.placement, blocks, cast=cast)
        self.placed = placement_record(model, offload, self.device, autocast)
        return model

    @contextlib.contextmanager
    def timer(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[f"{name}_s"] = self.timings.get(f"{name}_s", 0.0) + time.perf_counter() - t0

    def timed(self, name: str, fn, *args, **kwargs):
        with self.timer(name):
            return fn(*args, **kwargs)

    def log(self, message: str) -> None:
        print(f"[{self.job.method} {self.target.label} seed={self.seed}] {message}", file=sys.stderr, flush=True)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def memory_record(device: torch.device) -> dict:
    mem = {"peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        mem["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return mem


def process_age_s(at: float) -> float | None:
    """Seconds from this process's start to the ``time.perf_counter()`` reading ``at`` (Linux: from
    /proc; None elsewhere)."""
    try:
        import os

        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start - (time.perf_counter() - at))


def run_job(job: Job, out: Path) -> dict:
    t_start = time.perf_counter()
    laps = Laps(start=t_start)  # where the time before the family's run goes (result.json extra.job_parts_s)
    tentry = registry.task(job.task, "job.task")
    # only the job's own family is imported (its engine and method files): start-up time of every job
    mentry = registry.method(job.method, "job.method", family=job.family)
    if mentry.family != job.family:
        raise ConfigError(f"job.family={job.family!r} but method {job.method!r} is in family {mentry.family!r}")
    laps.lap("registry")
    hw = profile(job.hardware, "job.hardware")
    ok, why = hw.available()
    if not ok:
        raise ConfigError(f"job.hardware={job.hardware!r}: {why}")
    laps.lap("hardware_check")
    before = {m.partition(".")[0] for m in sys.modules}
    task = tentry.cls.build(job.task_params, "job.task_params")
    laps.lap("task_build")
    # the packages a task's build imported (a checkpoint check imports transformers: its time is then in
    # task_build, not in the load's import_transformers)
    built_imports = sorted({m.partition(".")[0] for m in sys.modules} - before)
    # a task may pin its intra-op threads (``threads`` > 0): small jobs run one thread each, side by side
    threads = int(getattr(task.params, "threads", 0) or 0) or hw.thread_count()
    torch.set_num_threads(threads)
    method = mentry.cls.build(job.method_params, "job.method_params")
    target = Target.from_dict(job.target)
    ctx = JobContext(job, task, method, target, hw, seed_everything(job.seed))
    family = registry.family(job.family).module  # exists: the method above was found in this family
    laps.lap("method_and_family")
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()  # the first CUDA call of the job: creates the context
    laps.lap("cuda_context")
    outcome = family.run(ctx)
    laps.lap("family_run")
    ctx.extra["job_parts_s"] = laps.parts
    ctx.extra["task_build_imports"] = built_imports
    before_job = process_age_s(t_start)
    if before_job is not None:  # the interpreter's start, torch's import and the CLI, before total_s starts
        ctx.extra["process_before_job_s"] = before_job
    if ctx.placed is None and ctx.device.type != "cpu":
        raise RuntimeError(f"family {job.family!r} never placed its model on {hw.device!r}: "
                           f"refusing to record a {hw.name!r} result for a job that may have run on the CPU")
    ctx.timings["total_s"] = time.perf_counter() - t_start
    result = {
        "schema": SCHEMA_VERSION,
        "status": "ok",
        "run_id": job.run_id,
        "job": job.spec(),
        "target_label": target.label,
        "paper": mentry.cls.paper.to_dict() if mentry.cls.paper else None,
        "metric_info": {m.name: {"higher_is_better": m.higher_is_better} for m in tentry.cls.metrics},
        **outcome,
        "timings": ctx.timings,
        "memory": memory_record(ctx.device),
        "data": task.data_info(),
        "hardware_profile": {"name": hw.name, "device": hw.device, "dtype": hw.dtype, "threads": threads},
        "placement": ctx.placed,
        "environment": capture(registry.project_root()),
        "extra": ctx.extra,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    mark_validity(result)  # a non-finite metric: status "invalid" with the reason, never used downstream
    write_result(out, result)
    return result
