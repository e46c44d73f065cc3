"""Zero-shot accuracy through lm-eval: the offline tasks, bad input, the standard tasks on local fixtures."""

import json

import pytest

from conftest import make_job, small_lm_params


def test_offline_tasks_are_deterministic_with_at_least_500_valid_items():
    from sparsebench.lm.zeroshot_tasks import builders

    lastword = builders.pydoc_lastword_items()
    assert len(lastword) >= 500 and lastword == builders.pydoc_lastword_items()
    assert len({i["id"] for i in lastword}) == len(lastword)
    for item in lastword:  # the word is recoverable from its context, as LAMBADA's selection intends
        assert item["target"].isalpha() and item["target"] in item["context"]
    mc = builders.stdlib_docstring_items()
    assert len(mc) >= 500 and mc == builders.stdlib_docstring_items()
    assert len({i["id"] for i in mc}) == len(mc)
    for item in mc:
        assert len(item["choices"]) == builders.MC_CHOICES == len(set(item["choices"]))
        assert 0 <= item["label"] < builders.MC_CHOICES
    labels = [i["label"] for i in mc]  # the answer is not always in one position
    assert max(labels.count(k) for k in range(builders.MC_CHOICES)) < 0.35 * len(mc)


def test_unknown_zeroshot_task_is_refused_before_any_job_with_the_available_list():
    from sparsebench import registry
    from sparsebench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['hellaswagg'\]; available: pydoc_lastword, "
                                          r"stdlib_docstring, boolq, rte, hellaswag"):
        registry.task("lm-smollm2").cls.build({"zeroshot": ["hellaswagg"]}, "tasks.lm-smollm2")


def test_missing_local_dataset_names_the_path_and_how_to_provide_it(tmp_path):
    from sparsebench import registry
    from sparsebench.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"{tmp_path}/arc_easy/test.jsonl.*test split.*to_json"):
        registry.task("lm-smollm2").cls.build({"zeroshot": ["arc_easy"], "zeroshot_data": str(tmp_path)}, "t")


def test_run_ids_of_jobs_without_zeroshot_do_not_change():
    from sparsebench import registry
    from sparsebench.params import params_dict

    params = params_dict(registry.task("lm-smollm2").cls.build({}, "t").params)
    assert sorted(params) == ["batch_size", "calibration_window", "calibration_windows", "eval_windows", "window"]
    with_zs = params_dict(registry.task("lm-smollm2").cls.build({"zeroshot": ["pydoc_lastword"]}, "t").params)
    assert with_zs["zeroshot"] == ["pydoc_lastword"] and "zeroshot_limit" not in with_zs


def _standard_fixtures(d):
    """Three items per standard task in the Hugging Face datasets' own fields (what lm-eval's YAMLs read)."""
    arc = [{"id": f"q{i}", "question": q, "answerKey": "A",
            "choices": {"text": [a, "a purple elephant", "seven"], "label": ["A", "B", "C"]}}
           for i, (q, a) in enumerate([("What does water turn into when it freezes?", "ice"),
                                       ("Which star is closest to Earth?", "the Sun"),
                                       ("What do plants need for photosynthesis?", "sunlight")])]
    rows = {
        "boolq/validation": [{"question": "is water wet", "passage": "Water is a liquid that makes things wet.",
                              "idx": i, "label": 1} for i in range(3)],
        "rte/validation": [{"sentence1": "The cat sat on the mat.", "sentence2": "A cat sat.", "idx": i, "label": 0}
                           for i in range(3)],
        "hellaswag/validation": [{"ind": i, "activity_label": "Cooking", "ctx_a": "A man cracks eggs into a bowl.",
                                  "ctx_b": "he", "ctx": "", "split": "val", "split_type": "indomain",
                                  "source_id": "x", "label": "0",
                                  "endings": ["whisks them.", "flies away.", "sings a song.", "reads a map."]}
                                 for i in range(3)],
        "winogrande/validation": [{"sentence": "The trophy did not fit in the suitcase because the _ was too big.",
                                   "option1": "trophy", "option2": "suitcase", "answer": "1"} for _ in range(3)],
        "arc_easy/test": arc,
        "arc_challenge/test": arc,
        "openbookqa/test": [{"id": a["id"], "question_stem": a["question"], "choices": a["choices"],
                             "answerKey": "A"} for a in arc],
    }
    for name, items in rows.items():
        path = d / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in items))


def test_a_pruning_job_scores_offline_and_standard_tasks_from_local_files(tmp_path, monkeypatch):
    """End to end through the runner: every task scored by lm-eval, per-item samples and stderr recorded,
    nothing downloaded (the hub is switched off)."""
    from sparsebench.lm.zeroshot import STANDARD_TASKS
    from sparsebench.runner import run_job

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _standard_fixtures(tmp_path)
    tasks = ["pydoc_lastword", "stdlib_docstring", *STANDARD_TASKS]
    job = make_job("magnitude")
    job = type(job)(**{**job.spec(), "task_params": small_lm_params(
        zeroshot=tasks, zeroshot_limit=6, zeroshot_data=str(tmp_path))})
    result = run_job(job, tmp_path / "result.json")
    m = result["metrics"]
    for name in tasks:
        n = 6 if name in ("pydoc_lastword", "stdlib_docstring") else 3
        assert 0.0 <= m[f"zeroshot.{name}.acc"] <= 1.0
        sample = result["samples"][f"zeroshot.{name}.acc"]
        assert sample["unit"] == "item" and sample["statistic"] == "mean" and len(sample["values"]) == n
        assert sum(sample["values"]) / n == pytest.approx(m[f"zeroshot.{name}.acc"])
        assert set(sample["values"]) <= {0.0, 1.0} and len(set(sample["ids"])) == n
        assert result["zeroshot"][name]["n"] == n and result["zeroshot"][name]["acc_stderr"] is not None
    assert "zeroshot.stdlib_docstring.acc_norm" in m and "zeroshot.arc_easy.acc_norm" in m
    assert m["zeroshot.mean_acc"] == pytest.approx(sum(m[f"zeroshot.{t}.acc"] for t in tasks) / len(tasks))
    assert result["zeroshot"]["stdlib_docstring"]["items_total"] >= 500
    assert len(result["zeroshot"]["pydoc_lastword"]["items_sha256"]) == 64
    assert "zeroshot_s" in result["timings"]


def test_zero_shot_subset_is_fixed_and_seeded():
    from sparsebench.lm.zeroshot import subset

    assert subset(600, 200) == subset(600, 200) and len(subset(600, 200)) == 200
    assert subset(600, 0) == list(range(600)) == subset(600, 900)


def _summary_with_zeroshot():
    """A summary table as sparsebench.results.summarize writes it, for the zero-shot rows of a report."""
    import pandas as pd

    rows = []
    for method, pattern, sparsity, label, ppl, lw, mc in [
        ("dense", "unstructured", 0.0, "0%", 20.0, 0.60, 0.58), ("magnitude", "unstructured", 0.5, "50%", 90.0, 0.30, 0.40),
        ("wanda", "unstructured", 0.5, "50%", 30.0, 0.50, 0.55), ("wanda", "2:4", 0.5, "2:4", 45.0, 0.40, 0.45)]:
        rows.append({"task": "lm-smollm2", "family": "pruning", "method": method, "pattern": pattern,
                     "target_sparsity": sparsity, "target_label": label, "seed": 0, "hardware": "cpu",
                     "measured_sparsity": sparsity, "metric.perplexity": ppl,
                     "metric.zeroshot.pydoc_lastword.acc": lw, "metric.zeroshot.pydoc_lastword.acc_stderr": 0.05,
                     "metric.zeroshot.stdlib_docstring.acc": mc, "metric.zeroshot.stdlib_docstring.acc_stderr": 0.04,
                     "metric.zeroshot.mean_acc": (lw + mc) / 2, "time.total_s": 1.0, "primary_metric": "perplexity"})
    return pd.DataFrame(rows)


def test_wanda_style_table_lists_each_task_and_the_mean_with_intervals_dense_first():
    from sparsebench.report.tables import task_table, zeroshot_table

    df = _summary_with_zeroshot()
    html = zeroshot_table(df, "lm-smollm2", "pruning")
    assert "<th>pydoc_lastword</th><th>stdlib_docstring</th><th>Mean</th>" in html
    assert html.index("dense") < html.index("magnitude")
    assert "60.0 ± 9.8" in html and "59.0" in html  # dense: acc ± 1.96 x stderr, mean of the two tasks
    assert "<b>52.5</b>" in html  # wanda, the best pruned row at 50 %
    assert "zeroshot" not in task_table(df, "lm-smollm2", "pruning")  # the perplexity table stays as it was


def test_zero_shot_accuracy_figure_sits_beside_perplexity():
    from sparsebench.report.figures.pruning import zeroshot_vs_sparsity

    figs = zeroshot_vs_sparsity(_summary_with_zeroshot())
    fig = figs["zeroshot_vs_sparsity_lm-smollm2"]
    left, right = fig.axes
    assert left.get_yscale() == "log" and "zero-shot" in right.get_ylabel()


def test_zero_shot_claims_load_in_todays_format(root):
    from sparsebench.claims import load_claims

    ids = {c.id for c in load_claims(root / "claims")}
    assert {"sparsegpt-keeps-zero-shot-accuracy-at-50", "wanda-keeps-zero-shot-accuracy-at-50",
            "llm-kick-2-4-loses-zero-shot-accuracy"} <= ids


def test_activation_sparsity_stays_on_while_lm_eval_scores_the_model(tmp_path):
    """TEAL's thresholds are applied to the zero-shot items too: their activations are ~50 % zero."""
    from sparsebench.runner import run_job

    job = make_job("teal", {"sparsity": 0.5, "pattern": "unstructured"})
    job = type(job)(**{**job.spec(), "task_params": small_lm_params(zeroshot=["stdlib_docstring"], zeroshot_limit=4)})
    result = run_job(job, tmp_path / "result.json")
    assert 0.0 <= result["metrics"]["zeroshot.stdlib_docstring.acc"] <= 1.0
    from sparsebench.families.activation_sparsity import TOLERANCE

    assert abs(result["sparsity"]["sites_weighted_mean"] - 0.5) <= TOLERANCE  # the eval text's own count
    assert abs(result["extra"]["activation"]["zeroshot_sites_weighted_mean"] - 0.5) <= 0.1


def test_mean_accuracy_gets_its_own_items_when_every_task_has_as_many():
    from sparsebench.lm.zeroshot import _collect

    def task(values):
        return {"acc,none": sum(values) / len(values),
                "samples": [{"doc_id": i, "doc": {"id": f"d{i}"}, "acc": v} for i, v in enumerate(values)]}

    a, b = task([1, 0, 1, 1]), task([0, 0, 1, 0])
    out = {"results": {"boolq": a, "rte": b}, "samples": {"boolq": a["samples"], "rte": b["samples"]}}
    got = _collect(out, ["boolq", "rte"], {"boolq": [0] * 4, "rte": [0] * 4}, None)
    mean = got["samples"]["zeroshot.mean_acc"]
    assert sum(mean["values"]) / len(mean["values"]) == got["metrics"]["zeroshot.mean_acc"] == 0.5
    assert mean["ids"][0] == "boolq/d0" and mean["ids"][-1] == "rte/d3"
    uneven = {"results": {"boolq": a, "rte": task([1, 0])}, "samples": {"boolq": a["samples"], "rte": task([1, 0])["samples"]}}
    assert "zeroshot.mean_acc" not in _collect(uneven, ["boolq", "rte"], {"boolq": [0] * 4, "rte": [0] * 2}, None)["samples"]
