"""Flow `ingest`: raw DICOM + reports of each part -> de-identified volumes and manifest tables.

Run it as `python -m flows.ingest` (the `dvc.yaml` stage) or as a Prefect deployment; both read the `ingest:`
block of `params.yaml`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.tasks import exponential_backoff

from flows.common import params_path, publish_summary, stage_params, write_stage_metrics
from hlip.config import to_dict
from hlip.data.config import IngestConfig, split_ingest_block
from hlip.tracking.runs import stage_run

log = logging.getLogger(__name__)
METRIC_KEYS = ("studies", "studies_with_scans", "studies_with_report", "scans", "files", "files_used",
               "files_quarantined", "reports", "studies_processed", "studies_unchanged")  # fmt: skip


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10), task_run_name="ingest-{part}")
def ingest_part(part: str, dicom: str, reports: str | None, out: Path, config: IngestConfig) -> dict[str, Any]:
    """Ingest one part (I/O on the source: retried; the work itself is incremental, so a retry redoes little)."""
    from hlip.data.ingest import ingest

    return ingest(dicom, out / part, reports=reports, config=config)


@flow(name="ingest", log_prints=True)
def ingest_flow(params: str | None = None) -> dict[str, dict[str, Any]]:
    """Ingest every part named in `params.yaml:ingest.parts`; returns the per-part summaries."""
    block = stage_params("ingest", Path(params) if params else None)
    parts, out_dir, config = split_ingest_block(block)
    if not parts:
        raise ValueError("params.yaml:ingest.parts names no part to ingest")
    out = Path(out_dir)
    with stage_run("ingest", {"ingest": {**to_dict(config), "parts": parts}}) as run:
        import mlflow

        summaries = {
            part: ingest_part(part, spec["dicom"], spec.get("reports"), out, config) for part, spec in parts.items()
        }
        metrics = {part: {k: s[k] for k in METRIC_KEYS if k in s} for part, s in summaries.items()}
        write_stage_metrics("ingest", metrics)
        for part, values in metrics.items():
            mlflow.log_metrics({f"{part}/{k}": float(v) for k, v in values.items()})
        for part, s in summaries.items():
            mlflow.log_dict({k: s[k] for k in ("scans_by_kind", "quarantined_by_reason") if k in s},
                            f"summary/{part}.json")  # fmt: skip
        rows = {f"{part} {k}": v for part, m in metrics.items() for k, v in m.items() if k != "studies_unchanged"}
        publish_summary("ingest", "Ingest", {"params": str(params or params_path()), **rows}, run.info.run_id)
    return summaries


if __name__ == "__main__":
    ingest_flow()
