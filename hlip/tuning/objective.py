"""The objective contract between the sweep and whatever it tunes.

A `TrialRunner` gets the trial's overrides (``{dotted params key: value}``) and a `report(step, value)` callback,
and returns the final value of the metric. `report` records an intermediate value (e.g. the zero-shot AUC after
each epoch) and raises `optuna.TrialPruned` when the pruner decides the trial is not worth finishing, so a runner
needs no Optuna import: it calls `report` and lets the exception unwind its training loop.

Workers are separate processes (spawned), so a runner must be picklable: a module-level function or an instance
of a module-level class (see `testkit.toy_objective.quadratic` and `hlip.tuning.pretrain_runner.PretrainRunner`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

Report = Callable[[int, float], None]
TrialRunner = Callable[[dict[str, Any], Report], float]


def make_report(trial: optuna.Trial, on_value: Callable[[int, float], None] | None = None) -> Report:
    """The `report` callback of one trial: record the value, then prune if the pruner says so.

    Args:
        trial: The running Optuna trial.
        on_value: Also called with each (step, value), e.g. to log it to MLflow.
    """
    import optuna

    def report(step: int, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"non-finite intermediate value {value} at step {step}")
        trial.report(value, step)
        if on_value is not None:
            on_value(step, value)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (value {value:.6g})")

    return report
