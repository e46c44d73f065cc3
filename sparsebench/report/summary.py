"""The report's one input: the summary table plus what only the result files know.

``load_summary`` returns the summary DataFrame (``results/summary.csv`` when it
exists, else gathered from the result files) with a ``primary_metric`` column,
and in ``df.attrs``:

- ``results_dir``: where the results live (figures that read other files, such
  as ``results/kernels/<profile>.json``, start from here);
- ``metric_info``: task -> metric -> ``{"higher_is_better": bool}``;
- ``tasks``: task -> its parameters and data hash;
- ``environments``: the distinct environments the results were produced in;
- ``invalid``: the rows left out because their result is invalid (records with ``invalid_reason``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sparsebench.errors import ConfigError
from sparsebench.results import find_results, read_results, summarize

LOWER_IS_BETTER = ("perplexity", "ppl", "nll", "loss", "error")  # fallback when no result says


@dataclass
class ResultInfo:
    metric_info: dict = field(default_factory=dict)
    tasks: dict = field(default_factory=dict)
    environments: list = field(default_factory=list)
    hardware: dict = field(default_factory=dict)


def _environment_key(env: dict) -> str:
    keep = {k: env.get(k) for k in ("packages", "python", "platform", "cpu", "cpu_count", "threads", "gpu",
                                     "hostname", "commit", "dirty")}
    return json.dumps(keep, sort_keys=True, default=str)


def read_info(results_dir: Path) -> ResultInfo:
    info = ResultInfo()
    envs: dict[str, dict] = {}
    for _, r in read_results(find_results(results_dir)):
        task = r["job"]["task"]
        info.metric_info.setdefault(task, r.get("metric_info", {}))
        t = info.tasks.setdefault(task, {"params": r["job"].get("task_params", {}), "data_hashes": set(),
                                         "families": set()})
        for k, v in (r.get("data") or {}).items():  # every family names its data hashes its own way
            if isinstance(v, str) and ("sha256" in k or "hash" in k):
                t["data_hashes"].add(f"{k}={v}")
        t["families"].add(r["job"]["family"])
        env = r.get("environment", {})
        key = _environment_key(env)
        envs.setdefault(key, {**json.loads(key), "results": 0})["results"] += 1
        hw = r.get("hardware_profile") or {"name": r["job"]["hardware"]}
        info.hardware.setdefault(hw.get("name", r["job"]["hardware"]), hw)
    info.environments = list(envs.values())
    for t in info.tasks.values():
        t["data_hashes"] = sorted(t["data_hashes"])
        t["families"] = sorted(t["families"])
    return info


def load_summary(results_dir: Path) -> pd.DataFrame:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"--results {results_dir}: no such directory; allowed: a results directory "
                          f"(`make run` writes results/)")
    csv = results_dir / "summary.csv"
    # an aggregate of no results writes a CSV with no columns: read it as the empty summary it is
    df = (pd.read_csv(csv) if csv.stat().st_size else pd.DataFrame()) if csv.exists() else \
        summarize(find_results(results_dir))
    info = read_info(results_dir)
    if df.empty:
        df = pd.DataFrame(columns=["task", "family", "method", "pattern", "target_sparsity", "target_label", "seed",
                                   "hardware", "measured_sparsity"])
    df, invalid = split_invalid(df)
    df["primary_metric"] = df["task"].map({t: next(iter(m), None) for t, m in info.metric_info.items()})
    df.attrs.update(results_dir=str(results_dir), metric_info=info.metric_info, tasks=info.tasks,
                    environments=info.environments, hardware=info.hardware,
                    invalid=invalid.to_dict("records"))  # plain records: pandas compares attrs on concat
    return df


def split_invalid(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable rows, invalid rows): rows marked ``status=invalid`` and rows of older summaries with an
    infinite metric. Figures, tables and claims see only the first; the report lists the second."""
    import numpy as np

    status = df["status"] if "status" in df else pd.Series("ok", index=df.index)
    # an all-empty reason column reads as float64: make it text before filling the gaps with ""
    reason = df["invalid_reason"].astype(object).fillna("").astype(str) if "invalid_reason" in df \
        else pd.Series("", index=df.index)
    bad = status.eq("invalid")
    for col in [c for c in df.columns if str(c).startswith("metric.")]:
        values = pd.to_numeric(df[col], errors="coerce")
        inf = np.isinf(values) & ~bad
        reason = reason.mask(inf, col.removeprefix("metric.") + "=" + values.astype(str) + ": non-finite metric")
        bad |= inf
    invalid = df[bad].assign(status="invalid", invalid_reason=reason[bad])
    return df[~bad].reset_index(drop=True), invalid.reset_index(drop=True)


# Metrics every LM task adds beside its declared ones.
CORE_DIRECTIONS = {"nll": "lower", "zeroshot.mean_acc": "higher"}
PHASES = ("_prefill", "_decode")


def declared_directions() -> dict:
    """metric -> "higher" / "lower" / None (a reference): the families' ``METRIC_DIRECTIONS`` and the core's."""
    from sparsebench import registry

    out = dict(CORE_DIRECTIONS)
    for fam in registry.families().values():
        out.update(getattr(fam.module, "METRIC_DIRECTIONS", {}) or {})
    return out


def direction(df: pd.DataFrame, task: str, metric: str) -> str | None:
    """"higher", "lower" (which is better, as the task or the family declares it), "reference" (declared
    as having no better direction) or None (nobody declared it)."""
    info = df.attrs.get("metric_info", {}).get(task, {}).get(metric)
    if info is not None:
        return "higher" if info.get("higher_is_better") else "lower"
    declared = declared_directions()
    base = metric
    for suffix in PHASES:
        base = base.removesuffix(suffix)
    if metric.startswith("zeroshot.") and metric.endswith((".acc", ".acc_norm")):
        return "higher"
    for name in (metric, base):
        if name in declared:
            return declared[name] or "reference"
    return None


def higher_is_better(df: pd.DataFrame, task: str, metric: str) -> bool:
    d = direction(df, task, metric)
    if d in ("higher", "lower"):
        return d == "higher"
    return not any(word in metric for word in LOWER_IS_BETTER)  # figures need a side; tables say "not declared"


TITLE_WIDTH = 60  # characters a line of a figure title holds at the report's figure sizes


def task_title(task: str) -> str:
    """A figure's name for a task: its model and data, from the task's declared ``description`` (the part before
    "; <metric>"), e.g. "SmolLM2-135M-Instruct (GGUF, offline) on CPython stdlib text"; the id when the task
    is not in this checkout or declares none. Wrapped to lines of :data:`TITLE_WIDTH` characters."""
    from sparsebench import registry

    try:
        described = registry.task(task).cls.description or ""
    except Exception:  # noqa: BLE001 - results of a task this checkout does not have: its id
        described = ""
    import textwrap

    return textwrap.fill(described.split(";")[0].strip(), TITLE_WIDTH) or task


def target_sort_key(pattern: str, sparsity: float):
    """Dense first, then unstructured by sparsity, then N:M (4:8 before 2:4, as in the Wanda tables), then the rest."""
    pattern = str(pattern)
    if sparsity == 0:
        return (0, 0.0, 0, pattern)
    if pattern == "unstructured":
        return (1, float(sparsity), 0, pattern)
    if ":" in pattern and pattern.split(":")[0].isdigit():
        n, m = map(int, pattern.split(":"))
        return (2, float(sparsity), -m, pattern)
    return (3, float(sparsity), 0, pattern)


def seeds_of(df: pd.DataFrame) -> int:
    return int(df.groupby(["task", "method", "pattern", "target_sparsity", "hardware"])["seed"].nunique().max()) \
        if len(df) else 0
