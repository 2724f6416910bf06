"""Stage `sweep`: hyper-parameter search with Optuna, N workers on one study, each trial a nested MLflow run.

Reads `params.yaml:sweep` (its space names dotted keys of the whole file, which the trials override). Writes
``<out>/best_params.yaml`` (reviewable: nothing is applied to params.yaml), the plots, and
``outputs/metrics/sweep.json``. With ``sweep.enabled: false`` (the default) it runs nothing but still writes both
files, marked ``skipped``, because DVC declares them as the stage's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import load_params, to_dict
from hlip.stages.base import TaskRunner, direct, params_path, write_metrics, write_run_record
from hlip.tracking.runs import stage_run
from hlip.tuning import (
    SweepConfig,
    TrialRunner,
    best_params_record,
    check_space,
    parse_sweep_config,
    run_sweep,
    write_best_params,
)
from hlip.tuning.best import BEST_PARAMS_FILE

STAGE = "sweep"


@dataclass(frozen=True)
class SweepParams:
    """The `sweep:` block and the whole parameters file its trials override."""

    config: SweepConfig
    all_params: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> SweepParams:
        """The parameters file's sweep block (checked against the file's keys when enabled)."""
        file = params_path(path)
        config = parse_sweep_config(load_params(file, STAGE), where=f"{file}:{STAGE}")
        return cls(config, load_params(file))


def make_runner(config: SweepConfig, params: dict[str, Any]) -> TrialRunner:
    """The objective named by `sweep.objective` (`quadratic`: a seconds-long plumbing check of the machinery)."""
    if config.objective == "quadratic":
        from testkit.toy_objective import quadratic

        return quadratic
    from hlip.tuning.pretrain_runner import make_pretrain_runner

    return make_pretrain_runner(params, metric=config.metric)


def optimise(config: SweepConfig, params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run the workers, log the summary to the active (parent) MLflow run, return the best-params record."""
    from hlip.tuning.tracking import TrialTracking, log_study_summary

    tracking = TrialTracking.from_active_run(config.metric, config.study_name)
    study = run_sweep(config, make_runner(config, params), tracking=tracking)
    summary = log_study_summary(study, tracking, out)
    record = best_params_record(study, config)
    record["importance"] = summary["importance"]
    return record


@dataclass(frozen=True)
class SweepOutcome:
    """The best-params record (status `skipped` when disabled), where it was written, and the MLflow run."""

    record: dict[str, Any]
    best_path: Path
    importance: dict[str, float]
    run_id: str | None


def run(params: SweepParams, runner: TaskRunner = direct) -> SweepOutcome:
    """Run the sweep (one unit of `runner`, named ``optimise-<study>``) or record that it is disabled."""
    config = params.config
    out = Path(config.out)
    best_path = out / BEST_PARAMS_FILE
    if not config.enabled:
        record = best_params_record(None, config, status="skipped")
        write_best_params(record, best_path, config)
        write_metrics(STAGE, {"enabled": False})
        return SweepOutcome(record, best_path, {}, None)
    check_space(config.space, params.all_params)
    with stage_run(STAGE, {STAGE: to_dict(config)}, tags={"sweep.study": config.study_name}) as mlrun:
        import mlflow

        record = runner(optimise, config, params.all_params, out, name=f"optimise-{config.study_name}")
        importance = record.pop("importance")
        write_best_params(record, best_path, config)
        mlflow.log_artifact(str(best_path))
        counts = record.get("trials", {})
        write_metrics(STAGE, {"enabled": True, "trials": counts, "best_trial": record["trial"],
                              config.metric: record["value"]})  # fmt: skip
        write_run_record(STAGE, mlrun.info.run_id)
        return SweepOutcome(record, best_path, importance, mlrun.info.run_id)
