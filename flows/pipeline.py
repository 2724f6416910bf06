"""Flow `pipeline`: the parent flow that chains the stages, for Prefect deployments and schedules.

`dvc repro` runs the same stage flows one by one (each as `python -m flows.<stage>`); this flow runs them as
subflows of one flow run, so a Prefect schedule or trigger gets one run with the whole lineage:
ingest -> validate -> label -> [sweep] -> pretrain -> evaluate -> register. The sweep runs only when
`sweep.enabled` is true (its flow records "skipped" otherwise); its best values are written for review, never
applied to `params.yaml` behind the user's back.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.evaluate import evaluate_flow
from flows.ingest import ingest_flow
from flows.label import label_flow
from flows.pretrain import pretrain_flow
from flows.register import register_flow
from flows.sweep import sweep_flow
from flows.validate import validate_flow


@flow(name="pipeline", log_prints=True)
def pipeline_flow(params: str | None = None) -> dict[str, Any]:
    """Run every stage in order on one parameters file; a stage that fails stops the ones after it."""
    results: dict[str, Any] = {}
    results["ingest"] = ingest_flow(params)
    results["validate"] = validate_flow(params)  # raises on a critical contract failure: nothing downstream runs
    results["label"] = label_flow(params)
    results["sweep"] = sweep_flow(params)
    results["pretrain"] = pretrain_flow(params)
    results["evaluate"] = evaluate_flow(params)
    results["register"] = register_flow(params)
    return results


if __name__ == "__main__":
    pipeline_flow()
