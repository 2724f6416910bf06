"""Flow `label`: the `hlip.stages.label` stage, each part a Prefect task.

Run it as `python -m flows.label` (the `dvc.yaml` stage) or as a Prefect deployment; both read the `label:` block
of `params.yaml`. Parts of the `llm` backend run in tasks tagged ``llm-endpoint`` (cap them across flow runs with
``prefect concurrency-limit create llm-endpoint N``) that Prefect retries when the endpoint is unreachable.
"""

from __future__ import annotations

from typing import Any

import httpx
from prefect import Task, flow
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from flows.common import prefect_runner, publish_summary
from hlip.labels.llm import EndpointUnavailableError
from hlip.stages import label as stage


def _endpoint_down(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry the LLM task only when the endpoint could not be reached (not on bad parameters)."""
    return isinstance(state.data, EndpointUnavailableError | httpx.TransportError)


LLM_TASKS = {
    "label-llm-": {
        "retries": 2,
        "retry_delay_seconds": exponential_backoff(backoff_factor=30),
        "retry_condition_fn": _endpoint_down,
        "tags": ["llm-endpoint"],
    },
}


@flow(name="label", log_prints=True)
def label_flow(params: str | None = None) -> dict[str, Any]:
    """Label every part named in `params.yaml:label.parts`; returns the stage metrics."""
    config = stage.load(params)
    result = stage.run(config, prefect_runner(LLM_TASKS))
    rows: dict[str, Any] = {"backend": config.backend, "findings": f"{result.findings.name} {result.findings.version}"}
    for part, labelled in result.results.items():
        rows[f"{part} labelled / failed"] = f"{labelled.stats.get('labelled', 0)} / {len(labelled.failures)}"
    if result.quality is not None:
        rows.update({f"quality macro {k}": f"{v:.3f}" for k, v in result.quality.macro.items()})
    publish_summary("label", "Labels", rows, result.run_id)
    print(result.quality.to_markdown() if result.quality is not None else "quality: no reference configured")
    return result.metrics


if __name__ == "__main__":
    label_flow()
