"""What every method declares, whatever its family.

A method is one file ``methods/<family>/<name>.py`` holding one class that
subclasses its family's base (for example ``sparsebench.pruning.PruningMethod``).
The class carries its metadata beside its code:

- ``name``: what users type in the config,
- ``paper``: the paper it implements (:class:`Paper`),
- ``patterns``: the pattern kinds it supports (see ``sparsebench.targets``),
- ``Params``: a dataclass of hyperparameters with defaults; the config schema,
  the result files and MLflow params all come from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from sparsebench.params import Configurable, params_dict


@dataclass(frozen=True)
class Paper:
    title: str
    authors: str = ""
    year: int | None = None
    arxiv: str | None = None
    venue: str | None = None

    def cite(self) -> str:
        ref = f"arXiv:{self.arxiv}" if self.arxiv else (self.venue or "")
        who = f"{self.authors} {self.year}. " if self.authors else ""
        return f"{who}{self.title}" + (f" ({ref})" if ref else "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Method(Configurable):
    name: ClassVar[str]
    family: ClassVar[str]
    paper: ClassVar[Paper | None] = None
    patterns: ClassVar[tuple[str, ...]] = ("unstructured",)
    # A reference method (e.g. dense) runs once per task and seed, at sparsity 0.
    reference: ClassVar[bool] = False
    # How figures and tables name the method (the paper's spelling, e.g. "SparseGPT"); None: ``name``.
    display_name: ClassVar[str | None] = None

    @classmethod
    def label(cls) -> str:
        return cls.display_name or cls.name

    @classmethod
    def describe(cls) -> dict:
        return {
            "name": cls.name,
            "display_name": cls.label(),
            "family": cls.family,
            "paper": cls.paper.cite() if cls.paper else "",
            "patterns": list(cls.patterns),
            "params": params_dict(cls.Params()),
        }
