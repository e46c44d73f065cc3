"""Hardware profiles: ``hardware/<name>.yaml``, pure data about a machine class.

A GPU profile states its peaks (datasheet numbers); the generic ``cpu`` profile
has none written down and measures them once per machine (a large float32
matrix product and a large copy), caching them under the sparsebench cache dir.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sparsebench.errors import ConfigError
from sparsebench.registry import project_root


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    device: str  # "cpu" or "cuda"
    dtype: str = "float32"
    threads: int | None = None  # None: every core this process may run on
    description: str = ""
    peak: dict = field(default_factory=dict)  # {"tflops": {"float16": 989}, "bandwidth_gbs": 3350}
    backends: tuple[str, ...] = ()
    timing: dict = field(default_factory=dict)
    match: tuple[str, ...] = ()  # substrings of the CUDA device name this profile describes
    kernels: str = "small"  # kernel set `sparsebench kernels run` uses by default
    # calibrated pruning: "auto" places the model as the method's authors do (resident when it fits,
    # see sparsebench.placement.decide_offload), "always" / "never" force block-at-a-time offloading on / off
    offload: str = "auto"
    file: Path | None = None

    def available(self) -> tuple[bool, str]:
        """Whether this machine has the profile's device, and why not."""
        if self.device == "cpu":
            return True, ""
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                return False, f"hardware profile {self.name!r} needs a CUDA device and this machine has none"
            gpu = torch.cuda.get_device_name(0)
            if self.match and not any(m.lower() in gpu.lower() for m in self.match):
                return False, f"hardware profile {self.name!r} describes {'/'.join(self.match)}; this GPU is {gpu!r}"
            return True, ""
        return False, f"hardware profile {self.name!r}: unknown device {self.device!r}"

    def thread_count(self) -> int:
        # The CPUs this process may run on, not os.cpu_count(): under SLURM
        # (task/affinity or task/cgroup) a job is bound to the cores it was
        # given, and a thread per core of the whole node would oversubscribe them.
        if self.threads:
            return int(self.threads)
        if hasattr(os, "sched_getaffinity"):  # Linux; macOS has no affinity
            return len(os.sched_getaffinity(0)) or 1
        return os.cpu_count() or 1

    def kernel_threads(self) -> int:
        """Threads the kernel suite pins: ``timing.threads`` if set, else :meth:`thread_count`."""
        return int(self.timing.get("threads") or self.thread_count())

    def peaks(self, threads: int | None = None) -> dict:
        """``{"flops": FLOP/s in this profile's dtype, "bandwidth": bytes/s, "source": ...}``."""
        if self.peak:
            tflops = self.peak.get("tflops", {})
            return {"flops": float(tflops.get(self.dtype, 0.0)) * 1e12,
                    "bandwidth": float(self.peak.get("bandwidth_gbs", 0.0)) * 1e9,
                    "source": "datasheet (profile)"}
        if self.device == "cpu":
            return measured_cpu_peaks(threads or self.thread_count())
        return {"flops": 0.0, "bandwidth": 0.0, "source": "unknown"}


_FIELDS = {"name", "device", "dtype", "threads", "description", "peak", "backends", "timing", "match", "kernels",
           "offload"}
OFFLOAD_MODES = ("auto", "always", "never")


def load_profile(path: Path) -> HardwareProfile:
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    if "device" not in data:
        raise ConfigError(f"{path}: missing key 'device' (one of 'cpu', 'cuda')")
    data.setdefault("name", path.stem)
    if data.get("offload", "auto") not in OFFLOAD_MODES:
        raise ConfigError(f"{path}: offload={data['offload']!r}; allowed: {', '.join(OFFLOAD_MODES)}")
    data["backends"] = tuple(data.get("backends") or ())
    data["match"] = tuple(data.get("match") or ())
    return HardwareProfile(file=path, **data)


@functools.lru_cache(maxsize=None)
def profiles(root: Path | None = None) -> dict[str, HardwareProfile]:
    root = Path(root or project_root())
    return {p.stem: load_profile(p) for p in sorted((root / "hardware").glob("*.yaml"))}


AUTO = "auto"  # the profile of this machine (:func:`detect`), resolved when jobs are planned


def profile(name: str, where: str = "hardware") -> HardwareProfile:
    if name == AUTO:
        return detect()
    all_profiles = profiles()
    if name not in all_profiles:
        raise ConfigError(f"{where}={name!r} is not a known hardware profile; "
                          f"allowed: {', '.join(sorted([*all_profiles, AUTO]))}")
    return all_profiles[name]


def detect() -> HardwareProfile:
    """The most specific profile this machine matches: a GPU profile whose ``match`` names this GPU,
    else the generic ``cuda`` profile on any other GPU, else the generic ``cpu`` profile."""
    gpus = [p for p in profiles().values() if p.device != "cpu" and p.available()[0]]
    candidates = [p for p in gpus if p.match] or gpus
    if candidates:
        return candidates[0]
    return profile("cpu")


def _cpu_key(threads: int) -> str:
    from sparsebench.environment import cpu_model

    import torch

    text = f"{cpu_model()}|{os.cpu_count()}|{threads}|torch {torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure_cpu_peaks(threads: int) -> dict:
    """Best-of-several float32 matrix product (FLOP/s) and memory streaming (a copy counting bytes read and
    written, or a reduction reading once, whichever is faster), bytes per second."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n = 1024
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up: thread pool, allocator
        best = min(_seconds(lambda: a @ b) for _ in range(7))
        flops = 2 * n**3 / best
        src = torch.randn(16 * 2**20)  # 64 MiB, beyond any last-level cache here
        dst = torch.empty_like(src)
        dst.copy_(src)
        best_copy = min(_seconds(lambda: dst.copy_(src)) for _ in range(7))
        best_read = min(_seconds(lambda: src.sum()) for _ in range(7))
        size = src.numel() * src.element_size()
        bandwidth = max(2 * size / best_copy, size / best_read)  # a copy alone under-reads some machines
    finally:
        torch.set_num_threads(old)
    return {"flops": flops, "bandwidth": bandwidth, "source": f"measured on this machine ({threads} threads)"}


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measured_cpu_peaks(threads: int) -> dict:
    """The CPU's peaks, measured once per machine (and thread count) and cached."""
    from sparsebench.cache import cache_dir, file_lock

    path = cache_dir() / "hardware" / f"cpu-peaks-{_cpu_key(threads)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    with file_lock(path.with_suffix(".lock")):
        if path.is_file():
            return json.loads(path.read_text())
        peaks = measure_cpu_peaks(threads)
        from sparsebench.results import write_atomic

        write_atomic(path, json.dumps(peaks, indent=2) + "\n")
    return peaks
