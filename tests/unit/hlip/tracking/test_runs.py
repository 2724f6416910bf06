"""Tests of the MLflow stage-run adapter against a real (SQLite) MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlip.tracking.runs import dvc_out_md5, flatten, lineage_tags, stage_run


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "mlflow"


def test_stage_run_logs_params_and_lineage_tags(store: Path) -> None:
    import mlflow

    Path("params.yaml").write_text("ingest:\n  workers: 2\n")
    with stage_run("ingest", {"ingest": {"workers": 2, "size": [32, 64, 64]}}, root=store) as run:
        mlflow.log_metric("studies", 3)
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"ingest.workers": "2", "ingest.size": "[32, 64, 64]"}
    assert got.data.tags["stage"] == "ingest"
    assert len(got.data.tags["params.sha256"]) == 64
    assert mlflow.get_experiment(got.info.experiment_id).name == "ingest"
    # artifacts stay under the store folder, not in the working directory
    assert mlflow.get_experiment(got.info.experiment_id).artifact_location.startswith(store.resolve().as_uri())


def test_stage_run_marks_failed_on_exception(store: Path) -> None:
    import mlflow

    with pytest.raises(RuntimeError, match="boom"), stage_run("train", root=store) as run:
        raise RuntimeError("boom")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_lineage_reads_dvc_md5_and_marks_unknowns(tmp_path: Path) -> None:
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  path: data\n")
    assert dvc_out_md5(tmp_path / "data.dvc") == "abc123.dir"
    tags = lineage_tags(tmp_path)
    assert tags["data.dvc_md5"] == "abc123.dir"
    assert tags["git.commit"] == "unknown"  # not a git repository
    assert tags["params.sha256"] == "unknown"


def test_flatten_joins_nested_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": 2.5}) == {"a.b": "1", "a.c.d": "x", "e": "2.5"}
