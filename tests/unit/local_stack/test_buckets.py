"""The bucket preflight's own logic: which URIs name a bucket, and one clear line per failure, never a secret."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_stack.buckets import BucketError, bucket_of, bucket_problem, check_client, require_bucket
from local_stack.mlflow_server import MLflowServer
from local_stack.process import free_port

SECRET = "unit-test-secret-key-value"


def _env(endpoint: str) -> dict[str, str]:
    return {"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "HLIPUNIT", "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


class _Refusing:
    """Stands in for a boto3 client whose HeadBucket fails with `code` (our branching on the code only)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.meta = type("Meta", (), {"endpoint_url": "http://127.0.0.1:9"})()

    def head_bucket(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": self.code, "Message": "refused"}}, "HeadBucket")


def test_bucket_of_reads_only_s3_uris() -> None:
    assert bucket_of("s3://hlip-mlflow/artifacts") == "hlip-mlflow"
    assert bucket_of("s3://hlip-mlflow") == "hlip-mlflow"
    assert bucket_of("s3://") is None
    assert bucket_of("/srv/mlflow-artifacts") is None
    assert bucket_of("file:///srv/mlflow") is None


@pytest.mark.parametrize(
    ("code", "words"), [("404", "does not exist"), ("NoSuchBucket", "does not exist"), ("403", "is refused")]
)
def test_a_failed_head_bucket_is_one_line_naming_bucket_and_endpoint(code: str, words: str) -> None:
    problem = bucket_problem(_Refusing(code), "hlip-typo")
    assert problem is not None
    assert f"bucket s3://hlip-typo at http://127.0.0.1:9 {words}" in problem
    assert "\n" not in problem


def test_unreachable_endpoint_is_reported_fast_without_the_secret() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BucketError) as info:
        require_bucket(check_client(_env(endpoint)), "hlip-mlflow", "MLflow artifacts destination")
    assert time.monotonic() - t0 < 10
    message = str(info.value)
    assert message == f"MLflow artifacts destination: bucket s3://hlip-mlflow at {endpoint} cannot be checked: " \
        "the endpoint is unreachable"  # fmt: skip
    assert SECRET not in message


def _server(tmp_path: Path, destination: str, endpoint: str) -> MLflowServer:
    return MLflowServer(tmp_path, backend_uri="sqlite:///unused.db", auth_db_uri="sqlite:///unused-auth.db",
                        artifacts_destination=destination, admin_password="unused", s3_env=_env(endpoint),
                        auth=False)  # fmt: skip


def test_mlflow_server_checks_its_s3_bucket_before_launching(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    local = _server(tmp_path, str(tmp_path / "artifacts"), endpoint)
    local.check_artifact_bucket()  # not S3: nothing to check, no network
    server = _server(tmp_path, "s3://hlip-mlflow/artifacts", endpoint)
    with pytest.raises(BucketError, match=r"s3://hlip-mlflow at http://127\.0\.0\.1:\d+ cannot be checked"):
        server.start()
    assert server.proc is None
