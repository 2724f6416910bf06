"""Flow `label`: each part's reports -> silver finding labels (1 present, 0 absent, -1 uncertain).

Run it as `python -m flows.label` (the `dvc.yaml` stage) or as a Prefect deployment; both read the `label:` block
of `params.yaml`. The `rules` backend (medspacy) is the embedded default; the `llm` backend calls an
OpenAI-compatible endpoint, in a task tagged ``llm-endpoint`` (cap it across flow runs with
``prefect concurrency-limit create llm-endpoint N``) that Prefect retries when the endpoint is unreachable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
from prefect import Task, flow, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from flows.common import params_path, publish_summary, stage_params, write_stage_metrics
from hlip.config import from_dict, to_dict
from hlip.labels.config import LabelConfig
from hlip.labels.evaluate import QualityReport, evaluate_labels, load_reference
from hlip.labels.finding_list import FindingList, load_findings
from hlip.labels.labeler import LabelResult, label_part
from hlip.labels.llm import EndpointUnavailableError
from hlip.labels.outputs import numeric_metrics, stage_metrics, timing_metrics, write_part, write_quality
from hlip.tracking.runs import stage_run


def _endpoint_down(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry the LLM task only when the endpoint could not be reached (not on bad parameters)."""
    return isinstance(state.data, EndpointUnavailableError | httpx.TransportError)


@task(task_run_name="label-rules-{part}")
def label_part_rules(part: str, ingest_dir: Path, findings: FindingList, config: LabelConfig) -> LabelResult:
    """Label one part with the rules backend (medspacy, local CPU)."""
    return label_part(ingest_dir / part / "reports.parquet", findings, config)


@task(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=30),
    retry_condition_fn=_endpoint_down,
    tags=["llm-endpoint"],
    task_run_name="label-llm-{part}",
)
def label_part_llm(part: str, ingest_dir: Path, findings: FindingList, config: LabelConfig) -> LabelResult:
    """Label one part through the LLM endpoint (answers are cached: a retry resends only what failed)."""
    return label_part(ingest_dir / part / "reports.parquet", findings, config)


@task
def measure_quality(
    results: dict[str, LabelResult], findings: FindingList, config: LabelConfig
) -> QualityReport | None:
    """Score the parts the reference covers against it (None without a reference)."""
    if config.reference is None:
        return None
    import pandas as pd

    tables = [results[p].table for p in config.reference.parts if p in results]
    if not tables:
        return None
    reference = load_reference(config.reference)
    return evaluate_labels(pd.concat(tables, ignore_index=True), reference, config.reference.findings)


@flow(name="label", log_prints=True)
def label_flow(params: str | None = None) -> dict[str, Any]:
    """Label every part named in `params.yaml:label.parts`; returns the stage metrics."""
    block = stage_params("label", Path(params) if params else None)
    config = from_dict(LabelConfig, block, where="params.yaml:label")
    findings = load_findings(config.findings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    out, ingest_dir = Path(config.out), Path(config.ingest_dir)
    if config.llm.cache_dir:  # a declared DVC output: it exists (empty) for the rules backend too
        Path(config.llm.cache_dir).mkdir(parents=True, exist_ok=True)
    labeller = label_part_llm if config.backend == "llm" else label_part_rules
    run_params = {"label": {**to_dict(config), "findings_version": findings.version}}
    with stage_run("label", run_params) as run:
        import mlflow

        results = {part: labeller(part, ingest_dir, findings, config) for part in config.parts}
        for part, result in results.items():
            write_part(result, out / part)
        quality = measure_quality(results, findings, config)
        json_path, md_path = write_quality(quality, findings, out)
        mlflow.log_artifact(str(json_path))
        mlflow.log_artifact(str(md_path))
        metrics = stage_metrics(results, findings, quality)
        write_stage_metrics("label", metrics)
        mlflow.log_metrics(numeric_metrics({k: v for k, v in metrics.items() if k != "findings_version"}))
        mlflow.log_metrics(timing_metrics(results))
        rows: dict[str, Any] = {"params": str(params or params_path()), "backend": config.backend,
                                "findings": f"{findings.name} {findings.version}"}  # fmt: skip
        for part, result in results.items():
            rows[f"{part} labelled / failed"] = f"{result.stats.get('labelled', 0)} / {len(result.failures)}"
        if quality is not None:
            rows.update({f"quality macro {k}": f"{v:.3f}" for k, v in quality.macro.items()})
        publish_summary("label", "Labels", rows, run.info.run_id)
        print(quality.to_markdown() if quality is not None else "quality: no reference configured")
    return metrics


if __name__ == "__main__":
    label_flow()
