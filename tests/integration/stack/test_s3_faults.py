"""S3 stopped in the middle of an upload, then restarted: the upload is retried and completes, never half-visible."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack import SeaweedFS
from local_stack.local import BUCKETS, LocalStack

pytestmark = pytest.mark.integration

PART = 5 * 1024 * 1024  # the S3 minimum part size


@pytest.fixture
def s3() -> Iterator[SeaweedFS]:
    root = Path(tempfile.mkdtemp(prefix="hlip-s3-fault-"))
    try:
        with SeaweedFS(root / "sw", buckets=("raw",)) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _patient_client(server: SeaweedFS) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
        aws_access_key_id=server.credentials.access_key, aws_secret_access_key=server.credentials.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10, "mode": "standard"},
                      connect_timeout=2, read_timeout=10),
    )  # fmt: skip


def test_multipart_upload_survives_a_server_restart_and_is_invisible_until_complete(s3: SeaweedFS) -> None:
    client = _patient_client(s3)
    parts = [bytes([i]) * PART for i in (1, 2)] + [b"tail"]
    upload = client.create_multipart_upload(Bucket="raw", Key="big.bin")["UploadId"]
    done = [client.upload_part(Bucket="raw", Key="big.bin", UploadId=upload, PartNumber=1, Body=parts[0])["ETag"]]

    s3.stop()  # the server dies between parts: the next part meets a refused connection
    result: dict[str, Any] = {}

    def send_rest() -> None:
        try:
            for number, body in enumerate(parts[1:], start=2):
                etag = client.upload_part(Bucket="raw", Key="big.bin", UploadId=upload, PartNumber=number, Body=body)
                done.append(etag["ETag"])
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    sender = threading.Thread(target=send_rest)
    sender.start()
    time.sleep(1.0)
    s3.start()
    sender.join(120)
    assert "error" not in result, result.get("error")
    assert client.list_objects_v2(Bucket="raw").get("KeyCount", 0) == 0  # parts are not an object yet
    client.complete_multipart_upload(
        Bucket="raw", Key="big.bin", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(done)]},
    )  # fmt: skip
    assert client.get_object(Bucket="raw", Key="big.bin")["Body"].read() == b"".join(parts)


def test_mlflow_artifact_upload_waits_for_a_restarting_s3(
    stack: LocalStack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    import mlflow

    from hlip.tracking.runs import stage_run

    payload = tmp_path / "checkpoint.bin"
    payload.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    errors: list[BaseException] = []
    with stage_run("stack-s3-fault") as run:
        stack._stop("seaweedfs")  # S3 is gone while the client uploads through the tracking server

        def upload() -> None:
            try:
                mlflow.log_artifact(str(payload), run_id=run.info.run_id)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        uploader = threading.Thread(target=upload)
        uploader.start()
        time.sleep(1.5)
        stack.restart("seaweedfs")
        uploader.join(120)
    assert errors == []
    client = stack.seaweedfs.client()
    keys = [
        o["Key"] for o in client.list_objects_v2(Bucket=BUCKETS["mlflow"])["Contents"] if run.info.run_id in o["Key"]
    ]
    assert len(keys) == 1
    assert keys[0].endswith("checkpoint.bin")
    assert client.get_object(Bucket=BUCKETS["mlflow"], Key=keys[0])["Body"].read() == payload.read_bytes()
