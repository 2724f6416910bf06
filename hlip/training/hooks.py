"""What the training loop calls out to: a metrics logger, an in-loop evaluator and a `report` callback.

The loop depends only on these protocols; `hlip.tracking.training_log.MLflowTrainingLogger` is the MLflow
implementation, an Optuna trial passes `report` (which may raise `optuna.TrialPruned`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from torch import nn

Evaluator = Callable[[nn.Module, int], dict[str, float]]
"""`evaluator(model, global_step) -> {metric: value}`; the model is the unwrapped `HLIP` in eval mode."""

Report = Callable[[int, float], None]
"""`report(step, value)`: an intermediate objective value; may raise to stop training (pruning)."""


class TrainingLogger(Protocol):
    """Sink of training records (rank 0 only)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalar metrics at a global optimizer step."""

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file or folder produced by training."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags of the run."""


class NullLogger:
    """Logs nothing (tests, non-main ranks)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Ignore."""

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Ignore."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Ignore."""
