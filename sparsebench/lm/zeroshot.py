"""Zero-shot downstream accuracy through EleutherAI's lm-evaluation-harness (``lm_eval``).

The job's live model (pruned, or with the activation-sparsity hooks on; the sparse-attention family does not
call it) is wrapped in lm-eval's ``HFLM`` and scored on the configured tasks, as the pruning papers report it
(Wanda, Sun et al. 2023, and SparseGPT, Frantar & Alistarh 2023: BoolQ, RTE, HellaSwag, WinoGrande,
ARC-e, ARC-c, OpenBookQA, mean accuracy over tasks; LLM-KICK, Jaiswal et al. 2023, on why perplexity
alone hides damage).

Two offline tasks run with no network (``sparsebench/lm/zeroshot_tasks``, lm-eval YAML, built from text
every Python has): ``pydoc_lastword`` and ``stdlib_docstring``. The standard tasks run by their lm-eval
names from the Hugging Face hub or its local cache, or from local files (``zeroshot_data``:
``<dir>/<task>/<split>.jsonl`` in the dataset's own fields).

lm-eval is imported only when a job evaluates zero-shot tasks (its import costs seconds).
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

from sparsebench.progress import bars_enabled

TASKS_DIR = Path(__file__).with_name("zeroshot_tasks")
OFFLINE_TASKS = ("pydoc_lastword", "stdlib_docstring")
# lm-eval name -> the split it scores (the one its YAML evaluates on)
STANDARD_TASKS = {
    "boolq": "validation",
    "rte": "validation",
    "hellaswag": "validation",
    "winogrande": "validation",
    "arc_easy": "test",
    "arc_challenge": "test",
    "openbookqa": "test",
}
# where each standard task's YAML lives inside lm_eval/tasks (indexing only these folders takes a fraction of
# a second; indexing all of lm-eval's thousands of YAMLs takes a minute)
STANDARD_DIRS = {"boolq": "super_glue/boolq", "rte": "glue/rte", "hellaswag": "hellaswag",
                 "winogrande": "winogrande", "arc_easy": "arc", "arc_challenge": "arc", "openbookqa": "openbookqa"}
CHANCE = {"pydoc_lastword": 0.0, "stdlib_docstring": 0.25, "boolq": 0.5, "rte": 0.5, "hellaswag": 0.25,
          "winogrande": 0.5, "arc_easy": 0.25, "arc_challenge": 0.25, "openbookqa": 0.25}
SUBSET_SEED = 0
BOOTSTRAP_ITERS = 1000  # lm-eval's stderr of a mean is closed-form; bootstrap only for other aggregations


def available() -> list[str]:
    return list(OFFLINE_TASKS) + list(STANDARD_TASKS)


def check_tasks(names, data_dir: str | None = None) -> None:
    """Refuse unknown task names (listing the available ones) and missing local files (naming the path)."""
    unknown = [n for n in names if n not in OFFLINE_TASKS and n not in STANDARD_TASKS]
    if unknown:
        raise ValueError(f"zeroshot={list(names)}: unknown task(s) {unknown}; available: {', '.join(available())}")
    if len(set(names)) != len(names):
        raise ValueError(f"zeroshot={list(names)} names a task twice")
    if data_dir is not None:
        for name in names:
            if name in STANDARD_TASKS and not local_file(data_dir, name).is_file():
                raise ValueError(
                    f"zeroshot_data={data_dir!r}: task {name!r} needs {local_file(data_dir, name)}: a JSONL file of "
                    f"the {STANDARD_TASKS[name]} split in the Hugging Face dataset's own fields (e.g. "
                    f"datasets.load_dataset(...)['{STANDARD_TASKS[name]}'].to_json(path) on a machine with a network)"
                )


def local_file(data_dir: str, name: str) -> Path:
    return Path(data_dir) / name / f"{STANDARD_TASKS[name]}.jsonl"


def _overrides(name: str, data_dir: str | None) -> dict | None:
    """A standard task read from local JSONL files instead of the hub (the rest of its lm-eval YAML unchanged)."""
    if name not in STANDARD_TASKS or data_dir is None:
        return None
    split = STANDARD_TASKS[name]
    return {"task": name, "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(local_file(data_dir, name))}},
            # zero-shot: only the scored split is needed (lm-eval otherwise reads the training split for shots)
            "training_split": None, "validation_split": split if split == "validation" else None,
            "test_split": split if split == "test" else None}


def load_tasks(names, data_dir: str | None = None):
    """lm-eval Task objects by name (and the TaskManager that indexed them): the offline tasks from ``TASKS_DIR``, the standard ones from lm-eval's own
    YAMLs (only their folders are indexed), with local files where ``data_dir`` is given."""
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    bundled = Path(lm_eval.tasks.__file__).parent
    paths = [str(TASKS_DIR)] + sorted({str(bundled / STANDARD_DIRS[n]) for n in names if n in STANDARD_TASKS})
    manager = TaskManager(include_path=paths, include_defaults=False)
    index = manager.task_index
    # the factory merges overrides into the registered YAML (a dict spec given to load() would replace it)
    tasks = {n: manager._factory.build(index[n], overrides=_overrides(n, data_dir), registry=index) for n in names}
    return tasks, manager


def subset(n_docs: int, limit: int) -> list[int]:
    """A fixed, seeded subset of ``limit`` document indices (all of them when ``limit`` is 0 or >= n_docs)."""
    if limit <= 0 or limit >= n_docs:
        return list(range(n_docs))
    return sorted(random.Random(SUBSET_SEED).sample(range(n_docs), limit))


def evaluate(model, tokenizer, names, limit: int = 0, batch_size: int = 16, data_dir: str | None = None) -> dict:
    """Score ``model`` on the zero-shot tasks ``names``.

    Returns ``{"metrics": {...}, "samples": {...}, "zeroshot": {...}}``: metrics ``zeroshot.<task>.acc``
    (and ``.acc_norm`` where the task has it, each with lm-eval's ``_stderr``) and ``zeroshot.mean_acc``
    (the unweighted mean of the tasks' ``acc``, as in the Wanda and SparseGPT tables); per-item 0/1
    correctness as CONTRACT samples; lm-eval's standard errors, item counts and the offline tasks' data hashes.
    """
    check_tasks(names, data_dir)
    if not names:
        return {}
    standard_online = any(n in STANDARD_TASKS for n in names) and data_dir is None
    if not standard_online:  # nothing may download: the offline tasks and local files need no hub
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from sparsebench.lm.zeroshot_tasks.builders import items_file

    try:
        loaded, manager = load_tasks(names, data_dir)
    except (ConnectionError, OSError) as exc:  # datasets raises these offline when neither cache nor files have it
        raise RuntimeError(
            f"zero-shot tasks {names}: a dataset is not available offline ({exc}); give its files with the task "
            f"parameter zeroshot_data: DIR (DIR/<task>/<split>.jsonl, docs/zeroshot.md) or fill the Hugging Face "
            f"datasets cache on a machine with a network"
        ) from exc
    chosen = {}
    for name in names:
        task = loaded[name]
        docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
        chosen[name] = subset(len(docs), limit)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(next(model.parameters()).device))
    if not bars_enabled():  # lm-eval's own bar over the items: only on a terminal, never into a job's log
        for request in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
            setattr(lm, request, functools.partial(getattr(lm, request), disable_tqdm=True))
    # the small manager: without one, simple_evaluate indexes every lm-eval task (a minute of YAML parsing)
    out = simple_evaluate(model=lm, tasks=[loaded[n] for n in names], task_manager=manager, samples=chosen,
                          log_samples=True,
                          bootstrap_iters=BOOTSTRAP_ITERS, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                          fewshot_random_seed=0)
    return _collect(out, names, chosen, items_file)


def _collect(out: dict, names, chosen: dict, items_file) -> dict:
    metrics, samples, record = {}, {}, {}
    for name in names:
        res = out["results"][name]
        entry = {"n": len(chosen[name]), "chance": CHANCE[name],
                 "version": out.get("versions", {}).get(name)}
        for m in ("acc", "acc_norm"):
            if f"{m},none" in res:
                metrics[f"zeroshot.{name}.{m}"] = float(res[f"{m},none"])
                stderr = res.get(f"{m}_stderr,none")
                entry[f"{m}_stderr"] = float(stderr) if isinstance(stderr, (int, float)) else None
                if entry[f"{m}_stderr"] is not None:
                    metrics[f"zeroshot.{name}.{m}_stderr"] = entry[f"{m}_stderr"]
                rows = sorted(out["samples"][name], key=lambda s: s["doc_id"])
                samples[f"zeroshot.{name}.{m}"] = {
                    "unit": "item", "statistic": "mean",
                    "values": [float(s[m]) for s in rows],
                    "ids": [str(s["doc"].get("id", s["doc_id"])) for s in rows],
                }
        if name in OFFLINE_TASKS:
            path, sha = items_file(name)
            entry.update({"items_total": sum(1 for _ in open(path, encoding="utf-8")), "items_sha256": sha})
        record[name] = entry
    accs = [metrics[f"zeroshot.{n}.acc"] for n in names]
    metrics["zeroshot.mean_acc"] = sum(accs) / len(accs)
    per_task = [samples.get(f"zeroshot.{n}.acc") for n in names]
    if all(per_task) and len({len(t["values"]) for t in per_task}) == 1:
        # equal item counts: the mean over all items is the mean of the task means, so the items are the
        # mean accuracy's own units (claims pair them across methods)
        samples["zeroshot.mean_acc"] = {
            "unit": "item", "statistic": "mean",
            "values": [v for t in per_task for v in t["values"]],
            "ids": [f"{n}/{i}" for n, t in zip(names, per_task) for i in t["ids"]],
        }
    return {"metrics": metrics, "samples": samples, "zeroshot": record}


def merge_zeroshot(outcome: dict, zeroshot: dict) -> dict:
    """A family's outcome with the zero-shot metrics, samples and record (from ``evaluate``) added."""
    if not zeroshot:
        return outcome
    outcome.setdefault("metrics", {}).update(zeroshot["metrics"])
    outcome.setdefault("samples", {}).update(zeroshot["samples"])
    outcome["zeroshot"] = zeroshot["zeroshot"]
    return outcome
