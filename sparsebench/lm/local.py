"""A user's own checkpoint and text, offline: a local Hugging Face directory and local files.

Both are fingerprinted by content (SHA-256 of every file, cached per file by
path, size and modification time so a 70B checkpoint is hashed once), and the
fingerprints go into the task's parameters: a changed checkpoint or text gets
a new run id and new cache keys instead of silently reusing stale results.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from sparsebench.imports import causal_lm_classes

TEXT_SUFFIXES = (".txt", ".jsonl", ".parquet")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, cached by (absolute path, size, mtime) under the sparsebench cache."""
    from sparsebench.cache import cache_dir

    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_dir() / "fingerprints" / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    digest = h.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(digest + "\n")
    os.replace(tmp, memo)
    return digest


def content_sha256(path: Path) -> str:
    """One digest of a file or a directory tree: relative names and the bytes of every file."""
    path = Path(path)
    h = hashlib.sha256()
    for f in _files(path):
        rel = f.name if path.is_file() else f.relative_to(path).as_posix()
        h.update(f"{rel}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def pin_content(params, key: str, path: Path) -> None:
    """Set ``params.<key>`` to the content hash of ``path``; if it already holds another hash, the files
    changed after the job was planned (its run id names the old content): refuse."""
    digest = content_sha256(path)
    value = getattr(params, key)
    if value and value != digest:
        raise ValueError(f"{key}={value!r} but the files at {str(path)!r} now hash to {digest!r}: "
                         "they changed after this job was planned; plan again")
    setattr(params, key, digest)


def check_checkpoint(directory: str, key: str = "model") -> Path:
    """A local Hugging Face causal-LM directory, or a ValueError naming ``key`` and the path."""
    d = Path(directory).expanduser()
    if not directory:
        raise ValueError(f"{key} is required: a local Hugging Face checkpoint directory")
    if not d.is_dir():
        raise ValueError(f"{key}={directory!r}: no such directory")
    cfg_file = d / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"{key}={directory!r}: not a Hugging Face checkpoint (no config.json in it)")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"{key}={directory!r}: model_type {model_type!r} in config.json is not a causal LM "
                         "that transformers knows (AutoModelForCausalLM)")
    if not any(p.suffix in (".safetensors", ".bin") for p in d.iterdir()):
        raise ValueError(f"{key}={directory!r}: no weights (*.safetensors or *.bin) in it")
    return d


def check_text(path: str, field: str, key: str = "text") -> Path:
    """A text source: a file or a directory of .txt/.jsonl/.parquet files, each record with ``field``."""
    p = Path(path).expanduser()
    if not path:
        raise ValueError(f"{key} is required: a .txt/.jsonl/.parquet file or a directory of them")
    if not p.exists():
        raise ValueError(f"{key}={path!r}: no such file or directory")
    files = [f for f in _files(p) if f.suffix in TEXT_SUFFIXES]
    if not files:
        raise ValueError(f"{key}={path!r}: no text files in it (allowed: {', '.join(TEXT_SUFFIXES)})")
    for f in files:
        if f.suffix == ".jsonl":
            with open(f, encoding="utf-8") as fh:
                first = next((line for line in fh if line.strip()), None)
            if first is not None and field not in json.loads(first):
                raise ValueError(f"text_field={field!r} is not a field of the records in {f} ({key}={path!r}); "
                                 f"its fields: {sorted(json.loads(first))}")
        elif f.suffix == ".parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(f).names
            if field not in names:
                raise ValueError(f"text_field={field!r} is not a column of {f} ({key}={path!r}); columns: {names}")
    return p


def _records(f: Path, field: str) -> Iterator[str]:
    if f.suffix == ".txt":
        yield f.read_text(encoding="utf-8", errors="replace")
    elif f.suffix == ".jsonl":
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield str(json.loads(line)[field])
    elif f.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from (str(v) for v in pq.read_table(f, columns=[field]).column(field).to_pylist())


@dataclass(frozen=True)
class LocalText:
    """Evaluation text from ``path``; calibration text from ``calibration_path`` when given, else from
    ``path`` too, split by unit (a file of a directory, a record of a single file): ~10 % evaluation."""

    path: str
    field: str = "text"
    calibration_path: str = ""
    fingerprint: str = ""
    calibration_fingerprint: str = ""
    eval_fraction_per_256: int = 26

    def _units(self, path: str) -> Iterator[tuple[str, str]]:
        p = Path(path).expanduser()
        for f in _files(p):
            if f.suffix not in TEXT_SUFFIXES:
                continue
            rel = f.name if p.is_file() else f.relative_to(p).as_posix()
            for i, text in enumerate(_records(f, self.field)):
                if text.strip():
                    yield (rel if p.is_dir() else f"{rel}:{i}"), text

    def texts(self, split: str) -> Iterator[str]:
        if split not in ("calibration", "evaluation"):
            raise ValueError(f"split={split!r}; allowed: 'calibration', 'evaluation'")
        if self.calibration_path:
            yield from (t for _, t in self._units(self.path if split == "evaluation" else self.calibration_path))
            return
        for unit, text in self._units(self.path):
            is_eval = hashlib.sha256(unit.encode()).digest()[0] < self.eval_fraction_per_256
            if is_eval == (split == "evaluation"):
                yield text

    def describe(self) -> dict:
        d = {"source": "local", "path": self.path, "field": self.field, "sha256": self.fingerprint}
        if self.calibration_path:
            d.update(calibration_path=self.calibration_path, calibration_sha256=self.calibration_fingerprint)
        return d


@dataclass(frozen=True)
class LocalCheckpoint:
    directory: str
    fingerprint: str = ""

    def prepare(self) -> Path:
        return Path(self.directory)

    def load(self, dtype: torch.dtype = torch.float32):
        AutoModelForCausalLM, AutoTokenizer = causal_lm_classes()

        d = Path(self.directory).expanduser()
        model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(d, local_files_only=True)
        return model.eval(), tok

    def describe(self) -> dict:
        return {"source": "local", "directory": self.directory, "sha256": self.fingerprint}
