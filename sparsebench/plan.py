"""Expanding a validated config into jobs, each named by a stable run id.

The run id is a hash of everything that determines a result: task and its
parameters, method and its hyperparameters (defaults filled in), target, seed
and hardware profile. Same inputs -> same id -> the same result directory.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.hardware import profile
from sparsebench.params import params_dict
from sparsebench.targets import DENSE, Target


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Job:
    task: str
    method: str
    family: str
    target: dict
    seed: int
    hardware: str
    task_params: dict = field(default_factory=dict)
    method_params: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return hashlib.sha256(canonical_json(self.spec()).encode()).hexdigest()[:16]

    def spec(self) -> dict:
        return asdict(self)

    def spec_json(self) -> str:
        return canonical_json(self.spec())

    @classmethod
    def from_spec(cls, spec: dict | str, where: str = "--spec") -> "Job":
        """A job from its JSON spec (what `sparsebench plan` expands a config to), checked key by key."""
        hint = "expected a JSON object with keys " + ", ".join(SPEC_TYPES) + " (as the workflow passes it)"
        if isinstance(spec, str):
            if not spec.strip():
                raise ConfigError(f"{where}: empty; {hint}")
            try:
                spec = json.loads(spec)
            except ValueError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc}); {hint}") from None
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: a JSON {_json_kind(spec)}; {hint}")
        problems = [f"{where}: missing key {k!r}" for k in SPEC_TYPES if k not in spec and k not in SPEC_OPTIONAL]
        problems += [f"{where}: unknown key {k!r}; allowed: {', '.join(SPEC_TYPES)}" for k in spec if k not in SPEC_TYPES]
        for key, (types, kind) in SPEC_TYPES.items():
            v = spec.get(key)
            if key in spec and (isinstance(v, bool) or not isinstance(v, types)):
                problems.append(f"{where}.{key}={v!r}: wrong type; allowed: {kind}")
        if problems:
            raise ConfigError("\n".join(problems))
        if spec["seed"] < 0:
            raise ConfigError(f"{where}.seed={spec['seed']}: allowed: an integer >= 0")
        Target.from_config(spec["target"], f"{where}.target")
        return cls(**spec)

    def result_path(self, results_dir: str | Path = "results") -> Path:
        return Path(results_dir) / "runs" / self.task / self.method / self.run_id / "result.json"

    @property
    def method_file(self) -> str:
        return str(registry.method(self.method).file)

    @property
    def task_file(self) -> str:
        return str(registry.task(self.task).file)

    @property
    def label(self) -> str:
        return f"{self.task} {self.method} {Target.from_dict(self.target).label} seed={self.seed} on {self.hardware}"


def _json_kind(v) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v), "null")


SPEC_TYPES = {"task": (str, "a task name"), "method": (str, "a method name"), "family": (str, "a family name"),
              "target": (dict, "a mapping with 'sparsity' and/or 'pattern'"), "seed": (int, "an integer >= 0"),
              "hardware": (str, "a hardware profile name"), "task_params": (dict, "a mapping"),
              "method_params": (dict, "a mapping")}
SPEC_OPTIONAL = ("task_params", "method_params")


def runnable_profiles(names, only_available: bool = True, log=sys.stderr) -> list[str]:
    """The hardware profiles among ``names`` whose jobs should be planned.

    With ``only_available``, profiles whose device this machine lacks are left
    out and each is named once on ``log`` (skipped, never faked).
    """
    kept = []
    for name in names:
        ok, why = profile(name).available() if only_available else (True, "")
        name = profile(name).name  # "auto": this machine's profile, so run ids name the real one
        if ok and name not in kept:
            kept.append(name)
        elif log is not None:
            print(f"sparsebench: skipping jobs for {why}", file=log)
    return kept


def experiment_task_params(config: dict, exp: dict, tname: str) -> dict:
    """The parameters of task ``tname`` in experiment ``exp``: 'tasks' with the experiment's task_params on top."""
    return {**(config["tasks"].get(tname) or {}), **((exp.get("task_params") or {}).get(tname) or {})}


def plan_jobs(config: dict, only_available: bool = False, log=sys.stderr) -> list[Job]:
    """All jobs of a validated config, in a stable order, without duplicates.

    With ``only_available``, jobs for hardware profiles this machine lacks are
    left out and each such profile is named once on ``log``.
    """
    jobs: dict[str, Job] = {}
    hardware = runnable_profiles(config["hardware"], only_available, log)
    for exp in config["experiments"].values():
        seeds = exp.get("seeds") or config["seeds"]
        targets = [Target.from_config(t) for t in exp.get("targets") or []]
        for tname in exp["tasks"]:
            tentry = registry.task(tname)
            tparams = params_dict(tentry.cls.build(experiment_task_params(config, exp, tname), f"tasks.{tname}").params)
            for mname, mraw in exp["methods"].items():
                mentry = registry.method(mname)
                mparams = params_dict(mentry.cls.build(mraw, f"methods.{mname}").params)
                for target in [DENSE] if mentry.cls.reference else targets:
                    for seed in seeds:
                        for hw in hardware:
                            job = Job(tname, mname, mentry.family, target.to_dict(), int(seed), hw, tparams, mparams)
                            jobs.setdefault(job.run_id, job)
    return list(jobs.values())
