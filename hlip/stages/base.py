"""What every stage shares: where its parameters come from, how a block becomes typed parameters, how per-unit
work is run (directly, or as an orchestrator's task), and where its metrics file goes.

Metrics files hold results only (counts, losses, AUCs): wall times, rates and run ids go to MLflow, so
`dvc metrics diff` shows what changed in the results and `dvc.lock` does not change when nothing did.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hlip.config import from_dict, load_params

PARAMS_ENV = "HLIP_PARAMS"
METRICS_DIR = Path("outputs/metrics")
RUNS_DIR = Path("outputs/runs")

T = TypeVar("T")
R = TypeVar("R")


class TaskRunner(Protocol):
    """Runs one unit of a stage's work: `runner(fn, *args, name=...)`. The default calls `fn` directly; a flow
    passes a runner that wraps `fn` in a Prefect task (retries, observability)."""

    def __call__(self, fn: Callable[..., R], /, *args: Any, name: str = ...) -> R: ...


def direct(fn: Callable[..., R], /, *args: Any, name: str = "") -> R:
    """The default `TaskRunner`: call `fn` in this process."""
    return fn(*args)


def params_path(path: str | Path | None = None) -> Path:
    """The parameters file: `path`, else ``$HLIP_PARAMS``, else ``params.yaml`` in the working directory."""
    return Path(path) if path else Path(os.environ.get(PARAMS_ENV, "params.yaml"))


def read_block(stage: str, path: str | Path | None = None) -> dict[str, Any]:
    """The raw `stage` block of the parameters file (see `params_path`)."""
    return load_params(params_path(path), stage)


def load_block(cls: type[T], stage: str, path: str | Path | None = None) -> T:
    """The `stage` block of the parameters file as the frozen dataclass `cls` (unknown keys rejected)."""
    file = params_path(path)
    return from_dict(cls, load_params(file, stage), where=f"{file}:{stage}")


def write_metrics(stage: str, metrics: Mapping[str, Any], metrics_dir: Path = METRICS_DIR) -> Path:
    """Write the stage's DVC metrics file, ``outputs/metrics/<stage>.json`` (declared in `dvc.yaml`)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    path = metrics_dir / f"{stage}.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def write_run_record(
    stage: str, run_id: str, facts: Mapping[str, Any] | None = None, runs_dir: Path = RUNS_DIR
) -> Path:
    """Record the stage's last MLflow run (``outputs/runs/<stage>.json``: `mlflow_run_id` and run facts such as
    timings), outside DVC's outputs, so later stages (register's run tags) find the run without the metrics
    file changing from run to run."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{stage}.json"
    path.write_text(json.dumps({"mlflow_run_id": run_id, **dict(facts or {})}, indent=2, sort_keys=True, default=str))
    return path
