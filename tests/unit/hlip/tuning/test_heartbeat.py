"""A sweep worker killed with SIGKILL: its trial stops beating, is failed by the next worker and runs again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hlip.tuning import SweepConfig, parse_sweep_config
from hlip.tuning.study import create_study, open_storage, run_worker
from testkit.toy_objective import quadratic

# A worker whose objective announces its trial and then hangs until it is killed.
HANGING_WORKER = """
import json, pathlib, sys, time
from hlip.tuning import parse_sweep_config
from hlip.tuning.study import make_objective, run_worker

block, marker = json.loads(sys.argv[1]), pathlib.Path(sys.argv[2])

def hang(overrides, report):
    marker.write_text(json.dumps(overrides))
    time.sleep(600)

run_worker(parse_sweep_config(block), hang, 0, 1)
"""


def _block(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "enabled": True,
        "objective": "quadratic",
        "n_trials": 2,
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "study_name": "heartbeat",
        "direction": "minimize",
        "metric": "toy_loss",
        "heartbeat_s": 1,
        "max_retries": 1,
        "sampler": {"kind": "random", "seed": 3},
        "space": [{"name": "a.x", "type": "float", "low": -2.0, "high": 4.0}],
    }
    return {**block, **changes}


def _trials(config: SweepConfig) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=config.study_name, storage=open_storage(config)).get_trials()


def test_the_trial_of_a_killed_worker_fails_and_runs_again_with_the_same_params(tmp_path: Path) -> None:
    block = _block(tmp_path)
    config = parse_sweep_config(block)
    create_study(config)
    marker = tmp_path / "started.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    worker = subprocess.Popen([sys.executable, "-c", HANGING_WORKER, json.dumps(block), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert worker.poll() is None, "the hanging worker exited before it started its trial"
            assert time.monotonic() < deadline, "the hanging worker never started its trial"
            time.sleep(0.1)
        time.sleep(1.5)  # at least one heartbeat beyond the first
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    (killed,) = _trials(config)
    assert killed.state == TrialState.RUNNING  # nobody told the storage: without a heartbeat it stays so forever

    time.sleep(2.5)  # past the grace period of 2 x heartbeat_s
    run_worker(config, quadratic, 1, 2)

    trials = sorted(_trials(config), key=lambda t: t.number)
    assert trials[0].state == TrialState.FAIL
    retry = trials[1]
    assert retry.system_attrs["failed_trial"] == killed.number
    assert retry.params == killed.params == {"a.x": json.loads(marker.read_text())["a.x"]}
    assert retry.state == TrialState.COMPLETE
    assert [t.state for t in trials[2:]] == [TrialState.COMPLETE]  # the worker's second trial is a new one
    assert len(trials) == 3


def test_without_heartbeat_a_killed_workers_trial_is_not_touched(tmp_path: Path) -> None:
    config = parse_sweep_config(_block(tmp_path, heartbeat_s=0))
    study = create_study(config)
    trial = study.ask()  # a trial whose worker is gone: nothing beats for it
    run_worker(config, quadratic, 1, 1)
    states = {t.number: t.state for t in _trials(config)}
    assert states == {trial.number: TrialState.RUNNING, trial.number + 1: TrialState.COMPLETE}


def test_negative_heartbeat_is_rejected(tmp_path: Path) -> None:
    from hlip.config import ConfigError

    with pytest.raises(ConfigError, match="heartbeat_s"):
        parse_sweep_config(_block(tmp_path, heartbeat_s=-1))
