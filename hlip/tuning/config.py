"""The `sweep:` block of `params.yaml`: the study, its sampler and pruner, and the search space.

Parsed strictly (`hlip.config.from_dict`): an unknown key, a bad range or an unknown type fails at start-up with
a message naming the key. The space names parameters by their dotted `params.yaml` key
(``pretrain.contrastive.lr``); a trial's values override a copy of the parameters, never the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hlip.config import ConfigError, from_dict

STORAGE_ENV = "HLIP_OPTUNA_STORAGE"
PARAM_TYPES = ("float", "int", "categorical")
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DIRECTIONS = ("minimize", "maximize")
OBJECTIVES = ("pretrain", "quadratic")


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter.

    Attributes:
        name: Dotted `params.yaml` key, e.g. ``pretrain.contrastive.lr``.
        type: ``float``, ``int`` or ``categorical``.
        low, high: Inclusive range (float and int).
        log: Sample on a log scale (float and int; needs ``low > 0``).
        step: Grid step (optional; int defaults to 1; not with ``log``).
        choices: The values of a categorical parameter.
    """

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SamplerConfig:
    """The Optuna sampler; each worker seeds its own copy with ``seed + worker index``."""

    kind: str = "tpe"
    seed: int | None = 0
    n_startup_trials: int = 10


@dataclass(frozen=True)
class PrunerConfig:
    """The Optuna pruner and its settings (median: the first three; hyperband: the last three)."""

    kind: str = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    min_resource: int = 1
    max_resource: int | str = "auto"
    reduction_factor: int = 3


@dataclass(frozen=True)
class SweepConfig:
    """A hyper-parameter sweep.

    Attributes:
        enabled: When false the stage writes a "skipped" result and runs nothing.
        objective: ``pretrain`` (short pre-training + quick zero-shot evaluation) or ``quadratic`` (a synthetic
            objective of the suggested values that checks storage, workers and tracking in seconds).
        n_trials: Trials in total, split over the workers.
        n_workers: Worker processes optimising the same study at once.
        storage: Optuna storage URL; ``$HLIP_OPTUNA_STORAGE`` overrides it (e.g. a PostgreSQL URL).
        study_name: The study; an existing study of this name in the storage is resumed.
        direction: ``maximize`` or ``minimize`` the metric.
        metric: Name of the objective's value (logged to MLflow under this name).
        timeout_s: Optional wall-clock limit per worker.
        heartbeat_s: Seconds between a running trial's heartbeats (0: off). A trial whose worker died without a
            word (SIGKILL, a lost node) stops beating; after `2 x heartbeat_s` the next worker to start a trial
            marks it FAIL and enqueues it again with the same parameters.
        max_retries: How many times such a stale trial is enqueued again.
        out: Folder of the sweep's outputs (``best_params.yaml``, plots, the SQLite study).
        sampler, pruner: See `SamplerConfig`, `PrunerConfig`.
        space: The searched parameters.
    """

    enabled: bool = False
    objective: str = "pretrain"
    n_trials: int = 20
    n_workers: int = 1
    storage: str = "sqlite:///outputs/sweep/optuna.db"
    study_name: str = "hlip-sweep"
    direction: str = "maximize"
    metric: str = "zero_shot.macro_auc"
    timeout_s: float | None = None
    heartbeat_s: float = 60.0
    max_retries: int = 1
    out: str = "outputs/sweep"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    space: tuple[ParamSpec, ...] = ()


def parse_sweep_config(block: Mapping[str, Any] | None, where: str = "params.yaml:sweep") -> SweepConfig:
    """Build and check a `SweepConfig` from the `sweep:` block.

    Raises:
        ConfigError: On an unknown key, an unknown choice, a bad range, or a duplicate parameter name.
    """
    block = dict(block or {})
    raw_space = block.pop("space", None) or []
    if not isinstance(raw_space, list):
        raise ConfigError(f"{where}.space: expected a list of parameters, got {type(raw_space).__name__}")
    space = []
    for i, item in enumerate(raw_space):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}.space[{i}]: expected a mapping, got {type(item).__name__}")
        label = f"{where}.space[{i}]" + (f" ({item['name']})" if "name" in item else "")
        spec = from_dict(ParamSpec, item, where=label)
        space.append(_check_param(spec, label))
    config = replace(from_dict(SweepConfig, block, where=where), space=tuple(space))
    _check_choice(config.objective, OBJECTIVES, f"{where}.objective")
    _check_choice(config.direction, DIRECTIONS, f"{where}.direction")
    _check_choice(config.sampler.kind, SAMPLERS, f"{where}.sampler.kind")
    _check_choice(config.pruner.kind, PRUNERS, f"{where}.pruner.kind")
    for name in ("n_trials", "n_workers"):
        if not isinstance(getattr(config, name), int) or getattr(config, name) < 1:
            raise ConfigError(f"{where}.{name}: expected an integer >= 1, got {getattr(config, name)!r}")
    if config.heartbeat_s < 0 or config.max_retries < 0:
        raise ConfigError(f"{where}: heartbeat_s and max_retries must be >= 0")
    names = [p.name for p in config.space]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}.space: parameter(s) {duplicates} declared more than once")
    if config.enabled and not config.space:
        raise ConfigError(f"{where}.space: the sweep is enabled but searches no parameter")
    return config


def resolve_storage(config: SweepConfig) -> str:
    """The storage URL in force: ``$HLIP_OPTUNA_STORAGE`` when set, else `config.storage`."""
    return os.environ.get(STORAGE_ENV) or config.storage


def _check_param(spec: ParamSpec, label: str) -> ParamSpec:
    if not spec.name or any(not part for part in spec.name.split(".")):
        raise ConfigError(f"{label}.name: expected a dotted params key such as pretrain.contrastive.lr")
    _check_choice(spec.type, PARAM_TYPES, f"{label}.type")
    if spec.type == "categorical":
        if not spec.choices:
            raise ConfigError(f"{label}.choices: a categorical parameter needs at least one choice")
        if spec.low is not None or spec.high is not None or spec.log or spec.step is not None:
            raise ConfigError(f"{label}: a categorical parameter takes choices only (no low/high/log/step)")
        return spec
    if spec.choices:
        raise ConfigError(f"{label}.choices: only categorical parameters take choices")
    if spec.low is None or spec.high is None:
        raise ConfigError(f"{label}: a {spec.type} parameter needs low and high")
    if not spec.low < spec.high:
        raise ConfigError(f"{label}: low ({spec.low}) must be below high ({spec.high})")
    if spec.log and spec.low <= 0:
        raise ConfigError(f"{label}: log scale needs low > 0, got {spec.low}")
    if spec.log and spec.step is not None:
        raise ConfigError(f"{label}: step and log cannot be combined")
    if spec.step is not None and spec.step <= 0:
        raise ConfigError(f"{label}.step: expected a positive step, got {spec.step}")
    if spec.type == "int":
        for key in ("low", "high", "step"):
            value = getattr(spec, key)
            if value is not None and float(value) != int(value):
                raise ConfigError(f"{label}.{key}: an int parameter needs an integer, got {value}")
    return spec


def _check_choice(value: str, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
