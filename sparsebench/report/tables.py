"""Tables in the layout of the SparseGPT and Wanda papers.

Rows are grouped by sparsity (dense first, then unstructured levels, then N:M
with 4:8 before 2:4), one row per method inside a group; columns are models
(tasks) or metrics. The best value of each group is bold; a metric cell reads
``mean [lo, hi]``, its 95 % interval (``sparsebench.report.curves.interval_of``).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from sparsebench.report.curves import interval_of
from sparsebench.report.style import method_order
from sparsebench.report.summary import direction, higher_is_better, target_sort_key

ARROWS = {"higher": "↑", "lower": "↓", "reference": "ref", None: "direction not declared"}


def _cell(values: pd.Series, digits: int = 2) -> tuple[str, float | None]:
    values = values.dropna().astype(float)
    if values.empty:
        return "", None
    mean = float(values.mean())
    text = _num(mean, digits)
    if len(values) > 1:
        text += f" ± {_num(float(values.std(ddof=1)), digits)}"
    return text, mean


def _metric_cell(rows: pd.DataFrame, col: str, digits: int = 2) -> tuple[str, float | None]:
    """``mean [lo, hi]``: the 95 % interval (t over seeds, else bootstrap over the task's units)."""
    if col not in rows.columns:
        return "", None
    mean, lo, hi, n = interval_of(rows, col)
    if n == 0:
        return "", None
    text = _num(mean, digits)
    if np.isfinite(lo) and np.isfinite(hi):
        text += f" [{_num(lo, digits)}, {_num(hi, digits)}]"
    return text, mean


def _num(v: float, digits: int) -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** -digits):
        return f"{v:.2e}"
    return f"{v:,.{digits}f}"


def _groups(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(sparsity label, rows) in the papers' order."""
    keys = df.groupby(["pattern", "target_sparsity", "target_label"], dropna=False).size().index
    ordered = sorted(keys, key=lambda k: target_sort_key(k[0], k[1]))
    out = []
    for pattern, sparsity, label in ordered:
        rows = df[(df["pattern"] == pattern) & np.isclose(df["target_sparsity"].astype(float), float(sparsity))
                  & (df["target_label"] == label)]
        out.append((str(label) if sparsity else "0% (dense)", rows))
    return out


def _render(header: list[str], groups: list[list[list[tuple[str, bool]]]], caption: str, cls: str = "paper") -> str:
    """groups: list of groups, each a list of rows, each a list of (text, bold) cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for rows in groups:
        for i, row in enumerate(rows):
            cells = "".join(f"<td>{'<b>' if bold else ''}{html.escape(text)}{'</b>' if bold else ''}</td>"
                            for text, bold in row)
            body.append(f"<tr{' class=group-start' if i == 0 else ''}>{cells}</tr>")
    return (f"<table class='{cls}'><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _bold_best(means: list[float | None], higher: bool, methods: list[str]) -> list[bool]:
    """The best non-reference value of a group is bold (only when two or more methods compete)."""
    cand = [(m, i) for i, m in enumerate(means) if m is not None and methods[i] != "dense"]
    if len(cand) < 2:
        return [False] * len(means)
    best = (max if higher else min)(v for v, _ in cand)
    return [m is not None and methods[i] != "dense" and m == best for i, m in enumerate(means)]


def task_table(df: pd.DataFrame, task: str, family: str) -> str:
    """One task, one family: Sparsity | Method | every metric | measured sparsity | seeds | time."""
    tdf = df[(df["task"] == task) & (df["family"] == family)]
    if tdf.empty:
        return ""
    primary = tdf["primary_metric"].dropna().iloc[0] if tdf["primary_metric"].notna().any() else None
    metrics = [c[len("metric."):] for c in tdf.columns if c.startswith("metric.") and tdf[c].notna().any()
               and not c.startswith("metric.zeroshot.")]  # zero-shot accuracy has its own table
    metrics = sorted(metrics, key=lambda m: (m != primary, m))
    header = ["Sparsity", "Method"] + [f"{m} ({ARROWS[direction(df, task, m)]})" for m in metrics] \
        + ["measured sparsity (%, = target)", "seeds", "time (s, ↓)"]
    groups = []
    for label, rows in _groups(tdf):
        methods = method_order(rows["method"])
        cells = {m: [_metric_cell(rows[rows["method"] == m], f"metric.{x}", 2) for x in metrics] for m in methods}
        bold = [_bold_best([cells[m][j][1] for m in methods], direction(df, task, x) == "higher", methods)
                if direction(df, task, x) in ("higher", "lower") else [False] * len(methods)
                for j, x in enumerate(metrics)]
        group = []
        for i, m in enumerate(methods):
            mr = rows[rows["method"] == m]
            row = [(label if i == 0 else "", False), (m, False)]
            row += [(cells[m][j][0], bold[j][i]) for j in range(len(metrics))]
            ms = mr["measured_sparsity"].dropna().astype(float) * 100 if "measured_sparsity" in mr else pd.Series()
            row.append((_cell(ms, 2)[0], False))
            row.append((str(mr["seed"].nunique()), False))
            row.append((_cell(mr["time.total_s"], 1)[0] if "time.total_s" in mr else "", False))
            group.append(row)
        groups.append(group)
    caption = (f"{task}, {family}: mean over seeds [95 % interval: t over seeds where several, else "
               "over the task's units]; bold = best of its sparsity group; ↑/↓ = higher/lower is better "
               "(FLOPs and density are costs: lower); ref = a reference value, no better direction")
    return _render(header, groups, caption)


def paper_table(df: pd.DataFrame, family: str, metric: str, tasks: list[str]) -> str:
    """The Wanda/SparseGPT layout: Method | Sparsity | one column per model (task) of one metric."""
    fdf = df[(df["family"] == family) & df["task"].isin(tasks)]
    col = f"metric.{metric}"
    if fdf.empty or col not in fdf.columns:
        return ""
    header = ["Sparsity", "Method"] + list(tasks)
    groups = []
    for label, rows in _groups(fdf):
        methods = method_order(rows["method"])
        cells = {m: [_metric_cell(rows[(rows["method"] == m) & (rows["task"] == t)], col) for t in tasks]
                 for m in methods}
        bold = [_bold_best([cells[m][j][1] for m in methods], higher_is_better(df, t, metric), methods)
                for j, t in enumerate(tasks)]
        groups.append([[(label if i == 0 else "", False), (m, False)]
                       + [(cells[m][j][0], bold[j][i]) for j in range(len(tasks))] for i, m in enumerate(methods)])
    hib = higher_is_better(df, tasks[0], metric)
    return _render(header, groups, f"{family}: {metric} ({'higher' if hib else 'lower'} is better) per model")


def zeroshot_tasks(df: pd.DataFrame) -> list[str]:
    """The zero-shot tasks with an accuracy column, in the order of the summary's columns."""
    return [c[len("metric.zeroshot."):-len(".acc")] for c in df.columns
            if c.startswith("metric.zeroshot.") and c.endswith(".acc") and df[c].notna().any()]


def zeroshot_table(df: pd.DataFrame, task: str, family: str) -> str:
    """The Wanda layout (Wanda Table 20, SparseGPT Table 4): Sparsity | Method | each zero-shot task's accuracy
    (%) ± the 95 % half-width from lm-eval's standard error | the mean over tasks; dense first."""
    tdf = df[(df["task"] == task) & (df["family"] == family)]
    names = zeroshot_tasks(tdf)
    if tdf.empty or not names:
        return ""
    cols = [f"zeroshot.{n}.acc" for n in names] + ["zeroshot.mean_acc"]
    header = ["Sparsity", "Method"] + names + ["Mean"]
    groups = []
    for label, rows in _groups(tdf[tdf["metric.zeroshot.mean_acc"].notna()]):
        methods = method_order(rows["method"])
        cells = {}
        for m in methods:
            mr = rows[rows["method"] == m]
            cells[m] = []
            for col in cols:
                text, mean = _cell(mr[f"metric.{col}"] * 100, 1) if f"metric.{col}" in mr else ("", None)
                err = f"metric.{col}_stderr"
                if mean is not None and err in mr and mr[err].notna().any() and len(mr) == 1:
                    text += f" ± {1.96 * float(mr[err].iloc[0]) * 100:.1f}"
                cells[m].append((text, mean))
        bold = [_bold_best([cells[m][j][1] for m in methods], True, methods) for j in range(len(cols))]
        groups.append([[(label if i == 0 else "", False), (m, False)]
                       + [(cells[m][j][0], bold[j][i]) for j in range(len(cols))] for i, m in enumerate(methods)])
    caption = (f"{task}, {family}: zero-shot accuracy (%) through lm-evaluation-harness, ± 95 % half-width "
               "(1.96 x lm-eval's standard error; mean ± s.d. over seeds where several); Mean = unweighted mean of "
               "the tasks' accuracy; bold = best of its sparsity group")
    return _render(header, groups, caption)
