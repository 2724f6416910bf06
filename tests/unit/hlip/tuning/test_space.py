"""Suggesting values from the space and applying them to a copy of the parameters."""

from __future__ import annotations

import math

import pytest

from hlip.config import ConfigError
from hlip.tuning import apply_overrides, check_space, parse_sweep_config, suggest

SPACE = parse_sweep_config(
    {
        "space": [
            {"name": "pretrain.contrastive.lr", "type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            {"name": "pretrain.batch", "type": "int", "low": 4, "high": 32, "step": 4},
            {"name": "pretrain.loss", "type": "categorical", "choices": ["clip", "siglip"]},
        ]
    }
).space
PARAMS = {"pretrain": {"contrastive": {"lr": 1e-3, "epochs": 2}, "batch": 8, "loss": "clip"}, "ingest": {"x": 1}}


def test_suggest_returns_dotted_keys_within_the_space() -> None:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = []
    for _ in range(20):
        values = suggest(study.ask(), SPACE)
        assert set(values) == {"pretrain.contrastive.lr", "pretrain.batch", "pretrain.loss"}
        assert 1e-5 <= values["pretrain.contrastive.lr"] <= 1e-2
        assert values["pretrain.batch"] in range(4, 33, 4)
        assert values["pretrain.loss"] in ("clip", "siglip")
        seen.append(math.log10(values["pretrain.contrastive.lr"]))
    assert min(seen) < -3.5  # log scale: small values are drawn as often as large ones


def test_apply_overrides_returns_a_new_dict_and_leaves_params_alone() -> None:
    out = apply_overrides(PARAMS, {"pretrain.contrastive.lr": 0.5, "pretrain.loss": "siglip"})
    assert out["pretrain"]["contrastive"] == {"lr": 0.5, "epochs": 2}
    assert out["pretrain"]["loss"] == "siglip"
    assert PARAMS["pretrain"]["contrastive"]["lr"] == 1e-3  # type: ignore[index]
    assert PARAMS["pretrain"]["loss"] == "clip"  # type: ignore[index]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("pretrain.contrastive.lr_max", "no such key"),
        ("pretrian.batch", "params have no 'pretrian'"),
        ("pretrain.batch.size", "no such key"),
    ],
)
def test_unknown_override_key_is_refused(key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(PARAMS, {key: 1})


def test_check_space_against_params() -> None:
    check_space(SPACE, PARAMS)
    with pytest.raises(ConfigError, match=r"pretrain\.loss"):
        check_space(SPACE, {"pretrain": {"contrastive": {"lr": 1}, "batch": 1}})
