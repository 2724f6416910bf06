"""The one S3 client builder: where endpoint, credentials and region come from (real boto3 clients, no network)."""

from __future__ import annotations

import pytest

from hlip.s3 import DEFAULT_REGION, MLFLOW_ENDPOINT_ENV, s3_client

KEYS = {"AWS_ACCESS_KEY_ID": "HLIPUNIT", "AWS_SECRET_ACCESS_KEY": "unit-secret"}


@pytest.fixture(autouse=True)
def _no_aws_config(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """No ~/.aws of this machine leaks into the resolution (a profile's region would win otherwise)."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def test_an_endpoint_means_path_style_addressing_and_aws_means_auto() -> None:
    local = s3_client({**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:8333"})
    assert local.meta.endpoint_url == "http://127.0.0.1:8333"
    assert local.meta.config.s3["addressing_style"] == "path"
    aws = s3_client(KEYS)
    assert aws.meta.endpoint_url.startswith("https://s3.")
    assert aws.meta.config.s3["addressing_style"] == "auto"
    assert aws.meta.region_name == DEFAULT_REGION  # SigV4 needs a region even when none is configured


def test_endpoint_variables_are_read_in_order() -> None:
    env = {**KEYS, "HLIP_S3_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL": "http://127.0.0.1:2",
           "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:3"}  # fmt: skip
    assert s3_client(env).meta.endpoint_url == "http://127.0.0.1:1"
    assert s3_client(env, endpoint_vars=MLFLOW_ENDPOINT_ENV).meta.endpoint_url == "http://127.0.0.1:3"
    env["HLIP_S3_ENDPOINT_URL"] = ""  # an empty variable is unset
    assert s3_client(env).meta.endpoint_url == "http://127.0.0.1:2"


def test_keys_and_region_come_from_the_mapping_not_the_process() -> None:
    client = s3_client({**KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-central-1"})
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("HLIPUNIT", "unit-secret")
    assert client.meta.region_name == "eu-central-1"  # AWS_REGION before AWS_DEFAULT_REGION


def test_retries_and_timeouts_are_the_callers() -> None:
    client = s3_client(KEYS, retries=2, connect_timeout=3, read_timeout=10)
    assert client.meta.config.retries == {"total_max_attempts": 3, "mode": "standard"}  # botocore counts the first
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3, 10)


def test_a_missing_profile_is_a_clear_error() -> None:
    from botocore.exceptions import ProfileNotFound

    with pytest.raises(ProfileNotFound, match="no-such-profile"):
        s3_client({"AWS_PROFILE": "no-such-profile"})
