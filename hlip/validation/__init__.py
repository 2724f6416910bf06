"""Data contracts on the ingest manifests (great_expectations), drift against the last accepted run, reports.

`validate_manifests` runs every check, `write_report` saves the JSON and a readable HTML page. A critical failure
makes `ValidationReport.passed` false; the stage then stops the pipeline with a readable account.
"""

from hlip.validation.checks import Check, CheckResult, Severity
from hlip.validation.contract import ValidateConfig, validate_manifests
from hlip.validation.report import ValidationReport, write_report

__all__ = [
    "Check",
    "CheckResult",
    "Severity",
    "ValidateConfig",
    "ValidationReport",
    "validate_manifests",
    "write_report",
]
