"""Flow `sweep`: the `hlip.stages.sweep` stage (Optuna workers, a nested MLflow run per trial) as a Prefect flow.

Reads `params.yaml:sweep`. With ``sweep.enabled: false`` (the default) it runs nothing but still writes its
declared outputs, marked ``skipped``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import prefect_runner, publish_summary
from hlip.stages import sweep as stage
from hlip.tuning import resolve_storage


@flow(name="sweep", log_prints=True)
def sweep_flow(params: str | None = None) -> dict[str, Any]:
    """Run the sweep described by `params.yaml:sweep` (or record that it is disabled); returns the result."""
    params_ = stage.SweepParams.load(params)
    config = params_.config
    result = stage.run(params_, prefect_runner())
    record = result.record
    if not config.enabled:
        publish_summary(
            "sweep", "Sweep", {"status": "skipped (sweep.enabled is false)", "result": str(result.best_path)}
        )
        return record
    counts = record.get("trials", {})
    rows = {
        "study": f"{config.study_name} ({resolve_storage(config).split('://')[0]})",
        "workers": config.n_workers,
        "trials": ", ".join(f"{k} {v}" for k, v in counts.items()),
        f"best {config.metric}": f"{record['value']} (trial {record['trial']})",
        **{f"best {k}": v for k, v in record["params"].items()},
        **{f"importance {k}": f"{v:.3f}" for k, v in result.importance.items()},
        "result": str(result.best_path),
    }
    publish_summary("sweep", "Sweep", rows, result.run_id)
    print(f"sweep {record['status']}: best {config.metric} = {record['value']} -> {result.best_path}")
    return record


if __name__ == "__main__":
    sweep_flow()
