"""A failure injected in a stage's I/O task is retried by Prefect; a failure that persists is reported: the flow
run fails, the stage's MLflow run ends FAILED, and nothing downstream pretends to have succeeded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _task_runs(name: str) -> list[Any]:
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name]))))

    return anyio.run(read)


def _flaky_ingest(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[str]:
    """Make the first `failures` calls for part `train` raise a transport error; returns the parts called, in order."""
    import flows.ingest
    import hlip.data.ingest

    real = hlip.data.ingest.ingest
    calls: list[str] = []

    def flaky(source: str, out: Path, **kwargs: Any) -> dict[str, Any]:
        calls.append(Path(out).name)
        if calls[-1] == "train" and calls.count("train") <= failures:
            raise ConnectionResetError("S3 endpoint reset the connection (injected)")
        return real(source, out, **kwargs)

    monkeypatch.setattr(hlip.data.ingest, "ingest", flaky)
    no_wait = {prefix: {**options, "retry_delay_seconds": 0.0} for prefix, options in flows.ingest.RETRIES.items()}
    monkeypatch.setattr(flows.ingest, "RETRIES", no_wait)  # same retries, no waiting
    return calls


def _mlflow_statuses(experiment: str) -> list[str]:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path('outputs/mlflow/mlflow.db').resolve()}")
    return list(mlflow.search_runs(experiment_names=[experiment])["status"])


def test_a_transient_failure_is_retried_and_the_stage_completes(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.ingest import ingest_flow

    calls = _flaky_ingest(monkeypatch, failures=1)
    summaries = ingest_flow()
    assert calls.count("train") == 2  # the failed part was run again
    assert calls.count("benchmark") == 1  # the other part was not
    assert summaries["train"]["scans"] > 0
    completed = [r for r in _task_runs("ingest-train") if r.state.is_completed()]
    train_run = max(completed, key=lambda r: r.end_time)  # this test's run (the session's server keeps the others)
    assert train_run.run_count == 2
    assert _mlflow_statuses("ingest") == ["FINISHED"]


def test_a_persistent_failure_is_reported_and_the_run_marked_failed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import ingest_flow

    calls = _flaky_ingest(monkeypatch, failures=100)
    with pytest.raises(ConnectionResetError, match="injected"):
        ingest_flow()
    assert calls.count("train") == 3  # 1 try + 2 retries
    failed = [r for r in _task_runs("ingest-train") if r.state.is_failed()]
    assert failed
    assert max(failed, key=lambda r: r.end_time).run_count == 3
    assert "FAILED" in _mlflow_statuses("ingest")
    assert not Path("outputs/metrics/ingest.json").exists()  # no metrics for a stage that did not finish
