"""The authors' SparseGPT on one of our tasks, for ``sparsebench bench parity --authors DIR``.

Runs IST-DASLab/sparsegpt's ``llama_sequential`` (``llama.py``, imported from DIR, where the user fetched it;
never copied into the project) on the task's model with the task's calibration windows in the given ordering,
on the given thread count, then evaluates the pruned model with our evaluator (the same windows as ours), and
prints ``PARITY {"perplexity": ...}``. Run in a child process per call: the authors' module keeps a global
``args`` and the shim below patches the decoder layer's forward.

Their loop (2023 transformers) calls a decoder layer with the attention mask alone; today's LlamaDecoderLayer
also needs the rotary (cos, sin), computed here when the caller gives none. Their ``fasterprune`` synchronises
CUDA; on a CPU that call is made a no-op.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import types

import torch

from sparsebench import registry
from sparsebench.pruning.bench_parity import PermutedCalibration, parse_target
from sparsebench.pruning.bench_structured import available_profile


def shim_rotary() -> None:
    from transformers.models.llama import modeling_llama as ml

    orig = ml.LlamaDecoderLayer.forward
    rotary = {}

    def forward(self, hidden_states, *a, position_embeddings=None, **kw):
        if position_embeddings is None:
            key = (hidden_states.device, hidden_states.dtype, hidden_states.shape[1])
            if key not in rotary:
                rot = ml.LlamaRotaryEmbedding(self.self_attn.config).to(hidden_states.device)
                pos = torch.arange(hidden_states.shape[1], device=hidden_states.device)[None]
                rotary[key] = rot(hidden_states, pos)
            position_embeddings = rotary[key]
        kw.pop("position_ids", None)
        return orig(self, hidden_states, *a, position_embeddings=position_embeddings, **kw)

    ml.LlamaDecoderLayer.forward = forward


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--code", required=True, help="directory holding the authors' llama.py and sparsegpt.py")
    p.add_argument("--task", default="lm-smollm2")
    p.add_argument("--task-params", default="{}")
    p.add_argument("--target", default="50%")
    p.add_argument("--ordering", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hardware", default="cpu")
    a = p.parse_args(argv)
    hw = available_profile(a.hardware)
    torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if hw.device.startswith("cuda") else "cpu")
    if dev.type == "cpu":
        torch.cuda.synchronize = lambda *x, **k: None
    target = parse_target(a.target)
    # their prunen/prunem: prunen of every prunem weights are zeroed (ours: n kept of m; 2:4 and 4:8 coincide)
    n, m = ((target.pattern.m - target.pattern.n, target.pattern.m) if target.pattern.kind == "n:m" else (0, 0))
    shim_rotary()
    sys.modules.setdefault("datasets", types.ModuleType("datasets"))  # their datautils imports it; unused
    sys.modules["datasets"].load_dataset = None
    sys.path.insert(0, a.code)
    import llama as ref  # IST-DASLab/sparsegpt llama.py

    task = registry.task(a.task, "--task").cls.build(json.loads(a.task_params), "--task-params")
    ids = PermutedCalibration(task, a.ordering).calibration_windows(0)
    ref.args = types.SimpleNamespace(nsamples=ids.shape[0], true_sequential=False, minlayer=-1, maxlayer=1000,
                                     prune_only="", invert=False, wbits=16, sparsity=target.sparsity, prunen=n,
                                     prunem=m, percdamp=0.01, blocksize=128)
    model = task.load_model(torch.float16 if hw.dtype == "float16" else torch.float32).eval()
    model.seqlen = ids.shape[1]
    with contextlib.redirect_stdout(io.StringIO()):
        ref.llama_sequential(model, [(ids[i : i + 1],) for i in range(ids.shape[0])], dev)
    model.to(dev)
    with torch.no_grad():
        ppl = task.evaluate(model)["perplexity"]
    print("PARITY " + json.dumps({"perplexity": ppl, "ordering": a.ordering, "threads": a.threads,
                                  "target": target.label}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
