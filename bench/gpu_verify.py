"""GPU verification of hardware profiles (docs/hardware.md): our pruning jobs beside the authors' code.

Run from a directory holding this project (``sparsebench/``, ``methods/``, ``tasks/``, ``hardware/``) and
the authors' code, fetched separately and never copied into the project: ``ref/sparsegpt/`` (IST-DASLab/
sparsegpt: llama.py, sparsegpt.py, modelutils.py, quant.py, datautils.py) and ``ref/wanda/lib/`` (locuslab/
wanda: lib/*.py)::

    PYTHONPATH=$PWD python3 bench/gpu_verify.py all --layers 4 --out $OUT

Steps (each in its own process, so every peak-memory figure is its own): build a LLaMA-2-7B-shaped
checkpoint with random fp16 weights (``--layers`` of its 32 blocks; per-block figures scale) and a
tokenizer trained on CPython's sources; SparseGPT and Wanda at 50 % through ``sparsebench run`` on the
``h200`` profile (lm-local, 128 x 2048 calibration); the authors' ``llama_sequential`` (SparseGPT) and
``prune_wanda`` (Wanda) on the same checkpoint and the same calibration windows; offloaded vs in-memory
masks on the GPU; one epoch of dense and RigL training of a CIFAR-10-shaped ResNet-18.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
import types
from pathlib import Path

import torch

from sparsebench.pruning.parity_authors import shim_rotary

HERE = Path.cwd()
WORK = Path(os.environ.get("G13_WORK", "/tmp/g13"))
SHAPE_7B = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
# --tiny: a smoke test of this script on a CPU (tiny shape, ``cpu`` profile)
SHAPE_TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
                  vocab_size=4096, max_position_embeddings=4096, rms_norm_eps=1e-5)
DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def reset_peak():
    if DEV.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if DEV.type == "cuda" else float("nan")


def task_params(args) -> dict:
    return {"model": str(WORK / "ckpt"), "text": str(WORK / "text"), "window": 2048, "eval_windows": args.eval_windows,
            "calibration_window": 2048, "calibration_windows": args.nsamples, "batch_size": args.batch}


def build(args):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    text = WORK / "text"
    text.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for i, p in enumerate(sorted(stdlib.rglob("*.py"))):
        if "site-packages" not in p.parts:
            (text / f"{i:05d}.txt").write_text(p.read_text(encoding="utf-8", errors="replace"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train([str(p) for p in sorted(text.glob("*.txt"))[:300]],
              trainers.BpeTrainer(vocab_size=4096, special_tokens=["</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")
    ckpt = WORK / "ckpt"
    fast.save_pretrained(ckpt)
    cfg = LlamaConfig(num_hidden_layers=args.layers, eos_token_id=fast.eos_token_id,
                      **(SHAPE_TINY if args.tiny else SHAPE_7B))
    torch.manual_seed(0)
    with DEV:
        model = LlamaForCausalLM(cfg).half()
    model.save_pretrained(ckpt)
    # the calibration windows every run uses: the ones our task draws (seed 0)
    from sparsebench import registry

    task = registry.task("lm-local").cls.build(task_params(args), "bench")
    torch.save(task.calibration_windows(0), WORK / "calibration.pt")
    return {"layers": args.layers, "params": sum(p.numel() for p in model.parameters())}


def ours(args, method: str):
    from sparsebench import registry
    from sparsebench.params import params_dict
    from sparsebench.plan import Job

    entry = registry.method(method)
    tparams = params_dict(registry.task("lm-local").cls.build(task_params(args), "bench").params)
    job = Job("lm-local", method, "pruning", {"sparsity": 0.5, "pattern": "unstructured"}, 0,
              "cpu" if args.tiny else "h200", tparams,
              params_dict(entry.cls.Params()))
    out = WORK / f"ours-{method}.json"
    cmd = [sys.executable, "-m", "sparsebench", "run", "--spec", job.spec_json(), "--out", str(out)]
    print("$", " ".join(cmd[:4]), "<job spec>", "--out", out, flush=True)
    subprocess.run(cmd, check=True)
    r = json.loads(out.read_text())
    cal = r["timings"].get("calibration_s", 0) + r["timings"].get("prune_layers_s", 0)
    return {"method_s": r["timings"]["method_s"], "calibration_and_prune_s": cal,
            "peak_gpu_mb_method": r["extra"].get("peak_gpu_mb_method"), "peak_gpu_mb_job": r["memory"].get("peak_gpu_mb"),
            "total_s": r["timings"]["total_s"], "placement": r["placement"], "perplexity": r["metrics"]["perplexity"],
            "activations_on": r["extra"]["calibration"].get("activations_on"), "timings": r["timings"],
            "offload_reason": r["extra"].get("offload_reason")}


def _shim_transformers():
    """The authors' loops call a decoder layer with the attention mask alone (the transformers of 2023);
    today's LlamaDecoderLayer also needs the rotary (cos, sin): compute them when the caller gives none."""
    sys.modules.setdefault("datasets", types.ModuleType("datasets"))  # their data loaders import it; unused here
    sys.modules["datasets"].load_dataset = None
    shim_rotary()


def ref_sparsegpt(args):
    _shim_transformers()
    sys.path.insert(0, str(HERE / "ref" / "sparsegpt"))
    import llama as ref  # IST-DASLab/sparsegpt llama.py

    ids = torch.load(WORK / "calibration.pt", weights_only=True)[: args.nsamples]
    ref.args = types.SimpleNamespace(nsamples=ids.shape[0], true_sequential=False, minlayer=-1, maxlayer=1000,
                                     prune_only="", invert=False, wbits=16, sparsity=0.5, prunen=0, prunem=0,
                                     percdamp=0.01, blocksize=128)
    model = ref.get_llama(str(WORK / "ckpt"))  # their loader: torch_dtype='auto' (fp16), on the CPU
    model.eval()
    loader = [(ids[i : i + 1],) for i in range(ids.shape[0])]
    reset_peak()
    sync()
    t0 = time.perf_counter()
    ref.llama_sequential(model, loader, DEV)
    sync()
    return {"method_s": time.perf_counter() - t0, "peak_gpu_mb_method": peak_mb()}


def ref_wanda(args):
    _shim_transformers()
    sys.path.insert(0, str(HERE / "ref" / "wanda"))
    from transformers import AutoModelForCausalLM

    import lib.prune as ref  # locuslab/wanda lib/prune.py

    ids = torch.load(WORK / "calibration.pt", weights_only=True)[: args.nsamples]
    ref.get_loaders = lambda *a, **k: ([(ids[i : i + 1],) for i in range(ids.shape[0])], None)
    # their main.py: fp16, device_map="auto" (the whole 7B model on the one GPU)
    model = AutoModelForCausalLM.from_pretrained(str(WORK / "ckpt"), dtype=torch.float16 if DEV.type == "cuda"
                                                 else torch.float32, device_map="auto" if DEV.type == "cuda" else None)
    if not hasattr(model, "hf_device_map"):  # today's transformers sets none for a single device
        model.hf_device_map = {"": 0} if DEV.type == "cuda" else {}
    model.seqlen = 2048
    model.eval()
    a = types.SimpleNamespace(nsamples=ids.shape[0], seed=0, use_variant=False, sparsity_ratio=0.5)
    reset_peak()
    sync()
    t0 = time.perf_counter()
    ref.prune_wanda(a, model, None, DEV)
    sync()
    return {"method_s": time.perf_counter() - t0, "peak_gpu_mb_method": peak_mb(),
            "weights_on_gpu_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20}


def masks_on_gpu(args):
    """Offloaded vs in-memory pruning on the GPU: identical masks and weights (tests/test_placement.py)."""
    sys.path.insert(0, str(HERE / "tests"))
    from test_placement import offload_vs_in_memory
    from sparsebench.targets import Target

    out = {}
    for method in ("sparsegpt", "wanda"):
        for pat in ({"sparsity": 0.5}, {"pattern": "2:4"}):
            (m1, w1, _), (m2, w2, _) = offload_vs_in_memory(method, Target.from_config(pat), DEV.type)
            out[f"{method} {list(pat.values())[0]}"] = all(torch.equal(m1[k], m2[k]) and torch.equal(w1[k], w2[k])
                                                          for k in m1)
    return out


def rigl_epoch(args, method: str):
    """One epoch of ``method`` on a CIFAR-10-shaped ResNet-18 (random 50k x 3 x 32 x 32 images)."""
    from sparsebench import registry
    from sparsebench.families.sparse_training import mixed_precision
    from sparsebench.placement import Placement, place
    from sparsebench.targets import Target
    from sparsebench.training.flops import FlopCounter, layer_forward_flops
    from sparsebench.training.loop import Recipe, TrainData, Trainer
    from sparsebench.vision.data import random_crop_flip
    from sparsebench.vision.models import cifar_resnet18, conv_and_linear_layers

    g = torch.Generator().manual_seed(0)
    n = 1024 if args.tiny else 50000
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    data = TrainData(x, y, x[:5000], y[:5000], random_crop_flip)
    torch.manual_seed(0)
    model = cifar_resnet18(10)
    layers = conv_and_linear_layers(model)
    flops = FlopCounter(layer_forward_flops(model, layers, x[:1]))
    m = registry.method(method).cls.build({"delta_t": 100} if method == "rigl" else {}, "bench")
    amp = mixed_precision(torch.float16, DEV, m)
    place(model, Placement(DEV, torch.float32))
    target = Target.from_config({"sparsity": 0.9 if method == "rigl" else 0.0})
    t = Trainer(model, layers, data, Recipe(epochs=1, batch_size=128, lr=0.1), target, 0, m, flops,
                log=lambda s: None, amp=amp)
    sync()
    t0 = time.perf_counter()
    m.train(t)
    sync()
    dt = time.perf_counter() - t0
    return {"images_per_s": t.samples_seen / dt, "epoch_s": dt, "autocast": str(amp)}


STEPS = {"build": build, "ours-sparsegpt": lambda a: ours(a, "sparsegpt"), "ours-wanda": lambda a: ours(a, "wanda"),
         "ref-sparsegpt": ref_sparsegpt, "ref-wanda": ref_wanda, "masks": masks_on_gpu,
         "rigl": lambda a: rigl_epoch(a, "rigl"), "dense-train": lambda a: rigl_epoch(a, "dense-train")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("step", choices=["all", *STEPS])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--nsamples", type=int, default=128)
    p.add_argument("--eval-windows", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--out", default=str(WORK))
    p.add_argument("--only", default=",".join(STEPS))
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args()
    if args.step != "all":
        t0 = time.perf_counter()
        res = STEPS[args.step](args)
        res["step_wall_s"] = time.perf_counter() - t0
        Path(args.out, f"{args.step}.json").write_text(json.dumps(res, indent=1, default=str))
        print(args.step, json.dumps(res, default=str), flush=True)
        return
    results = {}
    for step in args.only.split(","):
        cmd = [sys.executable, __file__, step, *sys.argv[2:]]
        print(f"\n=== {step}", flush=True)
        rc = subprocess.run(cmd).returncode
        f = Path(args.out, f"{step}.json")
        results[step] = json.loads(f.read_text()) if rc == 0 and f.exists() else {"failed": rc}
        Path(args.out, "gpu_verify.json").write_text(json.dumps(results, indent=1, default=str))
    table(results, args.layers)


def table(r: dict, layers: int):
    print(f"\n{'':24}{'time s':>10}{'peak GPU MB':>14}")
    for k in ("ours-sparsegpt", "ref-sparsegpt", "ours-wanda", "ref-wanda"):
        v = r.get(k, {})
        t, m = v.get("method_s"), v.get("peak_gpu_mb_method")
        print(f"{k:24}{float('nan') if t is None else t:>10.1f}{float('nan') if m is None else m:>14.0f}")
    for m in ("sparsegpt", "wanda"):
        a, b = r.get(f"ours-{m}", {}), r.get(f"ref-{m}", {})
        if "method_s" in a and "method_s" in b:
            pa, pb = a.get("peak_gpu_mb_method"), b.get("peak_gpu_mb_method")
            peak = f"{pa / pb:.2f}x" if pa and pb else "n/a (no GPU)"
            print(f"{m}: time {a['method_s'] / b['method_s']:.2f}x, peak {peak} of the reference ({layers} blocks of 7B shape)")
    for k in ("rigl", "dense-train"):
        if "images_per_s" in r.get(k, {}):
            print(f"{k}: {r[k]['images_per_s']:.0f} images/s, epoch {r[k]['epoch_s']:.1f} s")
    print("masks offloaded == in memory on GPU:", r.get("masks"))


if __name__ == "__main__":
    main()
