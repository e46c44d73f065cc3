"""Hyperparameters declared as dataclasses: one place for defaults, validation and MLflow params."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from sparsebench.errors import ConfigError


def _accepts(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_accepts(a, value) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def build_params(params_cls: type, raw: dict | None, where: str):
    """Build ``params_cls`` from a config mapping, rejecting unknown keys and wrong types."""
    raw = dict(raw or {})
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"{where}: unknown parameter(s) {unknown}; allowed: {allowed}")
    hints = typing.get_type_hints(params_cls)
    for key, value in raw.items():
        tp = hints.get(key, Any)
        if not _accepts(tp, value):
            raise ConfigError(f"{where}.{key}={value!r} has the wrong type; allowed: {_describe(tp)}")
        if isinstance(value, int) and tp is float:
            raw[key] = float(value)
    obj = params_cls(**raw)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return obj


# A field declared with ``field(..., metadata=OMIT_DEFAULT)`` is left out of ``params_dict`` while it holds its
# default, so adding an opt-in parameter keeps the run ids of every job that does not use it.
OMIT_DEFAULT = {"omit_default": True}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def params_dict(params) -> dict:
    if params is None:
        return {}
    out = dataclasses.asdict(params)
    for f in dataclasses.fields(params):
        if f.metadata.get("omit_default") and out[f.name] == _default(f):
            del out[f.name]
    return out


class Configurable:
    """A class whose hyperparameters are a ``Params`` dataclass (methods and tasks): one definition of
    how the config's mapping becomes ``self.params``."""

    @dataclasses.dataclass
    class Params:
        pass

    def __init__(self, params=None):
        self.params = params if params is not None else self.Params()

    @classmethod
    def build(cls, raw: dict | None, where: str):
        return cls(build_params(cls.Params, raw, where))
