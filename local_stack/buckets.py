"""Is an S3 bucket there? One fast ``HeadBucket`` whose failure names the bucket and the endpoint.

The stack's SeaweedFS refuses uploads to a missing bucket, as AWS S3 and MinIO do, and a client that uploads
to one learns it only after its retries (MLflow: "too many 500 error responses", no bucket name). These checks
run before such work starts; their messages carry the bucket and endpoint, never a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hlip.s3 import MLFLOW_ENDPOINT_ENV, s3_client


class BucketError(RuntimeError):
    """A bucket is missing, refused or unreachable; the message names bucket and endpoint, no secret."""


def bucket_of(uri: str) -> str | None:
    """The bucket of an ``s3://bucket/prefix`` URI, None for any other URI."""
    if not uri.startswith("s3://"):
        return None
    return uri[len("s3://") :].partition("/")[0] or None


def check_client(env: Mapping[str, str]) -> Any:
    """An S3 client as MLflow's artifact store would build it from `env`, failing fast rather than retrying."""
    return s3_client(env, endpoint_vars=MLFLOW_ENDPOINT_ENV, retries=2, connect_timeout=3, read_timeout=10)


def bucket_problem(client: Any, bucket: str) -> str | None:
    """Why `bucket` cannot be used through `client` (one line naming bucket and endpoint), None when it can."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

    where = f"s3://{bucket} at {client.meta.endpoint_url}"
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket", "NotFound"}:
            return f"bucket {where} does not exist: create it first (`make stack-up` creates the stack's buckets)"
        if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return f"access to bucket {where} is refused: wrong keys, or no s3:ListBucket permission on it"
        return f"bucket {where} cannot be checked: {code or 'error'}"
    except (EndpointConnectionError, ConnectTimeoutError):
        return f"bucket {where} cannot be checked: the endpoint is unreachable"
    except BotoCoreError as exc:  # no credentials, read timeout...: the class name says enough and holds no secret
        return f"bucket {where} cannot be checked: {type(exc).__name__}"
    return None


def require_bucket(client: Any, bucket: str, user: str = "") -> None:
    """Raise `BucketError` naming `bucket` and the endpoint (and `user`, what needs it) unless it can be used."""
    problem = bucket_problem(client, bucket)
    if problem is not None:
        raise BucketError(f"{user}: {problem}" if user else problem)
