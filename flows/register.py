"""Flow `register`: log the served pyfunc model, register it as a new version, run the champion/challenger gate.

Reads the `register:` block of `params.yaml` (and the `ingest:` block, so serving prepares studies exactly as
training did). Writes `<out>/decision.json`, `<out>/model_card.md` and `outputs/metrics/register.json`. Every
MLflow call that talks to the tracking/registry server runs in a task with retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows.common import params_path, publish_summary, stage_params, write_stage_metrics
from hlip.config import to_dict
from hlip.data.config import split_ingest_block
from hlip.tracking.promotion import PromotionDecision, promote, write_decision
from hlip.tracking.registry import (
    RegisterConfig,
    read_benchmark_fingerprint,
    read_metrics,
    read_run_ids,
    register_study_model,
)
from hlip.tracking.runs import lineage_tags, stage_run

if TYPE_CHECKING:
    from hlip.tracking.pyfunc import ServingSpec

# registry server I/O: retried; inputs are not cached (a re-run must register a new version)
RETRY: dict[str, Any] = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
                         "cache_policy": NO_CACHE}  # fmt: skip


@contextmanager
def _in_run(run_id: str) -> Iterator[None]:
    """Log into run `run_id`: the flow's active run, or that run resumed (a task on another thread)."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id):
        yield


@task(**RETRY)
def log_model(spec: ServingSpec, run_id: str) -> str:
    """Log the pyfunc model in the stage run; returns its model URI."""
    from hlip.tracking.pyfunc import log_study_model

    with _in_run(run_id):
        return str(log_study_model(spec).model_uri)


@task(**RETRY)
def register(
    model_uri: str,
    spec: ServingSpec,
    name: str,
    metrics: dict[str, float],
    run_ids: dict[str, str],
    benchmark: str | None = None,
) -> tuple[str, str]:
    """Register a new version with tags and model card; returns (version, card)."""
    version, card = register_study_model(model_uri, spec, name, metrics, lineage_tags(), run_ids, benchmark)
    return str(version.version), card


@task(**RETRY)
def gate(config: RegisterConfig, version: str) -> PromotionDecision:
    """Champion/challenger promotion gate."""
    return promote(config.name, version, config.metric, config.margin, config.greater_is_better)


@flow(name="register", log_prints=True)
def register_flow(params: str | None = None) -> dict[str, Any]:
    """Register the evaluated model and decide on its promotion; returns the decision."""
    from hlip.tracking.pyfunc import ServingSpec

    path = Path(params) if params else None
    config = RegisterConfig.from_dict(stage_params("register", path))
    _, _, ingest_config = split_ingest_block(stage_params("ingest", path))
    metrics = read_metrics(config.metrics)
    if config.metric not in metrics:
        raise ValueError(f"{config.metrics} has no metric {config.metric!r} (params.yaml:register.metric)")
    spec = ServingSpec.resolve(config.model_dir, config.prompts, ingest_config)
    out = Path(config.out)
    with stage_run("register", {"register": to_dict(config)}) as run:
        import mlflow

        run_id = run.info.run_id
        mlflow.log_metrics(metrics)
        model_uri = log_model(spec, run_id)
        run_ids = {**read_run_ids(config.run_ids), "register": run_id}
        benchmark = read_benchmark_fingerprint(config.metrics)
        version, card = register(model_uri, spec, config.name, metrics, run_ids, benchmark)
        decision = gate(config, version)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_card.md").write_text(card)
        mlflow.log_artifact(str(out / "model_card.md"))
        mlflow.log_artifact(str(write_decision(decision, out / "decision.json")))
        summary = {"version": version, "promoted": decision.promoted, config.metric: decision.challenger_value,
                   "champion_value": decision.champion_value, "mlflow_run_id": run_id}  # fmt: skip
        write_stage_metrics("register", summary)
        rows = {"params": str(params or params_path()), "model": f"{config.name} v{version}",
                "decision": decision.reason, "model URI": f"models:/{config.name}@champion"}  # fmt: skip
        publish_summary("register", "Register", rows, run_id)
        print(f"{config.name} v{version}: {'PROMOTED to champion' if decision.promoted else 'stays challenger'}"
              f" ({decision.reason})")  # fmt: skip
    return decision.as_dict()


if __name__ == "__main__":
    register_flow()
