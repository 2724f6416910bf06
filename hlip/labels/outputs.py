"""Files and metrics of the `label` stage.

``<out>/<part>/labels.parquet`` and ``failures.parquet`` per part, ``<out>/quality.{json,md}``, and the metrics
dict written to ``outputs/metrics/label.json`` (value counts per finding, quality macro means, LLM tokens/cost).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hlip.labels.evaluate import QualityReport
from hlip.labels.finding_list import FindingList
from hlip.labels.labeler import LabelResult

VALUE_NAMES = {1: "present", 0: "absent", -1: "uncertain"}
STAT_KEYS = ("reports", "labelled", "failed", "empty_reports", "cache_hits", "requests", "retries",
             "prompt_tokens", "completion_tokens", "cost_usd")  # fmt: skip
#: Wall-clock stats: logged to MLflow, kept out of the DVC metrics file so `dvc metrics diff` shows only changes
#: of the labels themselves.
TIMING_KEYS = ("seconds",)


def write_part(result: LabelResult, folder: Path) -> tuple[Path, Path]:
    """Write one part's label and failures tables; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    labels, failures = folder / "labels.parquet", folder / "failures.parquet"
    result.table.to_parquet(labels, index=False)
    result.failures.to_parquet(failures, index=False)
    return labels, failures


def value_counts(table: pd.DataFrame, findings: FindingList) -> dict[str, dict[str, int]]:
    """``{finding: {"present": n, "absent": n, "uncertain": n}}`` over the table's studies."""
    counts = table.groupby(["finding", "value"]).size()
    return {
        name: {label: int(counts.get((name, value), 0)) for value, label in VALUE_NAMES.items()}
        for name in findings.names
    }


def stage_metrics(
    results: Mapping[str, LabelResult], findings: FindingList, quality: QualityReport | None
) -> dict[str, Any]:
    """The stage's metrics: per part the run stats and value counts; the quality macro means when measured."""
    metrics: dict[str, Any] = {"findings": findings.name, "findings_version": findings.version}
    for part, result in results.items():
        stats = {k: result.stats[k] for k in STAT_KEYS if k in result.stats}
        metrics[part] = {**stats, "counts": value_counts(result.table, findings)}
    if quality is not None:
        metrics["quality"] = {k: v for k, v in quality.as_dict()["macro"].items() if v is not None}
        metrics["quality"]["n_studies"] = quality.n_studies
    return metrics


def timing_metrics(results: Mapping[str, LabelResult]) -> dict[str, float]:
    """``{"<part>/seconds": ...}``: the wall-clock stats of each part, for MLflow only."""
    return {f"{part}/{k}": float(r.stats[k]) for part, r in results.items() for k in TIMING_KEYS if k in r.stats}


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten the numeric leaves of `metrics` to ``a/b/c`` keys (for MLflow)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(numeric_metrics(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def write_quality(quality: QualityReport | None, findings: FindingList, out: Path) -> tuple[Path, Path]:
    """Write ``quality.json`` and ``quality.md`` (a note when no reference is configured)."""
    out.mkdir(parents=True, exist_ok=True)
    head = {"findings": findings.name, "findings_version": findings.version}
    if quality is None:
        body: dict[str, Any] = {**head, "reference": None}
        text = "No reference labels configured (`label.reference`): quality not measured.\n"
    else:
        body = {**head, **quality.as_dict()}
        text = f"# Label quality: `{findings.name}` {findings.version}\n\n{quality.to_markdown()}"
    json_path, md_path = out / "quality.json", out / "quality.md"
    json_path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    md_path.write_text(text)
    return json_path, md_path
