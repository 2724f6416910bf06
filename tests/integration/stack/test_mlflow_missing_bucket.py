"""A missing MLflow artifact bucket: the server refuses to start, naming it at once; a bucket deleted under a running
server is never re-created by an upload, and the run that tried is reported failed.

The stack's SeaweedFS runs with ``-s3.autoCreateBucket=false`` (local_stack/seaweedfs.py): like AWS S3 and MinIO it
answers NoSuchBucket rather than creating the bucket on upload, so a typo cannot start a new bucket.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack import SeaweedFS
from local_stack.buckets import BucketError
from local_stack.mlflow_server import MLflowServer

pytestmark = pytest.mark.integration

MISSING = "hlip-no-such-bucket"
DOOMED = "hlip-doomed"  # exists at the start, deleted while MLflow runs


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedFS]:
    root = Path(tempfile.mkdtemp(prefix="hlip-missing-bucket-"))
    try:
        server = SeaweedFS(root / "sw", buckets=(DOOMED,))
        with server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _mlflow(root: Path, s3: SeaweedFS, bucket: str) -> MLflowServer:
    return MLflowServer(
        root / "mlflow",
        backend_uri=f"sqlite:///{root / 'mlflow.db'}",
        auth_db_uri=f"sqlite:///{root / 'auth.db'}",
        artifacts_destination=f"s3://{bucket}/artifacts",
        admin_password="unused-admin-password",
        s3_env=s3.client_env(),
        auth=False,
    )


def _buckets(s3: SeaweedFS) -> set[str]:
    return {b["Name"] for b in s3.client().list_buckets()["Buckets"]}


def test_start_against_a_missing_bucket_fails_at_once_naming_bucket_and_endpoint(s3: SeaweedFS, tmp_path: Path) -> None:
    server = _mlflow(tmp_path, s3, MISSING)
    t0 = time.monotonic()
    with pytest.raises(BucketError) as info:
        server.start()
    seconds = time.monotonic() - t0
    message = str(info.value)
    assert seconds < 20, f"the refused start took {seconds:.0f} s"
    assert f"s3://{MISSING} at {s3.endpoint_url} does not exist" in message
    assert message.startswith("MLflow artifacts destination: ")
    assert s3.credentials.secret_key not in message
    assert server.proc is None  # checked before launching: no server process was started
    assert MISSING not in _buckets(s3)


def test_upload_to_a_bucket_deleted_under_a_running_server_fails_and_does_not_recreate_it(
    s3: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service import utils as tracking_utils

    server = _mlflow(tmp_path, s3, DOOMED)
    # an earlier test's set_tracking_uri / set_experiment (fluent globals) must not point this test elsewhere
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")  # the stack's client settings (local_stack/local.py)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    payload = tmp_path / "summary.json"
    payload.write_text('{"auc": 0.5}')
    with server:
        assert mlflow.get_tracking_uri() == server.url
        s3.client().delete_bucket(Bucket=DOOMED)
        assert DOOMED not in _buckets(s3)
        assert mlflow.active_run() is None
        run = mlflow.start_run(experiment_id=mlflow.create_experiment("missing-bucket"))
        t0 = time.monotonic()
        with pytest.raises(MlflowException) as info, run:
            mlflow.log_artifact(str(payload))
        seconds = time.monotonic() - t0
        status = MlflowClient().get_run(run.info.run_id).info.status
        server_log = server.log_tail(400)
    assert seconds < 40, f"the failed upload took {seconds:.0f} s"
    assert status == "FAILED"  # the run records the failure, not a silent success
    assert s3.credentials.secret_key not in str(info.value)
    assert s3.credentials.secret_key not in server_log
    assert f"{DOOMED}/artifacts/" in server_log
    assert "NoSuchBucket" in server_log
    assert DOOMED not in _buckets(s3)  # refused, not created on upload
