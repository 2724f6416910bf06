"""Flow `sweep`: hyper-parameter search with Optuna, N workers on one study, each trial a nested MLflow run.

Reads `params.yaml:sweep` (the space names dotted keys of the same file). Writes ``<out>/best_params.yaml``
(reviewable: nothing is applied to params.yaml), the plots, and ``outputs/metrics/sweep.json``. With
``sweep.enabled: false`` (the default) it runs nothing but still writes both files, marked ``skipped``, because
DVC declares them as the stage's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import params_path, publish_summary, write_stage_metrics
from hlip.config import load_params, to_dict
from hlip.tracking.runs import stage_run
from hlip.tuning import (
    SweepConfig,
    TrialRunner,
    best_params_record,
    check_space,
    parse_sweep_config,
    resolve_storage,
    run_sweep,
    write_best_params,
)
from hlip.tuning.best import BEST_PARAMS_FILE


def make_runner(config: SweepConfig, params: dict[str, Any]) -> TrialRunner:
    """The objective named by `sweep.objective`."""
    if config.objective == "quadratic":
        from testkit.toy_objective import quadratic

        return quadratic
    from hlip.tuning.pretrain_runner import make_pretrain_runner

    return make_pretrain_runner(params, metric=config.metric)


@task(task_run_name="optimise-{config.study_name}")
def optimise(config: SweepConfig, params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run the workers, log the summary to the active (parent) MLflow run, return the best-params record."""
    from hlip.tuning.tracking import TrialTracking, log_study_summary

    tracking = TrialTracking.from_active_run(config.metric, config.study_name)
    study = run_sweep(config, make_runner(config, params), tracking=tracking)
    summary = log_study_summary(study, tracking, out)
    record = best_params_record(study, config)
    record["importance"] = summary["importance"]
    return record


@flow(name="sweep", log_prints=True)
def sweep_flow(params: str | None = None) -> dict[str, Any]:
    """Run the sweep described by `params.yaml:sweep` (or record that it is disabled); returns the result."""
    path = Path(params) if params else params_path()
    all_params = load_params(path)
    config = parse_sweep_config(load_params(path, "sweep"), where=f"{path}:sweep")
    out = Path(config.out)
    best_path = out / BEST_PARAMS_FILE
    if not config.enabled:
        record = best_params_record(None, config, status="skipped")
        write_best_params(record, best_path, config)
        write_stage_metrics("sweep", {"enabled": False})
        publish_summary("sweep", "Sweep", {"status": "skipped (sweep.enabled is false)", "result": str(best_path)})
        return record
    check_space(config.space, all_params)
    with stage_run("sweep", {"sweep": to_dict(config)}, tags={"sweep.study": config.study_name}) as run:
        import mlflow

        record = optimise(config, all_params, out)
        importance = record.pop("importance")
        write_best_params(record, best_path, config)
        mlflow.log_artifact(str(best_path))
        counts = record.get("trials", {})
        metrics = {"enabled": True, "trials": counts, "best_trial": record["trial"], config.metric: record["value"]}
        write_stage_metrics("sweep", metrics)
        rows = {
            "study": f"{config.study_name} ({resolve_storage(config).split('://')[0]})",
            "workers": config.n_workers,
            "trials": ", ".join(f"{k} {v}" for k, v in counts.items()),
            f"best {config.metric}": f"{record['value']} (trial {record['trial']})",
            **{f"best {k}": v for k, v in record["params"].items()},
            **{f"importance {k}": f"{v:.3f}" for k, v in importance.items()},
            "result": str(best_path),
        }
        publish_summary("sweep", "Sweep", rows, run.info.run_id)
        print(f"sweep {record['status']}: best {config.metric} = {record['value']} -> {best_path}")
    return record


if __name__ == "__main__":
    sweep_flow()
