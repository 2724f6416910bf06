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
        ({"contrastive": {"loss": "siglip", "label_targets": 0.5}}, "clip loss only"),
        ({"contrastive": {"label_targets": 1.5}}, r"label_targets must lie in \[0, 1\]"),
        ({"warmup": {"label_targets": 0.5}}, "clip loss only, not 'bce'"),
        ({"contrastive": {"stem_supervision": -1.0}}, "stem_supervision must be a finite weight >= 0"),
        ({"warmup": {"stem_supervision": -0.5}}, "stem_supervision must be a finite weight >= 0"),
        ({"warmup": {"stem_supervision": float("nan")}}, "stem_supervision must be a finite weight >= 0"),
        ({"warmup": {"stem_head": "mlp"}}, "stem_head must be one of linear, scan_mlp"),
        (
            {"warmup": {"stem_supervision": 1.0, "stem_head": "scan_mlp"}, "contrastive": {"stem_supervision": 1.0}},
            "contrastive.stem_head .'linear'. must equal warmup.stem_head .'scan_mlp'.",
        ),
        ({"contrastive": {"freeze_stem": -1}}, "freeze_stem counts stem convolutions and must be >= 0"),
        ({"contrastive": {"freeze_stem": True}}, "freeze_stem"),  # a count, not a switch: true is not 'all'
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


@pytest.mark.parametrize("key", ["label_targets", "stem_supervision"])
def test_stage_b_label_options_without_a_label_table_fail_before_training(
    block: dict[str, Any], tmp_path: Any, key: str
) -> None:
    from hlip.training.pretrain import labels_used

    data = {**block["data"], "labels_dir": str(tmp_path / "nowhere")}
    plain = PretrainConfig.from_params({**block, "data": data})
    assert not labels_used(plain)  # no table: stage A is skipped (auto), stage B trains plain CLIP
    wants = PretrainConfig.from_params({**block, "data": data, "contrastive": {key: 0.5}})
    with pytest.raises(FileNotFoundError, match=rf"contrastive\.{key} is 0\.5 but the label table"):
        labels_used(wants)
    off = PretrainConfig.from_params({**block, "data": data, "contrastive": {key: 0.5, "epochs": 0}})
    assert not labels_used(off)  # no stage B, nothing asks for the labels
