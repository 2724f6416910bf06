"""Flow `validate`: data contracts on the ingest manifests; a critical failure stops the pipeline.

The report (JSON + HTML) is a stage output and an MLflow artifact. When the validation passes, its profile
becomes the drift baseline for the next run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import publish_summary, stage_params, write_stage_metrics
from hlip.config import from_dict, to_dict
from hlip.data.manifest import SCHEMAS
from hlip.tracking.runs import stage_run
from hlip.validation import ValidateConfig, ValidationReport, validate_manifests, write_report


class ValidationFailedError(RuntimeError):
    """Critical data-contract failures; the message is the readable account."""


@task
def run_validation(ingest_dir: Path, config: ValidateConfig, baseline: Path) -> ValidationReport:
    """Validate every part found under `ingest_dir` (one folder per part)."""
    parts = {p.name: p for p in sorted(ingest_dir.iterdir()) if (p / "studies.parquet").is_file()}
    if not parts:
        raise FileNotFoundError(f"no ingest output (studies.parquet) under {ingest_dir}; run the ingest stage first")
    columns = {name: list(schema.names) for name, schema in SCHEMAS.items()}
    return validate_manifests(parts, config, baseline, columns)


@flow(name="validate", log_prints=True)
def validate_flow(params: str | None = None) -> dict[str, Any]:
    """Validate the manifests; raises `ValidationFailedError` (after saving the report) on critical failures."""
    block = stage_params("validate", Path(params) if params else None)
    ingest_dir = Path(block.pop("ingest_dir", "outputs/ingest"))
    out = Path(block.pop("out", "outputs/validate"))
    baseline = Path(block.pop("baseline", "outputs/validate_baseline/profile.json"))
    config = from_dict(ValidateConfig, block, where="params.yaml:validate")
    with stage_run("validate", {"validate": to_dict(config)}) as run:
        import mlflow

        report = run_validation(ingest_dir, config, baseline)
        json_path, html_path = write_report(report, out)
        mlflow.log_artifact(str(json_path))
        mlflow.log_artifact(str(html_path))
        counts = report.as_dict()["counts"]
        mlflow.log_metrics({f"validate/{k}": float(v) for k, v in counts.items()})
        write_stage_metrics("validate", {"passed": report.passed, **counts})
        publish_summary("validate", "Validation", {"verdict": "passed" if report.passed else "FAILED", **counts,
                                                   "report": str(html_path)}, run.info.run_id)  # fmt: skip
        print(report.as_text())
        if not report.passed:
            raise ValidationFailedError(report.as_text())
    return report.as_dict()


if __name__ == "__main__":
    try:
        validate_flow()
    except ValidationFailedError:
        sys.exit(1)
