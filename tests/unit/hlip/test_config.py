"""Tests of the typed configuration loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hlip.config import ConfigError, from_dict, load_params, to_dict


@dataclass(frozen=True)
class Inner:
    size: tuple[int, ...] = (32, 64, 64)
    spacing: float = 1.0


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    out: Path = Path("outputs")
    limit: int | None = None


def test_from_dict_builds_nested_and_converts_types() -> None:
    cfg = from_dict(Outer, {"name": "x", "inner": {"size": [8, 16, 16], "spacing": 2}, "out": "o", "limit": 3})
    assert cfg.inner.size == (8, 16, 16)
    assert isinstance(cfg.inner.spacing, float)
    assert cfg.out == Path("o")
    assert cfg.limit == 3


def test_defaults_fill_missing_keys() -> None:
    cfg = from_dict(Outer, {"name": "x"})
    assert cfg.inner == Inner()
    assert cfg.limit is None


def test_unknown_key_is_rejected_with_its_name_and_location() -> None:
    with pytest.raises(ConfigError, match=r"params.yaml:ingest.inner: unknown key\(s\) \['sapcing'\]"):
        from_dict(Outer, {"name": "x", "inner": {"sapcing": 1.0}}, where="params.yaml:ingest")


def test_missing_required_value_and_non_mapping_block_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="name"):
        from_dict(Outer, {})
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict(Outer, {"name": "x", "inner": 3})


def test_to_dict_round_trips() -> None:
    cfg = from_dict(Outer, {"name": "x", "inner": {"size": [1, 2, 3]}})
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert to_dict(cfg)["inner"]["size"] == [1, 2, 3]


def test_load_params_reads_a_block_and_names_missing_ones(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("ingest:\n  workers: 2\nlabel: {}\n")
    assert load_params(p, "ingest") == {"workers": 2}
    assert load_params(p, "label") == {}
    with pytest.raises(ConfigError, match=r"no 'pretrain' block; blocks present: \['ingest', 'label'\]"):
        load_params(p, "pretrain")
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
