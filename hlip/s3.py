"""The one boto3 S3 client builder of the project: raw-data sources, bucket checks and the local stack use it.

```python
from hlip.s3 import s3_client

client = s3_client()                                   # os.environ: endpoint, keys, profile, region
client = s3_client(stack_env, endpoint_vars=MLFLOW_ENDPOINT_ENV, retries=2)   # what MLflow would use
```

- Endpoint: the first set variable of `endpoint_vars` (unset: AWS itself). With an endpoint (SeaweedFS, MinIO,
  Ceph) addressing is path-style; on AWS it is boto3's `auto`.
- Credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` of the mapping when set, else
  `AWS_PROFILE`, else boto3's own chain (`~/.aws`, instance roles).
- Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, else us-east-1 (SigV4 signing needs one even where
  the server ignores it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

#: Endpoint variables of the data sources (`hlip.data.source`); the first one set wins.
DATA_ENDPOINT_ENV = ("HLIP_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
#: Endpoint variables MLflow's artifact store reads, MLflow's own first (`local_stack.buckets`).
MLFLOW_ENDPOINT_ENV = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
DEFAULT_REGION = "us-east-1"
#: Error codes S3 servers answer for an object that is not there (a HEAD gets a bare 404).
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
#: Error codes S3 servers answer for a conditional request (`IfMatch`) whose object has changed.
CHANGED_CODES = frozenset({"412", "PreconditionFailed"})


def endpoint_of(env: Mapping[str, str], names: Sequence[str] = DATA_ENDPOINT_ENV) -> str | None:
    """The first non-empty endpoint variable of `names` in `env`, None for AWS itself."""
    return next((env[k] for k in names if env.get(k)), None)


def s3_client(
    env: Mapping[str, str] | None = None,
    *,
    endpoint_vars: Sequence[str] = DATA_ENDPOINT_ENV,
    retries: int = 3,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
) -> Any:
    """A boto3 S3 client configured from `env` (default: `os.environ`).

    Args:
        env: Environment mapping to read (see the module docstring).
        endpoint_vars: Where the endpoint is configured, first match wins.
        retries: Retries of a call after a transient error (botocore makes `retries + 1` attempts); callers
            that check before work starts pass few, to fail fast with their own message.
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for data.
    """
    import boto3
    from botocore.config import Config

    env = os.environ if env is None else env
    endpoint = endpoint_of(env, endpoint_vars)
    keys = env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") if keys else None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") if keys else None,
        aws_session_token=env.get("AWS_SESSION_TOKEN") if keys else None,
        profile_name=None if keys else env.get("AWS_PROFILE") or None,
    )
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or session.region_name or DEFAULT_REGION
    config = Config(
        s3={"addressing_style": "path" if endpoint else "auto"},
        signature_version="s3v4",
        retries={"max_attempts": retries, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore `ClientError` ("NoSuchKey", "404", "PreconditionFailed", ...); "" for any
    other exception (a connection failure has none)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
