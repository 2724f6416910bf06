"""Flow `pipeline`: the parent flow that chains the stages, for Prefect deployments and schedules.

`dvc repro` runs the same stage flows one by one (each as `python -m flows.<stage>`); this flow runs them as
subflows of one flow run, so a Prefect schedule or trigger gets one run with the whole lineage. It chains the
stages that exist so far: ingest -> validate.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest import ingest_flow
from flows.validate import validate_flow


@flow(name="pipeline", log_prints=True)
def pipeline_flow(params: str | None = None) -> dict[str, Any]:
    """Run every stage in order on one parameters file; a stage that fails stops the ones after it."""
    ingested = ingest_flow(params)
    validation = validate_flow(params)
    return {"ingest": ingested, "validate": validation}


if __name__ == "__main__":
    pipeline_flow()
