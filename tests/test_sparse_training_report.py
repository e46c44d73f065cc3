"""Sparse-training figures: 95 % seed intervals, the table and the FLOP chart from a summary table."""

import math

import pandas as pd

from sparsebench.report.figures import all_figures
from sparsebench.report.figures.sparse_training import interval_table, seed_intervals


def summary():
    rows = []
    for method, base in (("dense-train", 98.0), ("rigl", 96.0), ("static-random-erk", 95.0)):
        targets = [(0.0, "0%")] if method == "dense-train" else [(0.9, "90%"), (0.98, "98%")]
        for s, label in targets:
            for seed, noise in enumerate((-0.5, 0.0, 0.5)):
                rows.append({"task": "vision-digits", "family": "sparse_training", "method": method,
                             "pattern": "unstructured", "target_sparsity": s, "target_label": label, "seed": seed,
                             "metric.top1": base - 10 * s + noise, "metric.train_flops_rel_dense": 1 - s,
                             "primary_metric": "top1"})
    rows.append({"task": "lm-smollm2", "family": "pruning", "method": "dense", "pattern": "unstructured",
                 "target_sparsity": 0.0, "target_label": "0%", "seed": 0, "metric.perplexity": 20.0,
                 "primary_metric": "perplexity"})
    return pd.DataFrame(rows)


def test_seed_interval_is_the_student_t_95_percent_half_width():
    st = seed_intervals(summary().query("family == 'sparse_training'"), "metric.top1")
    row = st[(st.method == "rigl") & (st.target_label == "90%")].iloc[0]
    assert row["n"] == 3 and math.isclose(row["mean"], 87.0)
    assert math.isclose(row["half_width"], 4.302652729911275 * 0.5 / math.sqrt(3), rel_tol=1e-9)


def test_table_has_dense_first_and_one_cell_per_method_and_target():
    table = interval_table(summary(), "vision-digits")
    assert list(table.columns) == ["dense", "90%", "98%"]
    assert table.loc["rigl", "90%"].startswith("87.00 ± ") and table.loc["rigl", "90%"].endswith("(3)")


def test_sparse_training_figures_are_built_only_for_sparse_training_rows():
    figs = {}
    for name, builder in all_figures().items():
        if name.startswith("sparse_training"):
            figs.update(builder(summary()))
    assert set(figs) == {"sparse_training_accuracy_vision-digits", "sparse_training_table_vision-digits",
                         "sparse_training_flops_vision-digits"}
