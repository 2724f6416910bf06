"""Registration inputs: the `register` params block, metrics and run-id files, version tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hlip.config import ConfigError
from hlip.tracking.registry import RegisterConfig, read_metrics, read_run_ids, version_tags


def test_register_config_rejects_unknown_keys_and_bad_margins() -> None:
    cfg = RegisterConfig.from_dict({"margin": 0.01, "run_ids": ["a.json"]})
    assert cfg.margin == 0.01
    assert cfg.run_ids == ("a.json",)
    assert cfg.name == "hlip-demo"
    with pytest.raises(ConfigError, match="nme"):
        RegisterConfig.from_dict({"nme": "x"})
    with pytest.raises(ValueError, match="margin"):
        RegisterConfig.from_dict({"margin": -0.1})


def test_read_metrics_flattens_and_keeps_numbers_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"zero_shot.macro_auc": 0.8, "retrieval": {"r@10": 0.5}, "model": "x",
                                "passed": True, "n": 3, "bad": float("nan")}))  # fmt: skip
    assert read_metrics(path) == {"zero_shot.macro_auc": 0.8, "retrieval.r@10": 0.5, "n": 3.0}
    with pytest.raises(FileNotFoundError, match="evaluate stage"):
        read_metrics(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_metrics(tmp_path / "list.json")


def test_read_run_ids_takes_the_mlflow_run_id_of_existing_stage_files(tmp_path: Path) -> None:
    (tmp_path / "pretrain.json").write_text(json.dumps({"mlflow_run_id": "abc", "loss": 1.0}))
    (tmp_path / "evaluate.json").write_text(json.dumps({"auc": 0.5}))
    (tmp_path / "broken.json").write_text("{")
    files = [tmp_path / n for n in ("pretrain.json", "evaluate.json", "broken.json", "absent.json")]
    assert read_run_ids(files) == {"pretrain": "abc"}


def test_version_tags_hold_lineage_metrics_and_runs() -> None:
    tags = version_tags({"auc": 0.8, "auc_ci_low": 0.7}, {"git.commit": "c0ffee"}, {"pretrain": "r1"})
    assert tags == {"git.commit": "c0ffee", "metric.auc": "0.8", "metric.auc_ci_low": "0.7", "run.pretrain": "r1"}
