"""One local stack per test session (free loopback ports, a private folder), stopped at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.local import COMPONENTS, LocalStack, StackPorts
from local_stack.process import port_open, process_group
from local_stack.seaweedfs import SOCKETS_FILE

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # Not under pytest's 0700 basetemp: PostgreSQL runs as the `postgres` user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="hlip-stack-"))
    root.chmod(0o755)
    local = LocalStack(root / "stack", ports=StackPorts.free(), workdir=REPO)
    # not ours to stop; it waits for a signal (a fixed sleep ran out in a long CI session and read as "stopped")
    bystander = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        local.up()
        pids = local.running_pids()
        yield local
        # stack-down stops exactly what stack-up started: every process group, every port, nothing else, from
        # another LocalStack object, as `make stack-down` runs in another process
        sockets = json.loads((local.seaweedfs.root / SOCKETS_FILE).read_text())
        assert all(Path(p).is_socket() for p in sockets if "admin" not in p)  # the admin one may come late
        down = LocalStack(local.root, ports=local.ports, workdir=REPO)
        assert down.down() == list(reversed(COMPONENTS))
        assert [pid for pid in pids if process_group(pid)] == [], "stack-down left processes running"
        ports = (local.ports.postgres, local.ports.s3, local.ports.mlflow, local.ports.prefect)
        assert not any(port_open(p) for p in ports)
        assert bystander.poll() is None, f"stack-down stopped a process it did not start (exit {bystander.poll()})"
        assert not [p for p in sockets if Path(p).exists()], "stack-down left SeaweedFS sockets in /tmp"
        assert local.down() == []
    finally:
        local.down()
        bystander.kill()
        bystander.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stack_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The variables of stack.env, set in this test's environment (what `source stack.env` does)."""
    env = stack.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PREFECT_HOME", str(stack.root / "client-prefect-home"))
    return env
