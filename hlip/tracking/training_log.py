"""MLflow adapter of the training loop: the run of a `pretrain` stage and its `TrainingLogger`.

```python
with training_run(config, stage="pretrain") as logger:
    run_pretrain(config, logger=logger)
```

The run (via `hlip.tracking.runs.stage_run`: lineage tags, FAILED on an exception) logs the flattened resolved
config as params, per-step metrics, system metrics (CPU, memory, GPU through psutil/pynvml), the labeller's
report when present, the final checkpoint and the exported model as artifacts. SIGTERM (a cancelled flow, a
killed pod) raises `TrainingTerminatedError` in the main thread, so the run ends FAILED instead of RUNNING forever;
an Optuna `TrialPruned` ends it KILLED with the tag `outcome=pruned`.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from hlip.tracking.runs import DEFAULT_TRACKING_DIR, stage_run

if TYPE_CHECKING:
    from hlip.training.config import PretrainConfig


class TrainingTerminatedError(RuntimeError):
    """The process received SIGTERM while training."""


class MLflowTrainingLogger:
    """`TrainingLogger` writing to the active MLflow run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalar metrics at a global optimizer step (`/` in names kept: MLflow groups by prefix)."""
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file or a folder."""
        import mlflow

        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Run tags."""
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})


@contextmanager
def training_run(
    config: PretrainConfig,
    *,
    stage: str = "pretrain",
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    root: Path = DEFAULT_TRACKING_DIR,
    system_metrics: bool = True,
) -> Iterator[MLflowTrainingLogger]:
    """Open the stage's MLflow run for a training config and yield its logger.

    Args:
        config: The resolved config (logged flattened as params, with its training hash as a tag).
        stage: Experiment name.
        run_name: Optional run name.
        tags: Extra tags.
        root: Embedded store folder (when `MLFLOW_TRACKING_URI` is unset).
        system_metrics: Sample CPU/memory/GPU use during the run.
    """
    import mlflow

    if system_metrics:
        mlflow.enable_system_metrics_logging()
    previous = _install_sigterm()
    all_tags = {"config_hash": config.training_hash(), **(tags or {})}
    try:
        with stage_run(stage, {"pretrain": config.to_dict()}, run_name=run_name, tags=all_tags, root=root) as run:
            logger = MLflowTrainingLogger(run.info.run_id)
            for report in sorted(config.data.labels_dir.glob("quality.*")):  # the labeller's quality report
                logger.log_artifact(report, "labels")
            try:
                yield logger
            except BaseException as exc:
                if type(exc).__name__ == "TrialPruned":
                    mlflow.set_tag("outcome", "pruned")
                    mlflow.end_run(status="KILLED")
                raise
    finally:
        _restore_sigterm(previous)
        if system_metrics:
            mlflow.disable_system_metrics_logging()


def log_training_outputs(logger: MLflowTrainingLogger, out: Path) -> None:
    """The exported model, the summary, the warm-up head and the newest checkpoint of a finished run."""
    from hlip.training.checkpoint import latest_checkpoint

    logger.log_artifact(out / "model", "model")
    logger.log_artifact(out / "summary.json")
    logger.log_artifact(out / "warmup", "warmup")
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None:
        logger.log_artifact(checkpoint, "checkpoints")


def _install_sigterm() -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise TrainingTerminatedError(f"received signal {signum} while training")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(previous: Any) -> None:
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, previous)
