"""Small builders shared by the sparse-training tests: a tiny digits ResNet and a trainer around it."""

from __future__ import annotations

import torch

from sparsebench import registry
from sparsebench.targets import Target
from sparsebench.training.flops import FlopCounter, layer_forward_flops
from sparsebench.training.loop import Trainer

TINY = {"channels": [8, 8, 16, 16], "epochs": 2, "batch_size": 128}


def digits_task(**over):
    params = dict(TINY, **over)
    return registry.task("vision-digits").cls.build(params, "test")


def method(name: str, **params):
    return registry.method(name).cls.build(params, "test")


def make_trainer(method_name: str, sparsity: float = 0.9, pattern: str = "unstructured", seed: int = 0,
                 method_params: dict | None = None, **task_over) -> Trainer:
    torch.manual_seed(seed)
    task = digits_task(**task_over)
    data = task.train_data()
    model = task.load_model()
    layers = task.prunable_layers(model)
    target = Target.from_config({"pattern": pattern} if ":" in pattern else {"sparsity": sparsity})
    m = method(method_name, **(method_params or {}))
    flops = FlopCounter(layer_forward_flops(model, layers, data.train_x))
    return Trainer(model, layers, data, task.recipe(), target, seed, m, flops, log=lambda s: None)


def make_job_result(method_name: str, sparsity: float, out_dir, seed: int = 0, pattern: str = "unstructured",
                    **task_params) -> dict:
    """Run one real job through the runner (default task parameters unless overridden)."""
    from sparsebench.params import params_dict
    from sparsebench.plan import Job
    from sparsebench.runner import run_job

    entry = registry.method(method_name)
    task = registry.task("vision-digits").cls.build(task_params, "test")
    job = Job("vision-digits", method_name, entry.family, {"sparsity": sparsity, "pattern": pattern}, seed, "cpu",
              params_dict(task.params), params_dict(entry.cls.Params()))
    return run_job(job, out_dir / f"{method_name}-{seed}" / "result.json")
