"""Where the text comes from, split into disjoint calibration and evaluation sets.

- :class:`StdlibText`: CPython's own standard-library sources (on every machine
  with Python). Files are assigned to a split by a hash of their relative
  path, so the split is the same on every machine with the same Python.
- :class:`HFDatasetText`: WikiText-2, C4 or any ``datasets`` dataset (for users
  with a network; tested on local parquet files).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

_SKIP_DIRS = {"site-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3"}


@functools.lru_cache(maxsize=None)
def _stdlib_splits(root: Path, eval_fraction_per_256: int) -> dict[str, tuple[Path, ...]]:
    """Both splits of the ``*.py`` files under ``root`` (sorted; none inside a directory named in
    ``_SKIP_DIRS``), from one walk per process that never enters the skipped directories: the interpreter's
    own site-packages can hold tens of thousands of files (a walk through them took ~0.8 s of every job)."""
    out: dict[str, list[Path]] = {"calibration": [], "evaluation": []}
    found = []
    for directory, subdirs, names in os.walk(root):  # like Path.rglob: symlinked directories are not entered
        subdirs[:] = [d for d in subdirs if d not in _SKIP_DIRS]
        found.extend(Path(directory, n) for n in names if n.endswith(".py"))
    for path in sorted(found):
        rel = path.relative_to(root)
        is_eval = hashlib.sha256(rel.as_posix().encode()).digest()[0] < eval_fraction_per_256
        out["evaluation" if is_eval else "calibration"].append(path)
    return {split: tuple(paths) for split, paths in out.items()}


@dataclass(frozen=True)
class StdlibText:
    eval_fraction_per_256: int = 26  # ~10 % of files are evaluation text
    root: str | None = None  # defaults to this interpreter's stdlib

    def _root(self) -> Path:
        return Path(self.root or sysconfig.get_paths()["stdlib"])

    def files(self, split: str) -> list[Path]:
        if split not in ("calibration", "evaluation"):
            raise ValueError(f"split={split!r}; allowed: 'calibration', 'evaluation'")
        return list(_stdlib_splits(self._root(), self.eval_fraction_per_256)[split])

    def texts(self, split: str) -> Iterator[str]:
        for path in self.files(split):
            text = path.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                yield text

    def max_tokens(self, split: str) -> int:
        """An upper bound on the tokens of ``split``: its characters plus one EOS per file
        (every token of a byte-level BPE covers at least one character)."""
        files = self.files(split)
        return sum(p.stat().st_size for p in files) + len(files)

    def describe(self) -> dict:
        import platform

        return {"source": "cpython-stdlib", "python": platform.python_version(), "root": str(self._root())}


@dataclass(frozen=True)
class HFDatasetText:
    path: str = "wikitext"
    name: str | None = "wikitext-2-raw-v1"
    calibration_split: str = "train"
    evaluation_split: str = "test"
    text_field: str = "text"
    data_files: dict | None = None  # for local files: {"train": ..., "test": ...}
    join: str = "\n\n"  # WikiText is evaluated as one joined document, as in SparseGPT's code

    def texts(self, split: str) -> Iterator[str]:
        try:
            import datasets
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise RuntimeError("HFDatasetText needs the `datasets` package: pip install 'sparsebench[hub]'") from exc
        name = {"calibration": self.calibration_split, "evaluation": self.evaluation_split}[split]
        ds = datasets.load_dataset(self.path, self.name, split=name, data_files=self.data_files)
        yield self.join.join(ds[self.text_field])

    def describe(self) -> dict:
        return {"source": "datasets", "path": self.path, "name": self.name, "data_files": self.data_files}
