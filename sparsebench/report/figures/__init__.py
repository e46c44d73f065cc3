"""Figure builders, collected from every module in this package.

Each module defines ``FIGURES = {name: builder}``; a builder takes the summary
table (pandas DataFrame, one row per result, plus a ``primary_metric`` column;
``df.attrs`` holds ``results_dir``, ``metric_info``, ``tasks``, ``hardware``,
see ``sparsebench.report.summary``) and returns ``{figure_name: matplotlib
Figure}`` (empty when its rows are absent). A family adds its figures by adding
a module here; ``sparsebench report --figure NAME`` regenerates one builder's
figures (or one figure) alone.

Where a figure goes in the report: under its module's family (the module's
``FAMILY`` attribute, default the module's name) in the section of the task
whose name the figure's name contains (``quality_vs_sparsity_lm-smollm2``);
figures naming no task get a section of their own (kernels, say).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class FigureBuilder:
    name: str
    build: object  # callable(df) -> {figure_name: Figure}
    module: str
    family: str
    title: str


def catalog() -> dict[str, FigureBuilder]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        family = getattr(module, "FAMILY", info.name)
        title = getattr(module, "TITLE", family.replace("_", " ").capitalize())
        for name, builder in getattr(module, "FIGURES", {}).items():
            found[name] = FigureBuilder(name, builder, info.name, family, title)
    return found


def all_figures() -> dict:
    return {name: b.build for name, b in catalog().items()}
