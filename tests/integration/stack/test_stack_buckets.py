"""The stack's S3 never creates a bucket on upload; `status` names a missing bucket and `up` creates it again."""

from __future__ import annotations

import pytest

from local_stack.__main__ import main
from local_stack.local import BUCKETS, LocalStack

pytestmark = pytest.mark.integration


def _buckets(stack: LocalStack) -> set[str]:
    return {b["Name"] for b in stack.seaweedfs.client().list_buckets()["Buckets"]}


def test_the_stack_buckets_exist_and_an_upload_to_a_misspelt_one_is_refused(stack: LocalStack) -> None:
    from botocore.exceptions import ClientError

    assert set(BUCKETS.values()) <= _buckets(stack)
    assert stack.bucket_problems() == []
    typo = BUCKETS["mlflow"].replace("mlflow", "mlfow")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        stack.seaweedfs.client().put_object(Bucket=typo, Key="run/summary.json", Body=b"{}")
    assert typo not in _buckets(stack)  # SeaweedFS's default would have created it silently


def test_status_names_a_missing_bucket_and_up_creates_it_again(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = BUCKETS["raw"]
    stack.seaweedfs.client().delete_bucket(Bucket=raw)
    try:
        rows = {row["name"]: row for row in stack.status()}
        expected = f"bucket s3://{raw} at {stack.s3_endpoint} does not exist"
        assert rows["seaweedfs"]["healthy"] is False
        assert str(rows["seaweedfs"]["problem"]).startswith(expected)
        assert all(row["healthy"] and row["problem"] is None for name, row in rows.items() if name != "seaweedfs")
        assert main(["status", "--root", str(stack.root)]) == 1
        out = capsys.readouterr().out
        assert "UNHEALTHY" in out
        assert expected in out
        assert stack.secrets.s3_secret_key not in out
    finally:
        stack.up()  # every component already runs: only the missing bucket is created
    assert raw in _buckets(stack)
    assert all(row["healthy"] and row["problem"] is None for row in stack.status())
