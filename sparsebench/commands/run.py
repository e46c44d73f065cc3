"""sparsebench prepare / run: per-machine preparation of a task, and one job."""

from __future__ import annotations

import json
import time
from pathlib import Path


def register(sub):
    p = sub.add_parser("prepare", help="one-time per-machine preparation of a task (e.g. cache float weights)")
    p.add_argument("--task", required=True)
    p.add_argument("--params", default=None, help="the task's parameters as JSON (the config's tasks.<name>)")
    p.add_argument("--out", required=True, help="stamp file to write (JSON)")
    p.set_defaults(func=prepare)
    p = sub.add_parser("run", help="run one job and write its result.json atomically")
    p.add_argument("--spec", required=True, help="the job as JSON (see `sparsebench plan`)")
    p.add_argument("--out", required=True, help="path of result.json")
    p.set_defaults(func=run, exit_at_once=True)  # see sparsebench.cli.exit_at_once


def prepare(args) -> int:
    from sparsebench import registry
    from sparsebench.results import write_atomic

    t0 = time.perf_counter()
    from sparsebench.errors import ConfigError

    try:
        params = json.loads(args.params) if args.params else None
    except ValueError as exc:
        raise ConfigError(f"--params={args.params!r}: not valid JSON ({exc}); allowed: a JSON object") from None
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"--params={args.params!r}: allowed: a JSON object of the task's parameters")
    task = registry.task(args.task, "--task").cls.build(params, "--params")
    try:
        info = task.prepare()
    except FileNotFoundError as exc:
        raise ConfigError(f"{args.task}: {exc}") from None
    info["prepare_s"] = time.perf_counter() - t0
    write_atomic(Path(args.out), json.dumps({"task": args.task, **info}, indent=2, default=str) + "\n")
    print(f"prepared {args.task} in {info['prepare_s']:.1f} s")
    return 0


def run(args) -> int:
    import os

    from sparsebench.progress import bars_enabled

    if not bars_enabled():  # Hugging Face's own bars ("Loading weights") would fill the job's log
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sparsebench.finish import finished_line
    from sparsebench.plan import Job
    from sparsebench.runner import run_job

    job = Job.from_spec(args.spec)
    result = run_job(job, Path(args.out))
    print(finished_line(result, args.out))
    return 0
