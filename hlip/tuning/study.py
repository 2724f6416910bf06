"""Optuna adapter: the study on shared storage, its sampler and pruner, and N worker processes optimising it.

Storage: SQLite by default (``sqlite:///outputs/sweep/optuna.db``), opened in WAL mode with a 60 s lock timeout,
which is enough for a few local workers whose trials last seconds or more. For many workers or several machines,
point ``$HLIP_OPTUNA_STORAGE`` at an RDB such as PostgreSQL (``postgresql+psycopg://user:pw@host/db``); every
worker then runs the same `run_worker` against it (``python -m flows.sweep`` on each machine joins the study).
A database restart does not stop the workers: each storage call waits for it (`hlip.tuning.storage`).

Each worker loads the study by name, builds its own sampler (seeded ``seed + worker``, so workers do not propose
the same points) and pruner, and optimises its share of the trials. A trial that raises is recorded as FAIL and
the sweep goes on; a worker process that dies fails the sweep.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from typing import TYPE_CHECKING

from hlip.tuning.config import PrunerConfig, SamplerConfig, SweepConfig, resolve_storage
from hlip.tuning.objective import TrialRunner, make_report
from hlip.tuning.space import suggest

if TYPE_CHECKING:
    import optuna

    from hlip.tuning.tracking import TrialTracking

log = logging.getLogger(__name__)


def make_sampler(config: SamplerConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of one worker; seeded with ``seed + worker`` when a seed is set."""
    import optuna

    seed = None if config.seed is None else config.seed + worker
    if config.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.n_startup_trials)


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The pruner named by `config.kind` (``median``, ``hyperband`` or ``none``)."""
    import optuna

    if config.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.n_startup_trials,
            n_warmup_steps=config.n_warmup_steps,
            interval_steps=config.interval_steps,
        )
    if config.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=config.min_resource,
            max_resource=config.max_resource,
            reduction_factor=config.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def open_storage(config: SweepConfig) -> optuna.storages.BaseStorage:
    """The configured study storage (see `hlip.tuning.storage.open_storage`: SQLite in WAL mode, or an RDB storage
    that waits for a restarting database; heartbeats that retry the trials of killed workers)."""
    from hlip.tuning.storage import open_storage as open_

    return open_(resolve_storage(config), config.heartbeat_s, config.max_retries)


def create_study(config: SweepConfig) -> optuna.Study:
    """Create the study (or resume the one of that name) on the configured storage."""
    import optuna

    study = optuna.create_study(
        storage=open_storage(config),
        study_name=config.study_name,
        direction="maximize" if config.direction == "maximize" else "minimize",
        load_if_exists=True,
    )
    if study.direction.name.lower() != config.direction:
        raise ValueError(
            f"study {config.study_name!r} exists with direction {study.direction.name.lower()}, "
            f"params.yaml:sweep.direction says {config.direction}; rename the study or drop its storage"
        )
    study.set_user_attr("metric", config.metric)
    return study


def split_trials(n_trials: int, n_workers: int) -> list[int]:
    """Share `n_trials` over `n_workers` as evenly as possible (workers with no trial are dropped)."""
    shares = [n_trials // n_workers + (1 if i < n_trials % n_workers else 0) for i in range(n_workers)]
    return [s for s in shares if s > 0]


def make_objective(
    config: SweepConfig, runner: TrialRunner, worker: int, tracking: TrialTracking | None
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective of one worker: suggest, run (inside the trial's MLflow run when tracked), report."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        overrides = suggest(trial, config.space)
        if tracking is None:
            return float(runner(overrides, make_report(trial)))
        from hlip.tuning.tracking import trial_run

        with trial_run(tracking, trial.number, overrides, worker) as record:
            try:
                value = float(runner(overrides, make_report(trial, record.log_intermediate)))
            except optuna.TrialPruned:
                record.finish("pruned")
                raise
            record.finish("completed", value)
        return value

    return objective


def run_worker(
    config: SweepConfig, runner: TrialRunner, worker: int, n_trials: int, tracking: TrialTracking | None = None
) -> None:
    """Optimise `n_trials` trials of the configured study (which must exist) in this process."""
    import optuna

    study = optuna.load_study(
        study_name=config.study_name,
        storage=open_storage(config),
        sampler=make_sampler(config.sampler, worker),
        pruner=make_pruner(config.pruner),
    )
    study.optimize(
        make_objective(config, runner, worker, tracking),
        n_trials=n_trials,
        timeout=config.timeout_s,
        catch=(Exception,),
    )


def run_sweep(
    config: SweepConfig,
    runner: TrialRunner,
    n_workers: int | None = None,
    *,
    tracking: TrialTracking | None = None,
) -> optuna.Study:
    """Run the sweep: `n_workers` (default `config.n_workers`) processes share `config.n_trials` trials.

    One worker runs in this process; several are spawned processes (so `runner` must be picklable), each
    loading the study from the shared storage.

    Raises:
        RuntimeError: When a worker process exits with an error.
    """
    study = create_study(config)
    shares = split_trials(config.n_trials, n_workers or config.n_workers)
    if len(shares) == 1:
        run_worker(config, runner, 0, shares[0], tracking)
        return study
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=run_worker, args=(config, runner, i, n, tracking), name=f"sweep-worker-{i}")
        for i, n in enumerate(shares)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [f"{p.name} (exit code {p.exitcode})" for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"sweep worker(s) failed: {', '.join(failed)}; see their log above")
    return study
