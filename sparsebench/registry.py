"""Discovery by scanning: methods, tasks, hardware profiles and families.

- ``methods/<family>/<name>.py``: each file holds one class subclassing its
  family's base class (``sparsebench.families.<family>.BASE``).
- ``tasks/<name>.py``: each file holds one :class:`sparsebench.task.Task` subclass.
- ``hardware/<name>.yaml``: one hardware profile per file.
- ``sparsebench/families/<family>.py``: the core's side of a family (its base
  class and how one job of that family runs).

Nothing lists these by hand: adding a file adds it to ``sparsebench list`` and
to the workflow's DAG.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sparsebench.errors import ConfigError


def project_root() -> Path:
    """The directory holding ``methods/``, ``tasks/`` and ``hardware/``.

    ``$SPARSEBENCH_ROOT`` wins; otherwise the nearest parent of the working
    directory that has ``methods/`` and ``tasks/``; otherwise the checkout this
    package was installed from.
    """
    env = os.environ.get("SPARSEBENCH_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "methods").is_dir() and (d / "tasks").is_dir():
            return d
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Family:
    name: str
    module: ModuleType

    @property
    def base(self) -> type:
        return self.module.BASE


@functools.lru_cache(maxsize=None)
def families() -> dict[str, Family]:
    import sparsebench.families as pkg

    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"sparsebench.families.{info.name}")
        if hasattr(mod, "FAMILY") and hasattr(mod, "BASE"):
            found[mod.FAMILY] = Family(mod.FAMILY, mod)
    return found


@functools.lru_cache(maxsize=None)
def family(name: str) -> Family | None:
    """``families().get(name)``, importing only ``sparsebench/families/<name>.py`` when that file declares the
    family (always, in this repository): a job imports only its own family's engine, since each job is a
    fresh process and the other families' engines are start-up time. None: no such family."""
    import sparsebench.families as pkg

    if name.isidentifier() and any(info.name == name for info in pkgutil.iter_modules(pkg.__path__)):
        mod = importlib.import_module(f"sparsebench.families.{name}")
        if hasattr(mod, "FAMILY") and hasattr(mod, "BASE") and mod.FAMILY == name:
            return Family(mod.FAMILY, mod)
    return families().get(name)


def _load_file(path: Path, module_name: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise
    return module


def sibling_module(method_file: str, stem: str) -> ModuleType:
    """The module of another method file in the same family folder (a variant reuses its paper method's
    helpers), loaded under the name discovery gives it, so it is loaded once."""
    path = Path(method_file).resolve().parent / f"{stem}.py"
    if not path.is_file():
        raise ConfigError(f"{method_file}: no sibling method file {path.name}")
    return _load_file(path, f"sparsebench_methods.{path.parent.name}.{stem}")


def _classes_defined_in(module: ModuleType, base: type) -> list[type]:
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, base) and obj.__module__ == module.__name__
        and not inspect.isabstract(obj) and "name" in vars(obj)
    ]


@dataclass(frozen=True)
class MethodEntry:
    name: str
    family: str
    cls: type
    file: Path


@dataclass(frozen=True)
class TaskEntry:
    name: str
    cls: type
    file: Path


@functools.lru_cache(maxsize=None)
def methods(root: Path | None = None) -> dict[str, MethodEntry]:
    root = Path(root or project_root())
    fams = families()
    found: dict[str, MethodEntry] = {}
    for fam_dir in sorted(p for p in (root / "methods").iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        if fam_dir.name not in fams:
            raise ConfigError(
                f"methods/{fam_dir.name}/: unknown family {fam_dir.name!r}; allowed: {sorted(fams)}"
            )
        for name, entry in family_methods(fam_dir.name, root).items():
            if name in found:
                raise ConfigError(f"{entry.file}: method name {name!r} is already used by {found[name].file}")
            found[name] = entry
    return found


@functools.lru_cache(maxsize=None)
def family_methods(family_name: str, root: Path | None = None) -> dict[str, MethodEntry]:
    """The methods in ``methods/<family_name>/`` only (loads no other family's files)."""
    root = Path(root or project_root())
    fam = family(family_name)
    if fam is None:
        raise ConfigError(f"family={family_name!r} is not a known family; allowed: {sorted(families())}")
    base = fam.base
    found: dict[str, MethodEntry] = {}
    for path in sorted((root / "methods" / family_name).glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load_file(path, f"sparsebench_methods.{family_name}.{path.stem}")
        classes = _classes_defined_in(module, base)
        if len(classes) != 1:
            raise ConfigError(
                f"{path}: expected exactly one {base.__name__} subclass with a 'name', found {len(classes)}"
            )
        cls = classes[0]
        if cls.name in found:
            raise ConfigError(f"{path}: method name {cls.name!r} is already used by {found[cls.name].file}")
        found[cls.name] = MethodEntry(cls.name, family_name, cls, path)
    return found


@functools.lru_cache(maxsize=None)
def tasks(root: Path | None = None) -> dict[str, TaskEntry]:
    from sparsebench.task import Task

    root = Path(root or project_root())
    found: dict[str, TaskEntry] = {}
    for path in sorted((root / "tasks").glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load_file(path, f"sparsebench_tasks.{path.stem}")
        for cls in _classes_defined_in(module, Task):
            if cls.name in found:
                raise ConfigError(f"{path}: task name {cls.name!r} is already used by {found[cls.name].file}")
            found[cls.name] = TaskEntry(cls.name, cls, path)
    return found


def method(name: str, where: str = "method", family: str | None = None) -> MethodEntry:
    """The method ``name``; with ``family`` (a job's spec names it), only that family's files are loaded
    when the method is there, so a job imports no other family's methods and engine."""
    if family is not None and family_dir_exists(family):
        entry = family_methods(family).get(name)
        if entry is not None:
            return entry
    all_methods = methods()
    if name not in all_methods:
        raise ConfigError(f"{where}={name!r} is not a known method; allowed: {', '.join(sorted(all_methods))}")
    return all_methods[name]


def family_dir_exists(name: str) -> bool:
    return family(name) is not None and (project_root() / "methods" / name).is_dir()


def task(name: str, where: str = "task") -> TaskEntry:
    all_tasks = tasks()
    if name not in all_tasks:
        raise ConfigError(f"{where}={name!r} is not a known task; allowed: {', '.join(sorted(all_tasks))}")
    return all_tasks[name]
