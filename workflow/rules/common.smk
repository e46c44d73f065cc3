# Validate the config (schema + discovered names) before any job starts, and
# expand it into jobs. All logic lives in the sparsebench package.
import json
import os
import sys

from sparsebench import registry
from sparsebench.config import validate_config
from sparsebench.hardware import profile
from sparsebench.plan import plan_jobs

# Rules call `sparsebench`: the one installed beside this Snakemake's Python, so that
# `.venv/bin/snakemake` works without activating the venv.
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
)
# One validation (schema + discovered names + task limits) that reports every problem as
# `key=value; allowed: ...`; Snakemake's own validate() would print raw jsonschema text.
config = validate_config(
    config,
    source=", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml",
)
RESULTS = config["results_dir"]
REPORTS = config["reports_dir"]
if not workflow.dryrun and workflow.exec_mode.name == "DEFAULT":
    # One workflow per results directory (from any working directory); a run killed with -9
    # leaves Snakemake locks behind, which are removed here so that the next run resumes.
    from sparsebench.workflow_lock import (
        hold_results_lock,
        remove_stale_snakemake_locks,
    )

    hold_results_lock(RESULTS)
    # One line per finished job (task, method, target, metric with its 95 % interval, result path).
    from sparsebench.finish import listen_to_snakemake

    listen_to_snakemake()
    for _stale in remove_stale_snakemake_locks([RESULTS, REPORTS]):
        print(
            f"sparsebench: removed {_stale} left by a stopped run (no other run holds {RESULTS})"
        )
if config.get("cache_dir"):
    # The model cache `prepare_task` builds and every run job reads. Set in the
    # environment at parse time, so local jobs inherit it and cluster jobs get it
    # twice over (sbatch --export=ALL, and each job re-reads this config).
    os.environ["SPARSEBENCH_CACHE"] = os.path.abspath(
        os.path.expanduser(config["cache_dir"])
    )
# Locally, jobs for a device this machine lacks are left out (with a message).
# On a cluster (any non-local executor) the submit host's devices say nothing
# about the nodes': every job stays, and a cuda job asks for a GPU (run_resources).
JOBS = {
    job.run_id: job
    for job in plan_jobs(config, only_available=not workflow.non_local_exec)
}
TASKS = sorted({job.task for job in JOBS.values()})


def job_of(wildcards):
    return JOBS[wildcards.run_id]


def result_files():
    return [str(job.result_path(RESULTS)) for job in JOBS.values()]


def run_resources(wildcards) -> dict:
    """What a run job asks the scheduler for: its task's memory and time, a GPU for a cuda profile,
    and its threads: the task's own ``threads`` parameter (vision: 1) or, locally, every core, since
    the job's torch uses every core it may run on (two LM jobs side by side on 2 cores run 4 threads
    and are slower together than one after the other). On a cluster ``cpus_per_task`` decides.
    """
    job = job_of(wildcards)
    declared = registry.task(job.task).cls.resources
    own = job.task_params.get("threads")
    return {
        "mem_mb": declared.mem_mb,
        "runtime": declared.runtime,
        "gpu": 1 if profile(job.hardware).device == "cuda" else 0,
        "threads": (
            int(own)
            if own
            else (1 if workflow.non_local_exec else max(1, int(workflow.cores or 1)))
        ),
    }
