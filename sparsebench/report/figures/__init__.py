"""Figure builders, collected from every module in this package.

Each module defines ``FIGURES = {name: builder}``; a builder takes the summary
table (pandas DataFrame, one row per result, plus a ``primary_metric`` column)
and returns ``{figure_name: matplotlib Figure}`` (empty when its rows are
absent). A family adds its figures by adding a module here; ``sparsebench
report --figure NAME`` regenerates one builder's figures alone.
"""

from __future__ import annotations

import importlib
import pkgutil


def all_figures() -> dict:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.update(getattr(module, "FIGURES", {}))
    return found
