"""Profiles: a paper-scale profile is a small file of what differs from the default params.yaml,
merged onto it by `naseval profile NAME`. The merge keeps the default's comments, and takes the
profile's own comment for every value it changes, so that no default's comment describes a paper
value."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from naseval.core.errors import NasevalError


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments and key order survive
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    # null, as params.yaml writes it (ruamel's default is an empty value)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def _load(text: str, where: str) -> CommentedMap:
    try:
        data = _yaml().load(text)
    except Exception as error:  # ruamel raises many kinds; each is a broken file
        raise NasevalError(f"{where}: not valid YAML ({error.__class__.__name__})") from error
    if not isinstance(data, CommentedMap):
        raise NasevalError(f"{where}: expected a mapping of sections at the top level")
    return data


def overlay(base: dict, changes: dict, key: str, where: str, strict: bool = True) -> None:
    """Set every value of `changes` in `base`, key by key into mappings (a list is one value).
    `strict`: a key `base` lacks is refused, so that a profile cannot set what nothing reads.
    Round-trip mappings (CommentedMap) also trade the changed values' comments."""
    for name, value in changes.items():
        path = f"{key}.{name}" if key else str(name)
        if strict and name not in base:
            raise NasevalError(f"{where}: unknown key {path} (known: {', '.join(map(str, base))})")
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            overlay(base[name], value, path, where, strict)
            continue
        base[name] = value
        if isinstance(base, CommentedMap):
            base.ca.items.pop(name, None)
            if isinstance(changes, CommentedMap) and name in changes.ca.items:
                base.ca.items[name] = changes.ca.items[name]


def apply_profile(base_text: str, profile_text: str, where: str) -> str:
    """The default params (`base_text`) with the profile's values, as YAML text."""
    base = _load(base_text, "params.yaml")
    overlay(base, _load(profile_text, where), "", where)
    buffer = io.StringIO()
    _yaml().dump(base, buffer)
    return buffer.getvalue()


def profile_path(name: str, folder: Path) -> Path:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise NasevalError(f"unknown profile {name!r} (known: {', '.join(known) or f'none in {folder}'})")
    return path


def merged_params(params: dict[str, Any], overrides: Any, key: str, where: str = "params.yaml") -> dict[str, Any]:
    """A copy of `params` with `overrides` applied as `overlay` does, any key allowed: the
    dataclass the result loads into names what is unknown (a policy's `supernet:` overrides of
    `search.supernet`, say)."""
    if not isinstance(overrides, dict):
        raise NasevalError(f"{where}: {key}: expected a mapping, got {overrides!r}")
    result = copy.deepcopy(dict(params or {}))
    overlay(result, overrides, key, where, strict=False)
    return result
