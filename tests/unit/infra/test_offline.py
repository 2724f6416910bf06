"""The stage flows start Prefect servers with its usage telemetry off, also when `dvc repro` runs them directly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROBE = "import flows.pretrain, prefect.settings as s; print(s.get_current_settings().server.analytics_enabled)"


def _analytics_enabled(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_ANALYTICS_ENABLED"} | extra
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_flows_turn_prefect_telemetry_off_by_default() -> None:
    assert _analytics_enabled({}) == "False"


def test_an_explicit_setting_still_wins() -> None:
    assert _analytics_enabled({"PREFECT_SERVER_ANALYTICS_ENABLED": "true"}) == "True"
