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
from sparsebench.plan import experiment_task_params
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


def _schema_message(e, source: str) -> str:
    where = _key_path(list(e.path))
    if e.validator == "required":
        missing = e.message.split("'")[1] if "'" in e.message else e.message
        return f"{source}: missing key {missing!r} in {where}"
    if e.validator == "additionalProperties":
        allowed = sorted(e.schema.get("properties", {}))
        return f"{source}: {where}: {e.message}; allowed keys: {allowed}"
    if e.validator in ("type", "minimum", "exclusiveMaximum", "maximum", "minItems", "minProperties"):
        allowed = {"type": f"a value of type {e.validator_value}", "minimum": f">= {e.validator_value}",
                   "exclusiveMaximum": f"< {e.validator_value}", "maximum": f"<= {e.validator_value}",
                   "minItems": f"at least {e.validator_value} item(s)",
                   "minProperties": f"at least {e.validator_value} entry(ies)"}[e.validator]
        if "minimum" in e.schema and "exclusiveMaximum" in e.schema:
            allowed = f"a number in [{e.schema['minimum']}, {e.schema['exclusiveMaximum']})"
        return f"{source}: {where}={e.instance!r}; allowed: {allowed}"
    return f"{source}: {where}={e.instance!r}: {e.message}"


def schema_problems(config: dict, source: str = "config") -> list[str]:
    """Every schema violation of ``config`` as one message each (key, value, what is allowed)."""
    validator = jsonschema.Draft7Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    return list(dict.fromkeys(_schema_message(e, source) for e in errors))


def check_schema(config: dict, source: str = "config") -> None:
    problems = schema_problems(config, source)
    if problems:
        raise ConfigError(_joined(problems))


def _joined(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


class _Problems(list):
    """Collects ConfigErrors so that validation reports every problem, not only the first."""

    def check(self, fn, *args):
        try:
            return fn(*args)
        except ConfigError as exc:
            self.append(str(exc))
            return None


def validate_config(config: dict, source: str = "config") -> dict:
    """Check ``config`` completely; return it with schema defaults filled in.

    Every problem is reported at once (one line each): schema problems first; the names and values
    that discovery checks only when the structure is sound enough to read them."""
    config = copy.deepcopy(config)
    problems = _Problems(schema_problems(config, source))
    if not isinstance(config, dict) or any(not isinstance(config.get(k), want) for k, want in
                                           (("hardware", list), ("tasks", dict), ("experiments", dict))):
        raise ConfigError(_joined(problems))
    _apply_defaults(config, schema())
    for i, name in enumerate(config["hardware"]):
        if isinstance(name, str):
            problems.check(profile, name, f"{source}: hardware[{i}]")
    tasks_ok = {}
    for tname, tparams in config["tasks"].items():
        entry = problems.check(registry.task, tname, f"{source}: tasks.{tname}")
        if entry is not None and isinstance(tparams, (dict, type(None))):
            task = problems.check(entry.cls.build, tparams, f"{source}: tasks.{tname}")
            if task is not None:
                tasks_ok[tname] = entry
                for msg in task.limit_problems():
                    problems.append(f"{source}: tasks.{tname}.{msg}")
    for ename, exp in config["experiments"].items():
        if not isinstance(exp, dict):
            continue
        problems.extend(_experiment_problems(config, ename, exp, source))
    if problems:
        raise ConfigError(_joined(_one_per_key(problems)))
    return config


def _one_per_key(problems: list[str]) -> list[str]:
    """The first message for each ``key=value`` (the schema and a later check may both name one value)."""
    seen, out = set(), []
    for msg in problems:
        key = msg.split("=", 1)[0] if "=" in msg else msg
        if key not in seen:
            seen.add(key)
            out.append(msg)
    return out


def _experiment_problems(config: dict, ename: str, exp: dict, source: str) -> list[str]:
    problems = _Problems()
    where = f"{source}: experiments.{ename}"
    exp_tasks = [t for t in exp.get("tasks") or [] if isinstance(t, str)]
    for i, tname in enumerate(exp_tasks):
        if tname not in config["tasks"]:
            problems.append(f"{where}.tasks[{i}]={tname!r} is not configured under 'tasks'; "
                            f"allowed: {', '.join(sorted(config['tasks']))}")
    exp_tasks = [t for t in exp_tasks if t in config["tasks"] and t in registry.tasks()]
    overrides = exp.get("task_params") if isinstance(exp.get("task_params"), dict) else {}
    for tname, tparams in overrides.items():
        if tname not in exp_tasks:
            problems.append(f"{where}.task_params.{tname}: not a task of this experiment; "
                            f"allowed: {', '.join(exp_tasks) or '(none)'}")
        elif isinstance(tparams, dict):
            task = problems.check(registry.task(tname).cls.build, experiment_task_params(config, exp, tname),
                                  f"{where}.task_params.{tname}")
            for msg in task.limit_problems() if task is not None else []:
                problems.append(f"{where}.task_params.{tname}.{msg}")
    targets = [problems.check(Target.from_config, t, f"{where}.targets[{i}]")
               for i, t in enumerate(exp.get("targets") or [])]
    methods = exp.get("methods") if isinstance(exp.get("methods"), dict) else {}
    for mname, mparams in methods.items():
        entry = problems.check(registry.method, mname, f"{where}.methods.{mname}")
        if entry is None:
            continue
        if isinstance(mparams, (dict, type(None))):
            problems.check(entry.cls.build, mparams, f"{where}.methods.{mname}")
        for tname in exp_tasks:
            tcls = registry.task(tname).cls
            if entry.family not in tcls.families:
                problems.append(f"{where}.methods.{mname}: family {entry.family!r} does not apply to task "
                                f"{tname!r}; that task takes: {', '.join(tcls.families)}")
        if entry.cls.reference:
            continue
        if not targets:
            problems.append(f"{where}.targets: missing; method {mname!r} needs at least one target")
        for i, t in enumerate(targets):
            if t is not None and t.pattern.kind not in entry.cls.patterns:
                problems.append(f"{where}.targets[{i}].pattern={str(t.pattern)!r}: method {mname!r} does not "
                                f"support it; allowed: {', '.join(entry.cls.patterns)}")
    return problems


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
