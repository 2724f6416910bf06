"""scripts/heartbeat.sh: a quiet command run by the setup and corpus scripts still shows a line on stderr, keeps
its own stdout and exit status."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "heartbeat.sh"


def _run(command: str) -> subprocess.CompletedProcess[str]:
    program = f'HLIP_HEARTBEAT=1; source "{SCRIPT}"; out=$({command}); rc=$?; echo "captured=[$out]"; exit $rc'
    return subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=False)


def test_quiet_command_gets_heartbeats_on_stderr_and_keeps_its_stdout() -> None:
    result = _run("with_heartbeat corpus 'checking data' bash -c 'sleep 3.5; echo {}'")
    assert result.returncode == 0
    assert "captured=[{}]" in result.stdout  # the caller's $(...) sees only the command's output
    beats = [line for line in result.stderr.splitlines() if line.startswith("corpus: checking data, still running")]
    assert len(beats) >= 2


def test_exit_status_is_the_commands() -> None:
    result = _run("with_heartbeat setup installing bash -c 'exit 7'")
    assert result.returncode == 7
    assert "still running" not in result.stderr  # it ended before the first beat
