"""Flow `pretrain`: the `hlip.stages.pretrain` stage; training is one Prefect task retried once.

Run it as `python -m flows.pretrain` (the `dvc.yaml` stage) or as a Prefect deployment; both read the `pretrain:`
block of `params.yaml`. The task trains in a child process (`hlip.stages.training_process`), so a training process
that dies (``kill -9``, the OOM killer) fails the task, not the flow: the retry resumes from the newest checkpoint
in `pretrain.out`. Under `torchrun -m flows.pretrain` (each process one DDP rank, e.g. the Kubernetes Job) it trains
in-process.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import prefect_runner, publish_summary
from hlip.stages import pretrain as stage

# a killed trainer fails its task; the one retry resumes from the newest checkpoint
TRAIN_RETRY: dict[str, Any] = {"retries": 1, "retry_delay_seconds": 5}


@flow(name="pretrain", log_prints=True)
def pretrain_flow(params: str | None = None, nproc: int = 1) -> dict[str, Any]:
    """Pre-train the model of `params.yaml:pretrain` with `nproc` training processes (DDP through ``torchrun``
    when > 1, e.g. one per GPU); returns the training summary."""
    import torch

    tags = ["gpu"] if torch.cuda.is_available() else []
    runner = prefect_runner({"pretrain-": {**TRAIN_RETRY, "tags": tags}})
    params_ = stage.PretrainParams.load(params)
    result = stage.run(params_, runner, nproc)
    rows: dict[str, Any] = {"model": params_.config.model, "findings": len(result.summary.get("findings", [])),
                            "model dir": result.model_dir}  # fmt: skip
    rows.update({f"{s} {k}": round(v, 4) if isinstance(v, float) else v
                 for s, m in result.metrics.items() for k, v in m.items()})  # fmt: skip
    publish_summary("pretrain", "Pretrain", rows, result.run_id)
    return result.summary


if __name__ == "__main__":
    pretrain_flow()
