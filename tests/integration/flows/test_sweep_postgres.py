"""The sweep flow on a real PostgreSQL (started by the test, 127.0.0.1 only): two worker processes share one study,
and a PostgreSQL restart in the middle of the sweep loses and duplicates nothing."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack.postgres import PostgreSQL

pytestmark = pytest.mark.integration

ROLE = "hlip"
SPACE = [
    {"name": "pretrain.contrastive.lr", "type": "float", "low": 1e-3, "high": 4.0, "log": True},
    {"name": "pretrain.warmup_epochs", "type": "int", "low": 0, "high": 3},
]
BASE = {"pretrain": {"contrastive": {"lr": 1e-3}, "warmup_epochs": 1}}


class Database:
    """A PostgreSQL server with the optuna database, and the app role's password."""

    def __init__(self, server: PostgreSQL, password: str) -> None:
        self.server = server
        self.password = password

    def url(self, database: str) -> str:
        return self.server.url(ROLE, self.password, database)

    def query(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.server.port} dbname={database} user={ROLE} connect_timeout=3"
        with psycopg.connect(dsn, password=self.password) as conn:
            return list(conn.execute(sql).fetchall())


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    # Not under pytest's 0700 basetemp: PostgreSQL runs as the `postgres` user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="hlip-pg-sweep-"))
    root.chmod(0o755)
    server = PostgreSQL(root / "pg", secrets.token_urlsafe(16))
    password = secrets.token_urlsafe(16)
    try:
        server.start()
        server.ensure_databases(ROLE, password, ("optuna_a", "optuna_b"))
        yield Database(server, password)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_sweep_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str, n_trials: int) -> dict[str, Any]:
    from flows.sweep import sweep_flow

    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "HLIP_PARAMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HLIP_OPTUNA_STORAGE", storage)
    sweep = {"enabled": True, "objective": "quadratic", "n_trials": n_trials, "n_workers": 2, "study_name": "pg",
             "direction": "minimize", "metric": "toy_loss", "sampler": {"kind": "random", "seed": 3},
             "pruner": {"kind": "none"}, "space": SPACE}  # fmt: skip
    Path("params.yaml").write_text(yaml.safe_dump({**BASE, "sweep": sweep}))
    return sweep_flow()


def check_every_trial_once(storage: str, n_trials: int, tmp_path: Path) -> list[Any]:
    """Every trial number 0..n-1 exactly once, COMPLETE with 4 intermediate values, both workers took part, one MLflow
    child run per trial, and best_params.yaml holds the study's best trial."""
    import mlflow
    import optuna

    trials = optuna.load_study(study_name="pg", storage=storage).get_trials()
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3] for t in trials)
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}

    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'outputs/mlflow/mlflow.db').resolve()}")
    runs = mlflow.search_runs(experiment_names=["sweep"], output_format="list")
    children = sorted(int(r.data.tags["trial.number"]) for r in runs if "trial.number" in r.data.tags)
    assert children == list(range(n_trials))

    best = yaml.safe_load((tmp_path / "outputs/sweep/best_params.yaml").read_text())
    study = optuna.load_study(study_name="pg", storage=storage)
    assert (best["status"], best["trial"], best["value"]) == ("completed", study.best_trial.number, study.best_value)
    assert best["trials"] == {"complete": n_trials, "pruned": 0, "fail": 0, "running": 0}
    return trials


def test_two_workers_share_a_postgres_study(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = database.url("optuna_a")
    record = run_sweep_flow(tmp_path, monkeypatch, storage, n_trials=10)
    assert record["status"] == "completed"
    check_every_trial_once(storage, 10, tmp_path)
    header = (tmp_path / "outputs/sweep/best_params.yaml").read_text().splitlines()[0]
    assert "postgresql+psycopg://hlip:***@127.0.0.1" in header
    assert database.password not in (tmp_path / "outputs/sweep/best_params.yaml").read_text()


def test_a_postgres_restart_mid_sweep_loses_and_duplicates_no_trial(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    n_trials = 16
    storage = database.url("optuna_b")
    seen: dict[str, Any] = {}

    def restart_after_three_trials() -> None:
        """Wait until 3 trials finished while another one runs, then restart the server under the workers."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                rows = database.query("optuna_b", "SELECT state, count(*) FROM trials GROUP BY state")
            except Exception:  # the tables do not exist before the study does
                rows = []
            states = dict(rows)
            if states.get("COMPLETE", 0) >= 3 and states.get("RUNNING", 0) >= 1:
                seen["before"] = states
                t0 = time.monotonic()
                database.server.stop()  # fast shutdown: every worker's connection is cut, open transactions roll back
                time.sleep(1.0)
                database.server.start()
                seen["restart_s"] = time.monotonic() - t0
                seen["restarted_at"] = time.time()
                return
            time.sleep(0.02)

    restarter = threading.Thread(target=restart_after_three_trials, daemon=True)
    restarter.start()
    try:
        record = run_sweep_flow(tmp_path, monkeypatch, storage, n_trials)
    finally:
        restarter.join(180)
    assert "before" in seen, "the sweep ended before the restart could happen"
    assert seen["before"]["COMPLETE"] < n_trials - 2  # the restart hit the sweep in its middle
    assert record["status"] == "completed"
    trials = check_every_trial_once(storage, n_trials, tmp_path)
    after = [t for t in trials if t.datetime_complete.timestamp() > seen["restarted_at"]]
    assert len(after) >= 2  # the workers went on after the restart
    err = capfd.readouterr().err  # the workers' log: a storage call met the outage, waited, and went through
    assert "lost its database connection" in err
    assert "succeeded after" in err
    assert database.password not in err
