"""Sweep test helpers: a sweep block over the synthetic quadratic objective, an MLflow store in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hlip.tuning import SweepConfig, parse_sweep_config

ConfigFactory = Callable[..., SweepConfig]


@pytest.fixture
def quadratic_config(tmp_path: Path) -> ConfigFactory:
    """A factory of sweep configs over the quadratic objective, stored in tmp_path; keywords change the block."""
    return lambda **changes: _quadratic_config(tmp_path, **changes)


def _quadratic_config(tmp_path: Path, **changes: Any) -> SweepConfig:
    block: dict[str, Any] = {
        "enabled": True,
        "objective": "quadratic",
        "n_trials": 10,
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "study_name": "unit",
        "direction": "minimize",
        "metric": "toy_loss",
        "sampler": {"kind": "random", "seed": 1},
        "pruner": {"kind": "median", "n_startup_trials": 2},
        "space": [
            {"name": "a.x", "type": "float", "low": -2.0, "high": 4.0},
            {"name": "a.k", "type": "categorical", "choices": ["a", "b"]},
        ],
    }
    block.update(changes)
    return parse_sweep_config(block)


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HLIP_OPTUNA_STORAGE", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri
