"""What every task declares: its model, its data, its metrics, and which families apply.

A task is one file ``tasks/<name>.py`` with one subclass of :class:`Task`
(usually through a shared base such as ``sparsebench.lm.LanguageModelTask``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from sparsebench.params import Configurable, params_dict


def check_threads(threads: int) -> None:
    """A task's ``threads`` parameter: intra-op threads of its jobs (the runner sets them), 0 = the hardware
    profile's (every core the job may use)."""
    if threads < 0:
        raise ValueError(f"threads={threads} must be >= 0 (0: the hardware profile's)")


@dataclass(frozen=True)
class JobResources:
    """What one job of a task asks the scheduler for (SLURM: --mem, --time).

    The workflow's ``run_job`` rule reads these, so a cluster job asks for the
    memory its task needs, not one number for every task.
    """

    mem_mb: int = 4000  # peak resident memory of one job, with headroom
    runtime: int = 60  # minutes of wall time


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str = ""


class Task(Configurable):
    name: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ()
    metrics: ClassVar[tuple[Metric, ...]] = ()
    description: ClassVar[str] = ""
    resources: ClassVar[JobResources] = JobResources()

    @classmethod
    def primary_metric(cls) -> Metric:
        return cls.metrics[0]

    @classmethod
    def describe(cls) -> dict:
        return {
            "name": cls.name,
            "families": list(cls.families),
            "metrics": {m.name: ("higher" if m.higher_is_better else "lower") + " is better" for m in cls.metrics},
            "params": params_dict(cls.Params()),
        }

    def limit_problems(self) -> list[str]:
        """Parameters that are well-typed but beyond what this task's model or data allow, one message each
        (``key=value: why; allowed: ...``); checked when a config is validated, before any job."""
        return []

    # -- what the runner calls -------------------------------------------------
    def prepare(self) -> dict:
        """One-time, per-machine work (e.g. caching float weights). Idempotent."""
        return {}

    def load_model(self) -> nn.Module:
        raise NotImplementedError

    def prunable_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """The layers whose weights a method may sparsify, by qualified name."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        raise NotImplementedError

    def evaluate_with_samples(self, model: nn.Module) -> tuple[dict[str, float], dict]:
        """The metrics and, for those that average over units (windows, samples, images), their per-unit
        values: ``{metric: sparsebench.stats.samples_entry(...)}`` (the result's ``samples``). Default: none."""
        return self.evaluate(model), {}

    def data_info(self) -> dict:
        """Sizes and hashes of the data this task evaluates and calibrates on."""
        return {}
