"""Reports generated from stored results only (never reruns an experiment)."""

from sparsebench.report.build import build_figure, build_report

__all__ = ["build_report", "build_figure"]
