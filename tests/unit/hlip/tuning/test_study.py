"""Studies on real SQLite storage, in this process: pruning, failures, trial runs, summary and best-params file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlip.tuning import SweepConfig, best_params_record, run_sweep, split_trials, trial_counts, write_best_params
from hlip.tuning.objective import Report, make_report
from hlip.tuning.tracking import TrialTracking, log_study_summary, param_importances
from testkit.toy_objective import QUADRATIC_STEPS, quadratic

Factory = Callable[..., SweepConfig]


def test_split_trials_shares_evenly() -> None:
    assert split_trials(10, 3) == [4, 3, 3]
    assert split_trials(2, 4) == [1, 1]
    assert sum(split_trials(17, 5)) == 17


def test_report_prunes_through_the_pruner() -> None:
    import optuna

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    make_report(good)(0, 1.0)
    study.tell(good, 1.0)
    bad = study.ask()
    with pytest.raises(optuna.TrialPruned, match="step 0"):
        make_report(bad)(0, 5.0)
    with pytest.raises(optuna.TrialPruned, match="non-finite"):
        make_report(study.ask())(0, float("nan"))


def test_single_worker_sweep_prunes_and_finds_the_best(quadratic_config: Factory) -> None:
    config = quadratic_config(n_trials=12)
    study = run_sweep(config, quadratic, n_workers=1)
    counts = trial_counts(study)
    assert counts["complete"] + counts["pruned"] == 12
    assert counts["pruned"] >= 1
    best = study.best_trial
    assert best.value == min(t.value for t in study.trials if t.value is not None)
    expected = (best.params["a.x"] - 1.0) ** 2 + (0.0 if best.params["a.k"] == "a" else 1.0)
    assert best.value == pytest.approx(expected)
    # a complete trial reported its whole learning curve; a pruned one stopped early
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert all(len(t.intermediate_values) == QUADRATIC_STEPS for t in complete)
    assert all(len(t.intermediate_values) < QUADRATIC_STEPS for t in pruned)


def test_a_second_sweep_resumes_the_study(quadratic_config: Factory) -> None:
    config = quadratic_config(n_trials=3)
    run_sweep(config, quadratic, n_workers=1)
    study = run_sweep(config, quadratic, n_workers=1)
    assert len(study.trials) == 6


def failing_runner(overrides: dict[str, Any], report: Report) -> float:
    if overrides["a.k"] == "b":
        raise RuntimeError("out of memory")
    return quadratic(overrides, report)


def test_trials_become_nested_mlflow_runs_with_their_state(
    tmp_path: Path, quadratic_config: Factory, mlflow_uri: str
) -> None:
    import mlflow

    config = quadratic_config(n_trials=10)
    experiment = mlflow.create_experiment("sweep")
    with mlflow.start_run(experiment_id=experiment, tags={"git.commit": "abc", "stage": "sweep"}) as parent:
        tracking = TrialTracking.from_active_run(config.metric, config.study_name)
        study = run_sweep(config, failing_runner, n_workers=1, tracking=tracking)
        assert mlflow.active_run().info.run_id == parent.info.run_id  # the parent is still the active run
        summary = log_study_summary(study, tracking, tmp_path / "out")
    states = {t.number: t.state.name for t in study.trials}
    assert "FAIL" in states.values()
    children = mlflow.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                  output_format="list")  # fmt: skip
    assert len(children) == len(study.trials)
    expected_state = {"COMPLETE": ("completed", "FINISHED"), "PRUNED": ("pruned", "FINISHED"),
                      "FAIL": ("failed", "FAILED")}  # fmt: skip
    client = mlflow.MlflowClient()
    for child in children:
        number = int(child.data.tags["trial.number"])
        trial = study.trials[number]
        assert (child.data.tags["trial.state"], child.info.status) == expected_state[states[number]]
        assert child.data.tags["git.commit"] == "abc"
        assert child.data.tags["sweep.study"] == "unit"
        assert child.data.params == {k: str(v) for k, v in trial.params.items()}
        history = client.get_metric_history(child.info.run_id, "intermediate/toy_loss")
        assert {m.step: m.value for m in history} == pytest.approx(trial.intermediate_values)
        if states[number] == "COMPLETE":
            assert child.data.metrics["toy_loss"] == pytest.approx(trial.value)
        else:
            assert "toy_loss" not in child.data.metrics
    got = mlflow.get_run(parent.info.run_id)
    assert got.data.metrics["best/toy_loss"] == pytest.approx(study.best_value)
    assert got.data.metrics["trials/fail"] == sum(1 for s in states.values() if s == "FAIL")
    assert set(summary["importance"]) == {"a.x", "a.k"}
    assert got.data.metrics["importance/a.x"] == pytest.approx(summary["importance"]["a.x"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/optimization_history.png", "plots/intermediate_values.png",
                         "plots/param_importances.png"}  # fmt: skip
    assert (tmp_path / "out" / "plots" / "optimization_history.png").read_bytes()[:4] == b"\x89PNG"


def test_importance_needs_two_completed_trials(quadratic_config: Factory) -> None:
    config = quadratic_config(n_trials=1)
    study = run_sweep(config, quadratic, n_workers=1)
    assert param_importances(study) == ({}, "needs at least 2 completed trials, got 1")


def test_best_params_file_matches_the_study(tmp_path: Path, quadratic_config: Factory) -> None:
    config = quadratic_config(n_trials=4)
    study = run_sweep(config, quadratic, n_workers=1)
    path = write_best_params(best_params_record(study, config), tmp_path / "best.yaml", config)
    text = path.read_text()
    content = yaml.safe_load(text)
    assert content["params"] == study.best_params
    assert (content["trial"], content["value"], content["study"]) == (study.best_trial.number, study.best_value, "unit")
    assert content["status"] == "completed"
    assert text.startswith("# Optuna sweep result")
    assert f"-S a.x={study.best_params['a.x']}" in text


def test_skipped_and_all_failed_records(tmp_path: Path, quadratic_config: Factory) -> None:
    config = quadratic_config(n_trials=2, space=[{"name": "a.k", "type": "categorical", "choices": ["b"]}])
    assert best_params_record(None, config, status="skipped")["params"] == {}
    study = run_sweep(config, failing_runner, n_workers=1)
    record = best_params_record(study, config)
    assert record["status"] == "no_completed_trial"
    assert record["trials"]["fail"] == 2
    text = write_best_params(record, tmp_path / "best.yaml", config).read_text()
    assert "No trial completed" in text
