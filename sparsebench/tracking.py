"""MLflow: one experiment per task, one run per result, never two runs for one result.

Each MLflow run carries the sparsebench run id as the tag ``sparsebench.run_id``;
tracking again finds it and, when the result file is unchanged, skips it (a
rerun of the same job that changed the numbers updates that run in place).
Params are strings (method hyperparameters, target, task settings, seed) so
they can be filtered on; metrics are numbers (quality, measured sparsity,
times, memory, latencies); tags name the run id, family, paper, commit and
hardware profile (built from a result by :mod:`sparsebench.tracking_record`). A sparse-training run's learning curve is logged as step metrics (``curve.<name>``
at each evaluation step), its data as MLflow datasets (``log_inputs``: name, split and content hash,
from the result's ``data`` fingerprint), and the summary table's latency columns as
``estimated_latency_ms.<profile>`` (estimated from kernel tables, never measured here). The runs one
``track`` logs (new or updated) are children of one parent run for that invocation (tag
``sparsebench.kind=invocation``, no metrics) in the experiment :data:`INVOCATIONS_EXPERIMENT`: kept apart
from the task experiments so that their runs tables list the results themselves (MLflow folds children
under a parent of the same experiment). Each experiment also holds one *summary* run (tag
``sparsebench.kind=summary``) whose artifacts are the report, its figures for
that task, the claims scorecard and the task's rows of the summary table.

Only this module writes the store, and only under an exclusive lock (``track_lock``): two
``sparsebench track`` at once run one after the other. A run left incomplete by a killed track
(still RUNNING, or without its result hash) is deleted and logged again, as are extra runs of one
run id, so every run id ends with exactly one finished run with its params and artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from sparsebench import tracking_record as record
from sparsebench.tracking_record import KIND_TAG, RESULT_HASH_TAG, RUN_ID_TAG

REPORT_HASH_TAG = "sparsebench.report_sha256"
SUMMARY_RUN_NAME = "summary (report and figures)"
PARENT_TAG = "mlflow.parentRunId"
INVOCATIONS_EXPERIMENT = "sparsebench workflow runs"


def default_tracking_uri(results_dir: Path, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(results_dir) / 'mlflow.db').resolve()}"


@contextlib.contextmanager
def track_lock(results_dir: Path, uri: str):
    """Hold an exclusive OS lock for the store (beside a SQLite file, else in the results directory);
    a second track waits for the first instead of racing it (migrations, duplicate runs)."""
    import fcntl

    db = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    path = Path(db + ".lock") if db else Path(results_dir) / ".track.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"sparsebench track: waiting for another track to finish with {uri} ({path})", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _complete(run) -> bool:
    """A result run that a track finished: terminated (FINISHED, or FAILED for an invalid result), result hash set."""
    return run.info.status in ("FINISHED", "FAILED") and RESULT_HASH_TAG in run.data.tags


def _keep_one_per_run_id(client, runs) -> dict:
    """sparsebench run id -> its one kept run; incomplete runs and extra copies are deleted."""
    by_id: dict[str, list] = {}
    for r in runs:
        if RUN_ID_TAG in r.data.tags:
            by_id.setdefault(r.data.tags[RUN_ID_TAG], []).append(r)
    kept = {}
    for rid, group in by_id.items():
        group = sorted(group, key=lambda r: (not _complete(r), r.info.start_time or 0))
        if _complete(group[0]):
            kept[rid] = group[0]
            group = group[1:]
        for r in group:
            client.delete_run(r.info.run_id)
    return kept


def _experiment_id(client, name: str, results_dir: Path, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:"):
        artifact_location = (Path(results_dir) / "mlartifacts" / name).resolve().as_uri()
    # A classic (non-GenAI) experiment, so the UI opens on its runs table.
    tags = {"mlflow.experimentKind": "custom_model_development",
            "mlflow.note.content": (f"sparsebench task {name}: one run per result (tag {RUN_ID_TAG}), "
                                    f"plus one summary run with the report and figures."
                                    if name != INVOCATIONS_EXPERIMENT else
                                    "One run per `sparsebench track` that logged results; the results are its "
                                    "child runs, in the task experiments.")}
    return client.create_experiment(name, artifact_location=artifact_location, tags=tags)


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _log_result(client, exp_id: str, result: dict, path: Path, sha: str, existing, parent: str,
                latency: dict | None = None) -> str:
    from mlflow.entities import Metric, Param, RunTag

    start, end = record.job_times(result)
    if existing is None:
        name = f"{result['job']['method']} {result.get('target_label', '')} s{result['job']['seed']}"
        run = client.create_run(exp_id, start_time=start, run_name=name,
                                tags={RUN_ID_TAG: result["run_id"], PARENT_TAG: parent})
        run_id, ts, step, params = run.info.run_id, int(run.info.start_time), 0, record.params(result)
    else:  # same job, new numbers: new metric values at the next step; params are the job's, unchanged
        import time

        run_id, ts, step, params = existing.info.run_id, int(time.time() * 1000), 1, {}
    metrics = [Metric(k, v, ts, step) for k, v in {**record.metrics(result), **(latency or {})}.items()]
    metrics += [Metric(k, v, ts, s) for k, v, s in record.curve(result)]
    tags = {**record.tags(result, sha), PARENT_TAG: parent}
    for i in range(0, max(len(metrics), 1), 1000):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(run_id, metrics=metrics[i:i + 1000],
                         params=[Param(k, v) for k, v in params.items()] if i == 0 else [],
                         tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
    if existing is None:
        client.log_inputs(run_id, datasets=record.datasets(result))
    client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FAILED" if result.get("status") == "invalid" else "FINISHED", end_time=end)
    return run_id


def _log_summary(client, exp_id: str, task: str, runs, df, reports_dir: Path, n_results: int) -> str:
    """The experiment's summary run: report, this task's figures, scorecard, summary rows (in place, never twice)."""
    from mlflow.entities import RunTag

    existing = next((r for r in runs if r.data.tags.get(KIND_TAG) == "summary"), None)
    files = []
    if (Path(reports_dir) / "index.html").exists():
        files.append((Path(reports_dir) / "index.html", "report"))
        if (Path(reports_dir) / "claims.json").exists():
            files.append((Path(reports_dir) / "claims.json", "report"))
        tasks = set(df["task"]) if df is not None and len(df) else {task}
        for fig in sorted((Path(reports_dir) / "figures").glob("*.*")):
            named = [t for t in tasks if t in fig.stem]
            if task in named or not named:  # this task's figures and those of no task (kernels)
                files.append((fig, "figures"))
    rows = df[df["task"] == task] if df is not None and len(df) else None
    digest = hashlib.sha256()
    for f, _ in files:
        digest.update(f.name.encode() + _sha(f).encode())
    if rows is not None:
        digest.update(rows.to_csv(index=False).encode())
    digest = digest.hexdigest()
    if existing is not None and existing.data.tags.get(REPORT_HASH_TAG) == digest:
        return existing.info.run_id
    run_id = existing.info.run_id if existing else client.create_run(
        exp_id, run_name=SUMMARY_RUN_NAME, tags={KIND_TAG: "summary"}).info.run_id
    # the count is a tag, not a metric: the summary run stays out of the runs' metric charts
    client.log_batch(run_id, tags=[RunTag("sparsebench.results", str(n_results)),
                                   RunTag(REPORT_HASH_TAG, digest), RunTag("mlflow.note.content",
                           f"The sparsebench report and figures for task {task} (artifacts), "
                           f"built from {n_results} results.")])
    for f, where in files:
        client.log_artifact(run_id, str(f), where)
    if rows is not None:
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "summary.csv"
            rows.to_csv(csv, index=False)
            client.log_artifact(run_id, str(csv))
    client.set_terminated(run_id)
    return run_id


def track_results(results_dir: Path, uri: str | None = None, out: Path | None = None,
                  reports_dir: Path | None = None):
    """Log every result (and, given ``reports_dir``, a summary run per task with the report);
    returns one row per result: run_id, mlflow_run_id, experiment, created, updated."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = default_tracking_uri(results_dir, uri)
    with track_lock(results_dir, uri):
        mlflow.set_tracking_uri(uri)
        return _track(MlflowClient(uri), results_dir, uri, out, reports_dir)


def _invocation_parent(client, results_dir: Path, uri: str, started: str) -> str:
    """The parent run of this track's new and updated runs (no metrics of its own)."""
    from mlflow.entities import RunTag

    exp_id = _experiment_id(client, INVOCATIONS_EXPERIMENT, results_dir, uri)
    _close_stale_parents(client, client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'"))
    run = client.create_run(exp_id, run_name=f"workflow {started}", tags={KIND_TAG: "invocation"})
    client.log_batch(run.info.run_id, tags=[RunTag("mlflow.note.content",
                                                   f"The results `sparsebench track` logged at {started} (UTC), "
                                                   f"in the task experiments of {Path(results_dir).resolve()}: "
                                                   "its child runs. Results unchanged since an earlier track "
                                                   "stay under that track's run.")])
    return run.info.run_id


def _close_stale_parents(client, runs) -> None:
    """A parent left RUNNING by a killed track: marked KILLED (its children were repaired like any run)."""
    for r in runs:
        if r.data.tags.get(KIND_TAG) == "invocation" and r.info.status == "RUNNING":
            client.set_terminated(r.info.run_id, status="KILLED")


def _summary_rows(results_dir: Path, paths) -> "pd.DataFrame | None":
    import pandas as pd

    from sparsebench.results import summarize

    summary_csv = Path(results_dir) / "summary.csv"
    if summary_csv.exists() and summary_csv.stat().st_size:
        return pd.read_csv(summary_csv)
    return summarize(paths) if paths else None


def _track(client, results_dir: Path, uri: str, out: Path | None, reports_dir: Path | None):
    import datetime as dt

    import pandas as pd

    from mlflow.entities import Metric

    from sparsebench.results import find_results, read_results, write_atomic

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    known: dict[str, dict] = {}  # experiment id -> sparsebench run id -> mlflow Run
    all_runs: dict[str, list] = {}
    parent: str | None = None  # this invocation's parent run, made when it first logs a run
    tasks: dict[str, str] = {}
    rows = []
    paths = find_results(results_dir)
    df = _summary_rows(results_dir, paths)
    by_run_id = {} if df is None or "run_id" not in df else {r["run_id"]: r for r in df.to_dict("records")}
    for path, result in read_results(paths):
        task = result["job"]["task"]
        exp_id = _experiment_id(client, task, results_dir, uri)
        tasks[task] = exp_id
        if exp_id not in known:
            all_runs[exp_id] = client.search_runs([exp_id], max_results=50000)
            known[exp_id] = _keep_one_per_run_id(client, all_runs[exp_id])
        rid, sha = result["run_id"], _sha(path)
        latency = record.latency_metrics(by_run_id.get(rid)) if result.get("status", "ok") == "ok" else {}
        existing = known[exp_id].get(rid)
        if existing is not None and existing.data.tags.get(RESULT_HASH_TAG) == sha:
            changed = {k: v for k, v in latency.items() if existing.data.metrics.get(k) != v}
            if changed:  # new kernel measurements: the same result's estimated latency moved
                import time

                ts = int(time.time() * 1000)
                client.log_batch(existing.info.run_id, metrics=[Metric(k, v, ts, 1) for k, v in changed.items()])
            rows.append({"run_id": rid, "mlflow_run_id": existing.info.run_id, "experiment": exp_id,
                         "created": False, "updated": bool(changed)})
            continue
        if parent is None:
            parent = _invocation_parent(client, results_dir, uri, started)
        mlflow_id = _log_result(client, exp_id, result, path, sha, existing, parent, latency)
        known[exp_id][rid] = client.get_run(mlflow_id)
        rows.append({"run_id": rid, "mlflow_run_id": mlflow_id, "experiment": exp_id,
                     "created": existing is None, "updated": existing is not None})
    if parent is not None:
        client.set_terminated(parent)
    table = pd.DataFrame(rows, columns=["run_id", "mlflow_run_id", "experiment", "created", "updated"])
    if paths and reports_dir is not None:
        for task, exp_id in tasks.items():
            _log_summary(client, exp_id, task, all_runs[exp_id], df, reports_dir,
                         int((table["experiment"] == exp_id).sum()))
    if out is not None:
        write_atomic(out, table.to_csv(index=False))
    return table


def ui_url(uri: str, base: str = "http://127.0.0.1:5000") -> str:
    """Where the MLflow UI shows the runs: the first task's experiment in the machine-learning view
    (``workflowType=machine_learning``; MLflow 3 otherwise opens on its GenAI traces)."""
    from mlflow.tracking import MlflowClient

    query = "?workflowType=machine_learning"
    try:
        exps = [e for e in MlflowClient(uri).search_experiments() if e.name not in ("Default", INVOCATIONS_EXPERIMENT)]
    except Exception:  # noqa: BLE001 - no store yet: the experiment list
        exps = []
    if not exps:
        return f"{base}/#/experiments{query}"
    first = sorted(exps, key=lambda e: e.name)[0]
    return f"{base}/#/experiments/{first.experiment_id}/runs{query}"
