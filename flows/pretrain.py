"""Flow `pretrain`: supervised warm-up on report labels, then contrastive HLIP pre-training, then export.

Run it as `python -m flows.pretrain` (the `dvc.yaml` stage) or as a Prefect deployment; both read the
`pretrain:` block of `params.yaml`. The `train` task trains in a child process (`flows.training_process`; under
``torchrun`` with ``nproc`` > 1), so a training process that dies (``kill -9``, the OOM killer) fails the task
instead of the flow: the task is retried once and the retry resumes from the newest checkpoint in `pretrain.out`.
Under `torchrun -m flows.pretrain` (each process one DDP rank, e.g. the Kubernetes Job) it trains in-process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import params_path, publish_summary, stage_params, write_stage_metrics
from hlip.config import ConfigError, load_params
from hlip.training.config import PretrainConfig

log = logging.getLogger(__name__)


@task(retries=1, retry_delay_seconds=5, task_run_name="pretrain-{config.model}")
def train(config: PretrainConfig, preprocess: dict[str, Any] | None, nproc: int = 1) -> dict[str, Any]:
    """Train and export in a child process of `nproc` ranks (a retry resumes from the last checkpoint; nothing else
    is retried); in this process when it already is a rank of a `torchrun` job."""
    if "WORLD_SIZE" not in os.environ:
        from flows.training_process import run_training_process

        return run_training_process(config.to_dict(), preprocess, nproc)
    from hlip.tracking.training_log import log_training_outputs, training_run
    from hlip.training.pretrain import run_pretrain

    with training_run(config) as logger:
        result = run_pretrain(config, logger=logger, preprocess=preprocess)
        if result.model_dir is not None:
            log_training_outputs(logger, result.out)
        return {"summary": result.summary, "run_id": logger.run_id, "model_dir": str(result.model_dir)}


def stage_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The DVC metrics of the stage: final losses, steps and throughput per stage."""
    metrics: dict[str, Any] = {}
    for name, stage in summary.get("stages", {}).items():
        if stage.get("steps"):
            metrics[name] = {k: stage[k] for k in ("final_loss", "steps", "studies_per_s") if stage.get(k) is not None}
            seconds = stage.get("seconds_per_epoch") or []
            if seconds:
                metrics[name]["seconds_per_epoch"] = sum(seconds) / len(seconds)
    return metrics


@flow(name="pretrain", log_prints=True)
def pretrain_flow(params: str | None = None, nproc: int = 1) -> dict[str, Any]:
    """Pre-train the model described by `params.yaml:pretrain` with `nproc` training processes (DDP through
    ``torchrun`` when > 1, e.g. one per GPU); returns the training summary."""
    import torch

    path = Path(params) if params else None
    config = PretrainConfig.from_params(stage_params("pretrain", path))
    try:
        preprocess = load_params(path or params_path(), "ingest").get("preprocess")
    except ConfigError:
        preprocess = None
    task_ = train.with_options(tags=["gpu"]) if torch.cuda.is_available() else train
    result = task_(config, preprocess, nproc)
    summary = result["summary"]
    metrics = stage_metrics(summary)
    write_stage_metrics("pretrain", {**metrics, "mlflow_run_id": result["run_id"]})
    rows = {"model": config.model, "findings": len(summary.get("findings", [])), "model dir": result["model_dir"]}
    rows.update(
        {f"{s} {k}": round(v, 4) if isinstance(v, float) else v for s, m in metrics.items() for k, v in m.items()}
    )
    publish_summary("pretrain", "Pretrain", {"params": str(params or params_path()), **rows}, result["run_id"])
    return summary


if __name__ == "__main__":
    pretrain_flow()
