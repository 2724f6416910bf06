"""Flow `register`: the `hlip.stages.register` stage; every unit that talks to the tracking/registry server (log the
model, register the version, the promotion gate) is a Prefect task with retries.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows.common import prefect_runner, publish_summary
from hlip.stages import register as stage

# registry server I/O: retried; inputs are not cached (a re-run must register a new version)
RETRY: dict[str, Any] = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
                         "cache_policy": NO_CACHE}  # fmt: skip


@flow(name="register", log_prints=True)
def register_flow(params: str | None = None) -> dict[str, Any]:
    """Register the evaluated model and decide on its promotion; returns the decision."""
    params_ = stage.RegisterParams.load(params)
    config = params_.config
    result = stage.run(params_, prefect_runner({"": RETRY}))
    decision = result.decision
    rows = {"model": f"{config.name} v{result.version}", "decision": decision.reason,
            "model URI": f"models:/{config.name}@champion"}  # fmt: skip
    publish_summary("register", "Register", rows, result.run_id)
    print(f"{config.name} v{result.version}: {'PROMOTED to champion' if decision.promoted else 'stays challenger'}"
          f" ({decision.reason})")  # fmt: skip
    return decision.as_dict()


if __name__ == "__main__":
    register_flow()
