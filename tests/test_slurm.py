"""The same DAG on a real SLURM: snakemake --profile workflow/profiles/slurm on config/ci.yaml's pruning part.

Opt-in (`-m slurm`). Starts a single-node SLURM on 127.0.0.1 with
ci/slurm_up.sh (munged + slurmctld + slurmd, as root), runs the workflow through
snakemake-executor-plugin-slurm and again locally, and tears the daemons down
afterwards (also when a test fails). Skips when the SLURM binaries, root or the
plugin are missing; `SPARSEBENCH_SLURM_INSTALL=1` lets ci/slurm_up.sh apt-get
slurm-wlm and munge first.

No accounting database here, so `sacct` cannot answer: SLURM's own job
completion log (jobcomp/filetxt) and the job id every result records show that
the jobs went through sbatch.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slurm

BIN = Path(sys.executable).parent
SNAKEMAKE = shutil.which("snakemake", path=str(BIN)) or shutil.which("snakemake")
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun", "scancel")
RUN_TIMEOUT_S = 2400  # per snakemake run; the CI matrix takes minutes
# Columns a result fixes (same config, same seeds); timings and memory vary by
# run, and the commit if the checkout moved between the two runs.
VOLATILE = ("time.", "memory.", "commit", "latency_ms.")  # measured, or provenance: not results


def _env(**extra) -> dict:
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", **extra)


@pytest.fixture(scope="module")
def slurm(root, tmp_path_factory):
    """A running single-node SLURM; yields its state directory (logs under log/)."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root (slurmd launches the jobs)")
    install = os.environ.get("SPARSEBENCH_SLURM_INSTALL") == "1"
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing and not install:
        pytest.skip(f"SLURM is not installed (missing {', '.join(missing)}); apt-get install -y slurm-wlm munge")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed; pip install -e '.[slurm]'")
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "written by sparsebench ci/slurm_up.sh" not in conf.read_text():
        pytest.skip(f"{conf} belongs to a real SLURM on this machine; not starting a throwaway one")

    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(
        ["bash", str(root / "ci" / "slurm_up.sh"), *(["--install"] if install else []), str(state)],
        capture_output=True, text=True, timeout=600,
    )
    try:
        if up.returncode != 0:
            pytest.fail(f"ci/slurm_up.sh failed:\n{up.stdout}{up.stderr}\n{_logs(state)}")
        yield state
    finally:
        subprocess.run(["bash", str(root / "ci" / "slurm_down.sh"), str(state)], capture_output=True, timeout=120)


def _logs(state: Path) -> str:
    out = []
    for name in ("slurmctld.log", "slurmd.log", "munged.log"):
        path = state / "log" / name
        if path.exists():
            out.append(f"--- {name} (tail)\n" + "\n".join(path.read_text().splitlines()[-30:]))
    return "\n".join(out)


def _pruning_ci_config(root, workdir) -> Path:
    """config/ci.yaml cut to its pruning experiment: a fixed, small DAG (1 prepare, 5 run jobs)."""
    import yaml

    config = yaml.safe_load((root / "config" / "ci.yaml").read_text())
    config["experiments"] = {"llm-pruning": config["experiments"]["llm-pruning"]}
    config["tasks"] = {t: config["tasks"][t] for t in config["experiments"]["llm-pruning"]["tasks"]}
    path = Path(workdir) / "slurm_ci.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(root, workdir, *args, env) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(_pruning_ci_config(root, workdir)), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def cluster_run(root, slurm, tmp_path_factory):
    """The CI matrix through sbatch, with the model cache in a fresh directory the config names."""
    workdir = tmp_path_factory.mktemp("slurm_wf")
    cache = workdir / "model-cache"
    proc = _snakemake(
        root, workdir,
        "--profile", str(root / "workflow" / "profiles" / "slurm"),
        "--config", f"cache_dir={cache}",
        # this node has 2 CPUs: the profile's cpus_per_task=4 would never schedule
        "--default-resources", "mem_mb=2000", "runtime=30", "cpus_per_task=1",
        # no accounting database here: poll squeue (MinJobAge keeps finished jobs), and soon
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "5",
        "--slurm-keep-successful-logs",
        env=_env(SPARSEBENCH_ROOT=str(root)),
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"snakemake on SLURM failed:\n{out[-6000:]}\n{_logs(slurm)}")
    return workdir, out, cache


@pytest.fixture(scope="module")
def local_run(root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local_wf")
    proc = _snakemake(root, workdir, "--cores", "2", env=_env(SPARSEBENCH_ROOT=str(root)))
    if proc.returncode != 0:
        raise AssertionError(proc.stdout[-4000:] + proc.stderr[-4000:])
    return workdir


def _submitted(out: str) -> dict[str, str]:
    """SLURM job id -> snakemake rule, from the executor's 'submitted' lines."""
    jobs = {}
    for m in re.finditer(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", out):
        rule = re.search(r"/rule_([^/]+)/", m.group(2))
        jobs[m.group(1)] = rule.group(1) if rule else "?"
    return jobs


def _jobcomp(state: Path) -> dict[str, dict]:
    """SLURM's job completion log: job id -> its fields (JobState, NodeList, ...)."""
    records = {}
    path = state / "log" / "jobcomp.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        records[fields["JobId"]] = fields
    return records


def test_every_model_job_went_through_sbatch_and_completed_in_slurm(slurm, cluster_run):
    workdir, out, _ = cluster_run
    submitted = _submitted(out)
    rules = sorted(submitted.values())
    # the cpu kernel suite, one prepare_task and 5 run jobs (dense once; magnitude, random at 50 % and 2:4)
    assert rules == ["kernels", "prepare_task"] + ["run_job"] * 5, out[-3000:]
    done = _jobcomp(slurm)
    for job_id, rule in submitted.items():
        assert done[job_id]["JobState"] == "COMPLETED", done.get(job_id)
        assert (workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").is_dir()


def test_aggregate_track_and_report_run_on_the_submit_host_not_in_slurm(cluster_run):
    workdir, out, _ = cluster_run
    assert not set(_submitted(out).values()) & {"aggregate", "track", "report"}
    assert (workdir / "results" / "mlflow_runs.csv").exists()
    assert (workdir / "reports" / "index.html").exists()


def test_each_result_records_the_slurm_job_that_produced_it(cluster_run):
    workdir, out, cache = cluster_run
    run_jobs = {j for j, rule in _submitted(out).items() if rule == "run_job"}
    results = [json.loads(p.read_text()) for p in (workdir / "results" / "runs").rglob("result.json")]
    assert {r["environment"]["slurm_job_id"] for r in results} == run_jobs
    # and read its model from the cache the config named, which the prepare_task job built
    assert {r["environment"]["cache_dir"] for r in results} == {str(cache)}
    assert any((cache / "models").iterdir())


def test_cluster_summary_equals_local_summary(cluster_run, local_run):
    cluster = pd.read_csv(cluster_run[0] / "results" / "summary.csv")
    local = pd.read_csv(local_run / "results" / "summary.csv")
    keep = [c for c in local.columns if not c.startswith(VOLATILE)]
    assert sorted(cluster.columns) == sorted(local.columns)
    key = ["method", "target_label", "seed"]
    cluster = cluster[keep].sort_values(key).reset_index(drop=True)
    local = local[keep].sort_values(key).reset_index(drop=True)
    assert len(local) == 5
    # same seeds, same thread count (2 on both: task/none binds nothing), same numbers
    pd.testing.assert_frame_equal(cluster, local, check_exact=True)
