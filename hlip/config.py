"""Typed configuration: frozen dataclasses built from plain dicts (a `params.yaml` block, a JSON file).

One mechanism serves every stage: `from_dict(SomeConfig, block)` builds the dataclass, recursing into nested
dataclass fields, converting lists to tuples where the field is a tuple, and rejecting unknown keys with a
message that names the key, the config and the keys it accepts. A typo in `params.yaml` therefore fails the
stage at start-up instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration block does not match its dataclass (unknown key, wrong type, missing value)."""


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build the frozen dataclass `cls` from `data`, rejecting unknown keys.

    Args:
        cls: A dataclass type.
        data: The mapping to read; missing keys take the dataclass defaults.
        where: Where the mapping came from (e.g. ``params.yaml:ingest``), used in error messages.

    Returns:
        An instance of `cls`.

    Raises:
        ConfigError: On an unknown key, a nested block that is not a mapping, or a missing required value.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = dict(data or {})
    label = where or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {unknown}; accepted keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{label}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{label}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """The plain-dict form of a config dataclass (tuples become lists), e.g. for logging as run parameters."""
    return _plain(dataclasses.asdict(config))


def load_params(path: str | Path = "params.yaml", block: str | None = None) -> dict[str, Any]:
    """Read `params.yaml` (or one top-level block of it).

    Raises:
        ConfigError: When the file is missing or the block does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameters file not found: {path}")
    params = yaml.safe_load(path.read_text()) or {}
    if block is None:
        return dict(params)
    if block not in params:
        raise ConfigError(f"{path}: no '{block}' block; blocks present: {sorted(params)}")
    return dict(params[block] or {})


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        members = [a for a in args if a is not type(None)]
        return _convert(members[0], value, where) if len(members) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(hint, value, where=where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _convert(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
