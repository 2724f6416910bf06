"""MLflow adapter of the sweep: a child run per trial under the sweep's parent run, a summary on the parent.

Each trial's run (nested under the parent with MLflow's ``mlflow.parentRunId`` tag) holds the trial's overrides
as params, every reported value as the metric ``intermediate/<metric>`` with its step, the final ``<metric>``,
and the tags ``trial.number``, ``trial.state`` (``completed`` / ``pruned`` / ``failed``), ``sweep.study`` and
``sweep.worker``, plus the parent's lineage tags. The trial's run is the active MLflow run while the runner works,
so whatever the runner logs itself lands in it too. The parent gets the best value, the trial counts, each
parameter's importance, and the optimisation history / importance / intermediate-value plots as PNG artifacts.

This replaces Optuna's deprecated ``MLflowCallback``; workers in other processes reach the same runs through the
tracking URI, experiment and parent run id carried by `TrialTracking`.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

MLFLOW_STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "failed": "FAILED"}
PARENT_TAG_PREFIXES = ("git.", "data.", "params.")


@dataclass(frozen=True)
class TrialTracking:
    """Where trial runs go (picklable, so spawned workers can log to the same parent run)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    metric: str
    study_name: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_active_run(cls, metric: str, study_name: str) -> TrialTracking:
        """Nest trials under the active MLflow run (e.g. the sweep stage's `stage_run`)."""
        import mlflow

        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("no active MLflow run to nest the sweep's trial runs under")
        tags = {k: v for k, v in run.data.tags.items() if k.startswith(PARENT_TAG_PREFIXES)}
        return cls(mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id, metric, study_name, tags)


class TrialRun:
    """The MLflow run of one trial; `log_intermediate` is passed to the trial's `report` callback."""

    def __init__(self, tracking: TrialTracking, run_id: str) -> None:
        self.tracking = tracking
        self.run_id = run_id
        self.state = "failed"
        self.value: float | None = None

    def log_intermediate(self, step: int, value: float) -> None:
        """Record one reported value as ``intermediate/<metric>`` at `step`."""
        import mlflow

        mlflow.log_metric(f"intermediate/{self.tracking.metric}", value, step=step)

    def finish(self, state: str, value: float | None = None) -> None:
        """Set the outcome (``completed``, ``pruned`` or ``failed``) and, when completed, the final value."""
        self.state, self.value = state, value


@contextmanager
def trial_run(
    tracking: TrialTracking, trial_number: int, overrides: Mapping[str, Any], worker: int
) -> Iterator[TrialRun]:
    """Open the nested MLflow run of trial `trial_number`; it ends with the state set through `TrialRun.finish`."""
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri)
    tags = {
        **tracking.tags,
        "stage": "sweep.trial",
        "sweep.study": tracking.study_name,
        "sweep.worker": str(worker),
        "trial.number": str(trial_number),
    }
    # Not `with start_run(...)`: its exit would end the *parent* run too once this one has ended.
    run = mlflow.start_run(
        experiment_id=tracking.experiment_id,
        run_name=f"trial-{trial_number}",
        parent_run_id=tracking.parent_run_id,
        nested=True,
        tags=tags,
    )
    record = TrialRun(tracking, run.info.run_id)
    try:
        if overrides:
            mlflow.log_params({k: str(v) for k, v in overrides.items()})
        yield record
    finally:
        mlflow.set_tag("trial.state", record.state)
        if record.value is not None:
            mlflow.log_metric(tracking.metric, record.value)
        mlflow.end_run(status=MLFLOW_STATUS[record.state])


def log_study_summary(study: optuna.Study, tracking: TrialTracking, out_dir: Path) -> dict[str, Any]:
    """Log the sweep's outcome to the parent run: counts, best value, importances, plots (also saved in `out_dir`).

    Returns:
        ``{"counts": {...}, "importance": {param: share} or {}, "importance_note": str, "plots": [paths]}``.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking.tracking_uri)
    run_id = tracking.parent_run_id
    counts = trial_counts(study)
    for name, count in counts.items():
        client.log_metric(run_id, f"trials/{name}", count)
    if counts["complete"]:
        client.log_metric(run_id, f"best/{tracking.metric}", study.best_value)
        client.set_tag(run_id, "sweep.best_trial", str(study.best_trial.number))
    importance, note = param_importances(study)
    for name, share in importance.items():
        client.log_metric(run_id, f"importance/{name}", share)
    client.log_text(run_id, json.dumps({"importance": importance, "note": note}, indent=2), "importance.json")
    plots = save_plots(study, out_dir / "plots", with_importance=bool(importance))
    for plot in plots:
        client.log_artifact(run_id, str(plot), artifact_path="plots")
    return {"counts": counts, "importance": importance, "importance_note": note, "plots": [str(p) for p in plots]}


def param_importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """Each parameter's share of the objective's variance (fANOVA, seeded), or ``({}, why not)``."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}, f"needs at least 2 completed trials, got {len(complete)}"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        importance = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:  # e.g. every completed trial has the same values
        return {}, f"not computable: {exc}"
    return {k: float(v) for k, v in importance.items()}, "fANOVA over completed trials"


def save_plots(study: optuna.Study, out_dir: Path, with_importance: bool) -> list[Path]:
    """PNG plots of the study: optimisation history, intermediate values, and importances when computable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as oplt

    out_dir.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable[[optuna.Study], Any]] = {
        "optimization_history": oplt.plot_optimization_history,
        "intermediate_values": oplt.plot_intermediate_values,
    }
    if with_importance:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        makers["param_importances"] = lambda s: oplt.plot_param_importances(s, evaluator=evaluator)
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, make in makers.items():
            try:
                axes = make(study)
            except (ValueError, RuntimeError) as exc:
                log.warning("sweep plot %s skipped: %s", name, exc)
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            path = out_dir / f"{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            paths.append(path)
    return paths


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state: ``complete``, ``pruned``, ``fail`` (and ``running`` left over, if any)."""
    import optuna

    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {"complete": 0, "pruned": 0, "fail": 0, "running": 0}
    for trial in trials:
        key = {states.COMPLETE: "complete", states.PRUNED: "pruned", states.FAIL: "fail"}.get(trial.state, "running")
        counts[key] += 1
    return counts
