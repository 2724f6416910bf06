"""What every stage flow shares: Prefect tasks around the stage layer's units of work, and the summary artifact.

Flows stay thin: each reads its stage's typed parameters (`hlip.stages.<stage>`), calls the stage's `run` with a
`prefect_runner` (so each unit of work is a Prefect task with its retries and name), and publishes a summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from hlip.stages.base import params_path, read_block

R = TypeVar("R")


def stage_params(stage: str, path: Path | None = None) -> dict[str, Any]:
    """The raw `stage` block of the parameters file (flows that are not stages, such as `watch`, read theirs)."""
    return read_block(stage, path)


def prefect_runner(options: Mapping[str, Mapping[str, Any]] | None = None) -> Callable[..., Any]:
    """A `hlip.stages.base.TaskRunner` that runs each unit as a Prefect task named after it.

    Args:
        options: Task options (`retries`, `retry_delay_seconds`, `tags`, ...) by unit-name prefix: the longest
            matching prefix applies (e.g. ``{"ingest-": {"retries": 2}}``).
    """
    from prefect import task

    chosen = dict(options or {})

    def run(fn: Callable[..., R], /, *args: Any, name: str = "") -> R:
        prefixes = sorted((p for p in chosen if name.startswith(p)), key=len, reverse=True)
        extra = dict(chosen[prefixes[0]]) if prefixes else {}
        wrapped = task(name=name or fn.__name__, task_run_name=name or None, **extra)(fn)
        return wrapped(*args)

    return run


def markdown_table(rows: Mapping[str, Any]) -> str:
    """A two-column Markdown table of `rows` (key, value)."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows.items()]
    return "\n".join(lines)


def publish_summary(stage: str, title: str, rows: Mapping[str, Any], mlflow_run_id: str | None = None) -> None:
    """Publish the flow run's summary as a Prefect Markdown artifact (inputs, counts, metrics, MLflow run)."""
    from prefect.artifacts import create_markdown_artifact

    body = {"params": str(params_path()), **rows}
    if mlflow_run_id:
        body["MLflow run"] = f"`{mlflow_run_id}` (experiment `{stage}`)"
    create_markdown_artifact(
        key=f"{stage}-summary",
        markdown=f"## {title}\n\n{markdown_table(body)}\n",
        description=f"{stage} summary",
    )
