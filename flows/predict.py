"""Flow `predict`: the champion (or any registered model) over a folder or `s3://` prefix of new studies.

Run it as `python -m flows.predict`, `hlip predict`, or the scheduled Prefect deployment `predict-new-studies`
(`infra/prefect.yaml`); all read the `predict:` block of `params.yaml` and call `hlip.stages.predict.run`, which
resumes where a killed run stopped (studies already predicted by the same model version are skipped), so the
flow's retry picks up the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import publish_summary
from hlip.stages.predict import PredictParams, PredictResult, run


@task(retries=2, retry_delay_seconds=30)
def predict(params: PredictParams) -> PredictResult:
    """Ingest and predict the new studies (a retry resumes from the studies already written)."""
    return run(params)


@flow(name="predict", log_prints=True)
def predict_flow(params: str | None = None) -> dict[str, Any]:
    """Predict every new study of `predict.source` with `predict.model`; returns the run's counts."""
    result = predict(PredictParams.load(Path(params) if params else None))
    rows = {"model": result.model_version, "studies": result.n_studies, "predicted now": result.n_predicted,
            "errors": result.n_errors, "table": str(result.table)}  # fmt: skip
    publish_summary("predict", "Predict", rows, result.mlflow_run_id)
    print(f"{result.model_version}: {result.n_studies} studies in {result.table} ({result.n_predicted} new)")
    return {**rows, "quarantine": result.quarantine}


if __name__ == "__main__":
    predict_flow()
