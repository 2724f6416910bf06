"""Hyper-parameter sweeps: the search space from `params.yaml:sweep`, Optuna studies shared by worker processes,
and an MLflow adapter (a parent run per sweep, a child run per trial).

Optuna and MLflow are imported inside functions only (`study`, `tracking`), so importing this package is cheap.
"""

from hlip.tuning.best import best_params_record, write_best_params
from hlip.tuning.config import ParamSpec, PrunerConfig, SamplerConfig, SweepConfig, parse_sweep_config, resolve_storage
from hlip.tuning.objective import Report, TrialRunner, make_report
from hlip.tuning.space import apply_overrides, check_space, suggest
from hlip.tuning.study import create_study, run_sweep, run_worker, split_trials
from hlip.tuning.tracking import trial_counts

__all__ = [
    "ParamSpec",
    "PrunerConfig",
    "Report",
    "SamplerConfig",
    "SweepConfig",
    "TrialRunner",
    "apply_overrides",
    "best_params_record",
    "check_space",
    "create_study",
    "make_report",
    "parse_sweep_config",
    "resolve_storage",
    "run_sweep",
    "run_worker",
    "split_trials",
    "suggest",
    "trial_counts",
    "write_best_params",
]
