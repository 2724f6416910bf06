"""The MLflow adapter of training: params, per-step metrics, artifacts; FAILED on SIGTERM, KILLED when pruned."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from hlip.training.config import PretrainConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "mlflow"


def test_training_run_records_params_metrics_and_artifacts(corpus: Path, tmp_path: Path, tracking: Path,
                                                           harness: Any) -> None:  # fmt: skip
    import mlflow

    from hlip.tracking.training_log import log_training_outputs, training_run
    from hlip.training.pretrain import run_pretrain

    block = harness.tiny_block(corpus, tmp_path / "out", deterministic=False, checkpoint_every=0,
                               warmup={"epochs": 1}, contrastive={"epochs": 1})  # fmt: skip
    config = PretrainConfig.from_params(block)
    with training_run(config, root=tracking, system_metrics=False) as logger:
        result = run_pretrain(config, logger=logger, progress=False)
        log_training_outputs(logger, result.out)
    client = mlflow.tracking.MlflowClient()
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["pretrain.batch_size"] == "4"
    assert run.data.tags["config_hash"] == config.training_hash()
    assert "git.commit" in run.data.tags
    history = client.get_metric_history(run.info.run_id, "contrastive/loss")
    assert [m.step for m in history] == list(range(7, 13))  # 6 warm-up steps, then 6 contrastive ones
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model", "summary.json", "checkpoints", "warmup"} <= artifacts
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/model.safetensors" in model_files
    waits = client.get_metric_history(run.info.run_id, "warmup/epoch_data_wait_seconds")
    assert len(waits) == 1
    # where the time went: loader waits inside each epoch, checkpoint stalls and writes per epoch end
    for stage in ("warmup", "contrastive"):
        timing = result.timings["stages"][stage]
        assert len(timing["data_wait_per_epoch"]) == len(timing["save_seconds_per_epoch"]) == 1
        assert 0 < timing["data_wait_per_epoch"][0] < timing["seconds_per_epoch"][0]  # the first batch is waited for
    checkpoints = result.timings["checkpoints"]
    assert checkpoints["count"] == 2
    assert checkpoints["write_s"] > 0


def test_sigterm_ends_the_run_failed_and_pruning_killed(corpus: Path, tmp_path: Path, tracking: Path,
                                                        harness: Any) -> None:  # fmt: skip
    import mlflow
    import optuna

    from hlip.tracking.training_log import TrainingTerminatedError, training_run

    config = PretrainConfig.from_params(harness.tiny_block(corpus, tmp_path / "out"))
    with pytest.raises(TrainingTerminatedError), training_run(config, root=tracking, system_metrics=False) as logger:
        os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(optuna.TrialPruned), training_run(config, root=tracking, system_metrics=False) as pruned:
        raise optuna.TrialPruned("pruned at epoch 1")
    client = mlflow.tracking.MlflowClient()
    assert client.get_run(logger.run_id).info.status == "FAILED"
    assert client.get_run(pruned.run_id).info.status == "KILLED"
    assert client.get_run(pruned.run_id).data.tags["outcome"] == "pruned"
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was restored
