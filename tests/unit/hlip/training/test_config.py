"""PretrainConfig: strict parsing, stage defaults and the training hash."""

from __future__ import annotations

from typing import Any

import pytest

from hlip.config import ConfigError
from hlip.training.config import PretrainConfig


def test_block_parses_with_nested_policies(block: dict[str, Any]) -> None:
    data = {**block["data"], "scans": {"mode": "fixed_n", "kinds": ["t1", "t2"]}}
    config = PretrainConfig.from_params({**block, "data": data})
    assert config.data.scans.mode == "fixed_n"
    assert config.data.scans.kinds == ("t1", "t2")
    assert config.warmup.loss == "bce"
    assert config.contrastive.loss == "clip"
    assert config.data.labels_file.name == "labels.parquet"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_sise": 4}, "unknown key"),
        ({"warmup": {"epochs": 1, "lossy": 1}}, "unknown key"),
        ({"contrastive": {"loss": "bce"}}, "clip or siglip"),
        ({"precision": "fp8"}, "precision"),
        ({"data": {"scans": {"mode": "some"}}}, "mode"),
        ({"warmup": {"enabled": "maybe"}}, "enabled"),
    ],
)
def test_bad_blocks_fail_with_the_key_named(block: dict[str, Any], change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PretrainConfig.from_params({**block, **change})


def test_training_hash_ignores_io_settings_only(block: dict[str, Any]) -> None:
    base = PretrainConfig.from_params(block).training_hash()
    assert PretrainConfig.from_params({**block, "workers": 3, "out": "/elsewhere"}).training_hash() == base
    assert PretrainConfig.from_params({**block, "batch_size": 3}).training_hash() != base
    assert PretrainConfig.from_params({**block, "contrastive": {"epochs": 3}}).training_hash() != base
