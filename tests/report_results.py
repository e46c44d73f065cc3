"""Real CI-sized results for the report, tracking and browser tests, produced once per test session.

The pruning jobs of ``config/ci.yaml`` (dense, magnitude and random at 50 % and 2:4 on
the real model with 128-token windows) plus random at 50 % with a second seed,
so that seed intervals have something to show. Each job runs through
``sparsebench.runner.run_job`` exactly as the workflow runs it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

_made: dict[str, Path] = {}


def ci_jobs():
    from sparsebench.config import load_config
    from sparsebench.plan import plan_jobs
    from sparsebench.registry import project_root

    jobs = plan_jobs(load_config(project_root() / "config" / "ci.yaml"), only_available=True, log=None)
    jobs = [j for j in jobs if j.family == "pruning"]  # the other families' CI jobs have their own tests
    extra = next(j for j in jobs if j.method == "random" and j.target["pattern"] == "unstructured")
    return jobs + [dataclasses.replace(extra, seed=1)]


def report_results(tmp_path_factory) -> Path:
    """A results directory with the CI jobs' result.json files and summary.csv (made once per session).

    ``$SPARSEBENCH_REPORT_RESULTS`` may name a directory made earlier by this function: it is used when
    it holds every job's result (saves the jobs when iterating on the report locally).
    """
    import os

    cached = os.environ.get("SPARSEBENCH_REPORT_RESULTS")
    if "dir" not in _made and cached and (Path(cached) / "summary.csv").exists() \
            and all(job.result_path(cached).exists() for job in ci_jobs()):
        _made["dir"] = Path(cached)
    if "dir" not in _made:
        from sparsebench.results import find_results, summarize, write_summary
        from sparsebench.runner import run_job

        d = tmp_path_factory.mktemp("report_results")
        for job in ci_jobs():
            run_job(job, job.result_path(d))
        write_summary(summarize(find_results(d)), d / "summary.csv")
        _made["dir"] = d
    return _made["dir"]
