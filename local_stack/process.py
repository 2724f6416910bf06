"""A server process owned by the project: started with a log file, health-checked, stopped for sure."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


#: Lowest port `free_port` hands out (below it: well-known and commonly configured service ports).
PORT_FLOOR = 20000
_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_random = random.SystemRandom()  # never the global `random`, which tests and training seed


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (outgoing connections take their local port from it)."""
    try:
        low, high = (int(v) for v in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # the Linux default
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on the loopback interface right now, outside the ephemeral range, new to this process.

    Not `bind(0)`: that port comes from the ephemeral range, from which the kernel also picks the local port of
    every outgoing connection. A server that binds its port a moment after it was chosen can then find it taken
    by a client socket, often one of its own: ``weed mini`` binds its volume port only after its volume server
    has connected to its master, and died of exactly that in CI ("Volume server listener error"). Random ports
    between `PORT_FLOOR` and the ephemeral range are never handed to client sockets; each is returned once per
    process, so one server's several ports are distinct.
    """
    low, _ = ephemeral_range()
    if low - PORT_FLOOR >= 1000:
        for _ in range(200):
            port = _random.randrange(PORT_FLOOR, low)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    while True:  # a kernel whose ephemeral range leaves no room below it: the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def as_user(user: str | None) -> dict[str, Any]:
    """``subprocess`` keyword arguments that run a child as `user` with only that user's primary group."""
    if user is None:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ("(no log)" when there is none)."""
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ManagedServer:
    """Run `argv` as a child process in its own process group, logging to `log_path`.

    Args:
        name: Human-readable name used in messages.
        argv: The command line.
        log_path: File that receives the server's stdout and stderr.
        ready: A callable that returns True once the server serves requests.
        env: Extra environment variables.
        user: Run as this system user (only when started as root, e.g. PostgreSQL refuses to run as root).
        stop_signal: Signal that asks the server to shut down cleanly.
        signal_group: Send `stop_signal` to the whole process group (False: to the leader only, which then
            stops its own children, as the PostgreSQL postmaster does).
    """

    stop_signal: int = signal.SIGTERM
    signal_group: bool = True

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready = ready
        self.env = env or {}
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until `ready()`; raise with the log tail if it dies or times out."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process and return at once (`wait_ready` waits for it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # own process group: stop() reaches its children too
                **as_user(self.user),
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until `ready()`; stop the process and raise with the log tail if it dies or times out."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}")
            if self.ready():
                log.info("%s is up (pid %d)", self.name, self.proc.pid)
                return
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        if self.signal_group:
            os.killpg(pgid, self.stop_signal)
        else:
            self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        _kill_group_leftovers(pgid)
        log.info("%s stopped", self.name)

    def write_pidfile(self, path: Path) -> None:
        """Record the running process so another process (``stack-down``) can stop exactly this one."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running: no pidfile to write")
        PidFile(path).write(self.proc.pid, self.stop_signal, self.signal_group)

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log."""
        return log_tail(self.log_path, lines)

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # fields after "(comm)" start at field 3


def _kill_group_leftovers(pgid: int) -> None:
    """SIGKILL whatever still runs in the process group `pgid` (children that outlived their leader)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class PidFile:
    """A JSON pidfile naming a process by pid *and* start time, so a recycled pid is never signalled.

    Args:
        path: The pidfile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pid: int, stop_signal: int, signal_group: bool) -> None:
        """Record `pid` with its start time and how to stop it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": pid, "start_ticks": _start_ticks(pid), "signal": int(stop_signal), "group": signal_group}
        self.path.write_text(json.dumps(record))

    def running_pid(self) -> int | None:
        """The recorded pid if that very process still runs (same start time), else None."""
        if not self.path.is_file():
            return None
        record = json.loads(self.path.read_text())
        pid = int(record["pid"])
        ticks = _start_ticks(pid)
        return pid if ticks is not None and ticks == record["start_ticks"] else None

    def alive(self) -> bool:
        """Whether the recorded process still runs (same start time, not a zombie awaiting its parent)."""
        pid = self.running_pid()
        return pid is not None and _alive(pid, json.loads(self.path.read_text())["start_ticks"])

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the recorded process (and its process group); remove the pidfile. True if it was running."""
        pid = self.running_pid()
        if pid is None:
            self.path.unlink(missing_ok=True)
            return False
        record = json.loads(self.path.read_text())
        if record["group"]:
            os.killpg(pid, record["signal"])  # started with start_new_session: its pgid is its pid
        else:
            os.kill(pid, record["signal"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, record["start_ticks"]):
            time.sleep(0.1)
        _kill_group_leftovers(pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid, record["start_ticks"]):
            time.sleep(0.1)
        self.path.unlink(missing_ok=True)
        return True


def _alive(pid: int, ticks: int | None) -> bool:
    """Whether `pid` is the same process and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] != "Z" and int(fields[19]) == ticks


def listening_addresses(pid: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp: 0100007F = 127.0.0.1) of `pid`'s listening TCP sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                addresses.add(cols[1].split(":")[0])
    return addresses


def process_group(pgid: int) -> list[int]:
    """Pids (not zombies) whose process group is `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids
