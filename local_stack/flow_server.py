"""One Prefect server for a whole `dvc repro`, instead of a temporary server started by every stage.

A flow run with no ``PREFECT_API_URL`` starts Prefect's temporary server in its own process (about 6 s on 2 cores),
and `dvc repro` runs each stage as a process of its own: seven stages, seven servers. ``make pipeline`` instead
starts one server on 127.0.0.1 before the corpus step, waits for it before `dvc repro` and stops it at the end:

    python -m local_stack.flow_server start DIR   # launch, return at once (pidfile, port and log under DIR)
    python -m local_stack.flow_server wait DIR    # wait until it answers; print the client settings (KEY=VALUE)
    python -m local_stack.flow_server stop DIR    # stop exactly that process group

The server uses the same ``PREFECT_HOME`` (its SQLite database) as the temporary servers would, so the flow runs
land where they always did. Nothing about the outputs depends on which server recorded the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from local_stack.process import LOOPBACK, ManagedServer, PidFile, free_port, log_tail, port_open

STATE = "server.json"
# The server's loop services that act on deployments, work pools, schedules, pauses, cancellations and automations:
# a `dvc repro` has none of those, yet each loop wakes every 5-60 s (about 0.5 of the server's 1.4 CPU seconds a
# minute while idle, measured beside a training on 2 cores). The event and task-run recorders stay on, so every flow
# and task run is recorded as before.
IDLE_SERVICES_OFF = {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
    for name in ("SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "REPOSSESSOR", "CANCELLATION_CLEANUP",
                 "CLEANUP_RECONCILER", "TRIGGERS")
}  # fmt: skip
PIDFILE = "server.pid"
LOG = "prefect-server.log"


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return json.loads(response.read() or b"null") is True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def api_url(port: int) -> str:
    """The API URL of a server on `port` of the loopback interface."""
    return f"http://{LOOPBACK}:{port}/api"


def start(root: Path) -> int:
    """Launch ``prefect server start`` on a free loopback port and return its port (without waiting for it)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", LOOPBACK, "--port",
            str(port), "--no-ui", "--analytics-off"]  # fmt: skip
    env = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_API_URL": api_url(port),
        **IDLE_SERVICES_OFF,
    }
    server = ManagedServer("prefect-server", argv, root / LOG, ready=lambda: True, env=env)
    (root / LOG).unlink(missing_ok=True)
    server.launch()
    server.write_pidfile(root / PIDFILE)
    (root / STATE).write_text(json.dumps({"port": port}))
    return port


def client_env(url: str) -> dict[str, str]:
    """What a flow run needs to report to the server at `url`: its API URL, and no UI URL (the server runs without
    its UI and stops with the pipeline, so Prefect's default "View at <link>" line would point at a 404)."""
    return {"PREFECT_API_URL": url, "PREFECT_UI_URL": ""}


def wait(root: Path, timeout: float = 90.0) -> str:
    """Wait until the server `start` launched answers; return its API URL.

    Raises:
        RuntimeError: It was never started, has exited, or did not answer within `timeout` seconds (the message
            ends with its log's last lines).
    """
    if not (root / STATE).is_file():
        raise RuntimeError(f"no server was started under {root}")
    port = int(json.loads((root / STATE).read_text())["port"])
    url = api_url(port)
    pidfile = PidFile(root / PIDFILE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pidfile.alive():
            raise RuntimeError(f"the Prefect server exited before it answered:\n{log_tail(root / LOG, 20)}")
        if port_open(port) and _healthy(url):
            return url
        time.sleep(0.25)
    raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s:\n{log_tail(root / LOG, 20)}")


def stop(root: Path) -> bool:
    """Stop the server `start` launched (its whole process group); True if it was running."""
    stopped = PidFile(root / PIDFILE).stop()
    (root / STATE).unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    """``start|wait|stop DIR``; `wait` prints `client_env` as KEY=VALUE lines, or exits with status 1 (and the
    reason on stderr) when it finds no answering server."""
    parser = argparse.ArgumentParser(prog="python -m local_stack.flow_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "wait", "stop"))
    parser.add_argument("root", type=Path, help="Folder for the pidfile, the port and the server's log.")
    parser.add_argument("--timeout", type=float, default=90.0, help="Seconds `wait` waits (default 90).")
    args = parser.parse_args(argv)
    if args.command == "start":
        start(args.root)
    elif args.command == "wait":
        try:
            for key, value in client_env(wait(args.root, args.timeout)).items():
                print(f"{key}={value}")
        except RuntimeError as exc:
            print(f"flow_server: {exc}", file=sys.stderr)
            return 1
    else:
        stop(args.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
