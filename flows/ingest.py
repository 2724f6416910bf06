"""Flow `ingest`: the `hlip.stages.ingest` stage, each part a Prefect task retried on source I/O errors.

Run it as `python -m flows.ingest` (the `dvc.yaml` stage) or as a Prefect deployment; both read the `ingest:`
block of `params.yaml`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.tasks import exponential_backoff

from flows.common import prefect_runner, publish_summary
from hlip.stages import ingest as stage

# I/O on the source is retried; the work is incremental, so a retry redoes little
RETRIES = {"ingest-": {"retries": 2, "retry_delay_seconds": exponential_backoff(backoff_factor=10)}}


@flow(name="ingest", log_prints=True)
def ingest_flow(params: str | None = None) -> dict[str, dict[str, Any]]:
    """Ingest every part named in `params.yaml:ingest.parts`; returns the per-part summaries."""
    result = stage.run(stage.IngestParams.load(params), prefect_runner(RETRIES))
    rows = {f"{part} {k}": v for part, m in result.metrics.items() for k, v in m.items()}
    publish_summary("ingest", "Ingest", rows, result.run_id)
    return result.summaries


if __name__ == "__main__":
    ingest_flow()
