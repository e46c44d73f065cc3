"""Loading and validating the experiment matrix (``config/config.yaml``).

The structure is checked against ``workflow/schemas/config.schema.yaml`` (the
same file Snakemake's ``validate()`` uses); names and values are then checked
against what discovery finds. Every error names the key, the value and what is
allowed, and is raised before any job starts.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.hardware import profile
from sparsebench.targets import Target

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


def schema() -> dict:
    path = registry.project_root() / "workflow" / "schemas" / "config.schema.yaml"
    return yaml.safe_load((path if path.exists() else SCHEMA_PATH).read_text())


def _key_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _apply_defaults(config: dict, sch: dict) -> None:
    for key, spec in sch.get("properties", {}).items():
        if "default" in spec and key not in config:
            config[key] = copy.deepcopy(spec["default"])


def check_schema(config: dict, source: str = "config") -> None:
    validator = jsonschema.Draft7Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        e = jsonschema.exceptions.best_match(errors)
        if e.validator == "required":
            missing = e.message.split("'")[1] if "'" in e.message else e.message
            where = _key_path(list(e.path))
            raise ConfigError(f"{source}: missing key {missing!r} in {where}")
        if e.validator == "additionalProperties":
            allowed = sorted(e.schema.get("properties", {}))
            raise ConfigError(f"{source}: {_key_path(list(e.path))}: {e.message}; allowed keys: {allowed}")
        raise ConfigError(f"{source}: {_key_path(list(e.path))}={e.instance!r}: {e.message}")


def validate_config(config: dict, source: str = "config") -> dict:
    """Check ``config`` completely; return it with schema defaults filled in."""
    config = copy.deepcopy(config)
    check_schema(config, source)
    _apply_defaults(config, schema())
    for i, name in enumerate(config["hardware"]):
        profile(name, f"{source}: hardware[{i}]")
    for tname, tparams in config["tasks"].items():
        entry = registry.task(tname, f"{source}: tasks.{tname}")
        entry.cls.build(tparams, f"{source}: tasks.{tname}")
    for ename, exp in config["experiments"].items():
        where = f"{source}: experiments.{ename}"
        for i, tname in enumerate(exp["tasks"]):
            if tname not in config["tasks"]:
                raise ConfigError(
                    f"{where}.tasks[{i}]={tname!r} is not configured under 'tasks'; "
                    f"allowed: {', '.join(sorted(config['tasks']))}"
                )
        targets = [Target.from_config(t, f"{where}.targets[{i}]") for i, t in enumerate(exp.get("targets") or [])]
        for mname, mparams in exp["methods"].items():
            entry = registry.method(mname, f"{where}.methods.{mname}")
            entry.cls.build(mparams, f"{where}.methods.{mname}")
            for tname in exp["tasks"]:
                tcls = registry.task(tname).cls
                if entry.family not in tcls.families:
                    raise ConfigError(
                        f"{where}.methods.{mname}: family {entry.family!r} does not apply to task {tname!r}; "
                        f"that task takes: {', '.join(tcls.families)}"
                    )
            if entry.cls.reference:
                continue
            if not targets:
                raise ConfigError(f"{where}.targets: missing; method {mname!r} needs at least one target")
            for i, t in enumerate(targets):
                if t.pattern.kind not in entry.cls.patterns:
                    raise ConfigError(
                        f"{where}.targets[{i}].pattern={str(t.pattern)!r}: method {mname!r} does not support it; "
                        f"allowed: {', '.join(entry.cls.patterns)}"
                    )
    return config


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return validate_config(raw, source=path.name)
