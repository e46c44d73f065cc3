"""Deterministic builders of the offline zero-shot tasks (lm-eval ``custom_dataset`` callables).

Both tasks are built from text every Python installation carries, so they run with no network:

- ``pydoc_lastword`` (LAMBADA-style, Paperno et al. 2016): the prose of Python's documentation
  (``pydoc_data.topics``, the text ``help()`` shows). An item is the 80 words before a clause-final word
  (a word of >= 3 letters followed by ``. ; : ! ?``) that already occurs among those 80 words, so the
  context determines the word, as LAMBADA's selection intends; the model must produce the word greedily.
- ``stdlib_docstring``: 4-way multiple choice over CPython's standard library. The context is a function
  or class header (module, ``def name(args):`` and the opening quotes of its docstring); the choices are
  the first line of its real docstring and the first lines of three docstrings drawn (seeded) from
  elsewhere in the library. Items come from the evaluation split of ``StdlibText`` first (files no
  calibration window sees), completed from the calibration split read from its end (the calibration
  pool is the first tokens of that split in path order).

The items are written once per machine as JSONL into the sparsebench cache and read back from there;
the file's SHA-256 goes into each result.
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import random
import re
from pathlib import Path

LASTWORD_CONTEXT_WORDS = 80
LASTWORD_FIRST_INDEX = 20  # the first items need some prose before them
MC_ITEMS = 600
MC_CHOICES = 4
MC_SEED = 1234
_CLAUSE_END = re.compile(r"([A-Za-z]{3,})[.;:!?]")
_STRIP = ".,;:()\"'"


def pydoc_lastword_items() -> list[dict]:
    import pydoc_data.topics

    items = []
    for key in sorted(pydoc_data.topics.topics):
        words = " ".join(_prose_paragraphs(pydoc_data.topics.topics[key])).split()
        for i, word in enumerate(words):
            match = _CLAUSE_END.fullmatch(word)
            if match is None or i < LASTWORD_FIRST_INDEX:
                continue
            context = words[max(0, i - LASTWORD_CONTEXT_WORDS) : i]
            target = match.group(1)
            if target not in (w.strip(_STRIP) for w in context):
                continue
            items.append({"id": f"{key}:{i}", "topic": key, "context": " ".join(context), "target": target})
    return items


def _prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running prose: code blocks (indented), lists and tables are left out, emphasis removed."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.split("\n")
        if not para.strip() or any(line.startswith(" ") for line in lines):
            continue
        if para.strip().startswith(("*", "-", "=", "+", "|")):
            continue
        out.append(" ".join(line.strip() for line in lines).replace("*", ""))
    return out


def stdlib_docstring_items(n_items: int = MC_ITEMS, seed: int = MC_SEED) -> list[dict]:
    from sparsebench.lm.text import StdlibText

    text = StdlibText()
    root = text._root()
    files = text.files("evaluation") + list(reversed(text.files("calibration")))
    entries, seen = [], set()
    for path in files:
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for name, header, summary in _documented_defs(path, module):
            if summary not in seen:
                seen.add(summary)
                entries.append((f"{module}.{name}", header, summary))
        if len(entries) >= n_items * 2:  # a pool of distractors twice the size of the items
            break
    if len(entries) < n_items:
        raise RuntimeError(f"the standard library at {root} yields {len(entries)} documented definitions; "
                           f"stdlib_docstring needs {n_items}")
    rng = random.Random(seed)
    items = []
    for k, (qualname, header, summary) in enumerate(entries[:n_items]):
        others = [s for _, _, s in rng.sample(entries, MC_CHOICES + 1) if s != summary][: MC_CHOICES - 1]
        label = rng.randrange(MC_CHOICES)
        choices = others[:label] + [summary] + others[label:]
        items.append({"id": f"{k}:{qualname}", "context": header, "choices": choices,
                      "label": label})
    return items


def _documented_defs(path: Path, module: str):
    """(name, header, docstring summary line) of each function and class in ``path`` with a docstring of >= 3 words."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("__"):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        summary = doc.strip().splitlines()[0].strip()
        if len(summary.split()) < 3 or len(summary) > 200:
            continue
        if isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            line = f"class {node.name}({bases}):" if bases else f"class {node.name}:"
        else:
            line = f"def {node.name}({ast.unparse(node.args)}):"
        yield node.name, f"# {module}\n{line}\n    \"\"\"", summary


BUILDERS = {"pydoc_lastword": pydoc_lastword_items, "stdlib_docstring": stdlib_docstring_items}


def items_file(task: str) -> tuple[Path, str]:
    """The task's JSONL in the cache (built on first use) and its SHA-256."""
    from sparsebench.cache import build_keyed, cache_dir

    def build(tmp: Path) -> None:
        with open(tmp / "items.jsonl", "w", encoding="utf-8") as fh:
            for item in BUILDERS[task]():
                fh.write(json.dumps(item, sort_keys=True) + "\n")

    parts = {"task": task, "builder_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
             "python": platform.python_version(), "implementation": platform.python_implementation()}
    entry, _ = build_keyed(cache_dir() / "zeroshot", task, parts, build)
    path = entry / "items.jsonl"
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _dataset(task: str):
    import datasets

    path, _ = items_file(task)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def pydoc_lastword(**kwargs):
    return _dataset("pydoc_lastword")


def stdlib_docstring(**kwargs):
    return _dataset("stdlib_docstring")
