"""`make pipeline`'s one Prefect server: on 127.0.0.1, used by flow runs of other processes, stopped for sure."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_stack.flow_server import IDLE_SERVICES_OFF, client_env
from local_stack.process import PidFile, listening_addresses, port_open, process_group

FLOW = textwrap.dedent(
    """
    from prefect import flow, task

    @task
    def add(x):
        return x + 1

    @flow(name="flow-server-probe")
    def probe():
        return add(41)

    assert probe() == 42
    """
)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack.flow_server", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    return {**clean, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def test_one_server_on_loopback_serves_flow_runs_of_other_processes_and_stops(
    tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "server"
    started = time.monotonic()
    assert _cli("start", str(root), env=env).returncode == 0
    assert time.monotonic() - started < 10  # `start` returns at once; the server boots while the corpus step runs
    waited = _cli("wait", str(root), env=env)
    assert waited.returncode == 0, waited.stderr
    settings = dict(line.split("=", 1) for line in waited.stdout.splitlines())  # what scripts/pipeline.sh exports
    assert settings == client_env(settings["PREFECT_API_URL"])
    url = settings["PREFECT_API_URL"]
    port = json.loads((root / "server.json").read_text())["port"]
    assert url == f"http://127.0.0.1:{port}/api"
    pid = PidFile(root / "server.pid").running_pid()
    assert pid is not None
    members = process_group(pid)
    addresses = set().union(*(listening_addresses(p) for p in members))
    assert addresses == {"0100007F"}  # 127.0.0.1 only

    (tmp_path / "probe.py").write_text(FLOW)
    run = subprocess.run(
        [sys.executable, str(tmp_path / "probe.py")], env={**env, **settings}, capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "View at" not in run.stdout + run.stderr  # the server has no UI: no link that would 404
    default = subprocess.run(
        [sys.executable, str(tmp_path / "probe.py")], env={**env, "PREFECT_API_URL": url}, capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    link = re.search(r"View at (http://\S+)", default.stdout + default.stderr)
    assert link is not None  # Prefect's default: a link derived from the API URL ...
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(urllib.request.Request(link.group(1), headers={"Accept": "text/html"}), timeout=10)
    assert missing.value.code == 404  # ... to a UI this server does not serve
    request = urllib.request.Request(f"{url}/flow_runs/filter", data=b"{}", method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.loads(response.read())
    assert [r["state_type"] for r in runs] == ["COMPLETED", "COMPLETED"]  # both runs reported to this server
    with urllib.request.urlopen(f"{url}/admin/settings", timeout=10) as response:
        services = json.loads(response.read())["server"]["services"]
    idle = {n.removeprefix("PREFECT_SERVER_SERVICES_").removesuffix("_ENABLED").lower() for n in IDLE_SERVICES_OFF}
    assert {name for name, s in services.items() if s.get("enabled") is False} >= idle | {"scheduler", "late_runs"}
    assert services["event_persister"]["enabled"] is True
    assert services["task_run_recorder"]["enabled"] is True
    deadline, tasks = time.monotonic() + 60, []
    while time.monotonic() < deadline:  # the task-run recorder writes from events, within its flush interval
        request = urllib.request.Request(f"{url}/task_runs/filter", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            tasks = [r["state_type"] for r in json.loads(response.read())]
        if tasks == ["COMPLETED", "COMPLETED"]:
            break
        time.sleep(1)
    assert tasks == ["COMPLETED", "COMPLETED"]  # each flow's task run is still recorded with those services off

    assert _cli("stop", str(root), env=env).returncode == 0
    assert process_group(pid) == []
    assert not port_open(port)
    assert not (root / "server.pid").exists()
    assert _cli("stop", str(root), env=env).returncode == 0  # stopping twice is harmless


def test_wait_fails_loudly_when_the_server_died(tmp_path: Path, env: dict[str, str]) -> None:
    root = tmp_path / "server"
    assert _cli("start", str(root), env=env).returncode == 0
    pid = PidFile(root / "server.pid").running_pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    waited = _cli("wait", str(root), "--timeout", "60", env=env)
    assert waited.returncode == 1
    assert "exited before it answered" in waited.stderr
    assert waited.stdout == ""  # nothing the pipeline would take for a URL
    _cli("stop", str(root), env=env)


def test_wait_without_a_start_fails(tmp_path: Path, env: dict[str, str]) -> None:
    waited = _cli("wait", str(tmp_path / "never"), env=env)
    assert waited.returncode == 1
    assert "no server was started" in waited.stderr
