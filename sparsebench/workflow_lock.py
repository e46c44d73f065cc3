"""One Snakemake at a time per results directory, and resuming after a kill without `snakemake --unlock`.

Snakemake's own lock files (``.snakemake/locks``) outlive a killed process and live in the
working directory, so they neither clear themselves after ``kill -9`` nor guard a results
directory shared by runs started from two directories. The workflow therefore holds an OS
lock (``flock``) on ``<results>/.sparsebench.lock`` for as long as it runs: the kernel drops it
when the process dies, however it dies. Holding it proves that no other workflow is working on
these results, so Snakemake lock files naming them are left over from a dead run and are removed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from pathlib import Path

from sparsebench.errors import ConfigError

LOCK_NAME = ".sparsebench.lock"
_held: dict[str, int] = {}  # results dir -> open descriptor (kept open for the life of the process)


def hold_results_lock(results_dir: str | Path) -> Path:
    """Take the results directory's lock for this process, or fail naming the process that holds it."""
    results_dir = Path(results_dir).resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / LOCK_NAME
    if str(results_dir) in _held:
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace")
        os.close(fd)
        try:
            who = json.loads(holder)
            desc = f"pid {who['pid']}, started {who['started']} in {who['cwd']}"
        except (ValueError, KeyError, TypeError):
            desc = "another process"
        raise ConfigError(
            f"results_dir={str(results_dir)!r} is in use by another Snakemake ({desc}); wait for it to finish "
            f"or stop it, or point results_dir at another directory (a dry run, -n, works meanwhile)") from None
    info = {"pid": os.getpid(), "cwd": os.getcwd(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    _held[str(results_dir)] = fd
    return path


def remove_stale_snakemake_locks(owned_dirs, workdir: str | Path = ".") -> list[Path]:
    """Delete Snakemake lock files (``<workdir>/.snakemake/locks/*.lock``) that name a file under one of
    ``owned_dirs``. Call only while holding those directories' lock: any such file is then a dead run's."""
    lockdir = Path(workdir) / ".snakemake" / "locks"
    owned = [Path(d).resolve() for d in owned_dirs]
    removed = []
    for lockfile in sorted(lockdir.glob("*.lock")) if lockdir.is_dir() else []:
        try:
            names = [ln.strip() for ln in lockfile.read_text().splitlines() if ln.strip()]
        except OSError:
            continue
        if any(Path(n).resolve().is_relative_to(d) for n in names for d in owned):
            lockfile.unlink(missing_ok=True)
            removed.append(lockfile)
    return removed
