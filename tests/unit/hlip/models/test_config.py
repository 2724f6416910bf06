"""Config dataclasses: strict keys, validation, JSON round trip, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from hlip.models.config import ModelConfig, VisionConfig, merge_overrides


def test_unknown_keys_are_rejected_at_every_level() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({"embed_dim": 8, "emb_dim": 8})
    with pytest.raises(ValueError, match=r"ModelConfig.vision: unknown key\(s\) \['widht'\]"):
        ModelConfig.from_dict({"vision": {"widht": 8}})
    with pytest.raises(ValueError, match=r"ModelConfig.text: unknown key\(s\) \['context'\]"):
        ModelConfig.from_dict({"text": {"context": 8}})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": ("scan",) * 3}, "depth"),
        ({"depth": 1, "levels": ("series",)}, "unknown attention level"),
        ({"image_size": (50, 224, 224)}, "multiple"),
        ({"width": 100}, "divisible"),
        ({"pool": "avg"}, "pool"),
    ],
)
def test_invalid_vision_configs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VisionConfig(**kwargs)  # type: ignore[arg-type]


def test_frozen_and_round_trip() -> None:
    cfg = ModelConfig.from_dict({"embed_dim": 64, "vision": {"levels": ["scan", "study"] * 6}})
    assert cfg.vision.levels == ("scan", "study") * 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embed_dim = 3  # type: ignore[misc]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.vision.grid_size == (6, 14, 14)
    assert cfg.vision.tokens_per_scan == 1176


def test_merge_overrides_is_deep() -> None:
    base = {"a": 1, "text": {"model_dir": "x", "freeze": True}}
    merged = merge_overrides(base, {"text": {"model_dir": "y"}})
    assert merged == {"a": 1, "text": {"model_dir": "y", "freeze": True}}
    assert base["text"] == {"model_dir": "x", "freeze": True}
