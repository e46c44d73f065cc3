"""One colour and marker per method across every figure.

Well-known methods keep fixed styles (as in the papers' plots: dense black,
magnitude red, ...). Every other method gets the next unused colour/marker pair
in the sorted order of all method names this checkout declares (each method
file's ``name``) plus those present in the results, so two
methods never share a style and a method looks the same in every figure of a
report. ``build_report`` calls :func:`assign_styles` with the results' methods
before any figure is drawn; figure modules only call :func:`method_style`.
"""

from __future__ import annotations

import hashlib

from sparsebench import registry
from sparsebench.errors import ConfigError

# Colours not used by FIXED, so the first len(PALETTE) other methods all differ in colour too.
PALETTE = ["#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"]
MARKERS = ["^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d", "8"]
FIXED = {"dense": ("#000000", "o"), "magnitude": ("#d62728", "s"), "random": ("#7f7f7f", "x"),
         "wanda": ("#1f77b4", "^"), "sparsegpt": ("#2ca02c", "D")}
_assigned: dict[str, tuple[str, str]] = {}


def _known_methods() -> dict:
    """The methods this checkout declares, by their declared ``name`` (what results carry), from the
    method files themselves; a file's name need not match (``magnitude_global.py`` declares
    ``magnitude-global``)."""
    try:
        return {name: entry.cls for name, entry in registry.methods().items()}
    except ConfigError:  # a report built outside a checkout still draws, with result names only
        return {}


def _known_method_names() -> set[str]:
    return set(_known_methods())


def method_label(method: str) -> str:
    """The method's display name as its file declares it (``display_name``, else its ``name``); a method
    this checkout does not know keeps the name its results carry."""
    cls = _known_methods().get(method)
    return cls.label() if cls is not None else method


def method_citation(method: str) -> str:
    """The paper the method's file cites, or ''."""
    cls = _known_methods().get(method)
    return cls.paper.cite() if cls is not None and cls.paper is not None else ""


def assign_styles(methods) -> None:
    """Give every method (those of the checkout and ``methods``) a distinct colour/marker pair."""
    names = sorted((_known_method_names() | {str(m) for m in methods}) - set(FIXED))
    taken = set(FIXED.values())
    pairs = dict.fromkeys((PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)])
                          for i in range(len(PALETTE) * len(MARKERS)))
    free = [p for p in pairs if p not in taken]
    _assigned.clear()
    for i, name in enumerate(names):
        _assigned[name] = free[i % len(free)]


def method_style(method: str) -> dict:
    """``{"color", "marker"}`` of a method, the same in every figure."""
    if method in FIXED:
        color, marker = FIXED[method]
    elif method in _assigned:
        color, marker = _assigned[method]
    else:  # a method drawn before assign_styles saw it: stable, though it may share a colour
        h = int(hashlib.sha256(method.encode()).hexdigest(), 16)
        color, marker = PALETTE[h % len(PALETTE)], MARKERS[h % len(MARKERS)]
    return {"color": color, "marker": marker}


def method_order(methods) -> list[str]:
    """Papers' order: dense, the naive baselines, then the rest alphabetically."""
    first = ["dense", "random", "magnitude"]
    methods = list(dict.fromkeys(methods))
    return [m for m in first if m in methods] + sorted(m for m in methods if m not in first)
