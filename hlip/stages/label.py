"""Stage `label`: each part's reports -> silver finding labels (1 present, 0 absent, -1 uncertain).

Reads the `label:` block (`hlip.labels.config.LabelConfig`). The `rules` backend (medspacy) is the embedded
default; `llm` calls an OpenAI-compatible endpoint (a flow runs those parts in retried tasks). Writes
`<out>/<part>/labels.parquet` (checked: one row per finding and study, values 1/0/-1), `failures.parquet`,
`<out>/quality.{json,md}` against reference labels when given, and `outputs/metrics/label.json` (results only:
timings go to MLflow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import from_dict, to_dict
from hlip.labels.config import LabelConfig
from hlip.labels.evaluate import QualityReport, evaluate_labels, load_reference
from hlip.labels.finding_list import FindingList, load_findings
from hlip.labels.labeler import LabelResult, label_part
from hlip.labels.outputs import numeric_metrics, stage_metrics, timing_metrics, write_part, write_quality
from hlip.labels.table import check_label_table
from hlip.stages.base import TaskRunner, direct, read_block, write_metrics, write_run_record
from hlip.tracking.runs import stage_run

STAGE = "label"


def load(path: str | Path | None = None) -> LabelConfig:
    """The `label:` block of the parameters file as `LabelConfig` (unknown keys rejected)."""
    return from_dict(LabelConfig, read_block(STAGE, path), where="params.yaml:label")


def label_one_part(part: str, ingest_dir: Path, findings: FindingList, config: LabelConfig) -> LabelResult:
    """Label one part's reports with the configured backend."""
    return label_part(ingest_dir / part / "reports.parquet", findings, config)


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


@dataclass(frozen=True)
class LabelOutcome:
    """Per-part results, the quality report (or None), the metrics written and the MLflow run."""

    results: dict[str, LabelResult]
    findings: FindingList
    quality: QualityReport | None
    metrics: dict[str, Any]
    run_id: str


def run(config: LabelConfig, runner: TaskRunner = direct) -> LabelOutcome:
    """Label every part of `config.parts`; each part is one unit of `runner` (named ``label-<backend>-<part>``)."""
    findings = load_findings(config.findings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    out, ingest_dir = Path(config.out), Path(config.ingest_dir)
    if config.llm.cache_dir:  # a declared DVC output: it exists (empty) for the rules backend too
        Path(config.llm.cache_dir).mkdir(parents=True, exist_ok=True)
    with stage_run(STAGE, {STAGE: {**to_dict(config), "findings_version": findings.version}}) as mlrun:
        import mlflow

        results = {
            part: runner(label_one_part, part, ingest_dir, findings, config, name=f"label-{config.backend}-{part}")
            for part in config.parts
        }
        for part, result in results.items():
            check_label_table(result.table, findings.names)  # where the table is written, not only in tests
            write_part(result, out / part)
        quality = measure_quality(results, findings, config)
        json_path, md_path = write_quality(quality, findings, out)
        mlflow.log_artifact(str(json_path))
        mlflow.log_artifact(str(md_path))
        metrics = stage_metrics(results, findings, quality)
        write_metrics(STAGE, metrics)
        mlflow.log_metrics(numeric_metrics({k: v for k, v in metrics.items() if k != "findings_version"}))
        mlflow.log_metrics(timing_metrics(results))
        write_run_record(STAGE, mlrun.info.run_id)
        return LabelOutcome(results, findings, quality, metrics, mlrun.info.run_id)
