"""Typed params: each section of params.yaml loads into the frozen dataclass of the code that owns it.

Errors name the file, the key, the bad value and what is allowed, e.g.
`params.yaml: train.lr: expected a number > 0, got -1`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from naseval.core.errors import NasevalError

T = TypeVar("T")


def read_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise NasevalError(f"params file not found: {path}")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise NasevalError(f"{path}: not valid YAML ({error.__class__.__name__})") from error
    if not isinstance(params, dict):
        raise NasevalError(f"{path}: expected a mapping of sections at the top level")
    return params


def section(params: dict[str, Any], key: str, where: str = "params.yaml") -> Any:
    """The value at a dotted key such as 'search.random_ws'."""
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise NasevalError(f"{where}: missing key {key}")
        value = value[part]
    return value


def load(cls: type[T], params: dict[str, Any], key: str, where: str = "params.yaml") -> T:
    """Build dataclass `cls` from the section at `key`, checking names and types."""
    return build(cls, section(params, key, where), key, where)


def build(cls: type[T], data: Any, key: str, where: str = "params.yaml") -> T:
    """Dataclass `cls` from the mapping `data` found at `key` ('' for the top level)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NasevalError(f"{where}: {key}: expected a mapping, got {data!r}")
    prefix = f"{key}." if key else ""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise NasevalError(f"{where}: unknown key {prefix}{unknown[0]} (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(data[name], hints[name], f"{prefix}{name}", where) for name in data}
    try:
        return cls(**values)
    except NasevalError as error:
        raise NasevalError(f"{where}: {prefix}{error}") from error


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise NasevalError(f"{where}: {key}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], key, where) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise NasevalError(f"{where}: {key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NasevalError(f"{where}: {key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML reads '3e-3' as a string
            try:
                value = float(value)
            except ValueError:
                raise NasevalError(f"{where}: {key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NasevalError(f"{where}: {key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise NasevalError(f"{where}: {key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {hint!r} for {key}")


def require(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raise the standard message for an impossible value; used in dataclass __post_init__."""
    if not condition:
        raise NasevalError(f"{key}: expected {allowed}, got {value!r}")
