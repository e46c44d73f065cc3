"""Kernel figures: speed-up over dense versus density with the ideal line, per hardware profile (the
quality-versus-latency front is :mod:`sparsebench.report.figures.pareto`'s). A panel holds at most
:data:`MAX_SERIES` shapes: a kernel measured on more gets one panel per regime (decode, prefill), each
with an even spread of its shapes.

Kernel results are read from ``<results>/kernels/<profile>.json`` (the results
directory is the one holding the summary's result files) and, for profiles not
measured there, from the committed ``hardware/baselines/<profile>_measurements.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MAX_SERIES = 10  # lines a panel can hold and still be read
PANELS = [("csr", "CSR (unstructured)"), ("bsr", "BSR 32x32 blocks"), ("semi_structured", "2:4 cuSPARSELt"),
          ("gemv_2_4", "2:4 Triton GEMV"), ("act_sparse_gemv", "activation-sparse Triton GEMV (masked rows)"),
          ("act_sparse_gemv_compact", "activation-sparse Triton GEMV (packed non-zeros)"),
          ("act_sparse_gather", "activation-sparse gather (stock)"), ("flex_attention", "FlexAttention block-sparse"),
          ("block_attention", "block-sparse attention (our Triton)")]


def _results_dir(df: pd.DataFrame) -> Path:
    paths = df["result_path"].dropna() if "result_path" in df.columns else []
    for p in paths:
        parts = Path(p).parts
        if "runs" in parts:
            return Path(*parts[: len(parts) - 1 - parts[::-1].index("runs")])
    return Path("results")


def kernel_results(df: pd.DataFrame) -> dict[str, dict]:
    from sparsebench.registry import project_root

    found = {}
    for path in sorted((_results_dir(df) / "kernels").glob("*.json")):
        found[path.stem] = json.loads(path.read_text())
    for path in sorted((project_root() / "hardware" / "baselines").glob("*_measurements.json")):
        found.setdefault(path.stem.removesuffix("_measurements"), json.loads(path.read_text()))
    return found


def _series(rows: pd.DataFrame) -> int:
    return rows.groupby(["model", "layer", "tokens"]).ngroups


def _split(title: str, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One panel, or (more than MAX_SERIES shapes) one per regime, decode (one token) and prefill (many),
    each with at most MAX_SERIES representative shapes."""
    if _series(rows) <= MAX_SERIES:
        return [(title, rows)]
    one = rows["tokens"].astype(int) == 1
    parts = [(regime, part) for regime, part in (("decode, 1 token", rows[one]), ("prefill, many tokens", rows[~one]))
             if not part.empty]
    if len(parts) == 1:
        return [_representative(title, rows)]
    return [_representative(f"{title}: {regime}", part) for regime, part in parts]


def _representative(title: str, rows: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """At most MAX_SERIES shapes, spread evenly over the shapes ordered by token count and layer; the title
    says how many of how many are drawn (every shape stays in the kernel results file)."""
    keys = sorted(rows.groupby(["model", "layer", "tokens"]).groups, key=lambda k: (int(k[2]), str(k[1])))
    if len(keys) <= MAX_SERIES:
        return title, rows
    keep = {keys[round(i * (len(keys) - 1) / (MAX_SERIES - 1))] for i in range(MAX_SERIES)}
    mask = [k in keep for k in zip(rows["model"], rows["layer"], rows["tokens"])]
    return f"{title} ({len(keep)} of {len(keys)})", rows[mask]


def speedup_figure(doc: dict):
    rows = pd.DataFrame([r for r in doc["rows"] if r.get("status") == "ok"])
    panels = []
    for op, title in PANELS:
        sub = rows[rows["op"] == op] if not rows.empty else rows
        if sub.empty:
            continue
        panels += _split(title, sub)
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    dens = np.linspace(0.01, 1.0, 200)
    for ax, (title, sub) in zip(axes.flat, panels):
        ax.plot(dens, 1 / dens, color="black", ls="--", lw=1, label="ideal 1/density")
        ax.axhline(1.0, color="grey", lw=0.8)
        for (model, layer, tokens), g in sub.groupby(["model", "layer", "tokens"]):
            g = g.sort_values("density")
            style = dict(marker="o", ms=3, lw=1, label=f"{model}.{layer} t={tokens}")
            if len(g) == 1:
                ax.plot(g["density"], g["speedup"], ls="none", **{k: v for k, v in style.items() if k != "lw"})
            else:
                ax.plot(g["density"], g["speedup"], **style)
        ax.set_yscale("log")
        ax.set_ylim(0.01, max(30.0, float(sub["speedup"].max()) * 1.5))
        ax.set_xlim(0, 1.05)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("density (kept fraction)")
        ax.set_ylabel("speed-up over dense")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    stale = f"\nSTALE: from commit {doc['stale']['commit'][:8]}, before the current kernels" if doc.get("stale") else ""
    fig.suptitle(f"{doc['profile']} ({doc.get('device')}, {doc.get('dtype')}): sparse kernel speed-up vs density"
                 + stale)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.5 if stale else 0.3) / fig.get_figheight()))  # room for the suptitle
    return fig


def kernel_speedup_vs_density(df: pd.DataFrame) -> dict:
    figs = {}
    for profile, doc in kernel_results(df).items():
        fig = speedup_figure(doc)
        if fig is not None:
            figs[f"kernel_speedup_vs_density_{profile}"] = fig
    return figs


FIGURES = {"kernel_speedup_vs_density": kernel_speedup_vs_density}
