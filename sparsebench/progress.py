"""Progress bars for a job's long work (pruning blocks, training epochs, evaluation windows, zero-shot items).

A bar is drawn on stderr only when stderr is a terminal: under Snakemake a job's stderr is its log
file, and a log or a pipe gets no bars (``SPARSEBENCH_PROGRESS=0`` turns them off in a terminal too).
"""

from __future__ import annotations

import os
import sys
from typing import Iterable


def bars_enabled(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real file
        tty = False
    return tty and os.environ.get("SPARSEBENCH_PROGRESS", "1") != "0"


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "it"):
    """``iterable`` wrapped in a tqdm bar on stderr; nothing is printed when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, disable=not bars_enabled(),
                leave=False, dynamic_ncols=True)
