"""A standing Prefect server on PostgreSQL (basic auth on) and a process worker polling one work pool."""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from local_stack.process import LOOPBACK, ManagedServer, free_port, port_open


def _prefect() -> str:
    return str(Path(sys.executable).parent / "prefect")


def _common_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def api_get(api_url: str, path: str, auth: str, method: str = "GET", body: Any = None) -> Any:
    """Call the Prefect REST API with basic auth; return the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{api_url}{path}", data=data, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


class PrefectServer(ManagedServer):
    """``prefect server start`` on 127.0.0.1 with its database in PostgreSQL.

    Args:
        root: Folder for PREFECT_HOME and the log.
        database_url: ``postgresql+asyncpg://...``.
        auth_string: ``user:password`` every API client must send (PREFECT_API_AUTH_STRING).
        port: HTTP port (a free one when omitted).
    """

    def __init__(self, root: Path, database_url: str, auth_string: str, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.auth_string = auth_string
        # with its UI: flow runs log "View at http://127.0.0.1:PORT/runs/flow-run/ID", which must open
        argv = [_prefect(), "server", "start", "--host", LOOPBACK, "--port", str(self.port), "--analytics-off"]
        env = {
            **_common_env(root / "home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
            "PREFECT_SERVER_API_AUTH_STRING": auth_string,
            "PREFECT_API_AUTH_STRING": auth_string,
            "PREFECT_API_URL": self.api_url,
        }
        super().__init__("prefect-server", argv, root / "prefect-server.log", ready=self._ready, env=env)

    @property
    def api_url(self) -> str:
        """The API URL clients set as PREFECT_API_URL."""
        return f"http://{LOOPBACK}:{self.port}/api"

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            return api_get(self.api_url, "/health", self.auth_string) is True
        except (urllib.error.URLError, OSError, ValueError):
            return False


class PrefectWorker(ManagedServer):
    """``prefect worker start --type process`` polling `pool` (created if missing).

    Args:
        root: Folder for PREFECT_HOME and the log.
        api_url: The server's API URL.
        auth_string: The server's basic-auth string.
        pool: Work pool name.
        workdir: Folder flow runs start in (the project checkout).
    """

    def __init__(self, root: Path, api_url: str, auth_string: str, pool: str, workdir: Path) -> None:
        self.api_url = api_url
        self.auth_string = auth_string
        self.pool = pool
        argv = [_prefect(), "worker", "start", "--pool", pool, "--type", "process", "--name", f"{pool}-local"]
        env = {**_common_env(root / "home"), "PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": auth_string}
        super().__init__("prefect-worker", argv, root / "prefect-worker.log", ready=self._ready, env=env)
        self.workdir = workdir

    def _ready(self) -> bool:
        """The pool exists and this worker has sent a heartbeat."""
        try:
            workers = api_get(self.api_url, f"/work_pools/{self.pool}/workers/filter", self.auth_string, "POST", {})
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return any(w.get("name") == f"{self.pool}-local" for w in workers or [])
