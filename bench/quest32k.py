"""A 32k-token Quest prefill job on a GPU: where the job's time goes beside the attention's (one device call).

    PYTHONPATH=$PWD python3 bench/quest32k.py all --shape DIR --out OUTDIR

``--shape DIR``: SmolLM2-135M's config.json and tokenizer files (no weights). ``build`` makes a checkpoint of
that shape with random float16 weights (time does not depend on weight values) and a text of the 4 largest
stdlib files (each > 32k tokens); ``job`` runs `sparsebench run` on task lm-local-long (seq_len 32768, one
sequence, 256 scored tokens, quest-prefill at density 1/8, profile h200, flex executor) in a fresh process,
twice: cold (empty compile cache) and warm (the same machine cache); ``steady`` loads the model once and
times the sparse 32k prefill forward again and again (compiled, nothing measured but the forward), beside
the dense forward (SDPA). ``--tiny``: the same steps on the CPU at 2048 tokens, 2 layers (a dry run).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

# the compile-cache variables as the user left them: torch writes its default into this process's
# environment once it looks up its cache, and the jobs below must not inherit that as if the user chose it
USER_CACHE_VARS = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}

import torch  # noqa: E402

WORK = Path(os.environ.get("Q32K_WORK", "/tmp/q32k"))


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def task_params(args) -> dict:
    seq = 2048 if args.tiny else 32768
    return {"model": str(WORK / "ckpt"), "text": str(WORK / "text"), "seq_len": seq, "sequences": 1,
            "continuation": 256, "query_block": 64, "batch_size": 1,
            "executor": "auto" if args.tiny else "flex",
            "threads": 0, "prompt_cache": False}


def build(args):
    from transformers import AutoConfig, AutoModelForCausalLM

    text = WORK / "text"
    text.mkdir(parents=True, exist_ok=True)
    files = [p for p in Path(sysconfig.get_paths()["stdlib"]).rglob("*.py") if "site-packages" not in p.parts]
    for i, p in enumerate(sorted(files, key=lambda p: (-p.stat().st_size, str(p)))[:4]):
        (text / f"{i}.txt").write_text(p.read_text(encoding="utf-8", errors="replace"))
    ckpt = WORK / "ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    for f in Path(args.shape).iterdir():
        if f.name != "config.json":
            shutil.copy(f, ckpt / f.name)
    cfg = AutoConfig.from_pretrained(args.shape)
    if args.tiny:
        cfg.num_hidden_layers = 2
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
    model.save_pretrained(ckpt)
    return {"layers": cfg.num_hidden_layers, "params": sum(p.numel() for p in model.parameters()),
            "text_bytes": [p.stat().st_size for p in sorted(text.iterdir())]}


def spec(args) -> str:
    from sparsebench import registry
    from sparsebench.params import params_dict
    from sparsebench.plan import Job

    tparams = params_dict(registry.task("lm-local-long").cls.build(task_params(args), "bench").params)
    mparams = params_dict(registry.method("quest-prefill").cls.build({"block": 16}, "bench").params)
    return Job("lm-local-long", "quest-prefill", "sparse_attention", {"sparsity": 0.875, "pattern": "unstructured"},
               0, "cpu" if args.tiny else "h200", tparams, mparams).spec_json()


def job(args, name: str):
    out = WORK / f"{name}.json"
    cmd = [sys.executable, "-m", "sparsebench", "run", "--spec", spec(args), "--out", str(out)]
    env = {**os.environ, "SPARSEBENCH_CACHE": str(WORK / "cache")}
    for k, v in USER_CACHE_VARS.items():
        env.pop(k, None) if v is None else env.__setitem__(k, v)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    r = json.loads(out.read_text())
    shutil.copy(out, Path(args.out) / f"{name}.json")
    return {"process_wall_s": wall, "timings": r["timings"], "extra": {k: r["extra"].get(k) for k in (
        "load_parts_s", "phase_parts_s", "attention_parts_ms", "flex_first_calls", "compile_cache", "job_parts_s",
        "family_parts_s", "task_build_imports", "process_before_job_s")},
        "recall_rows": {p: [v.get("recall_rows"), v.get("recall_rows_total")] for p, v in r["sparsity"]["phases"].items()},
        "metrics": r["metrics"], "environment": r["environment"]}


def steady(args, reps: int = 4):
    """The sparse prefill forward of the 32k prompt repeated in one process (after one warm-up call that
    loads the compiled kernel), beside the dense (SDPA) forward: the forward's own time outside attention."""
    os.environ["SPARSEBENCH_CACHE"] = str(WORK / "cache")
    from sparsebench import registry
    from sparsebench.attention import SparseAttention

    task = registry.task("lm-local-long").cls.build(task_params(args), "bench")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = task.load_model(torch.float16 if dev.type == "cuda" else torch.float32).to(dev)
    ids, prompt_len = task.cached_samples()
    prompt = ids[:, :prompt_len].to(dev)
    method = registry.method("quest-prefill").cls.build({"block": 16}, "bench")
    session = SparseAttention(method, 0.125, query_block=64, executor="flex").install(model)
    out = {}
    with torch.no_grad(), session.active():
        for name, ctx in (("sparse", lambda: session.sparse("prefill")), ("dense", lambda: _null())):
            times = []
            for i in range(reps + 1):
                if i == 1:
                    session._parts.clear()
                sync()
                t0 = time.perf_counter()
                with ctx():
                    model(prompt, use_cache=True, logits_to_keep=1)
                sync()
                times.append(time.perf_counter() - t0)
            out[name] = {"first_s": times[0], "steady_s": sorted(times[1:])[len(times[1:]) // 2], "all_s": times}
            if name == "sparse" and dev.type == "cuda":
                out["sparse"]["parts_ms_per_forward"] = {k: v / reps if k != "calls" else v // reps
                                                         for k, v in session.parts_ms().get("prefill", {}).items()}
        if dev.type == "cuda":  # one more sparse forward counting the host's waits for the device, and where
            out["sparse"]["syncs"] = _syncs(lambda: model(prompt, use_cache=True, logits_to_keep=1), session)
        if dev.type == "cuda":  # one more sparse forward under the profiler: where its host and GPU time go
            try:
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof, \
                        session.sparse("prefill"):
                    model(prompt, use_cache=True, logits_to_keep=1)
                    sync()
                ev = prof.key_averages()
                for key, name in (("self_cpu_time_total", "cpu"), ("self_device_time_total", "gpu")):
                    Path(args.out, f"profile_{name}.txt").write_text(ev.table(sort_by=key, row_limit=40))
            except Exception as exc:  # noqa: BLE001 - the timings above stand without the profile
                out["profile_failed"] = repr(exc)[:500]
    return out


def _syncs(forward, session) -> dict:
    """Host synchronisations of one sparse forward (torch.cuda.set_sync_debug_mode): how many, and the
    innermost project frames that caused them."""
    import traceback
    import warnings
    from collections import Counter

    sites = Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        frames = [f for f in traceback.extract_stack() if "/sparsebench/" in f.filename or "/methods/" in f.filename]
        sites[" < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[::-1][:3]) or "outside"] += 1

    warnings.showwarning = record
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with session.sparse("prefill"):
                    forward()
            finally:
                torch.cuda.set_sync_debug_mode(0)
    finally:
        warnings.showwarning = original
    return {"count": sum(sites.values()), "sites": dict(sites.most_common(10))}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def table(r: dict):
    cold, warm, st = r.get("job_cold", {}), r.get("job_warm", {}), r.get("steady", {})
    att = (cold.get("timings") or {}).get("attention_prefill_ms")
    print("\npart (s)                      cold      warm")
    for k in ("total_s", "load_s", "prefill_s", "decode_s", "flex_first_calls_s", "attention_latency_measure_s"):
        print(f"{k:28}{(cold.get('timings') or {}).get(k, float('nan')):>8.3f}"
              f"{(warm.get('timings') or {}).get(k, float('nan')):>10.3f}")
    print(f"process wall                {cold.get('process_wall_s', float('nan')):>8.3f}"
          f"{warm.get('process_wall_s', float('nan')):>10.3f}")
    print("attention_prefill_ms", att, "steady:", json.dumps(st, default=str)[:600])
    if not att:
        return
    a = att / 1000.0
    print(f"\ntime outside attention / attention time ({att:.1f} ms), target <= 5x")
    for name, r_ in (("cold", cold), ("warm", warm)):
        t = r_.get("timings") or {}
        if "total_s" not in t:
            continue
        place = ((r_.get("extra") or {}).get("load_parts_s") or {}).get("place", 0.0)
        whole = (t["total_s"] - a) / a
        rest = (t["total_s"] - t.get("load_s", 0) - place - t.get("flex_first_calls_s", 0) - a) / a
        print(f"job {name}: whole {whole:.0f}x; without load, placement and compiles {rest:.0f}x")
    sp = (st.get("sparse") or {}).get("steady_s")
    if sp:
        print(f"steady prefill forward: {sp * 1000:.1f} ms -> {(sp - a) / a:.1f}x "
              f"(dense {((st.get('dense') or {}).get('steady_s') or 0) * 1000:.1f} ms)")
        parts = st["sparse"].get("parts_ms_per_forward") or {}
        dense = (st.get("dense") or {}).get("steady_s") or 0
        print("per steady sparse forward, ms (x attention): " + ", ".join(
            f"{k} {v:.1f} ({v / att:.2f}x)" for k, v in parts.items() if k != "calls")
            + f"; syncs {(st['sparse'].get('syncs') or {}).get('count')}; sparse - dense {(sp - dense) * 1000:.1f} ms")


STEPS = {"build": build, "job_cold": lambda a: job(a, "job_cold"), "job_warm": lambda a: job(a, "job_warm"),
         "steady": steady}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("step", choices=["all", *STEPS])
    p.add_argument("--shape", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    steps = list(STEPS) if args.step == "all" else [args.step]
    results = {}
    for step in steps:
        t0 = time.perf_counter()
        print(f"=== {step}", flush=True)
        try:
            results[step] = STEPS[step](args)
        except Exception as exc:  # noqa: BLE001 - the other steps' numbers still come back
            results[step] = {"failed": repr(exc)[:2000]}
            print(f"{step} failed: {exc!r}", flush=True)
        results[step]["step_wall_s"] = time.perf_counter() - t0
        Path(args.out, "quest32k.json").write_text(json.dumps(results, indent=1, default=str))
    table(results)


if __name__ == "__main__":
    main()
