"""Every column of a report table says which way is better, as declared (FLOPs and density are costs)."""

from __future__ import annotations

import pandas as pd

from sparsebench.report.summary import direction
from sparsebench.report.tables import task_table


def _df(rows, task, metric_info):
    df = pd.DataFrame(rows)
    df.attrs["metric_info"] = {task: metric_info}
    return df


def test_flops_and_density_are_lower_is_better_and_recall_higher():
    df = _df([], "vision-digits", {"top1": {"higher_is_better": True}})
    assert direction(df, "vision-digits", "top1") == "higher"
    assert direction(df, "vision-digits", "train_flops") == "lower"
    assert direction(df, "vision-digits", "train_flops_rel_dense") == "lower"
    assert direction(df, "vision-digits", "inference_flops_rel_dense") == "lower"
    assert direction(df, "lm-smollm2-2k", "density_decode") == "lower"
    assert direction(df, "lm-smollm2-2k", "tile_density_prefill") == "lower"
    assert direction(df, "lm-smollm2-2k", "recall_decode") == "higher"
    assert direction(df, "lm-smollm2-2k", "chance_decode") == "reference"
    assert direction(df, "lm-smollm2", "nll") == "lower"
    assert direction(df, "lm-smollm2", "something_new") is None


def test_task_table_header_marks_each_column_and_bolds_the_lowest_flops():
    base = {"task": "vision-digits", "family": "sparse_training", "pattern": "unstructured", "target_sparsity": 0.9,
            "target_label": "90%", "seed": 0, "primary_metric": "top1", "measured_sparsity": 0.9,
            "time.total_s": 1.0}
    rows = [{**base, "method": "rigl", "metric.top1": 90.0, "metric.train_flops": 5.0},
            {**base, "method": "set", "metric.top1": 80.0, "metric.train_flops": 9.0}]
    html = task_table(_df(rows, "vision-digits", {"top1": {"higher_is_better": True}}), "vision-digits",
                      "sparse_training")
    assert "top1 (↑)" in html and "train_flops (↓)" in html and "time (s, ↓)" in html
    assert "<b>5.00</b>" in html and "<b>9.00</b>" not in html and "<b>90.00</b>" in html


def test_figure_titles_name_the_model_and_data_not_the_task_id():
    from sparsebench.report.summary import task_title

    assert task_title("lm-smollm2") == "SmolLM2-135M-Instruct (GGUF, offline) on CPython stdlib text"
    assert "sklearn digits" in task_title("vision-digits") and "ResNet" in task_title("vision-digits")
    assert all(len(line) <= 60 for line in task_title("vision-digits").splitlines())
    assert task_title("a-task-this-checkout-lacks") == "a-task-this-checkout-lacks"
