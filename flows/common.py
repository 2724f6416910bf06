"""What every stage flow shares: its `params.yaml` block and its summary artifact.

Flows stay thin: they read parameters, call `hlip` inside tasks, and record. The MLflow side lives in
`hlip.tracking.runs.stage_run` (an MLflow run per flow run, marked FAILED when the flow fails).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hlip.config import load_params

PARAMS_ENV = "HLIP_PARAMS"


def params_path() -> Path:
    """The parameters file: ``$HLIP_PARAMS`` or ``params.yaml`` in the working directory."""
    return Path(os.environ.get(PARAMS_ENV, "params.yaml"))


def stage_params(stage: str, path: Path | None = None) -> dict[str, Any]:
    """The `stage` block of the parameters file."""
    return load_params(path or params_path(), stage)


def markdown_table(rows: Mapping[str, Any]) -> str:
    """A two-column Markdown table of `rows` (key, value)."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows.items()]
    return "\n".join(lines)


def publish_summary(stage: str, title: str, rows: Mapping[str, Any], mlflow_run_id: str | None = None) -> None:
    """Publish the flow run's summary as a Prefect Markdown artifact (inputs, counts, metrics, MLflow run)."""
    from prefect.artifacts import create_markdown_artifact

    body = {**rows}
    if mlflow_run_id:
        body["MLflow run"] = f"`{mlflow_run_id}` (experiment `{stage}`)"
    create_markdown_artifact(
        key=f"{stage}-summary",
        markdown=f"## {title}\n\n{markdown_table(body)}\n",
        description=f"{stage} summary",
    )


METRICS_DIR = Path("outputs/metrics")


def write_stage_metrics(stage: str, metrics: Mapping[str, Any]) -> Path:
    """Write the stage's DVC metrics file, ``outputs/metrics/<stage>.json`` (declared in `dvc.yaml`)."""
    import json

    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    path = METRICS_DIR / f"{stage}.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path
