"""Ours vs the authors' SparseGPT on the same SmolLM2 layers and the same calibration inputs (docs/pruning.md).

The authors' code (IST-DASLab/sparsegpt: sparsegpt.py, quant.py) is fetched separately into ``ref/sparsegpt/``
and imported from there, never copied into the project. Run from the project root::

    PYTHONPATH=$PWD python bench/sparsegpt_layer_parity.py

For four linears of blocks 0-1 (inputs from the dense model, 16 x 512 calibration tokens) and 50 % / 2:4 it
prints the share of mask entries where theirs and ours agree (ours with the float64 factorisation it uses, and
with the float32 one theirs uses) and each result's activation-weighted error ||(W - W')X||^2 / ||WX||^2.
"""
import contextlib
import importlib
import io
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path.cwd() / "ref" / "sparsegpt"))
from sparsegpt import SparseGPT as Theirs  # authors' class
from sparsebench import registry
from sparsebench.targets import Target
from sparsebench.pruning.calibration import LayerInputs
from sparsebench.lm.blocks import capture_block_inputs, run_block
torch.set_num_threads(2)
sg = importlib.import_module(registry.method("sparsegpt").cls.__module__)
task = registry.task("lm-smollm2").cls.build({"calibration_windows": 16}, "x")
model = task.load_model().eval()
ids = task.calibration_windows(0)
blocks = model.model.layers
inputs, kwargs = capture_block_inputs(model, blocks[0], ids, 4)
# inputs of each linear of blocks 0 and 1 on the dense model
want = {"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.o_proj",
        "model.layers.1.mlp.up_proj"}
mods = dict(model.named_modules())
xs = {n: [] for n in want}
hs = [mods[n].register_forward_hook(lambda m, a, o, n=n: xs[n].append(a[0].detach().reshape(-1, a[0].shape[-1])))
      for n in want]
with torch.no_grad():
    run_block(blocks[1], run_block(blocks[0], inputs, kwargs), kwargs)
for x in hs: x.remove()
print(f"{'layer':34} {'pattern':7} {'mask agree t/o64':>16} {'t/o32':>7} {'err theirs':>11} {'ours f64':>9} {'ours f32':>9}")
for name in sorted(want):
    W0 = mods[name].weight.data.clone().float()
    X = torch.cat(xs[name])  # (tokens, in)
    G = X.T @ X
    for pat in ("50%", "2:4"):
        target = Target(0.5) if pat == "50%" else Target.from_config({"pattern": "2:4"})
        # theirs: a Linear holding W0, fed window by window as their llama.py does
        lin = torch.nn.Linear(W0.shape[1], W0.shape[0], bias=False); lin.weight.data = W0.clone()
        g = Theirs(lin)
        for x in xs[name]:
            for w in x.reshape(-1, 512, x.shape[-1]):
                g.add_batch(w.unsqueeze(0), None)
        torch.cuda.synchronize = lambda: None  # their fasterprune syncs CUDA; this runs on the CPU
        with contextlib.redirect_stdout(io.StringIO()):
            g.fasterprune(0.5, prunen=2 if pat == "2:4" else 0, prunem=4 if pat == "2:4" else 0, percdamp=0.01, blocksize=128)
        Wt = lin.weight.data.clone()
        li = LayerInputs(W0.shape[1], with_moments=False); li.add(X.unsqueeze(0))
        outs = {}
        for prec in ("f64", "f32"):
            W = W0.clone()
            if prec == "f64":
                U, dead = li.inverse_hessian_cholesky(0.01)
            else:  # the authors' float32 factorisation
                H = li.gram.clone(); dead = torch.diag(H) == 0; H[dead, dead] = 1
                H.diagonal().add_(0.01 * torch.mean(torch.diag(H)))
                U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
            sg.sparsegpt_prune_(W, U, dead, target, 128)
            outs[prec] = W
        err = lambda Wx: float((((W0 - Wx) @ G) * (W0 - Wx)).sum() / (W0 @ G * W0).sum())
        agree = lambda a, b: float(((a == 0) == (b == 0)).float().mean())
        print(f"{name:34} {pat:7} {agree(Wt, outs['f64']):>16.4f} {agree(Wt, outs['f32']):>7.4f} {err(Wt):>11.3e} "
              f"{err(outs['f64']):>9.3e} {err(outs['f32']):>9.3e}", flush=True)
