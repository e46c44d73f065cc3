"""Hand-written result.json files for tests of what readers do with damaged or invalid results.

Shaped like the runner's output (same keys), with made-up numbers: these tests pin how
aggregate, report, claims and track treat a file, not what a method computes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import make_job


def write_fake(results_dir: Path, method: str, sparsity: float, perplexity, pattern="unstructured", seed=0,
               status="ok", invalid_reason=None) -> Path:
    from sparsebench.results import write_result

    job = make_job(method, {"sparsity": sparsity, "pattern": pattern}, seed=seed)
    result = {
        "schema": 1, "status": status, "run_id": job.run_id, "job": job.spec(),
        "target_label": "dense" if sparsity == 0 else f"{pattern} {sparsity:.0%}",
        "paper": None, "metric_info": {"perplexity": {"higher_is_better": False}},
        "metrics": {"perplexity": perplexity}, "sparsity": {"measured": sparsity, "target": sparsity},
        "timings": {"total_s": 1.0}, "memory": {"peak_rss_mb": 100.0},
        "data": {"eval_tokens_sha256": "0" * 64}, "hardware_profile": {"name": "cpu", "device": "cpu"},
        "environment": {"commit": "test"}, "extra": {}, "created": "2026-01-01T00:00:00+00:00",
    }
    if invalid_reason:
        result["invalid_reason"] = invalid_reason
    path = job.result_path(results_dir)
    write_result(path, result)
    return path


def sparsebench(*args, cwd=None):
    """The CLI as a user types it (``sparsebench ...``), run from the repository root."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root), SPARSEBENCH_ROOT=str(root))
    return subprocess.run([sys.executable, "-m", "sparsebench", *map(str, args)], cwd=cwd or root,
                          capture_output=True, text=True, env=env)
