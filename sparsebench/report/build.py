"""Assemble the report from stored results: ``<out>/index.html`` (self-contained), every figure as
PNG and PDF under ``<out>/figures/``, and the claims scorecard as ``<out>/claims.json``.

Nothing here runs an experiment: the only inputs are the summary table, the
result files (for metric directions, environments, task settings) and
``claims/*.yaml``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import sys
import time
from pathlib import Path

import pandas as pd

from sparsebench.errors import ConfigError
from sparsebench.report import page as P
from sparsebench.report.figures import FigureBuilder, catalog
from sparsebench.report.provenance import environment_html
from sparsebench.report.scorecard import counts_line, scorecard_html
from sparsebench.report.style import assign_styles
from sparsebench.report.summary import higher_is_better, load_summary, seeds_of
from sparsebench.report.tables import paper_table, task_table, zeroshot_table
from sparsebench.results import write_atomic

__all__ = ["build_report", "build_figure", "load_summary", "default_claims_dir"]
PNG_DPI = 150


def default_claims_dir() -> Path:
    from sparsebench.registry import project_root

    return project_root() / "claims"


def _save(name: str, fig, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    png = fig_dir / f"{name}.png"
    fig.savefig(png, dpi=PNG_DPI)
    fig.savefig(fig_dir / f"{name}.pdf")
    plt.close(fig)
    return png


def _task_of(fig_name: str, tasks: list[str]) -> str | None:
    hits = [t for t in tasks if t in fig_name]
    return max(hits, key=len) if hits else None


def build_figure(results_dir: Path, out_dir: Path, name: str) -> list[Path]:
    """Regenerate one builder's figures (``name`` = a builder) or one figure (``name`` = a figure's name)."""
    df = load_summary(results_dir)
    assign_styles(df["method"].dropna().unique())
    builders = catalog()
    if name in builders:
        return [_save(n, fig, Path(out_dir)) for n, fig in builders[name].build(df).items()]
    # A figure name: try the builders whose name starts it first (quality_vs_sparsity_lm-smollm2).
    order = sorted(builders.values(), key=lambda b: (not name.startswith(b.name), b.name))
    produced = []
    for b in order:
        figs = b.build(df)
        saved = [_save(n, fig, Path(out_dir)) for n, fig in figs.items() if n == name]
        for n, fig in figs.items():
            if n != name:
                import matplotlib.pyplot as plt

                plt.close(fig)
        if saved:
            return saved
        produced += list(figs)
    raise ConfigError(f"--figure {name!r} is neither a figure builder nor a figure of these results; builders: "
                      f"{', '.join(builders)}; figures: {', '.join(produced) or 'none'}")


def _claims(df: pd.DataFrame, claims_dir: Path, out_dir: Path, results_dir: Path):
    from sparsebench.claims import load_claims
    from sparsebench.verdicts import scorecard

    verdicts = scorecard(load_claims(claims_dir), df, results_dir) if claims_dir.is_dir() else []
    write_atomic(out_dir / "claims.json", json.dumps([v.to_dict() for v in verdicts], indent=2, default=str) + "\n")
    return verdicts


def _task_intro(df: pd.DataFrame, task: str) -> str:
    tdf = df[df["task"] == task]
    metric = tdf["primary_metric"].dropna().iloc[0] if tdf["primary_metric"].notna().any() else None
    direction = f" ({'higher' if higher_is_better(df, task, metric) else 'lower'} is better)" if metric else ""
    params = df.attrs.get("tasks", {}).get(task, {}).get("params", {})
    settings = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return (f"<p>{len(tdf)} results; primary metric <b>{html.escape(str(metric))}</b>{direction}; "
            f"hardware: {html.escape(', '.join(sorted(map(str, tdf['hardware'].dropna().unique()))))}; "
            f"seeds per setting: {seeds_of(tdf)}. Task settings: <code>{html.escape(settings)}</code></p>")


def _invalid_html(rows: list[dict]) -> str:
    """The results whose numbers are not used, with the reason the job gave."""
    cols = [("task", "task"), ("method", "method"), ("target_label", "target"), ("seed", "seed"),
            ("hardware", "hardware"), ("invalid_reason", "why invalid"), ("result_path", "result file")]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c, _ in cols) + "</tr>"
                   for r in rows)
    return ("<p class='warn'>These results are marked invalid: their numbers are not shown in any table or figure "
            "and no claim uses them.</p>"
            f"<table class='scorecard'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def family_note(family: str) -> str:
    """The family's ``REPORT_NOTE`` (what its rows measure that a reader must know), as a paragraph."""
    from sparsebench import registry

    fam = registry.families().get(family)
    note = getattr(fam.module, "REPORT_NOTE", "") if fam is not None else ""
    return f"<p class='note'>{html.escape(note)}</p>" if note else ""


def _remove_stale_figures(fig_dir: Path, produced: set[str]) -> None:
    """Delete PNG/PDF figures an earlier build left for results that are gone (a task no longer run):
    ``figures/`` then holds exactly what this page shows."""
    if fig_dir.is_dir():
        for path in fig_dir.iterdir():
            if path.suffix in (".png", ".pdf") and path.stem not in produced:
                path.unlink()


def build_report(results_dir: Path, out_dir: Path, only_figure: str | None = None,
                 claims_dir: Path | None = None) -> Path:
    t0 = time.perf_counter()
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if only_figure is not None:
        build_figure(results_dir, out_dir, only_figure)
        return out_dir / "figures"
    claims_dir = Path(claims_dir) if claims_dir is not None else default_claims_dir()
    df = load_summary(results_dir)
    assign_styles(df["method"].dropna().unique())
    tasks = sorted(df["task"].dropna().unique())
    figures: list[tuple[FigureBuilder, str, str | None, str]] = []  # builder, name, task, html
    for b in catalog().values():
        try:
            built = b.build(df)
        except Exception as exc:  # noqa: BLE001 - one broken builder must not hide every other figure
            print(f"sparsebench report: figure builder {b.name} ({b.module}.py) failed: {exc!r}", file=sys.stderr)
            built = {}
            figures.append((b, b.name, None, f"<p class='warn'>Figure builder <code>{html.escape(b.name)}</code> "
                                             f"({html.escape(b.module)}.py) failed: "
                                             f"<code>{html.escape(repr(exc))}</code></p>"))
        for name, fig in built.items():
            figures.append((b, name, _task_of(name, tasks), P.figure_html(name, _save(name, fig, out_dir))))
    _remove_stale_figures(out_dir / "figures", {name for _, name, _, _ in figures})
    verdicts = _claims(df, claims_dir, out_dir, results_dir)

    sections = [("claims", "Claims scorecard", scorecard_html(verdicts, str(claims_dir)))]
    invalid = df.attrs.get("invalid") or []
    if invalid:
        sections.append(("invalid", "Invalid results", _invalid_html(invalid)))
    families_in_results = set(df["family"].dropna())
    for task in tasks:
        inner = [_task_intro(df, task)]
        for family in sorted(df[df["task"] == task]["family"].dropna().unique()):
            figs = [h for b, _, t, h in figures if t == task and b.family == family]
            inner.append(f"<h3 id='{P.anchor(task + '-' + family)}'>{html.escape(family)}</h3>"
                         + family_note(family) + task_table(df, task, family) + zeroshot_table(df, task, family)
                         + "".join(figs))
        for title in dict.fromkeys(b.title for b, _, t, _ in figures if t == task and b.family not in families_in_results):
            figs = [h for b, _, t, h in figures if t == task and b.title == title and b.family not in families_in_results]
            inner.append(f"<h3>{html.escape(title)}</h3>" + "".join(figs))
        sections.append((P.anchor("task-" + task), f"Task {task}", "".join(inner)))
    across = []
    for family in sorted(families_in_results):
        fdf = df[df["family"] == family]
        for metric, mdf in fdf.groupby("primary_metric"):
            shared = sorted(mdf["task"].unique())
            if len(shared) > 1:
                across.append(paper_table(df, family, metric, shared))
    if across:
        sections.append(("across-tasks", "Across tasks (paper-style tables)", "".join(across)))
    for title in dict.fromkeys(b.title for b, _, t, _ in figures if t is None):
        figs = [h for b, _, t, h in figures if t is None and b.title == title]
        sections.append((P.anchor(title), title, "".join(figs)))
    sections.append(("environment", "Environment", environment_html(df)))

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    intro = (f"<p>{len(df)} results from <code>{html.escape(str(results_dir))}</code>: "
             f"{len(tasks)} task(s), families {html.escape(', '.join(sorted(families_in_results)) or 'none')}, "
             f"{sum(h.startswith('<figure') for *_, h in figures)} figure(s). Claims: {counts_line(verdicts) if verdicts else 'none found'}. "
             + (f"<b>{len(invalid)} invalid result(s)</b> left out of every table, figure and claim "
                f"(<a href='#invalid'>listed below</a>). " if invalid else "")
             + "Nothing was rerun to build this page.</p>")
    footer = (f"generated {now} in {time.perf_counter() - t0:.1f} s by <code>sparsebench report --results "
              f"{html.escape(str(results_dir))} --out {html.escape(str(out_dir))}</code>")
    out = out_dir / "index.html"
    write_atomic(out, P.page("sparsebench report", intro, sections, footer))
    return out
