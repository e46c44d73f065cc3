"""Estimated latency of an accuracy result's model on a hardware profile, from kernel measurements.

The model (decode: one token, batch 1, the regime where weight and activation
sparsity pay off on memory-bound hardware)::

    latency_ms = sum over every nn.Linear of the model of  t(layer)
    t(layer)   = min( t_dense(shape),  t_dense(shape) / speedup_k(shape, density)  for each kernel k
                      that can execute the layer's pattern )

* ``t_dense(shape)``: the measured dense time of that (out, in) shape at one
  token (the median over every case of that shape in the profile's kernel
  file); a shape that was not measured takes the nearest measured shape by
  weight count, scaled in proportion to the weight count (a GEMV is
  bandwidth-bound: time ~ bytes).
* ``speedup_k(shape, density)``: kernel k's measured speed-up over dense at one
  token, on the same shape if measured (else the nearest by weight count),
  linearly interpolated in density between measured densities and clamped at
  the ends (never extrapolated).
* Kernels per pattern: ``unstructured`` -> CSR; ``2:4`` -> cuSPARSELt and our
  Triton 2:4 GEMV; ``block:b`` -> BSR; other N:M patterns have no kernel here
  and run dense; ``channel``/``head`` remove whole rows/columns, so the layer
  runs dense on the smaller shape (time scaled by the kept share). Results of
  the ``activation_sparsity`` family use the activation-sparse GEMVs at the
  measured activation density, with dense weights.
* A runtime would pick dense where sparse is slower, hence the ``min``.
* Only the linear layers are counted (all of them: the pruned ones at their
  pattern, the rest, e.g. the LM head, dense). Attention over the KV cache,
  norms, embeddings and launch gaps are left out; so the column compares
  methods on one profile, it is not an end-to-end wall-clock time.

The layer shapes come from the task's own model (``task.load_model()``; its
``prunable_layers`` say which layers carry the pattern).

Measured, not estimated, where an end-to-end measurement exists: a committed
``hardware/baselines/<profile>_decode.json`` (``sparsebench bench decode``: ms per
decoded token of a LLaMA-shaped model, every layer, attention and launches
included) replaces the estimate for a result whose model has exactly that
model's linear layers and whose variant was measured (dense; 2:4 pruning;
activation sparsity at a measured TEAL share, within 0.02). ``latency_kind.<profile>``
says which a value is. Vision tasks get no latency: their models' convolutions
are not in the kernel tables, so a linear-layer estimate would count only the
classifier head.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np

from sparsebench.targets import Pattern

KERNELS_FOR = {"unstructured": ("csr",), "2:4": ("semi_structured", "gemv_2_4"), "block": ("bsr",)}
ACTIVATION_KERNELS = ("act_sparse_gemv", "act_sparse_gemv_compact", "act_sparse_gather")


class KernelTable:
    """One profile's kernel measurements at one token, indexed for the latency model."""

    def __init__(self, doc: dict):
        self.profile = doc["profile"]
        self.rows = [r for r in doc["rows"] if r.get("status") == "ok" and r.get("tokens") == 1
                     and r.get("out_features")]
        dense: dict[tuple, list] = {}
        for r in self.rows:
            dense.setdefault((r["out_features"], r["in_features"]), []).append(r["dense_ms"])
        self.dense = {shape: float(np.median(v)) for shape, v in dense.items()}

    @classmethod
    def load(cls, path: Path) -> "KernelTable":
        return cls(json.loads(Path(path).read_text()))

    @staticmethod
    def _nearest(shapes, out_f: int, in_f: int):
        return min(shapes, key=lambda s: (abs(np.log(s[0] * s[1] / (out_f * in_f))), s != (out_f, in_f)))

    def dense_ms(self, out_f: int, in_f: int) -> float:
        if (out_f, in_f) in self.dense:
            return self.dense[(out_f, in_f)]
        if not self.dense:
            raise ValueError(f"profile {self.profile!r}: no one-token kernel measurements")
        near = self._nearest(self.dense, out_f, in_f)
        return self.dense[near] * (out_f * in_f) / (near[0] * near[1])

    def speedup(self, op: str, out_f: int, in_f: int, density: float) -> float | None:
        rows = [r for r in self.rows if r["op"] == op]
        if not rows:
            return None
        shape = self._nearest({(r["out_features"], r["in_features"]) for r in rows}, out_f, in_f)
        pts = sorted((r["density"], r["speedup"]) for r in rows if (r["out_features"], r["in_features"]) == shape)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return float(np.interp(density, xs, ys))

    def layer_ms(self, out_f: int, in_f: int, ops: tuple[str, ...], density: float) -> float:
        dense = self.dense_ms(out_f, in_f)
        best = dense
        for op in ops:
            s = self.speedup(op, out_f, in_f, density)
            if s:
                best = min(best, dense / s)
        return best


def kernels_for(pattern: Pattern) -> tuple[str, ...]:
    if pattern.kind == "n:m":
        return KERNELS_FOR.get(f"{pattern.n}:{pattern.m}", ())
    return KERNELS_FOR.get(pattern.kind, ())


def estimate_ms(table: KernelTable, layers: list[tuple[int, int, bool]], family: str, pattern: Pattern,
                sparsity: float) -> float:
    """``layers``: (out_features, in_features, prunable) of every linear layer of the model."""
    density = 1.0 - float(sparsity or 0.0)
    total = 0.0
    for out_f, in_f, prunable in layers:
        if family == "activation_sparsity":
            total += table.layer_ms(out_f, in_f, ACTIVATION_KERNELS, density) if prunable else table.dense_ms(out_f, in_f)
        elif not prunable or density >= 1.0 or family not in ("pruning", "sparse_training"):
            total += table.dense_ms(out_f, in_f)
        elif pattern.kind in ("channel", "head"):
            total += table.dense_ms(out_f, in_f) * density
        else:
            total += table.layer_ms(out_f, in_f, kernels_for(pattern), density)
    return total


@functools.lru_cache(maxsize=None)
def task_linear_layers(task_name: str) -> tuple[tuple[int, int, bool], ...]:
    """(out, in, prunable) of every nn.Linear in the task's model (loaded once per process)."""
    from torch import nn

    from sparsebench import registry

    task = registry.task(task_name).cls.build(None, "task")
    model = task.load_model()
    prunable = {id(m) for m in task.prunable_layers(model).values()}
    return tuple((m.out_features, m.in_features, id(m) in prunable)
                 for m in model.modules() if isinstance(m, nn.Linear))


COMMITTED_SUFFIX = "_measurements"
DECODE_SUFFIX = "_decode"
TEAL_TOLERANCE = 0.02  # measured activation sparsity within this of a measured TEAL share counts as that share


def llama_linear_layers(shape: dict, layers: int) -> list[tuple[int, int]]:
    """(out, in) of every nn.Linear of an unfused LLaMA of ``shape`` (q, k, v, o, gate, up, down; the LM head)."""
    h, m = shape["hidden"], shape["intermediate"]
    kv = shape.get("kv_heads", shape["heads"]) * shape["head_dim"]
    per = [(shape["heads"] * shape["head_dim"], h), (kv, h), (kv, h), (h, shape["heads"] * shape["head_dim"]),
           (m, h), (m, h), (h, m)]
    return per * layers + [(shape["vocab"], h)]


def measured_ms(doc: dict, layers: list[tuple[int, int, bool]], family: str, pattern: Pattern,
                sparsity: float) -> float | None:
    """ms per decoded token from an end-to-end measurement ``doc`` if it measured this model and variant."""
    if sorted((o, i) for o, i, _ in layers) != sorted(llama_linear_layers(doc["shape"], doc["layers"])):
        return None
    rows = {r["variant"]: r for r in doc["rows"]}
    sparsity = float(sparsity or 0.0)
    if sparsity == 0.0 and "dense" in rows:
        variant = "dense"
    elif family in ("pruning", "sparse_training") and pattern.kind == "n:m" and (pattern.n, pattern.m) == (2, 4):
        variant = "2:4"
    elif family == "activation_sparsity":
        variant = next((v for v, r in rows.items() if v.startswith("teal-")
                        and abs(r.get("zero_share", r.get("target_share", -1)) - sparsity) <= TEAL_TOLERANCE), None)
    else:
        variant = None
    return rows[variant]["step_ms"] if variant in rows else None


def decode_measurements(committed_dir: Path | None) -> dict[str, dict]:
    """profile -> its committed end-to-end decode measurement (``<profile>_decode.json``)."""
    if committed_dir is None:
        return {}
    docs = {}
    for p in sorted(Path(committed_dir).glob(f"*{DECODE_SUFFIX}.json")):
        try:
            doc = json.loads(p.read_text())
            if {"shape", "layers", "rows"} <= doc.keys():
                docs[p.stem[: -len(DECODE_SUFFIX)]] = doc
        except (ValueError, OSError) as exc:
            print(f"latency: skipping {p}: {exc}", file=sys.stderr)
    return docs


def is_vision_task(task: str) -> bool:
    return task.startswith("vision-")


def committed_measurements_dir() -> Path:
    """``hardware/baselines/``: full kernel-suite runs committed per GPU profile (``<profile>_measurements.json``)."""
    from sparsebench import registry

    return registry.project_root() / "hardware" / "baselines"


def kernel_tables(kernels_dir: Path, committed_dir: Path | None = None) -> dict[str, tuple[KernelTable, Path]]:
    """Every ``<profile>.json`` kernel results file in ``kernels_dir`` and, for profiles this run did not
    measure (a GPU the machine lacks), the committed ``<profile>_measurements.json`` in ``committed_dir``:
    real measurements from an earlier run on that hardware, named as such in ``latency_from.<profile>``."""
    found = [(p.stem, p) for p in sorted(Path(kernels_dir).glob("*.json"))]
    if committed_dir is not None:
        ran = {name for name, _ in found}
        found += [(p.stem[: -len(COMMITTED_SUFFIX)], p) for p in sorted(Path(committed_dir).glob(f"*{COMMITTED_SUFFIX}.json"))
                  if p.stem[: -len(COMMITTED_SUFFIX)] not in ran]
    tables = {}
    for name, path in found:
        try:
            tables[name] = (KernelTable.load(path), path)
        except (KeyError, ValueError, json.JSONDecodeError) as exc:
            print(f"latency: skipping {path}: {exc}", file=sys.stderr)
    return tables


def add_latency_columns(df, kernels_dir: Path, layers_of=task_linear_layers, committed_dir: Path | None = None):
    """Add ``latency_ms.<profile>``, ``latency_kind.<profile>`` (``measured`` end to end, or ``estimated``
    from the kernel tables) and ``latency_from.<profile>`` (the kernel file of the estimates) for every
    profile of :func:`kernel_tables` (NaN where the task's model cannot be loaded, for vision tasks, and
    where the family is not one the model covers)."""
    tables = kernel_tables(kernels_dir, committed_dir)
    if df.empty or not tables:
        return df
    measured = decode_measurements(committed_dir)
    for name, (table, path) in tables.items():
        values, kinds = [], []
        for _, row in df.iterrows():
            if is_vision_task(row["task"]):
                values.append(float("nan"))
                kinds.append(None)
                continue
            try:
                layers = list(layers_of(row["task"]))
                sparsity = row.get("measured_sparsity")
                if sparsity is None or sparsity != sparsity:  # NaN
                    sparsity = row["target_sparsity"]
                pattern = Pattern.parse(row["pattern"])
                ms = measured_ms(measured[name], layers, row["family"], pattern, float(sparsity)) \
                    if name in measured else None
                kind = "measured" if ms is not None else "estimated"
                if ms is None:
                    ms = estimate_ms(table, layers, row["family"], pattern, float(sparsity))
                values.append(ms)
                kinds.append(kind)
            except Exception as exc:  # noqa: BLE001 - one task without a loadable model must not stop aggregation
                print(f"latency: {row['task']}/{row['method']}: {exc}", file=sys.stderr)
                values.append(float("nan"))
                kinds.append(None)
        df[f"latency_ms.{name}"] = values
        df[f"latency_kind.{name}"] = kinds
        df[f"latency_from.{name}"] = str(path)
    return df


def latency_label(kinds) -> str:
    """What a latency axis shows: measured end to end, estimated from kernel tables, or both."""
    kinds = {k for k in kinds if isinstance(k, str)}
    if kinds == {"measured"}:
        return "measured end to end"
    if "measured" in kinds:
        return "measured where available, else estimated from kernel tables"
    return "estimated from kernel tables: linear layers only"
