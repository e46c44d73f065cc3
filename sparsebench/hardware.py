"""Hardware profiles: ``hardware/<name>.yaml``, pure data about a machine class."""

from __future__ import annotations

import functools
import os
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
    peak: dict = field(default_factory=dict)  # e.g. {"tflops": {"float16": 989}, "bandwidth_gbs": 3350}
    backends: tuple[str, ...] = ()
    timing: dict = field(default_factory=dict)
    file: Path | None = None

    def available(self) -> tuple[bool, str]:
        """Whether this machine has the profile's device, and why not."""
        if self.device == "cpu":
            return True, ""
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                return False, f"hardware profile {self.name!r} needs a CUDA device and this machine has none"
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


_FIELDS = {"name", "device", "dtype", "threads", "description", "peak", "backends", "timing"}


def load_profile(path: Path) -> HardwareProfile:
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    if "device" not in data:
        raise ConfigError(f"{path}: missing key 'device' (one of 'cpu', 'cuda')")
    data.setdefault("name", path.stem)
    data["backends"] = tuple(data.get("backends") or ())
    return HardwareProfile(file=path, **data)


@functools.lru_cache(maxsize=None)
def profiles(root: Path | None = None) -> dict[str, HardwareProfile]:
    root = Path(root or project_root())
    return {p.stem: load_profile(p) for p in sorted((root / "hardware").glob("*.yaml"))}


def profile(name: str, where: str = "hardware") -> HardwareProfile:
    all_profiles = profiles()
    if name not in all_profiles:
        raise ConfigError(f"{where}={name!r} is not a known hardware profile; allowed: {', '.join(sorted(all_profiles))}")
    return all_profiles[name]
