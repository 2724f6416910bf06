"""The data contract of the ingest manifests: which checks, at which severity, and running them over all parts.

Parts (e.g. ``train`` and ``benchmark``) are validated together, so cross-part rules hold: no patient appears
in two parts. Settings come from the ``validate:`` block of ``params.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hlip.validation.checks import Check, Severity
from hlip.validation.drift import compare, load_profile, profile, save_profile
from hlip.validation.report import DriftThresholds, ValidationReport
from hlip.validation.runner import run_checks

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TABLES = ("studies", "scans", "reports", "quarantine", "files")
KEY_COLUMNS = {"studies": "study_key", "scans": "scan_key", "reports": "study_key", "patients": "patient_key"}
# Identifier patterns that must not survive de-identification, checked independently of the scrubber's own rules.
IDENTIFIER_PATTERNS = {
    "date": r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b",
    "phone": r"\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b",
    "long_number": r"\b\d{6,}\b",
    "dicom_person_name": r"\b[A-Za-z'-]+\^[A-Za-z'-]+",
    "email": r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b",
}


@dataclass(frozen=True)
class ValidateConfig:
    """The ``validate:`` block.

    Attributes:
        spacing_mm: Allowed voxel spacing range of model-ready scans, in mm.
        min_nonzero_fraction: Share of non-zero voxels below which a scan is considered blank.
        report_chars: Allowed length range of a report text.
        min_report_coverage: Share of studies that must have a report (warning below).
        max_quarantined_file_share: Share of input files quarantined above which the export is suspect (warning).
        drift_columns: Categorical columns profiled for drift, per table.
        drift: Thresholds of the total variation distance to the last accepted run.
    """

    spacing_mm: tuple[float, float] = (0.2, 12.0)
    min_nonzero_fraction: float = 0.02
    report_chars: tuple[int, int] = (40, 20000)
    min_report_coverage: float = 0.9
    max_quarantined_file_share: float = 0.2
    drift_columns: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"scans": ("kind", "plane"), "quarantine": ("reason",), "studies": ("part",)}
    )
    drift: DriftThresholds = field(default_factory=DriftThresholds)


def schema_checks(columns: Mapping[str, list[str]]) -> list[Check]:
    """One exact column-set check per table (`columns`: the ingest schemas, plus the ``part`` column added here)."""
    return [
        Check(
            table,
            "ExpectTableColumnsToMatchSet",
            {"column_set": [*cols, "part"], "exact_match": True},
            Severity.CRITICAL,
            "the manifest schema is what downstream stages read",
        )
        for table, cols in columns.items()
    ]


def content_checks(config: ValidateConfig) -> list[Check]:
    """The checks on values (keys, ranges, identifiers, accounting), run on the tables after `derive`."""
    crit, warn = Severity.CRITICAL, Severity.WARNING
    lo, hi = config.spacing_mm
    checks = [
        Check("studies", "ExpectTableRowCountToBeBetween", {"min_value": 1}, crit, "an ingest with no study"),
        Check("studies", "ExpectColumnValuesToBeUnique", {"column": "study_key"}, crit, "study keys identify studies"),
        Check(
            "studies", "ExpectColumnValuesToNotBeNull", {"column": "patient_key"}, crit, "splits are made by patient"
        ),
        Check(
            "studies",
            "ExpectColumnValuesToBeBetween",
            {"column": "n_scans", "min_value": 1},
            crit,
            "a study row must have at least one model-ready scan",
        ),
        Check(
            "studies",
            "ExpectColumnMeanToBeBetween",
            {"column": "has_report_int", "min_value": config.min_report_coverage},
            warn,
            "studies without a report cannot be used for language-image training",
        ),
        Check(
            "patients",
            "ExpectColumnValuesToBeBetween",
            {"column": "n_parts", "max_value": 1},
            crit,
            "a patient in two parts (e.g. train and benchmark) leaks test data into training",
        ),
        Check("scans", "ExpectColumnValuesToBeUnique", {"column": "scan_key"}, crit, "scan keys identify scans"),
        Check(
            "scans",
            "ExpectColumnValuesToBeInSet",
            {"column": "study_key_known", "value_set": [True]},
            crit,
            "every scan belongs to a study of the studies table",
        ),
        Check(
            "scans",
            "ExpectColumnValuesToBeBetween",
            {"column": "spacing_min", "min_value": lo},
            crit,
            "voxel spacing must be physical",
        ),
        Check(
            "scans",
            "ExpectColumnValuesToBeBetween",
            {"column": "spacing_max", "max_value": hi},
            crit,
            "voxel spacing must be physical",
        ),
        Check(
            "scans",
            "ExpectColumnValuesToBeBetween",
            {"column": "voxel_std", "min_value": 1.0},
            crit,
            "a constant volume carries no image",
        ),
        Check(
            "scans",
            "ExpectColumnValuesToBeBetween",
            {"column": "nonzero_fraction", "min_value": config.min_nonzero_fraction},
            warn,
            "an almost blank volume is suspect",
        ),
        Check("scans", "ExpectColumnValuesToBeUnique", {"column": "path"}, crit, "one volume file per scan"),
        Check("reports", "ExpectColumnValuesToBeUnique", {"column": "study_key"}, crit, "one report per study"),
        Check(
            "reports",
            "ExpectColumnValueLengthsToBeBetween",
            {"column": "text", "min_value": config.report_chars[0], "max_value": config.report_chars[1]},
            warn,
            "a very short or very long report is likely a broken export",
        ),
        Check(
            "quarantine",
            "ExpectColumnValuesToNotBeNull",
            {"column": "reason"},
            crit,
            "every rejection carries its reason",
        ),
        Check(
            "files",
            "ExpectColumnValuesToBeInSet",
            {"column": "disposition", "value_set": ["used", "quarantined", "unused"]},
            crit,
            "every input file is accounted for",
        ),
        Check(
            "files",
            "ExpectColumnMeanToBeBetween",
            {"column": "quarantined_int", "max_value": config.max_quarantined_file_share},
            warn,
            "a large quarantined share points at a broken export or a reader gap",
        ),
    ]
    checks += [
        Check(
            "reports",
            "ExpectColumnValuesToNotMatchRegex",
            {"column": "text", "regex": rx},
            crit,
            f"identifier pattern '{name}' left in report text",
        )
        for name, rx in IDENTIFIER_PATTERNS.items()
    ]
    return checks


def load_parts(parts: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    """Read every manifest table of every part, concatenated with a ``part`` column."""
    import pandas as pd

    tables: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        frames = []
        for part, folder in parts.items():
            path = folder / f"{name}.parquet"
            if path.is_file():
                frames.append(pd.read_parquet(path).assign(part=part))
        if frames:
            tables[name] = pd.concat(frames, ignore_index=True)
    return tables


def derive(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Add the derived columns and tables the checks read (numeric flags, spacing bounds, patient parts)."""
    import pandas as pd

    out = dict(tables)
    if "studies" in out:
        studies = out["studies"].assign(has_report_int=out["studies"]["has_report"].astype(int))
        out["studies"] = studies
        per_patient = studies.groupby("patient_key")["part"].nunique().rename("n_parts").reset_index()
        out["patients"] = per_patient
    if "scans" in out:
        scans = out["scans"]
        known = set(out["studies"]["study_key"]) if "studies" in out else set()
        spacing = scans["spacing"].apply(lambda s: list(s) if s is not None else [0.0])
        out["scans"] = scans.assign(
            spacing_min=spacing.apply(min),
            spacing_max=spacing.apply(max),
            study_key_known=scans["study_key"].isin(known),
        )
    if "files" in out:
        out["files"] = out["files"].assign(quarantined_int=(out["files"]["disposition"] == "quarantined").astype(int))
    out.setdefault("quarantine", pd.DataFrame({"reason": pd.Series(dtype=str), "part": pd.Series(dtype=str)}))
    return out


def validate_manifests(
    parts: Mapping[str, Path], config: ValidateConfig, baseline: Path, schema_columns: Mapping[str, list[str]]
) -> ValidationReport:
    """Validate the manifests of every part; when the result passes, it becomes the new drift baseline.

    Args:
        parts: Part name -> ingest output folder.
        config: The contract settings.
        baseline: The JSON profile of the last accepted run (read, and rewritten when this run passes).
        schema_columns: The expected columns of each manifest table.
    """
    raw = load_parts(parts)
    tables = derive(raw)
    results = run_checks(raw, schema_checks(schema_columns), KEY_COLUMNS)
    results += run_checks(tables, content_checks(config), KEY_COLUMNS)
    current = profile(tables, config.drift_columns)
    previous = load_profile(baseline)
    report = ValidationReport(
        results=results,
        drifts=compare(current, previous) if previous else [],
        thresholds=config.drift,
        baseline_found=previous is not None,
    )
    if report.passed:
        save_profile(baseline, current)
    log.info("%s", report.as_text())
    return report
