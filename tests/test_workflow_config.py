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


def _snakemake(cwd, *args):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([SNAKEMAKE, "--cores", "1", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env)


def test_a_run_killed_with_minus_9_resumes_without_unlock(root, tmp_path):
    # what `kill -9` of `make run` leaves: Snakemake's lock files naming the workflow's outputs
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/prepared/vision-digits.json\nresults/summary.csv\n")
    (locks / "0.input.lock").write_text("results/prepared/vision-digits.json\n")
    proc = _snakemake(tmp_path, "results/prepared/vision-digits.json", "--snakefile", root / "Snakefile",
                      "--configfile", root / "config" / "ci.yaml")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (tmp_path / "results" / "prepared" / "vision-digits.json").exists()


def test_a_second_workflow_on_the_same_results_is_refused_from_any_directory(root, tmp_path):
    from sparsebench.workflow_lock import hold_results_lock

    results = tmp_path / "shared-results"
    hold_results_lock(results)  # this test process plays the first workflow
    proc = _snakemake(root, results / "prepared" / "vision-digits.json", "--configfile", "config/ci.yaml",
                      "--config", f"results_dir={results}", f"reports_dir={tmp_path / 'reports'}")
    assert proc.returncode != 0
    assert "is in use by another Snakemake" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    assert not (results / "prepared" / "vision-digits.json").exists()


def test_venv_snakemake_works_without_activating_the_venv(root, tmp_path):
    # `.venv/bin/snakemake` typed directly: PATH has no venv, yet every rule calls `sparsebench`
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.run([SNAKEMAKE, "--cores", "1", "results/prepared/vision-digits.json", "--snakefile",
                           str(root / "Snakefile"), "--configfile", str(root / "config" / "ci.yaml")],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_the_end_of_a_run_says_where_the_report_is_how_to_open_mlflow_and_the_claims_tally(tmp_path):
    import json

    from sparsebench.finish import finish_message

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.html").write_text("<html></html>")
    (tmp_path / "reports" / "claims.json").write_text(json.dumps(
        [{"status": "reproduced"}, {"status": "reproduced"}, {"status": "not run"}]))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "summary.csv").write_text("run_id,status\na,ok\nb,invalid\n")
    msg = finish_message(tmp_path / "results", tmp_path / "reports")
    assert str(tmp_path / "reports" / "index.html") in msg
    assert "make ui" in msg and "2 reproduced, 1 not run" in msg and "1 invalid" in msg
