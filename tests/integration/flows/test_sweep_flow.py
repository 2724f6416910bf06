"""The sweep flow end to end: two worker processes on one SQLite study, pruning, MLflow parent/child runs,
the reviewable best-params file, under the Prefect test harness (the session fixture in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

SWEEP: dict[str, Any] = {
    "enabled": True,
    "objective": "quadratic",
    "n_trials": 12,
    "n_workers": 2,
    "study_name": "flow-test",
    "direction": "minimize",
    "metric": "toy_loss",
    "sampler": {"kind": "random", "seed": 5},
    "pruner": {"kind": "median", "n_startup_trials": 2},
    "space": [
        {"name": "pretrain.contrastive.lr", "type": "float", "low": 1e-3, "high": 4.0, "log": True},
        {"name": "pretrain.warmup_epochs", "type": "int", "low": 0, "high": 3},
        {"name": "pretrain.loss", "type": "categorical", "choices": ["a", "b"]},
    ],
}
PARAMS = {"pretrain": {"contrastive": {"lr": 1e-3}, "warmup_epochs": 1, "loss": "a"}, "sweep": SWEEP}


@pytest.fixture
def sweep_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "HLIP_PARAMS", "HLIP_OPTUNA_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write_params(sweep: dict[str, Any]) -> None:
    Path("params.yaml").write_text(yaml.safe_dump({**PARAMS, "sweep": sweep}))


def test_two_workers_share_one_study_and_every_trial_is_a_child_run(sweep_dir: Path) -> None:
    import mlflow
    import optuna

    from flows.sweep import sweep_flow

    write_params(SWEEP)
    params_before = Path("params.yaml").read_bytes()
    sweep_flow()

    study = optuna.load_study(study_name="flow-test", storage="sqlite:///outputs/sweep/optuna.db")
    trials = study.get_trials()
    assert len(trials) == 12
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    states = {t.number: t.state.name for t in trials}
    assert "PRUNED" in states.values()
    assert "COMPLETE" in states.values()

    mlflow.set_tracking_uri(f"sqlite:///{(sweep_dir / 'outputs/mlflow/mlflow.db').resolve()}")
    experiment = mlflow.get_experiment_by_name("sweep")
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    parents = [r for r in runs if r.data.tags.get("stage") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1 == 12
    by_number = {int(c.data.tags["trial.number"]): c for c in children}
    assert set(by_number) == set(states)
    for number, child in by_number.items():
        expected = {"COMPLETE": "completed", "PRUNED": "pruned"}[states[number]]
        assert child.data.tags["trial.state"] == expected
        assert child.data.tags["sweep.worker"] == str(trials[number].user_attrs["worker"])
        assert child.data.tags["git.commit"] == parent.data.tags["git.commit"]
        assert set(child.data.params) == {s["name"] for s in SWEEP["space"]}
    assert parent.data.metrics["best/toy_loss"] == pytest.approx(study.best_value)
    assert parent.data.metrics["trials/pruned"] == sum(1 for s in states.values() if s == "PRUNED")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"best_params.yaml", "importance.json", "plots"} <= artifacts

    best = yaml.safe_load(Path("outputs/sweep/best_params.yaml").read_text())
    assert best["params"] == study.best_params
    assert (best["trial"], best["value"], best["study"]) == (study.best_trial.number, study.best_value, "flow-test")
    metrics = json.loads(Path("outputs/metrics/sweep.json").read_text())
    assert metrics["best_trial"] == study.best_trial.number
    assert metrics["trials"]["complete"] + metrics["trials"]["pruned"] == 12
    assert Path("params.yaml").read_bytes() == params_before  # nothing applied


def test_disabled_sweep_writes_skipped_outputs_and_runs_nothing(sweep_dir: Path) -> None:
    from flows.sweep import sweep_flow

    write_params({**SWEEP, "enabled": False})
    record = sweep_flow()
    assert record["status"] == "skipped"
    text = Path("outputs/sweep/best_params.yaml").read_text()
    assert "sweep.enabled: false" in text
    assert yaml.safe_load(text)["params"] == {}
    assert json.loads(Path("outputs/metrics/sweep.json").read_text()) == {"enabled": False}
    assert not Path("outputs/sweep/optuna.db").exists()
    assert not Path("outputs/mlflow").exists()


def test_a_space_key_missing_from_params_fails_before_any_trial(sweep_dir: Path) -> None:
    from flows.sweep import sweep_flow
    from hlip.config import ConfigError

    write_params({**SWEEP, "space": [{"name": "pretrain.contrastive.lr_max", "type": "float", "low": 0, "high": 1}]})
    with pytest.raises(ConfigError, match=r"pretrain\.contrastive\.lr_max"):
        sweep_flow()
    assert not Path("outputs/sweep/optuna.db").exists()
