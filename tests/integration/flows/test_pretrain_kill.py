"""The pretrain flow survives `kill -9` of its training process: Prefect retries the task, the retry resumes from
the last checkpoint and finishes at the same step as an uninterrupted run, and the killed attempt's MLflow run is
marked FAILED."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlip.training.checkpoint import latest_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def synthetic_part(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ingest/train` (tiny synthetic studies), `labels/train/labels.parquet` and a tiny BERT under one folder."""
    from testkit.training_data import write_training_folder

    return write_training_folder(tmp_path_factory.mktemp("pretrain_part"), n_studies=14, max_scans=2)


def tiny_block(part: Path, out: Path) -> dict[str, Any]:
    """hlip-tiny, two epochs per stage, a checkpoint after every optimizer step."""
    from testkit.training_data import tiny_pretrain_block

    return tiny_pretrain_block(part, out)


def step_of(checkpoint: Path | None) -> int:
    assert checkpoint is not None
    return int(checkpoint.stem.split("-")[1])


def uninterrupted_steps(block: dict[str, Any], workdir: Path) -> int:
    """Train `block` start to end in the flow's own child process, undisturbed; return its last checkpoint's step."""
    from hlip.stages.training_process import training_command

    workdir.mkdir()
    (workdir / "job.json").write_text(json.dumps({"pretrain": block, "preprocess": None}))
    done = subprocess.run(training_command(workdir), cwd=workdir, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return step_of(latest_checkpoint(Path(block["out"])))


def kill_training_after_first_checkpoint(out: Path, record: dict[str, Any]) -> None:
    """SIGKILL this process's training child once a checkpoint exists; record the newest checkpoint left behind."""
    import psutil

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if latest_checkpoint(out) is not None:
            children = [p for p in psutil.Process().children(recursive=True) if _is_training(p)]
            assert len(children) == 1, children
            os.kill(children[0].pid, signal.SIGKILL)
            record["pid"] = children[0].pid
            while children[0].is_running() and children[0].status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.01)
            record["checkpoint"] = step_of(latest_checkpoint(out))
            return
        time.sleep(0.01)


def _is_training(process: Any) -> bool:
    import psutil

    try:
        return "hlip.stages.training_process" in " ".join(process.cmdline())
    except psutil.Error:  # exited meanwhile
        return False


def _task_runs(name: str) -> list[Any]:
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name]))))

    return anyio.run(read)


def test_killed_training_is_retried_and_resumes_from_the_last_checkpoint(
    synthetic_part: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    import flows.pretrain
    from flows.pretrain import pretrain_flow

    total = uninterrupted_steps(tiny_block(synthetic_part, tmp_path / "reference"), tmp_path / "reference_run")
    out = tmp_path / "outputs" / "pretrain"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pretrain": tiny_block(synthetic_part, out)}))
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "HLIP_PARAMS", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(flows.pretrain.TRAIN_RETRY, "retry_delay_seconds", 0)  # the same single retry, no wait

    killed: dict[str, Any] = {}
    killer = threading.Thread(target=kill_training_after_first_checkpoint, args=(out, killed), daemon=True)
    killer.start()
    try:
        summary = pretrain_flow()
    finally:
        killer.join(60)
    assert "checkpoint" in killed, "the training process finished before it could be killed"
    assert 0 < killed["checkpoint"] < total  # killed mid-training, after a checkpoint

    assert step_of(latest_checkpoint(out)) == total  # the retry finished the whole run
    assert summary["stages"]["warmup"]["steps"] + summary["stages"]["contrastive"]["steps"] == total
    assert (out / "model" / "model.safetensors").is_file()
    task_run = max((r for r in _task_runs("pretrain-hlip-tiny") if r.state.is_completed()), key=lambda r: r.end_time)
    assert task_run.run_count == 2  # the first attempt failed (killed), the retry completed

    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'outputs/mlflow/mlflow.db').resolve()}")
    runs = sorted(mlflow.search_runs(experiment_names=["pretrain"], output_format="list"),
                  key=lambda r: r.info.start_time)  # fmt: skip
    assert [r.info.status for r in runs] == ["FAILED", "FINISHED"]  # the parent marked the killed attempt
    retry = runs[1]
    assert int(retry.data.tags["resumed_from_step"]) == killed["checkpoint"]  # the last checkpoint, not step 0
    steps = {m.step for m in mlflow.MlflowClient().get_metric_history(retry.info.run_id, "warmup/loss")}
    steps |= {m.step for m in mlflow.MlflowClient().get_metric_history(retry.info.run_id, "contrastive/loss")}
    assert min(steps) == killed["checkpoint"] + 1  # no step trained twice by the retry
    assert max(steps) == total
    metrics = json.loads((tmp_path / "outputs/runs/pretrain.json").read_text())
    assert metrics["mlflow_run_id"] == retry.info.run_id


def test_the_flow_trains_with_two_torchrun_processes(
    synthetic_part: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pretrain_flow(nproc=2)`: the child is a 2-rank gloo DDP job whose rank 0 alone exports and logs."""
    import mlflow

    from flows.pretrain import pretrain_flow

    block = tiny_block(synthetic_part, tmp_path / "outputs" / "pretrain")
    block["checkpoint_every"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pretrain": block}))
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "HLIP_PARAMS", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)

    summary = pretrain_flow(nproc=2)

    assert summary["world_size"] == 2
    # 12-13 usable studies sharded over 2 ranks (6-7 each), batch 4 per rank, incomplete batches dropped: 1 step per
    # epoch and 2 epochs per stage (one process would take 3 steps per epoch: the data really is split)
    assert summary["stages"]["warmup"]["steps"] == summary["stages"]["contrastive"]["steps"] == 2
    assert (tmp_path / "outputs" / "pretrain" / "model" / "model.safetensors").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'outputs/mlflow/mlflow.db').resolve()}")
    runs = mlflow.search_runs(experiment_names=["pretrain"], output_format="list")
    assert [r.info.status for r in runs] == ["FINISHED"]  # one run for the job, not one per rank
