"""The Prefect server of the stack records flow runs in PostgreSQL; its API refuses clients without auth."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import psycopg
import pytest

from local_stack.local import WORK_POOL, LocalStack

pytestmark = pytest.mark.integration

FLOW = """
from prefect import flow

@flow(name="stack-smoke")
def smoke(x: int) -> int:
    return x + 1

assert smoke(41) == 42
"""


def test_a_flow_run_is_recorded_in_postgres(stack: LocalStack, stack_env: dict[str, str]) -> None:
    import os

    subprocess.run([sys.executable, "-c", FLOW], check=True, env=dict(os.environ), timeout=120, capture_output=True)
    with psycopg.connect(stack.database_url("prefect").replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute(
            "SELECT r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id WHERE f.name = 'stack-smoke'"
        ).fetchall()
        pools = conn.execute("SELECT type FROM work_pool WHERE name = %s", (WORK_POOL,)).fetchall()
    assert ("COMPLETED",) in rows
    assert pools == [("process",)]


def test_api_refuses_a_client_without_credentials(stack: LocalStack) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{stack.prefect_api_url}/flows/filter", data=b"{}", timeout=10)
    assert info.value.code == 401
