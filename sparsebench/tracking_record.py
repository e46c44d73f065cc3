"""What one result becomes in MLflow: its params (strings), metrics (numbers, with interval bounds),
learning curve (step metrics), tags, datasets and job times; no store is written here (``sparsebench.tracking``
logs them)."""

from __future__ import annotations

import json
import math

from sparsebench.stats import interval_columns

RUN_ID_TAG = "sparsebench.run_id"
KIND_TAG = "sparsebench.kind"
RESULT_HASH_TAG = "sparsebench.result_sha256"
STATUS_TAG = "sparsebench.status"  # "ok" or "invalid" (the run is then FAILED and carries no quality metrics)
LATENCY_PREFIX = "latency_ms."  # summary columns: the model's estimated latency per hardware profile
DATA_SPLITS = {"eval": "evaluation", "test": "test", "val": "validation", "train": "training",
               "calibration": "calibration"}


def _text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def params(result: dict) -> dict[str, str]:
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
        out[f"method.{k}"] = _text(v)
    for k, v in job.get("task_params", {}).items():
        out[f"task.{k}"] = _text(v)
    return out


def _number(v) -> float | None:
    """A finite number or None: MLflow would store inf as 1.8e308 and NaN as a gap."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def metrics(result: dict) -> dict[str, float]:
    out = {k: _number(v) for k, v in result.get("metrics", {}).items()}
    for k, v in interval_columns(result).items():  # ci_lo.<metric> -> <metric>.ci_lo
        kind, metric = k.split(".", 1)
        out[f"{metric}.{kind}"] = _number(v)
    sp = result.get("sparsity", {}) or {}
    out["measured_sparsity"] = _number(sp.get("measured"))
    for k, v in sp.items():  # scalar extras (density, recall, ...); per-layer tables stay in result.json
        if k not in ("measured", "target"):  # the target is a param already
            out[f"sparsity.{k}"] = _number(v)
    for group in ("timings", "memory", "latency_ms"):
        prefix = {"timings": "time", "memory": "memory", "latency_ms": "latency_ms"}[group]
        for k, v in (result.get(group) or {}).items():
            out[f"{prefix}.{k}"] = _number(v)
    return {k: v for k, v in out.items() if v is not None}


def curve(result: dict) -> list[tuple[str, float, int]]:
    """(name, value, step) of a training run's learning curve (``extra.curve``): one point per evaluation."""
    out = []
    for point in (result.get("extra") or {}).get("curve") or []:
        step = point.get("step")
        if not isinstance(step, int):
            continue
        for k, v in point.items():
            if k not in ("step",) and _number(v) is not None:
                out.append((f"curve.{k}", float(v), step))
    return out


def latency_metrics(row) -> dict[str, float]:
    """``estimated_latency_ms.<profile>`` from a summary row's ``latency_ms.<profile>`` columns."""
    out = {}
    if row is None:
        return out
    for col, v in row.items():
        if str(col).startswith(LATENCY_PREFIX) and _number(v) is not None:
            out[f"estimated_latency_ms.{col[len(LATENCY_PREFIX):]}"] = float(v)
    return out


def datasets(result: dict) -> list:
    """The data a result was computed on as MLflow dataset inputs: one per split with a content hash
    (``<split>_sha256`` in the result's ``data``), named ``<task>/<split>``, digest = the hash's first 32
    hex digits (MLflow keeps 36 characters), the full hash and the data's description as source tags."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    data = result.get("data") or {}
    task = result["job"]["task"]
    described = {k: _text(v) for k, v in data.items() if not (isinstance(v, str) and "sha256" in k)}
    out = []
    for key, sha in sorted(data.items()):
        if not (isinstance(sha, str) and key.endswith("sha256")):
            continue
        part = key.removesuffix("_sha256").removesuffix("sha256").strip("_") or "data"
        context = next((ctx for prefix, ctx in DATA_SPLITS.items() if part.startswith(prefix)), part)
        source = CodeDatasetSource({"sparsebench.task": task, "sparsebench.key": key, "sha256": sha, **described})
        entity = MetaDataset(source, name=f"{task}/{part}", digest=sha[:32])._to_mlflow_entity()
        out.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)]))
    return out


def tags(result: dict, result_sha: str) -> dict[str, str]:
    env = result.get("environment", {})
    paper = result.get("paper") or {}
    data = result.get("data", {}) or {}
    job = result["job"]
    note = (f"{job['method']} ({job['family']}) at {result.get('target_label', '')} on {job['task']}, seed "
            f"{job['seed']}, hardware profile {job['hardware']}. Paper: {paper.get('title') or 'none'}"
            f"{' (arXiv:' + paper['arxiv'] + ')' if paper.get('arxiv') else ''}. sparsebench run id "
            f"{result['run_id']}; full record in the artifact result.json.")
    if result.get("status") == "invalid":
        note = f"INVALID RESULT, its numbers are not used: {result.get('invalid_reason', '')}. " + note
    return {
        RUN_ID_TAG: result["run_id"],
        KIND_TAG: "result",
        STATUS_TAG: result.get("status", "ok"),
        "sparsebench.invalid_reason": result.get("invalid_reason", ""),
        RESULT_HASH_TAG: result_sha,
        "family": job["family"],
        "paper": paper.get("title") or "",
        "paper.arxiv": paper.get("arxiv") or "",
        "commit": env.get("commit") or "",
        "mlflow.source.git.commit": env.get("commit") or "",
        "mlflow.source.name": f"sparsebench {job['family']}/{job['method']}",
        "mlflow.source.type": "LOCAL",
        "mlflow.note.content": note,
        "hardware_profile": job["hardware"],
        "cpu": env.get("cpu", ""),
        "gpu": env.get("gpu") or "",
        "data_hash": data.get("eval_tokens_sha256") or next(
            (v for k, v in data.items() if isinstance(v, str) and "sha256" in k), ""),
    }


def job_times(result: dict) -> tuple[int | None, int | None]:
    """When the job ran (ms since the epoch), so the UI's start time and duration are the job's own."""
    import datetime as dt

    try:
        end = dt.datetime.fromisoformat(result["created"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None, None
    return int((end - float(result.get("timings", {}).get("total_s", 0.0))) * 1000), int(end * 1000)
