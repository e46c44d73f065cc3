"""MLflow: one experiment per task, one run per result, never two runs for one result.

Each MLflow run carries the sparsebench run id as the tag ``sparsebench.run_id``;
tracking again finds it and skips. Only this function writes the store (the
workflow's single ``track`` job), so the SQLite file never has concurrent writers.
"""

from __future__ import annotations

import json
from pathlib import Path

RUN_ID_TAG = "sparsebench.run_id"


def default_tracking_uri(results_dir: Path, explicit: str | None = None) -> str:
    import os

    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(results_dir) / 'mlflow.db').resolve()}"


def _params(result: dict) -> dict[str, str]:
    job = result["job"]
    out = {
        "task": job["task"],
        "method": job["method"],
        "family": job["family"],
        "pattern": job["target"]["pattern"],
        "target_sparsity": str(job["target"]["sparsity"]),
        "target": result.get("target_label", ""),
        "seed": str(job["seed"]),
        "hardware": job["hardware"],
    }
    for k, v in job.get("method_params", {}).items():
        out[f"method.{k}"] = json.dumps(v) if not isinstance(v, str) else v
    for k, v in job.get("task_params", {}).items():
        out[f"task.{k}"] = json.dumps(v) if not isinstance(v, str) else v
    return out


def _metrics(result: dict) -> dict[str, float]:
    out = {k: float(v) for k, v in result.get("metrics", {}).items() if isinstance(v, (int, float))}
    sp = result.get("sparsity", {})
    if isinstance(sp.get("measured"), (int, float)):
        out["measured_sparsity"] = float(sp["measured"])
    for k, v in result.get("timings", {}).items():
        out[f"time.{k}"] = float(v)
    for k, v in result.get("memory", {}).items():
        out[f"memory.{k}"] = float(v)
    return out


def _tags(result: dict) -> dict[str, str]:
    env = result.get("environment", {})
    paper = result.get("paper") or {}
    return {
        RUN_ID_TAG: result["run_id"],
        "family": result["job"]["family"],
        "paper": paper.get("title", ""),
        "paper.arxiv": paper.get("arxiv") or "",
        "commit": env.get("commit") or "",
        "hardware_profile": result["job"]["hardware"],
        "cpu": env.get("cpu", ""),
        "gpu": env.get("gpu") or "",
        "data_hash": result.get("data", {}).get("eval_tokens_sha256", ""),
    }


def _experiment_id(client, name: str, results_dir: Path, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:"):
        artifact_location = (Path(results_dir) / "mlartifacts" / name).resolve().as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def track_results(results_dir: Path, uri: str | None = None, out: Path | None = None):
    import mlflow
    import pandas as pd
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from sparsebench.results import find_results, read_result, write_atomic

    uri = default_tracking_uri(results_dir, uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    known: dict[str, dict[str, str]] = {}  # experiment id -> sparsebench run id -> mlflow run id
    rows = []
    for path in find_results(results_dir):
        result = read_result(path)
        exp_id = _experiment_id(client, result["job"]["task"], results_dir, uri)
        if exp_id not in known:
            runs = client.search_runs([exp_id], max_results=50000)
            known[exp_id] = {r.data.tags.get(RUN_ID_TAG): r.info.run_id for r in runs if RUN_ID_TAG in r.data.tags}
        rid = result["run_id"]
        if rid in known[exp_id]:
            rows.append({"run_id": rid, "mlflow_run_id": known[exp_id][rid], "experiment": exp_id, "created": False})
            continue
        name = f"{result['job']['method']} {result.get('target_label', '')} s{result['job']['seed']}"
        run = client.create_run(exp_id, run_name=name, tags={RUN_ID_TAG: rid})
        ts = int(run.info.start_time)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in _metrics(result).items()],
            params=[Param(k, v) for k, v in _params(result).items()],
            tags=[RunTag(k, v) for k, v in _tags(result).items()],
        )
        client.log_artifact(run.info.run_id, str(path))
        client.set_terminated(run.info.run_id)
        known[exp_id][rid] = run.info.run_id
        rows.append({"run_id": rid, "mlflow_run_id": run.info.run_id, "experiment": exp_id, "created": True})
    table = pd.DataFrame(rows, columns=["run_id", "mlflow_run_id", "experiment", "created"])
    if out is not None:
        write_atomic(out, table.to_csv(index=False))
    return table
