"""The workflow as a user starts it from the repository root: which config it plans, locks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")


def dry_run(root, *extra):
    """`snakemake -n` from the repository root, as a user types it; returns {rule: count}."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run([SNAKEMAKE, "-n", "--forceall", "--quiet", "rules", "--cores", "1", *extra],
                          cwd=root, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    counts = {}
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts, out


def test_a_given_configfile_is_the_whole_config_not_merged_with_config_yaml(root):
    counts, out = dry_run(root, "--configfile", "config/ci.yaml")
    # ci.yaml: pruning 1 + 2x2, vision 2, teal 1, attention 3 = 11 jobs
    assert counts.get("run_job") == 11, out[-3000:]


def test_workflow_profile_with_ci_config_plans_the_ci_matrix(root):
    counts, out = dry_run(root, "--workflow-profile", "workflow/profiles/default", "--configfile", "config/ci.yaml")
    assert counts.get("run_job") == 11, out[-3000:]
