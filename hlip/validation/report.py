"""The validation report: every check result and the drift, as JSON, a readable HTML page and plain text.

The check results are a function of the manifests and the settings; the drift also of the last accepted run's
profile, i.e. of the workspace's history. `write_report` keeps them in separate files, so that the stage's DVC
output (the checks) is what a fresh clone writes, and the drift sits beside the baseline it was measured against.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlip.validation.checks import CheckResult, Severity
from hlip.validation.drift import Drift


@dataclass(frozen=True)
class DriftThresholds:
    """Total-variation distances above which drift is a warning or a critical failure."""

    warn: float = 0.10
    fail: float = 0.30


@dataclass(frozen=True)
class ValidationReport:
    """All results of one validation.

    Attributes:
        results: One result per check.
        drifts: Drift per tracked column (empty when there is no accepted baseline yet).
        thresholds: Drift thresholds in force.
        baseline_found: Whether an accepted baseline existed.
    """

    results: list[CheckResult]
    drifts: list[Drift] = field(default_factory=list)
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    baseline_found: bool = False

    @property
    def critical_failures(self) -> list[CheckResult]:
        """Failed critical checks."""
        return [r for r in self.results if not r.success and r.check.severity is Severity.CRITICAL]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed warning-level checks."""
        return [r for r in self.results if not r.success and r.check.severity is Severity.WARNING]

    def drift_level(self, drift: Drift) -> str:
        """``ok``, ``warning`` or ``critical`` for one drift."""
        if drift.distance > self.thresholds.fail:
            return "critical"
        return "warning" if drift.distance > self.thresholds.warn else "ok"

    @property
    def passed(self) -> bool:
        """True when no critical check failed and no drift is critical."""
        return not self.critical_failures and all(self.drift_level(d) != "critical" for d in self.drifts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form: the checks, then the drift."""
        return {**self.checks_dict(), **self.drift_dict()}

    def checks_dict(self) -> dict[str, Any]:
        """The check results and the verdict (which also counts critical drift)."""
        return {
            "passed": self.passed,
            "counts": {
                "checks": len(self.results),
                "failed_critical": len(self.critical_failures),
                "failed_warning": len(self.warnings),
            },
            "results": [r.as_dict() for r in self.results],
        }

    def drift_dict(self) -> dict[str, Any]:
        """The drift against the last accepted run (history-dependent)."""
        return {
            "baseline_found": self.baseline_found,
            "drift_thresholds": {"warn": self.thresholds.warn, "fail": self.thresholds.fail},
            "drift": [
                {
                    "column": d.column,
                    "distance": d.distance,
                    "level": self.drift_level(d),
                    "baseline": d.baseline,
                    "current": d.current,
                }
                for d in self.drifts
            ],
        }

    def as_text(self) -> str:
        """A readable account: verdict, then each failure with why it matters."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"validation {verdict}: {len(self.results)} checks, {len(self.critical_failures)} critical "
            f"failure(s), {len(self.warnings)} warning(s)"
        ]
        for r in self.critical_failures + self.warnings:
            where = f"{r.check.table}.{r.check.column}" if r.check.column else r.check.table
            detail = (
                f"{r.unexpected_count} of {r.element_count} rows" if r.unexpected_count else f"observed {r.observed}"
            )
            keys = f"; e.g. {', '.join(r.unexpected_keys[:3])}" if r.unexpected_keys else ""
            lines.append(
                f"  [{r.check.severity.value}] {where}: {r.check.expectation} ({detail}{keys}) - {r.check.why}"
            )
        for d in self.drifts:
            if self.drift_level(d) != "ok":
                lines.append(f"  [{self.drift_level(d)}] drift of {d.column}: total variation {d.distance:.3f}")
        if not self.baseline_found:
            lines.append("  (no accepted baseline yet: this run becomes the baseline if it passes)")
        return "\n".join(lines)


def write_report(report: ValidationReport, out_dir: Path, drift_dir: Path | None = None) -> tuple[Path, ...]:
    """Write the report; return the paths written.

    Without `drift_dir`: ``validation.json`` and ``validation.html`` in `out_dir`, checks and drift together. With
    it: the checks in those two files and the drift in ``drift.json`` and ``drift.html`` in `drift_dir` (the
    validate stage passes the baseline's folder, which no DVC output covers).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "validation.json", out_dir / "validation.html"
    if drift_dir is None:
        json_path.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
        html_path.write_text(_page(report, _checks_html(report) + _drift_html(report)))
        return json_path, html_path
    drift_dir.mkdir(parents=True, exist_ok=True)
    drift_json, drift_html = drift_dir / "drift.json", drift_dir / "drift.html"
    json_path.write_text(json.dumps(report.checks_dict(), indent=2, default=str) + "\n")
    note = f"<p>Drift against the last accepted run: {html.escape(str(drift_html))} (depends on the runs before).</p>"
    html_path.write_text(_page(report, _checks_html(report) + note))
    drift_json.write_text(json.dumps(report.drift_dict(), indent=2, default=str) + "\n")
    drift_html.write_text(_page(report, _drift_html(report)))
    return json_path, html_path, drift_json, drift_html


def _cell(v: Any) -> str:
    return f"<td>{html.escape(str(v))}</td>"


def _page(report: ValidationReport, body: str) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Validation {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px;font-size:13px}}.critical{{background:#fdd}}.warning{{background:#ffd}}.ok{{color:#555}}</style>
</head><body><h1>Manifest validation: {verdict}</h1>
{body}</body></html>
"""


def _checks_html(report: ValidationReport) -> str:
    rows = []
    for r in sorted(report.results, key=lambda r: (r.success, r.check.severity != Severity.CRITICAL)):
        status = "pass" if r.success else f"FAIL ({r.check.severity.value})"
        cls = "ok" if r.success else r.check.severity.value
        values = (status, r.check.table, r.check.column, r.check.expectation, r.unexpected_count, r.observed,
                  r.check.why)  # fmt: skip
        rows.append(f"<tr class='{cls}'>" + "".join(_cell(v) for v in values) + "</tr>")
    n_critical, n_warning = len(report.critical_failures), len(report.warnings)
    return f"""<p>{len(report.results)} checks; {n_critical} critical failure(s); {n_warning}
warning(s). Offending values are never shown, only counts and hashed row keys.</p>
<table><tr><th>status</th><th>table</th><th>column</th><th>expectation</th><th>unexpected</th><th>observed</th>
<th>why it matters</th></tr>{"".join(rows)}</table>
"""


def _drift_html(report: ValidationReport) -> str:
    drift_rows = [
        "<tr>" + _cell(d.column) + _cell(f"{d.distance:.3f}") + _cell(report.drift_level(d)) + "</tr>"
        for d in report.drifts
    ]
    return f"""<h2>Drift against the last accepted run</h2>
<p>{"Baseline found." if report.baseline_found else "No accepted baseline yet."} Thresholds: warning above
{report.thresholds.warn}, critical above {report.thresholds.fail} (total variation distance).</p>
<table><tr><th>column</th><th>distance</th><th>level</th></tr>{"".join(drift_rows)}</table>
"""
