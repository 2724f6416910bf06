"""A DVC remote on the stack's S3: push and pull a tracked folder with the generated credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.local import LocalStack

pytestmark = pytest.mark.integration
DVC = str(Path(sys.executable).parent / "dvc")


def _run(cwd: Path, *argv: str) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_push_and_pull_through_the_stack(stack: LocalStack, stack_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "scratch"
    (repo / "data" / "sub").mkdir(parents=True)
    files = {"data/a.txt": b"alpha\n", "data/sub/b.bin": os.urandom(4096)}
    for name, body in files.items():
        (repo / name).write_bytes(body)
    _run(repo, "git", "init", "-q")
    _run(repo, DVC, "init", "-q")
    _run(repo, DVC, "add", "-q", "data")
    remote = f"{stack_env['HLIP_DVC_REMOTE_URL']}/{tmp_path.name}"
    _run(repo, DVC, "remote", "add", "-d", "stack", remote)
    _run(repo, DVC, "remote", "modify", "stack", "endpointurl", stack_env["AWS_ENDPOINT_URL"])
    _run(repo, DVC, "push", "-q")
    config = (repo / ".dvc" / "config").read_text()
    assert stack.secrets.s3_secret_key not in config  # credentials come from the environment only

    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    _run(repo, DVC, "pull", "-q")
    assert {name: (repo / name).read_bytes() for name in files} == files
    listed = stack.seaweedfs.client().list_objects_v2(Bucket="hlip-dvc", Prefix=tmp_path.name)
    assert listed["KeyCount"] >= len(files)
