"""What a job asks a cluster for, and how many threads it then uses (fast; no SLURM needed)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sparsebench.hardware import HardwareProfile


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux CPU affinity and 2 CPUs")
def test_cpu_profile_threads_follow_the_cpus_this_process_may_run_on():
    # SLURM (task/affinity, task/cgroup) binds a job to its cpus_per_task; the
    # profile must not start a thread per core of the whole node.
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert HardwareProfile(name="cpu", device="cpu").thread_count() == 1
        assert HardwareProfile(name="cpu", device="cpu", threads=3).thread_count() == 3
    finally:
        os.sched_setaffinity(0, before)
    assert HardwareProfile(name="cpu", device="cpu").thread_count() == len(before)


def test_run_jobs_ask_for_their_tasks_memory_and_no_gpu_on_a_cpu_profile(root, tmp_path):
    from sparsebench import registry

    bindir = Path(sys.executable).parent
    snakemake = shutil.which("snakemake", path=str(bindir)) or shutil.which("snakemake")
    proc = subprocess.run(
        [snakemake, "-n", "--snakefile", str(root / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(root / "config" / "ci.yaml"), "--cores", "1"],
        capture_output=True, text=True, env=dict(os.environ, SPARSEBENCH_ROOT=str(root)),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    from sparsebench.config import load_config
    from sparsebench.plan import plan_jobs

    # each run_job prints its message: "<task> <method> -> <output> (log: ...; asks mem_mb=.., runtime=.., gpu=..)"
    pattern = r"^Job \d+: (\S+) \S+ -> \S+/result\.json \(log: \S+; asks (mem_mb=\d+, runtime=\d+, gpu=\d+)\)$"
    jobs = re.findall(pattern, out, flags=re.M)
    assert len(jobs) == len(plan_jobs(load_config(root / "config" / "ci.yaml"))), out[-3000:]
    for task, line in jobs:
        declared = registry.task(task).cls.resources
        fields = dict(kv.split("=", 1) for kv in line.split(", "))
        assert int(fields["mem_mb"]) == declared.mem_mb and int(fields["runtime"]) == declared.runtime, task
        assert fields["gpu"] == "0"
