"""Per-layer targets planned from whole-model statistics (the OWL contract), on a tiny llama and the real model."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import make_job
from sparsebench import registry
from sparsebench.pruning.pipeline import prune_sequentially
from sparsebench.masks import SparsityMismatch, apply_masks, check_target, mask_from_scores
from sparsebench.targets import Target
from test_pruning_calibration import BATCH, WINDOWS, context, tiny_llama

OWL = "owl"


def owl_method(**params):
    return registry.method(OWL).cls.build(params, OWL)


def test_owl_block_sparsities_average_to_the_target_and_span_twice_lambda():
    from importlib import import_module

    owl = import_module(registry.method(OWL).cls.__module__)
    s = owl.owl_sparsities([1.0, 3.0, 2.0, 5.0], 0.7, 0.08)
    assert sum(s) / 4 == pytest.approx(0.7)
    assert max(s) - min(s) == pytest.approx(0.16)
    assert s[3] == min(s) and s[0] == max(s)  # the block with most outliers is pruned least
    assert owl.owl_sparsities([2.0, 2.0], 0.5, 0.08) == [0.5, 0.5]


def test_owl_outlier_ratio_counts_scores_above_m_times_the_mean():
    from importlib import import_module

    owl = import_module(registry.method(OWL).cls.__module__)
    scores = [torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 1.0, 33.0])]  # mean 5
    assert owl.outlier_ratio(scores, 5.0) == pytest.approx(100 / 8)


@pytest.mark.parametrize("base", ["wanda", "sparsegpt"])
def test_owl_prunes_each_layer_to_its_block_target_and_the_model_to_the_overall_one(base):
    model = tiny_llama()
    method = owl_method(base=base, lam=0.1)
    ctx = context(method, Target(0.6))
    layers = ctx.task.prunable_layers(model)
    masks, layer_targets = prune_sequentially(ctx, model, layers)
    assert set(layer_targets) == set(layers)
    per_block = method.record()["block_sparsity"]
    assert len(per_block) == 3 and len(set(round(s, 6) for s in per_block)) > 1
    for name, keep in masks.items():
        block = int(name.split(".layers.")[1].split(".")[0])
        assert layer_targets[name].sparsity == pytest.approx(per_block[block])
        assert abs((1 - keep.float().mean().item()) - per_block[block]) <= 1 / keep.shape[1] + 1e-9
    check_target(layers, Target(0.6), per_layer=False, layer_targets=layer_targets)  # raises on a miss


def test_owl_statistics_come_from_the_dense_model_one_extra_pass_per_block():
    model = tiny_llama()
    calls = {i: 0 for i in range(3)}
    for i, block in enumerate(model.model.layers):
        block.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
    ctx = context(owl_method(), Target(0.5))
    prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
    passes = 4 * (WINDOWS // BATCH)  # dense statistics + dense output, then statistics + pruned output
    assert calls == {0: passes, 1: passes, 2: passes}


def test_check_target_refuses_a_layer_that_misses_its_own_target_even_when_the_total_is_right():
    model = tiny_llama()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n}
    names = sorted(layers)
    plan = {n: Target(0.4 if i % 2 else 0.6) for i, n in enumerate(names)}
    swapped = {n: Target(0.6 if i % 2 else 0.4) for i, n in enumerate(names)}
    apply_masks(layers, {n: mask_from_scores(layers[n].weight.abs(), swapped[n]) for n in names})
    with pytest.raises(SparsityMismatch, match="target"):
        check_target(layers, Target(0.5), per_layer=False, layer_targets=plan)


PLANNED = '''"""attention-light: a test method that plans MLP linears 10 points sparser than the target and the
attention linears whatever keeps the model's total on target (no paper)."""
import torch
from sparsebench.families.pruning import PruningMethod
from sparsebench.masks import mask_from_scores
from sparsebench.targets import Target


class AttentionLight(PruningMethod):
    name = "attention-light"
    needs_calibration = True
    needs_gram = False
    plans_layer_targets = True
    uniform_layer_sparsity = False

    def plan_layer_targets(self, blocks, dense_inputs, target):
        size = {n: m.weight.numel() for b in blocks for n, m in b.items()}
        mlp = sum(v for n, v in size.items() if "self_attn" not in n)
        s_mlp = target.sparsity + 0.1
        s_attn = (target.sparsity * sum(size.values()) - s_mlp * mlp) / (sum(size.values()) - mlp)
        self.planned = {n: (s_attn if "self_attn" in n else s_mlp) for n in size}
        return {n: Target(s) for n, s in self.planned.items()}

    def prune_layer(self, layer, target):
        return mask_from_scores(layer.weight.abs() * layer.inputs.norm_sq.sqrt(), target, per="row")

    def record(self):
        return {"planned_layers": len(self.planned)}
'''


def test_a_new_per_layer_method_in_one_file_runs_end_to_end_with_no_core_edits(tmp_path, root):
    project = tmp_path / "project"
    for d in ("methods", "tasks", "hardware", "workflow", "config", "claims"):
        if (root / d).exists():
            shutil.copytree(root / d, project / d)
    (project / "methods" / "pruning" / "attention_light.py").write_text(PLANNED)
    job = make_job("magnitude")
    spec = json.loads(job.spec_json())
    spec.update(method="attention-light", method_params={}, target={"sparsity": 0.5, "pattern": "unstructured"})
    out = tmp_path / "result.json"
    env = {**__import__("os").environ, "SPARSEBENCH_ROOT": str(project)}
    proc = subprocess.run([sys.executable, "-m", "sparsebench", "run", "--spec", json.dumps(spec), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=project)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    targets = result["sparsity"]["layer_targets"]
    assert {round(targets[n], 6) for n in targets if "mlp" in n} == {0.6}
    assert len({targets[n] for n in targets if "self_attn" in n}) == 1
    measured = result["sparsity"]["layers"]
    assert all(abs(measured[n] - targets[n]) <= 1 / 576 for n in targets)  # one weight per row of the narrowest input
    assert abs(result["sparsity"]["measured"] - 0.5) < 1e-3
    assert result["method_record"] == {"planned_layers": 30 * 7}


def test_a_plan_that_misses_the_overall_target_is_refused_before_any_layer_is_pruned():
    from sparsebench.masks import check_plan

    model = tiny_llama()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n}
    with pytest.raises(SparsityMismatch, match="plan"):
        check_plan(layers, {n: Target(0.6) for n in layers}, Target(0.5))
    check_plan(layers, {n: Target(0.5) for n in layers}, Target(0.5))
