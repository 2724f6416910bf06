"""The `sweep:` block: strict parsing, range checks, storage override."""

from __future__ import annotations

from typing import Any

import pytest

from hlip.config import ConfigError
from hlip.tuning import ParamSpec, parse_sweep_config, resolve_storage


def block(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "enabled": True,
        "n_trials": 6,
        "n_workers": 2,
        "direction": "minimize",
        "pruner": {"kind": "hyperband", "min_resource": 2, "reduction_factor": 2},
        "space": [
            {"name": "pretrain.contrastive.lr", "type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            {"name": "pretrain.batch", "type": "int", "low": 4, "high": 32, "step": 4},
            {"name": "pretrain.loss", "type": "categorical", "choices": ["clip", "siglip"]},
        ],
    }
    base.update(changes)
    return base


def test_parses_space_sampler_and_pruner() -> None:
    config = parse_sweep_config(block())
    assert config.space[0] == ParamSpec("pretrain.contrastive.lr", "float", 1e-5, 1e-2, log=True)
    assert config.space[1].step == 4
    assert config.space[2].choices == ("clip", "siglip")
    assert config.pruner.kind == "hyperband"
    assert config.pruner.reduction_factor == 2
    assert config.sampler.kind == "tpe"
    assert (config.n_trials, config.n_workers, config.direction) == (6, 2, "minimize")


def test_defaults_are_a_disabled_sweep_on_sqlite() -> None:
    config = parse_sweep_config({})
    assert not config.enabled
    assert config.storage == "sqlite:///outputs/sweep/optuna.db"
    assert config.space == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_trails": 3}, r"unknown key\(s\) \['n_trails'\]"),
        ({"pruner": {"kind": "median", "patience": 2}}, r"sweep\.pruner: unknown key\(s\) \['patience'\]"),
        ({"pruner": {"kind": "asha"}}, r"sweep\.pruner\.kind: 'asha' is not one of"),
        ({"direction": "up"}, r"sweep\.direction"),
        ({"n_workers": 0}, r"sweep\.n_workers: expected an integer >= 1"),
        ({"space": [{"name": "a.b", "type": "float", "low": 1.0, "high": 1.0}]}, r"space\[0\] \(a\.b\): low"),
        ({"space": [{"name": "a.b", "type": "float", "low": 0.0, "high": 1.0, "log": True}]}, r"log scale"),
        ({"space": [{"name": "a.b", "type": "int", "low": 0.5, "high": 3}]}, r"space\[0\] \(a\.b\)\.low"),
        ({"space": [{"name": "a.b", "type": "categorical"}]}, r"needs at least one choice"),
        ({"space": [{"name": "a.b", "type": "float", "low": 0, "high": 1, "scale": 2}]}, r"\['scale'\]"),
        ({"space": [{"name": "a..b", "type": "int", "low": 0, "high": 1}]}, r"dotted params key"),
        ({"space": [{"name": "a", "type": "bool"}]}, r"space\[0\] \(a\)\.type: 'bool'"),
        ({"space": [{"name": "a", "type": "int", "low": 0, "high": 2}] * 2}, r"\['a'\] declared more than once"),
        ({"space": []}, r"enabled but searches no parameter"),
    ],
)
def test_bad_blocks_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sweep_config(block(**changes))


def test_environment_storage_overrides_params(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_sweep_config(block(storage="sqlite:///x.db"))
    monkeypatch.delenv("HLIP_OPTUNA_STORAGE", raising=False)
    assert resolve_storage(config) == "sqlite:///x.db"
    monkeypatch.setenv("HLIP_OPTUNA_STORAGE", "postgresql+psycopg://hlip@127.0.0.1/optuna")
    assert resolve_storage(config) == "postgresql+psycopg://hlip@127.0.0.1/optuna"
