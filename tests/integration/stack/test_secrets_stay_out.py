"""After a stack-up and a tracked run, no generated secret is in a git file or in an MLflow param or tag."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from local_stack.local import LocalStack

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def test_secrets_appear_in_no_git_file_and_no_mlflow_record(stack: LocalStack, stack_env: dict[str, str]) -> None:
    import mlflow

    from hlip.tracking.runs import stage_run

    with stage_run("stack-secrets", {"model": "hlip-tiny", "lr": 0.001}):
        mlflow.log_metric("loss", 0.5)
    secrets = stack.secrets.values()
    for secret in secrets:  # tracked files and untracked files git does not ignore
        found = subprocess.run(["git", "grep", "--untracked", "-l", "-F", "-e", secret], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
        assert found.returncode == 1, f"a generated secret is in {found.stdout.split()}"
    client = mlflow.MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs
    for run in runs:
        recorded = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert not [s for s in secrets if s in recorded], f"run {run.info.run_id} records a secret"
