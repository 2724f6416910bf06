"""Stage `pretrain`: supervised warm-up on report labels, then contrastive HLIP pre-training, then export.

Reads the `pretrain:` block (`hlip.training.config.PretrainConfig`) and, to check the study contract against it,
`ingest.preprocess`. Training runs in a child process (`hlip.stages.training_process`; under ``torchrun`` with
`nproc` > 1), so a killed trainer fails only its task and a retry resumes from the newest checkpoint; under
``torchrun -m flows.pretrain`` (each process one DDP rank) it trains in-process. Writes `<out>/model/` (with its
study contract), `<out>/checkpoints/`, `<out>/summary.json` and `outputs/metrics/pretrain.json` (final losses and
steps; throughput and run ids go to MLflow and `outputs/runs/pretrain.json`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import ConfigError, load_params
from hlip.stages.base import TaskRunner, direct, params_path, read_block, write_metrics, write_run_record
from hlip.training.config import PretrainConfig

STAGE = "pretrain"


@dataclass(frozen=True)
class PretrainParams:
    """The `pretrain:` block and the ingest preprocessing it is checked against.

    Attributes:
        config: The training configuration.
        preprocess: `params.yaml:ingest.preprocess` (None without an ingest block); the model's study contract
            takes the ingested part's recorded preprocessing and fails when this one differs.
    """

    config: PretrainConfig
    preprocess: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> PretrainParams:
        """The blocks of the parameters file."""
        config = PretrainConfig.from_params(read_block(STAGE, path))
        try:
            preprocess = load_params(params_path(path), "ingest").get("preprocess")
        except ConfigError:
            preprocess = None
        return cls(config, preprocess)


def train(params: PretrainParams, nproc: int = 1) -> dict[str, Any]:
    """Train and export in a child process of `nproc` ranks; in this process when it already is a rank of a
    ``torchrun`` job. Returns ``{"summary", "timings", "run_id", "model_dir"}``."""
    if "WORLD_SIZE" not in os.environ:
        from hlip.stages.training_process import run_training_process

        return run_training_process(params.config.to_dict(), params.preprocess, nproc)
    from hlip.tracking.training_log import log_training_outputs, training_run
    from hlip.training.pretrain import run_pretrain

    with training_run(params.config) as logger:
        result = run_pretrain(params.config, logger=logger, preprocess=params.preprocess)
        if result.model_dir is not None:
            log_training_outputs(logger, result.out)
        return {"summary": result.summary, "timings": result.timings, "run_id": logger.run_id,
                "model_dir": str(result.model_dir)}  # fmt: skip


def result_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The stage's DVC metrics: final loss and steps per training stage (results, not timings)."""
    return {
        name: {k: stage[k] for k in ("final_loss", "steps") if stage.get(k) is not None}
        for name, stage in summary.get("stages", {}).items()
        if stage.get("steps")
    }


def run_facts(timings: dict[str, Any]) -> dict[str, Any]:
    """Throughput, mean epoch time and time spent waiting for data or checkpoints, per training stage trained in
    this run (`PretrainResult.timings`; for MLflow and the run record, never an output file)."""
    facts: dict[str, Any] = {"checkpoints": dict(timings.get("checkpoints", {}))}
    for name, stage in timings.get("stages", {}).items():
        seconds = stage.get("seconds_per_epoch") or []
        facts[name] = {"studies_per_s": stage.get("studies_per_s"),
                       "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
                       "data_wait_s": sum(stage.get("data_wait_per_epoch") or []),
                       "checkpoint_stall_s": sum(stage.get("save_seconds_per_epoch") or [])}  # fmt: skip
    return facts


@dataclass(frozen=True)
class PretrainOutcome:
    """The training summary, the metrics written, the MLflow run and the exported model folder."""

    summary: dict[str, Any]
    metrics: dict[str, Any]
    run_id: str
    model_dir: str


def run(params: PretrainParams, runner: TaskRunner = direct, nproc: int = 1) -> PretrainOutcome:
    """Pre-train with `nproc` training processes (one unit of `runner`, named ``pretrain-<model>``)."""
    result = runner(train, params, nproc, name=f"pretrain-{params.config.model}")
    summary = result["summary"]
    metrics = result_metrics(summary)
    write_metrics(STAGE, metrics)
    write_run_record(STAGE, result["run_id"], run_facts(result["timings"]))
    return PretrainOutcome(summary, metrics, result["run_id"], result["model_dir"])
