"""Stage `ingest`: raw DICOM + reports of each part -> de-identified volumes and manifest tables.

Reads the `ingest:` block of `params.yaml`: `parts` (part name -> `{dicom, reports}`: local folders or `s3://`
prefixes), `out`, and the library settings (`hlip.data.config.IngestConfig`). Writes `<out>/<part>/` per part,
`outputs/metrics/ingest.json` (counts only) and an MLflow run in experiment `ingest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import ConfigError, to_dict
from hlip.data.config import IngestConfig, split_ingest_block
from hlip.stages.base import TaskRunner, direct, read_block, write_metrics, write_run_record
from hlip.tracking.runs import stage_run

STAGE = "ingest"
# counts that describe the data; `studies_processed` / `studies_unchanged` describe the run and go to MLflow only
RESULT_KEYS = ("studies", "studies_with_scans", "studies_with_report", "scans", "files", "files_used",
               "files_quarantined", "reports")  # fmt: skip
RUN_KEYS = ("studies_processed", "studies_unchanged")


@dataclass(frozen=True)
class IngestParams:
    """The `ingest:` block.

    Attributes:
        parts: Part name -> ``{"dicom": folder or s3 prefix, "reports": CSV or None}``.
        out: Output folder (one sub-folder per part).
        config: The library settings (series rules, volume checks, preprocessing, de-identification).
    """

    parts: dict[str, dict[str, str]]
    out: Path
    config: IngestConfig

    @classmethod
    def from_block(cls, block: Mapping[str, Any], where: str = "params.yaml:ingest") -> IngestParams:
        """Build from the block; `parts` and `out` are required, other keys go to `IngestConfig` (unknown: error)."""
        missing = [k for k in ("parts", "out") if not block.get(k)]
        if missing:
            raise ConfigError(f"{where}: missing required key(s) {missing}")
        parts, out, config = split_ingest_block(block)
        return cls(parts, Path(out), config)

    @classmethod
    def load(cls, path: str | Path | None = None) -> IngestParams:
        """The block of the parameters file (`hlip.stages.base.params_path`)."""
        return cls.from_block(read_block(STAGE, path))


@dataclass(frozen=True)
class IngestResult:
    """Per-part summaries (`hlip.data.ingest.ingest`), the metrics written and the MLflow run."""

    summaries: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    run_id: str


def ingest_part(part: str, dicom: str, reports: str | None, out: Path, config: IngestConfig) -> dict[str, Any]:
    """Ingest one part into `out/part` (incremental: unchanged studies are kept)."""
    from hlip.data.ingest import ingest

    return ingest(dicom, out / part, reports=reports, config=config)


def run(params: IngestParams, runner: TaskRunner = direct) -> IngestResult:
    """Ingest every part; `runner` runs each part (a flow passes one with retries)."""
    if not params.parts:
        raise ConfigError("params.yaml:ingest.parts names no part to ingest")
    with stage_run(STAGE, {STAGE: {**to_dict(params.config), "parts": params.parts}}) as mlrun:
        import mlflow

        summaries = {
            part: runner(
                ingest_part, part, spec["dicom"], spec.get("reports"), params.out, params.config, name=f"ingest-{part}"
            )
            for part, spec in params.parts.items()
        }
        metrics = {part: {k: s[k] for k in RESULT_KEYS if k in s} for part, s in summaries.items()}
        write_metrics(STAGE, metrics)
        for part, s in summaries.items():
            mlflow.log_metrics({f"{part}/{k}": float(s[k]) for k in (*RESULT_KEYS, *RUN_KEYS) if k in s})
            mlflow.log_dict({k: s[k] for k in ("scans_by_kind", "quarantined_by_reason") if k in s},
                            f"summary/{part}.json")  # fmt: skip
        write_run_record(
            STAGE, mlrun.info.run_id, {part: {k: s[k] for k in RUN_KEYS if k in s} for part, s in summaries.items()}
        )
        return IngestResult(summaries, metrics, mlrun.info.run_id)
