"""The predict stage's parameters and its resume bookkeeping (the end-to-end run is in tests/integration/serving)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hlip.config import ConfigError
from hlip.stages.predict import RESULTS, PredictParams, completed, drop_partial_line, pin_model, write_table


def test_params_come_from_the_predict_block_and_reject_unknown_keys(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("predict: {model: 'models:/m@champion', source: /data/new, out: /tmp/p, workers: 3}\n")
    assert PredictParams.load(params) == PredictParams("models:/m@champion", "/data/new", "/tmp/p", 3)
    params.write_text("predict: {source: /data/new, sauce: x}\n")
    with pytest.raises(ConfigError, match="sauce"):
        PredictParams.load(params)
    with pytest.raises(ValueError, match="source"):
        PredictParams(source="")


def test_non_alias_uris_are_their_own_version() -> None:
    assert pin_model("models:/hlip-demo/3") == ("models:/hlip-demo/3", "hlip-demo/3")
    assert pin_model("/models/export") == ("/models/export", "/models/export")


def _row(key: str, version: str, p: float | None = 0.5) -> str:
    return json.dumps({"study_key": key, "stroke": p, "embedding": [0.1], "error": "", "model_version": version})


def test_resume_skips_what_the_same_version_did_and_cuts_an_unfinished_line(tmp_path: Path) -> None:
    results = tmp_path / RESULTS
    results.write_text("\n".join([_row("a", "m/1"), _row("b", "m/1"), _row("a", "m/2")]) + "\n" + _row("c", "m/1")[:20])
    assert completed(results, "m/1") == {"a", "b"}  # the cut line is ignored
    assert completed(results, "m/2") == {"a"}
    drop_partial_line(results)
    assert results.read_text().endswith("\n")
    assert len(results.read_text().splitlines()) == 3
    drop_partial_line(results)  # nothing to cut: unchanged
    assert len(results.read_text().splitlines()) == 3


def test_the_table_holds_one_row_per_study_of_the_version_in_key_order(tmp_path: Path) -> None:
    import pandas as pd

    (tmp_path / RESULTS).write_text("\n".join([_row("b", "m/1", 0.1), _row("a", "m/1", None), _row("a", "m/2")]) + "\n")
    table = pd.read_parquet(write_table(tmp_path, "m/1", ["a", "b", "z"]))
    assert list(table["study_key"]) == ["a", "b"]
    assert table["stroke"].isna().tolist() == [True, False]
    assert set(table["model_version"]) == {"m/1"}
