"""The per-machine cache (float weights of offline models and the like).

``$SPARSEBENCH_CACHE`` or ``$XDG_CACHE_HOME/sparsebench`` or ``~/.cache/sparsebench``.
Entries are built under a file lock into a temporary directory and renamed into
place, so concurrent jobs build an entry once and never see half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("SPARSEBENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sparsebench"


@contextlib.contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_once(entry: Path, build) -> Path:
    """Return ``entry`` (a directory), calling ``build(tmpdir)`` first if it does not exist yet."""
    if entry.is_dir():
        return entry
    with file_lock(entry.parent / f".{entry.name}.lock"):
        if entry.is_dir():
            return entry
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            build(tmp)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return entry


def key_digest(parts: dict) -> str:
    """A short, stable name for everything that determines a cache entry (sorted-key JSON, SHA-256)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def build_keyed(directory: Path, prefix: str, parts: dict, build) -> tuple[Path, str]:
    """The entry ``<directory>/<prefix>-<key_digest(parts)>``, built by ``build(tmpdir)`` if missing (see
    :func:`build_once`), and whether this call built it: ``"stored"``, or ``"hit"`` when it was there."""
    built = []

    def build_and_mark(tmp: Path) -> None:
        build(tmp)
        built.append(True)

    entry = build_once(directory / f"{prefix}-{key_digest(parts)}", build_and_mark)
    return entry, "stored" if built else "hit"


COMPILE_CACHE_VARS = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}


def persistent_compile_cache() -> dict:
    """Keep torch.compile's and Triton's caches in this machine's cache (``<cache_dir()>/inductor``,
    ``/triton``), so a later job on the machine reuses the compiled kernels instead of paying the compiles
    again (torch's default is a directory under /tmp, which a reboot or a fresh container empties).
    A variable the user has set is left alone. Call it before the first compile; returns where the caches
    are and who chose them, and whether torch's FX graph cache is on (a job records this)."""
    out = {}
    for var, sub in COMPILE_CACHE_VARS.items():
        user = os.environ.get(var)
        if user is None:
            path = cache_dir() / sub
            path.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(path)
        out[var] = {"path": os.environ[var], "set_by": "user" if user is not None else "sparsebench"}
    try:
        from torch._inductor import config as inductor_config

        out["fx_graph_cache"] = bool(inductor_config.fx_graph_cache)
    except ImportError:  # a torch without inductor: nothing to cache
        out["fx_graph_cache"] = None
    return out
