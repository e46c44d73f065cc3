"""The sparse-attention figures build from a summary table (no model needed)."""

import pandas as pd

from sparsebench.report.style import method_label


def summary():
    rows = []
    for task, metric in (("lm-smollm2-2k", "perplexity"), ("lm-smollm2-passkey", "accuracy")):
        rows.append({"task": task, "family": "sparse_attention", "method": "full-attention", "target_sparsity": 0.0,
                     f"metric.{metric}_prefill": 3.0, f"metric.{metric}_decode": 3.0,
                     "metric.recall_prefill": 1.0, "metric.recall_decode": 1.0})
        for method in ("quest", "streaming-llm"):
            for s in (0.5, 0.75, 0.875, 0.9375):
                rows.append({"task": task, "family": "sparse_attention", "method": method, "target_sparsity": s,
                             f"metric.{metric}_prefill": 3 + s, f"metric.{metric}_decode": 3 + 2 * s,
                             "metric.recall_prefill": 1 - s / 2, "metric.recall_decode": 1 - s / 3})
    rows.append({"task": "lm-smollm2", "family": "pruning", "method": "magnitude", "target_sparsity": 0.5})
    return pd.DataFrame(rows)


def test_quality_and_retrieval_figures_have_a_prefill_and_a_decode_panel_per_task():
    from sparsebench.report.figures import sparse_attention as figs

    df = summary()
    quality = figs.attention_quality_vs_density(df)
    retrieval = figs.retrieval_vs_density(df)
    assert set(quality) == {"perplexity_vs_density_lm-smollm2-2k"}
    assert set(retrieval) == {"accuracy_vs_density_lm-smollm2-passkey"}
    fig = quality["perplexity_vs_density_lm-smollm2-2k"]
    assert [ax.get_title() for ax in fig.axes] == ["sparse prefill", "sparse decode"]
    assert len(fig.axes[1].get_lines()) == 3  # full attention line + two methods
    assert len(figs.attention_recall_vs_density(df)) == 2


def test_quality_vs_speedup_figure_needs_measured_speedups_and_plots_one_line_per_method():
    from sparsebench.report.figures import sparse_attention as figs

    df = summary().assign(hardware="cpu")
    assert figs.attention_quality_vs_speedup(df) == {}  # CPU runs time nothing: no figure
    timed = df.assign(hardware="h100", **{"metric.attention_speedup": 1 / (1 - df["target_sparsity"] + 0.1)})
    out = figs.attention_quality_vs_speedup(timed)
    assert set(out) == {"quality_vs_speedup_lm-smollm2-2k_h100", "quality_vs_speedup_lm-smollm2-passkey_h100"}
    assert len(out["quality_vs_speedup_lm-smollm2-2k_h100"].axes[0].get_lines()) == 4  # 3 methods + the 1x line


def test_kv_cache_pruning_is_plotted_on_its_own_axis_and_one_phase_methods_only_where_measured():
    from sparsebench.report.figures import sparse_attention as figs

    df = summary()
    df = df[df["task"] == "lm-smollm2-2k"]
    extra = pd.DataFrame([{"task": "lm-smollm2-2k", "family": "sparse_attention", "method": "mustafar",
                           "target_sparsity": s, "metric.perplexity_decode": 3 + s,
                           "metric.density_decode": 0.1 + (1 - s) / 2} for s in (0.75, 0.9375)])
    df = pd.concat([df, extra], ignore_index=True)
    df.loc[df["method"] == "quest", "metric.perplexity_prefill"] = float("nan")  # decode-only method
    pairs = figs.attention_quality_vs_density(df)["perplexity_vs_density_lm-smollm2-2k"]
    prefill, decode = pairs.axes
    # legends use each method file's display name (Quest, StreamingLLM), not its id
    assert [ln.get_label() for ln in decode.get_lines()] == [method_label(m) for m in ("full-attention", "quest",
                                                                                     "streaming-llm")]
    assert [ln.get_label() for ln in prefill.get_lines()] == [method_label(m) for m in ("full-attention",
                                                                                      "streaming-llm")]
    kv = figs.kv_pruning_quality_vs_density(df)["kv_perplexity_vs_density_lm-smollm2-2k"]
    assert [ln.get_label() for ln in kv.axes[1].get_lines()] == [method_label(m) for m in ("full-attention",
                                                                                         "mustafar")]
    assert list(kv.axes[1].get_lines()[1].get_xdata()) == [0.13125, 0.225]  # measured K/V density
    assert figs.kv_pruning_quality_vs_density(summary()) == {}  # no KV-pruning rows: no figure


def test_the_report_says_above_each_family_what_its_rows_measure():
    from sparsebench.report.build import family_note

    assert "second half of each sequence" in family_note("activation_sparsity")
    assert "phases its paper sparsifies" in family_note("sparse_attention")
    assert family_note("no-such-family") == ""


def test_density_figures_plot_measured_density_with_the_target_as_label_and_95_percent_bars():
    from sparsebench.report.figures import sparse_attention as figs

    df = summary()
    for phase in ("prefill", "decode"):
        df[f"metric.density_{phase}"] = (1 - df["target_sparsity"]) * 0.9  # spends 10 % under its budget
        df[f"ci_lo.perplexity_{phase}"] = df[f"metric.perplexity_{phase}"] - 0.1
        df[f"ci_hi.perplexity_{phase}"] = df[f"metric.perplexity_{phase}"] + 0.2
    fig = figs.attention_quality_vs_density(df)["perplexity_vs_density_lm-smollm2-2k"]
    ax = fig.axes[1]
    quest = next(line for line in ax.get_lines() if line.get_label() == method_label("quest"))
    assert list(quest.get_xdata()) == [0.9 * d for d in (1 / 16, 1 / 8, 1 / 4, 1 / 2)]
    assert "measured density" in ax.get_xlabel()
    assert "1/16" in [t.get_text() for t in ax.texts]
    bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    segs = bars[0].get_segments()
    assert segs[0][1][1] - segs[0][0][1] == __import__("pytest").approx(0.3)  # lo .. hi of one point
    assert "95 % interval" in fig._suptitle.get_text()
