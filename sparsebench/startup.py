"""sparsebench bench startup: what one job of each family spends before its first useful work.

Every job of the matrix is a fresh ``sparsebench run`` process, so each pays Python's start-up again.
For one job per family (the default config's task parameters), a fresh process goes through a job's
steps up to the work itself and times each phase:

- ``import``: from the process's start (interpreter, CLI, the runner with torch) to the job's first line;
- ``discovery``: the task and the job's family and method found and built (``sparsebench.registry``);
- ``load``: the task's model, loaded and placed as ``JobContext.load_model`` does (transformers or timm
  are imported here);
- ``data``: the task's data (``data_info``: the evaluation tokens or the image splits; calibration windows
  for the families that calibrate).

Each phase's minimum over ``--repeats`` processes is printed (the minimum is the least disturbed by
other work on a shared machine), with the start-up's CPU time (less sensitive to load than wall time)
and the process's wall time including its exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sparsebench.errors import ConfigError

# One job per family: (task, method, target) of the default matrix (config/config.yaml).
JOBS = {
    "pruning": ("lm-smollm2", "wanda", {"sparsity": 0.5}),
    "activation_sparsity": ("lm-smollm2-quick", "teal", {"sparsity": 0.5}),
    "sparse_attention": ("lm-smollm2-2k", "quest", {"sparsity": 0.75}),
    "sparse_training": ("vision-digits", "rigl", {"sparsity": 0.9}),
}
PHASES = ("import", "discovery", "load", "data")


def register_startup(bsub) -> None:
    s = bsub.add_parser("startup", help="start-up of one job per family (imports, discovery, model load, data), "
                                        "each in a fresh process, min of N")
    s.add_argument("--families", default=",".join(JOBS), help=f"comma-separated (default {','.join(JOBS)})")
    s.add_argument("--repeats", type=int, default=3, help="fresh processes per family (default 3)")
    s.add_argument("--config", default="config/config.yaml", help="whose task parameters the jobs use")
    s.add_argument("--json", help="also write every measurement to this file")
    s.add_argument("--one", help=argparse.SUPPRESS, default=None)  # child process: a family
    s.add_argument("--t0", type=float, help=argparse.SUPPRESS, default=None)  # child: the parent's launch time
    s.set_defaults(func=run_startup)


def measure_one(family: str, config: str, t0: float) -> dict:
    """In the child process: a job's steps up to its work, timed (seconds since ``t0``, the launch)."""
    marks, cpu = {}, {}
    import torch  # noqa: F401  (what `sparsebench run` imports through the runner)
    import yaml

    from sparsebench import registry
    from sparsebench.hardware import profile
    from sparsebench.plan import Job
    from sparsebench.runner import JobContext, seed_everything
    from sparsebench.targets import Target

    marks["import"], cpu["import"] = time.time() - t0, time.process_time()
    task_name, method_name, target = JOBS[family]
    task_params = (yaml.safe_load(Path(config).read_text()).get("tasks") or {}).get(task_name) or {}
    task = registry.task(task_name, "task").cls.build(task_params, f"tasks.{task_name}")
    method = registry.method(method_name, "method", family=family).cls.build({}, f"methods.{method_name}")
    registry.family(family)
    hw = profile("cpu", "bench")
    torch.set_num_threads(int(getattr(task.params, "threads", 0) or 0) or hw.thread_count())
    target = Target.from_config(target)
    job = Job(task_name, method_name, family, target.to_dict(), 0, hw.name)
    ctx = JobContext(job, task, method, target, hw, seed_everything(0))
    marks["discovery"], cpu["discovery"] = time.time() - t0, time.process_time()
    ctx.load_model()
    marks["load"], cpu["load"] = time.time() - t0, time.process_time()
    task.data_info()
    if family in ("pruning", "activation_sparsity"):
        task.calibration_windows(0)
    marks["data"], cpu["data"] = time.time() - t0, time.process_time()
    out = {"family": family, "job": f"{task_name} {method_name} {target.label}"}
    prev = prev_cpu = 0.0
    for phase in PHASES:
        out[f"{phase}_s"], prev = marks[phase] - prev, marks[phase]
        out[f"{phase}_cpu_s"], prev_cpu = cpu[phase] - prev_cpu, cpu[phase]
    out["startup_s"] = marks["data"]
    out["startup_cpu_s"] = cpu["data"]  # CPU time of the process (all its threads): less disturbed by load
    return out


def run_startup(args) -> int:
    from sparsebench.cli import exit_at_once

    if args.one:
        print("BENCH " + json.dumps(measure_one(args.one, args.config, args.t0)), flush=True)
        exit_at_once(0)  # as a job ends (sparsebench.cli.exit_at_once)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in JOBS]
    if unknown:
        raise ConfigError(f"--families: {', '.join(unknown)} unknown; allowed: {', '.join(JOBS)}")
    if args.repeats < 1:
        raise ConfigError(f"--repeats={args.repeats}: allowed: an integer >= 1")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; min over {args.repeats} fresh processes "
          f"per family, seconds (a shared machine makes times noisy)")
    print(f"{'family':<20} {'job':<28}" + "".join(f"{p:>10}" for p in PHASES)
          + f"{'start-up':>10}{'CPU':>8}{'process':>10}")
    rows = []
    for family in families:
        runs = []
        for _ in range(args.repeats):
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-m", "sparsebench", "bench", "startup", "--one", family,
                                   "--config", args.config, "--t0", repr(t0)], capture_output=True, text=True)
            wall = time.time() - t0
            line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH ")), None)
            if proc.returncode or line is None:
                print(f"{family:<20} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
                break
            runs.append({**json.loads(line[len("BENCH "):]), "process_s": wall})
        if not runs:
            continue
        best = {k: min(r[k] for r in runs) for k in runs[0] if k.endswith("_s")}
        rows.append({"family": family, "job": runs[0]["job"], "min": best, "runs": runs})
        print(f"{family:<20} {runs[0]['job']:<28}" + "".join(f"{best[f'{p}_s']:>10.2f}" for p in PHASES)
              + f"{best['startup_s']:>10.2f}{best['startup_cpu_s']:>8.2f}{best['process_s']:>10.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
