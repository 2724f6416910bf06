"""`make stack-up` / `stack-down` semantics on a real stack: health, loopback only, env file, clean stop."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from local_stack.local import COMPONENTS, LocalStack
from local_stack.process import listening_addresses, process_group

pytestmark = pytest.mark.integration

ENV_KEYS = {
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "HLIP_S3_ENDPOINT_URL", "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING", "HLIP_OPTUNA_STORAGE",
}  # fmt: skip


def test_every_component_is_healthy_and_listens_on_loopback_only(stack: LocalStack) -> None:
    rows = stack.status()
    assert [r["name"] for r in rows] == list(COMPONENTS)
    assert all(r["healthy"] for r in rows), rows
    for pid in stack.running_pids():
        for member in process_group(pid):
            addresses = listening_addresses(member)
            assert addresses <= {"0100007F"}, f"pid {member} listens on {addresses}"  # 127.0.0.1 only


def test_env_file_is_private_and_sourcing_it_gives_the_client_environment(stack: LocalStack) -> None:
    assert stat.S_IMODE(stack.env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((stack.root / "stack.json").stat().st_mode) == 0o600
    script = f"set -e; source {shlex.quote(str(stack.env_file))}; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={}, check=True).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    assert env.keys() >= ENV_KEYS
    assert {k: env[k] for k in stack.client_env()} == stack.client_env()
    assert env["HLIP_OPTUNA_STORAGE"].startswith("postgresql+psycopg://hlip:")


def test_up_is_idempotent(stack: LocalStack) -> None:
    before = stack.running_pids()
    assert stack.up() == dict.fromkeys(COMPONENTS, 0.0)  # everything already running: nothing started
    assert stack.running_pids() == before


def test_a_flow_runs_view_at_link_opens_the_prefect_ui(stack: LocalStack, tmp_path: Path) -> None:
    """Every flow run logs "View at <link>": on the stack that link must open the run's page, not a 404."""
    (tmp_path / "probe.py").write_text(
        "from prefect import flow\n\n@flow(name='ui-link-probe')\ndef probe():\n    return 1\n\nprobe()\n"
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, **stack.client_env(),
           "PREFECT_HOME": str(tmp_path / "home")}  # fmt: skip
    run = subprocess.run([sys.executable, str(tmp_path / "probe.py")], env=env, capture_output=True, text=True,
                         timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    links = re.findall(r"View at (http://\S+)", run.stdout + run.stderr)
    assert links, (run.stdout + run.stderr)[-2000:]
    assert links[0].startswith("http://127.0.0.1:")
    browser = urllib.request.Request(links[0], headers={"Accept": "text/html"})  # the UI answers page requests
    with urllib.request.urlopen(browser, timeout=30) as response:
        assert response.status == 200
        assert "<html" in response.read().decode(errors="replace").lower()
