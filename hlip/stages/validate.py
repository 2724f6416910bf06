"""Stage `validate`: data contracts on the ingest manifests; a critical failure stops the pipeline.

Reads the `validate:` block. Writes the check results (`<out>/validation.{json,html}`), the drift against the last
accepted run beside its baseline (`drift.{json,html}`: it depends on the runs before, so it is no DVC output; all
four are MLflow artifacts), `outputs/metrics/validate.json` and, when the validation passes, the drift baseline for
the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlip.config import ConfigError, from_dict, to_dict
from hlip.data.manifest import SCHEMAS
from hlip.stages.base import TaskRunner, direct, read_block, write_metrics, write_run_record
from hlip.tracking.runs import stage_run
from hlip.validation import ValidateConfig, ValidationReport, validate_manifests, write_report

STAGE = "validate"


class ValidationFailedError(RuntimeError):
    """Critical data-contract failures; the message is the readable account."""


@dataclass(frozen=True)
class ValidateParams:
    """The `validate:` block.

    Attributes:
        ingest_dir: The ingest stage's output folder (one sub-folder per part).
        out: Report folder.
        baseline: Profile of the last accepted run (drift reference; rewritten when validation passes).
        config: The checks' settings.
    """

    ingest_dir: Path
    out: Path
    baseline: Path
    config: ValidateConfig = field(default_factory=ValidateConfig)

    @classmethod
    def from_block(cls, block: Mapping[str, Any], where: str = "params.yaml:validate") -> ValidateParams:
        """Build from the block; the three paths are required, the rest are `ValidateConfig` keys."""
        rest = dict(block)
        paths = {k: rest.pop(k, None) for k in ("ingest_dir", "out", "baseline")}
        missing = [k for k, v in paths.items() if not v]
        if missing:
            raise ConfigError(f"{where}: missing required key(s) {missing}")
        config = from_dict(ValidateConfig, rest, where=where)
        ingest_dir, out, baseline = (Path(str(paths[k])) for k in ("ingest_dir", "out", "baseline"))
        return cls(ingest_dir, out, baseline, config)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ValidateParams:
        """The block of the parameters file."""
        return cls.from_block(read_block(STAGE, path))


def validate_parts(ingest_dir: Path, config: ValidateConfig, baseline: Path) -> ValidationReport:
    """Validate every part found under `ingest_dir` (one folder per part)."""
    parts = {p.name: p for p in sorted(ingest_dir.iterdir()) if (p / "studies.parquet").is_file()}
    if not parts:
        raise FileNotFoundError(f"no ingest output (studies.parquet) under {ingest_dir}; run the ingest stage first")
    columns = {name: list(schema.names) for name, schema in SCHEMAS.items()}
    return validate_manifests(parts, config, baseline, columns)


@dataclass(frozen=True)
class ValidateResult:
    """The report, its HTML page and the MLflow run."""

    report: ValidationReport
    html: Path
    run_id: str


def run(params: ValidateParams, runner: TaskRunner = direct) -> ValidateResult:
    """Validate the manifests; raises `ValidationFailedError` (after saving the report) on critical failures."""
    with stage_run(STAGE, {STAGE: to_dict(params.config)}) as mlrun:
        import mlflow

        report = runner(validate_parts, params.ingest_dir, params.config, params.baseline, name="validate")
        # the drift depends on the runs before: beside the baseline, outside the stage's DVC output
        json_path, html_path, *drift_paths = write_report(report, params.out, drift_dir=params.baseline.parent)
        for path in (json_path, html_path, *drift_paths):
            mlflow.log_artifact(str(path))
        counts = report.checks_dict()["counts"]
        mlflow.log_metrics({f"validate/{k}": float(v) for k, v in counts.items()})
        write_metrics(STAGE, {"passed": report.passed, **counts})
        write_run_record(STAGE, mlrun.info.run_id)
        if not report.passed:
            raise ValidationFailedError(report.as_text())
        return ValidateResult(report, html_path, mlrun.info.run_id)
