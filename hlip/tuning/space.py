"""The search space: suggest a trial's values and apply them to a copy of the parameters.

Values are keyed by their dotted `params.yaml` key. `apply_overrides` returns a new nested dict and refuses a key
that the parameters do not have (a typo in the space would otherwise search nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hlip.config import ConfigError
from hlip.tuning.config import ParamSpec

if TYPE_CHECKING:
    import optuna


def suggest(trial: optuna.Trial, space: Iterable[ParamSpec]) -> dict[str, Any]:
    """Ask `trial` for a value of every parameter of `space`; returns ``{dotted key: value}``."""
    values: dict[str, Any] = {}
    for spec in space:
        low, high = float(spec.low or 0.0), float(spec.high or 0.0)  # set for int and float (checked at parse)
        if spec.type == "categorical":
            values[spec.name] = trial.suggest_categorical(spec.name, list(spec.choices))
        elif spec.type == "int":
            step = int(spec.step) if spec.step is not None else 1
            values[spec.name] = trial.suggest_int(spec.name, int(low), int(high), step=step, log=spec.log)
        else:
            values[spec.name] = trial.suggest_float(spec.name, low, high, step=spec.step, log=spec.log)
    return values


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `params` with each dotted key of `overrides` set; `params` is left untouched.

    Raises:
        ConfigError: When a dotted key does not name an existing value of `params`.
    """
    result = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node: Any = result
        for depth, part in enumerate(parents):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"sweep override {key!r}: params have no {'.'.join(parents[: depth + 1])!r}")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"sweep override {key!r}: params have no such key (check the sweep space name)")
        node[leaf] = value
    return result


def check_space(space: Iterable[ParamSpec], params: Mapping[str, Any]) -> None:
    """Fail early when a searched key does not exist in `params` (raises `ConfigError` naming it)."""
    apply_overrides(params, {spec.name: None for spec in space})
