"""The deployment's serving policy: roots and limits from the environment and the model config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlip.serving.policy import ServingLimits, ServingPolicy


def test_default_policy_allows_no_path() -> None:
    policy = ServingPolicy.from_config(None, env={})
    assert policy.roots == ()
    assert policy.limits == ServingLimits()


def test_roots_of_the_environment_and_the_model_config_are_allowed_and_normalised(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    env = {"HLIP_SERVE_ROOTS": f"{tmp_path / 'link'}, s3://bucket/a/b", "HLIP_SERVE_MAX_FILES": "7"}
    policy = ServingPolicy.from_config({"roots": ["/elsewhere"], "max_voxels": 99}, env=env)
    assert policy.roots == ("/elsewhere", str((tmp_path / "real").resolve()), "s3://bucket/a/b/")
    assert policy.local_roots == [Path("/elsewhere"), (tmp_path / "real").resolve()]
    assert policy.s3_roots == ["s3://bucket/a/b/"]
    assert (policy.limits.max_files, policy.limits.max_voxels) == (7, 99)


@pytest.mark.parametrize(
    ("config", "env", "match"),
    [
        ({"roots": ["relative/folder"]}, {}, "absolute"),
        ({"roots": ["s3://bucket/../x"]}, {}, r"'\.\.'"),
        ({"roots": ["https://host/x"]}, {}, "only local folders"),
        ({"max_files": 0}, {}, "positive"),
        ({}, {"HLIP_SERVE_MAX_VOXELS": "lots"}, "integer"),
        ({"max_file": 3}, {}, "max_file"),
    ],
)
def test_bad_deployment_settings_fail_loudly(config: dict[str, object], env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ServingPolicy.from_config(config, env=env)
