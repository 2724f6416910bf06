"""The vocabulary of the data contracts: a check (one great_expectations expectation with a severity) and its
result, with offending values never copied (they may be identifiers): only counts and row keys are kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """What a failed check does: stop the pipeline, or be reported and logged."""

    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True)
class Check:
    """One expectation on one manifest table.

    Attributes:
        table: Manifest table name (``studies``, ``scans``, ``reports``, ``quarantine``).
        expectation: great_expectations expectation class name, e.g. ``ExpectColumnValuesToBeUnique``.
        kwargs: Its arguments (``column``, ``min_value``, ...).
        severity: Critical (stops the pipeline) or warning.
        why: One line a reader understands without knowing great_expectations.
    """

    table: str
    expectation: str
    kwargs: dict[str, Any]
    severity: Severity
    why: str

    @property
    def column(self) -> str:
        """The column checked, or "" for table-level checks."""
        return str(self.kwargs.get("column", ""))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; never holds offending values, only counts and row keys."""

    check: Check
    success: bool
    observed: Any = None
    unexpected_count: int = 0
    element_count: int = 0
    unexpected_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "table": self.check.table,
            "expectation": self.check.expectation,
            "column": self.check.column,
            "kwargs": self.check.kwargs,
            "severity": self.check.severity.value,
            "why": self.check.why,
            "success": self.success,
            "observed": self.observed,
            "unexpected_count": self.unexpected_count,
            "element_count": self.element_count,
            "unexpected_keys": self.unexpected_keys,
        }
