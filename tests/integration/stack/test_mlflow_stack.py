"""The MLflow server of the stack: authentication, artifacts in S3, a database restart mid-run, clear errors."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_stack.local import BUCKETS, LocalStack
from local_stack.mlflow_server import auth_available
from local_stack.process import free_port

pytestmark = pytest.mark.integration
needs_auth = pytest.mark.skipif(not auth_available(), reason="MLflow's basic-auth app needs Flask-WTF (mlflow[auth])")


def _create_experiment(url: str, name: str, auth: tuple[str, str] | None) -> int:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/experiments/create", data=json.dumps({"name": name}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@needs_auth
def test_unauthenticated_write_is_refused_and_authenticated_write_accepted(stack: LocalStack) -> None:
    assert _create_experiment(stack.mlflow_url, "anonymous", None) == 401
    assert _create_experiment(stack.mlflow_url, "wrong", ("admin", "not-the-password")) == 401
    assert _create_experiment(stack.mlflow_url, "admin-made", ("admin", stack.secrets.mlflow_admin)) == 200


def test_stage_run_artifacts_land_in_seaweedfs(stack: LocalStack, stack_env: dict[str, str], tmp_path: Path) -> None:
    import mlflow

    from hlip.tracking.runs import stage_run

    payload = tmp_path / "summary.json"
    payload.write_bytes(b'{"auc": 0.5}' * 1000)
    with stage_run("stack-artifacts", {"lr": 0.001}) as run:
        mlflow.log_artifact(str(payload))
    assert mlflow.get_tracking_uri() == stack.mlflow_url
    keys = [o["Key"] for o in stack.seaweedfs.client().list_objects_v2(Bucket=BUCKETS["mlflow"])["Contents"]]
    key = next(k for k in keys if run.info.run_id in k and k.endswith("summary.json"))
    body = stack.seaweedfs.client().get_object(Bucket=BUCKETS["mlflow"], Key=key)["Body"].read()
    assert body == payload.read_bytes()


def test_metrics_logged_across_a_postgres_restart_all_arrive_once(stack: LocalStack, stack_env: dict[str, str]) -> None:
    import mlflow

    from hlip.tracking.runs import stage_run

    with stage_run("stack-restart") as run:
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        stack.restart("postgres")  # every pooled server connection is now dead
        for step in range(5, 10):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(10))
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"


@needs_auth
def test_wrong_mlflow_password_is_one_clear_error_without_the_secret(
    stack: LocalStack, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password-123")
    with pytest.raises(MlflowException) as info:
        mlflow.MlflowClient(stack.mlflow_url).search_experiments()
    message = str(info.value)
    assert "401" in message or "Unauthorized" in message or "credentials" in message.lower()
    assert "wrong-password-123" not in message
    assert stack.secrets.mlflow_admin not in message


def test_unreachable_tracking_server_is_one_clear_error_without_the_secret(
    stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    with pytest.raises(MlflowException) as info:
        mlflow.MlflowClient(dead).search_experiments()
    message = str(info.value)
    assert dead.split("//")[1] in message
    assert stack_env["MLFLOW_TRACKING_PASSWORD"] not in message


def test_wrong_database_password_is_one_clear_error_without_the_secret(stack: LocalStack) -> None:
    import optuna
    import sqlalchemy.exc

    url = stack.database_url("optuna").replace(stack.secrets.postgres_app, "wrong-db-password")
    with pytest.raises(sqlalchemy.exc.OperationalError) as info:
        optuna.storages.RDBStorage(url)
    message = str(info.value)
    assert "password authentication failed" in message
    assert "wrong-db-password" not in message
    assert stack.secrets.postgres_app not in message


def test_optuna_study_is_stored_in_postgres(stack: LocalStack, stack_env: dict[str, str]) -> None:
    import optuna

    from hlip.tuning.config import STORAGE_ENV

    study = optuna.create_study(study_name="stack-check", storage=stack_env[STORAGE_ENV], load_if_exists=True)
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=3)
    loaded = optuna.load_study(study_name="stack-check", storage=stack.database_url("optuna"))
    assert len(loaded.trials) >= 3
