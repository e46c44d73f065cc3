import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARSEBENCH_ROOT", str(ROOT))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def small_lm_params(**over):
    """Task parameters small enough for the fast suite (real model, real text)."""
    p = {"window": 64, "eval_windows": 4, "calibration_window": 64, "calibration_windows": 4, "batch_size": 4}
    p.update(over)
    return p


def make_job(method="magnitude", target=None, seed=0, **task_over):
    from sparsebench import registry
    from sparsebench.params import params_dict
    from sparsebench.plan import Job

    entry = registry.method(method)
    return Job(
        task="lm-smollm2",
        method=method,
        family=entry.family,
        target=target or {"sparsity": 0.5, "pattern": "unstructured"},
        seed=seed,
        hardware="cpu",
        task_params=small_lm_params(**task_over),
        method_params=params_dict(entry.cls.Params()),
    )
