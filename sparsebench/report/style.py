"""One colour and marker per method across every figure."""

from __future__ import annotations

import hashlib

PALETTE = ["#000000", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]
FIXED = {"dense": ("#000000", "o"), "magnitude": ("#d62728", "s"), "random": ("#7f7f7f", "x"),
         "wanda": ("#1f77b4", "^"), "sparsegpt": ("#2ca02c", "D")}


def method_style(method: str) -> dict:
    if method in FIXED:
        color, marker = FIXED[method]
    else:
        h = int(hashlib.sha256(method.encode()).hexdigest(), 16)
        color, marker = PALETTE[1 + h % (len(PALETTE) - 1)], MARKERS[h % len(MARKERS)]
    return {"color": color, "marker": marker}
